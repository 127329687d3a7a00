"""The metrics a user can optimise and read, and how each one is computed.

Conventions, the same everywhere a score is shown:

* ``classes`` is the model's ``classes_`` in the order :func:`oriented` gives: sorted, as
  scikit-learn sorts them, except that a binary task's positive class comes last. So in a binary
  task the positive class is ``classes[1]``: precision, recall and F1 are for that class and the
  ranking metrics use ``proba[:, 1]``. Which class is positive is the user's choice, by default
  the rarer one (:func:`positive_class`).
* Multiclass precision, recall and F1 are macro averages over the classes that occur in
  ``y_true`` or ``y_pred`` of the rows scored, so a class a validation fold lacks entirely does
  not count as a zero. A class with no predicted rows scores 0 precision (not a warning).
* ROC AUC and PR AUC are undefined for a class without rows (and AUC for a fold with only one
  class). They return ``nan`` when the rows scored lack any of ``classes`` (binary: lack either
  class), or contain a label the model never saw; averaging folds should skip ``nan``.
* Log loss clips probabilities to ``[1e-15, 1 - 1e-15]`` (renormalised per row), so one
  confident mistake costs about 34.5 rather than infinity.
* MAPE skips rows whose true value is 0 (a percentage error of 0 is undefined; scikit-learn's
  version divides by machine epsilon instead and returns ~1e15). It is a fraction (0.1 = 10 %),
  and ``nan`` when every true value is 0.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from core.data.profile import Task
from core.errors import BadInput

_CLASSIFICATION = frozenset({Task.BINARY, Task.MULTICLASS})
_REGRESSION = frozenset({Task.REGRESSION})
_EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    """One metric: its name, display label, the tasks it applies to and its direction.

    Attributes:
        name: The identifier used in configs and results, e.g. ``"roc_auc"``.
        label: The text shown to a user, e.g. ``"ROC AUC"``.
        tasks: The tasks the metric applies to.
        greater_is_better: Whether a higher value is better.
        needs_proba: Whether it scores predicted probabilities rather than labels.
    """

    name: str
    label: str
    tasks: frozenset[Task]
    greater_is_better: bool
    needs_proba: bool


def _m(name: str, label: str, tasks: frozenset[Task], greater: bool = True, proba: bool = False) -> Metric:
    return Metric(name=name, label=label, tasks=tasks, greater_is_better=greater, needs_proba=proba)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _m("accuracy", "Accuracy", _CLASSIFICATION),
        _m("balanced_accuracy", "Balanced accuracy", _CLASSIFICATION),
        _m("precision", "Precision", _CLASSIFICATION),
        _m("recall", "Recall", _CLASSIFICATION),
        _m("f1", "F1", _CLASSIFICATION),
        _m("roc_auc", "ROC AUC", _CLASSIFICATION, proba=True),
        _m("pr_auc", "PR AUC (average precision)", _CLASSIFICATION, proba=True),
        _m("log_loss", "Log loss", _CLASSIFICATION, greater=False, proba=True),
        _m("rmse", "RMSE", _REGRESSION, greater=False),
        _m("mae", "MAE", _REGRESSION, greater=False),
        _m("r2", "R²", _REGRESSION),
        _m("mape", "MAPE", _REGRESSION, greater=False),
    )
}

_DEFAULTS = {Task.BINARY: "roc_auc", Task.MULTICLASS: "balanced_accuracy", Task.REGRESSION: "r2"}


def default_metric(task: Task) -> str:
    """The metric a new training job optimises for ``task``.

    Args:
        task: The learning task.

    Returns:
        ``"roc_auc"`` (binary), ``"balanced_accuracy"`` (multiclass) or ``"r2"`` (regression).
    """
    return _DEFAULTS[Task(task)]


def tuned_metric(cv: dict | None, task: Task) -> str:
    """The metric a model version's search optimised, from the cross-validation settings it
    recorded (``cv["tuning"]["metric"]``): the one chosen, else the task's default."""
    return ((cv or {}).get("tuning") or {}).get("metric") or default_metric(task)


def positive_class(y: Sequence, requested: object = None) -> str:
    """The positive class of a binary target, as text: the one precision, recall, F1 and PR AUC
    describe and whose probability the decision threshold cuts.

    Args:
        y: The target's values (two classes).
        requested: The class the user chose, compared as text (``"1"`` finds the class ``1``);
            None picks the rarer class, the one analysts usually want found (churners, bad loans,
            fraud); on a tie, the second in sorted order.

    Raises:
        BadInput: ``requested`` is not a class of the target.
    """
    labels, counts = np.unique(np.asarray(y), return_counts=True)
    names = [str(label) for label in labels.tolist()]
    if requested is not None:
        if str(requested) not in names:
            shown = ", ".join(repr(name) for name in names[:10])
            raise BadInput(f"the positive class {str(requested)!r} is not a class of the target; "
                           f"its classes are {shown}")
        return str(requested)
    rarest = min(range(len(names)), key=lambda i: (counts[i], -i))
    return names[rarest]


# In a binary task these describe the positive class only.
POSITIVE_CLASS_METRICS = frozenset({"precision", "recall", "f1", "pr_auc"})


def same_positive(a: object, b: object) -> bool:
    """Whether two binary models' precision, recall, F1 and PR AUC describe the same class: both
    recorded the same positive class, or neither recorded one (both then mean the second class
    in sorted order). Compared as text."""
    return (a is None and b is None) or (a is not None and b is not None and str(a) == str(b))


def oriented(classes: Sequence, positive: object = None) -> tuple:
    """``classes`` (sorted) in the order the metrics read them: a binary task's ``positive``
    class last. Classes are compared as text; None keeps the sorted order, whose second class was
    the positive one in versions trained before it could be chosen."""
    classes = tuple(classes)
    if len(classes) == 2 and positive is not None and str(classes[0]) == str(positive):
        return classes[::-1]
    return classes


def task_label(name: str, task: str, positive: object = None) -> str:
    """A metric's label as it reads for ``task``: a binary target's precision, recall, F1 and PR
    AUC name the class they describe (``positive``; none named when None), and a multiclass
    target's say they are macro averages."""
    label = METRICS[name].label if name in METRICS else name
    if task == "binary" and name in POSITIVE_CLASS_METRICS and positive is not None:
        return f"{label} of '{positive}'"
    if task == "multiclass" and name in (*POSITIVE_CLASS_METRICS, "roc_auc"):  # one number, many classes
        return label + (", one-vs-rest macro average" if name == "roc_auc" else ", macro average")
    return label


def score_decimals(value: float) -> int:
    """How many decimals a score of about ``value`` is written with: four below 10, one fewer
    for each further digit (R² ``0.3519``, RMSE ``5.2309`` or ``42,971``), so an error in the
    target's units is not written to a hundredth of a cent."""
    size = abs(value) if np.isfinite(value) else 0.0
    digits = int(np.floor(np.log10(size))) + 1 if size >= 1 else 1  # before the point
    return max(0, 5 - digits)


def format_score(value: float | None, *, like: float | None = None) -> str:
    """A score as the pages, the model card and the CLI write it (see :func:`score_decimals`),
    thousands separated. ``like`` is the number whose decimals to use, so that a spread lines up
    with its mean. None is a dash; NaN and infinity are written as such."""
    if value is None:
        return "–"
    if not np.isfinite(value):
        return str(value)
    return f"{value:,.{score_decimals(value if like is None else like)}f}"


def in_display_order(names: Iterable[str], *, first: str | None = None) -> list[str]:
    """``names`` with ``first`` (say, the metric a search optimised) leading, then in the order
    metrics are shown everywhere; names that are no metric go last, in the order given."""
    order = list(METRICS)
    return sorted(dict.fromkeys(names), key=lambda n: (n != first, order.index(n) if n in order else len(order)))


def metrics_for(task: Task) -> tuple[str, ...]:
    """The names of the metrics that apply to ``task``, in display order.

    Args:
        task: The learning task.

    Returns:
        Metric names, e.g. ``("rmse", "mae", "r2", "mape")`` for regression.
    """
    return tuple(name for name, m in METRICS.items() if Task(task) in m.tasks)


def check_metric(name: str, task: Task) -> Metric:
    """The metric called ``name``, checked against ``task``.

    Args:
        name: A metric name from :data:`METRICS`.
        task: The learning task it will score.

    Returns:
        The metric.

    Raises:
        BadInput: The name is unknown, or the metric does not apply to the task.
    """
    valid = ", ".join(metrics_for(task))
    metric = METRICS.get(name)
    if metric is None:
        raise BadInput(f"Unknown metric {name!r}; use one of: {valid}.")
    if Task(task) not in metric.tasks:
        raise BadInput(f"{name} does not apply to {Task(task).value}; use one of: {valid}.")
    return metric


def signed(name: str, value: float) -> float:
    """``value`` turned into a number to maximise: negated when lower is better.

    Args:
        name: The metric name.
        value: A score from :func:`score`.

    Returns:
        ``value`` or ``-value``.
    """
    return float(value) if METRICS[name].greater_is_better else -float(value)


def score(name: str, y_true, y_pred, proba: np.ndarray | None, classes: Sequence) -> float:
    """One metric on one set of rows.

    Args:
        name: The metric name.
        y_true: True targets.
        y_pred: Predicted labels (classification) or values (regression).
        proba: Predicted probabilities, one column per entry of ``classes`` in that order;
            needed only by metrics with ``needs_proba``.
        classes: The model's ``classes_`` (empty for regression). Two entries mean binary.

    Returns:
        The score as a float; ``nan`` where the module docstring says the metric is undefined.

    Raises:
        BadInput: The name is unknown, or a probability metric gets no probabilities.
    """
    metric = METRICS.get(name)
    if metric is None:
        raise BadInput(f"Unknown metric {name!r}; use one of: {', '.join(METRICS)}.")
    y_true = np.asarray(y_true)
    if metric.needs_proba:
        if proba is None:
            raise BadInput(f"{metric.label} needs predicted probabilities, and this model gives none.")
        return _proba_score(name, y_true, np.asarray(proba, dtype=float), np.asarray(classes))
    y_pred = np.asarray(y_pred)
    if metric.tasks == _REGRESSION:
        return float(_REGRESSION_SCORERS[name](y_true.astype(float), y_pred.astype(float)))
    return _label_score(name, y_true, y_pred, np.asarray(classes))


def score_all(task: Task, y_true, y_pred, proba: np.ndarray | None, classes: Sequence) -> dict[str, float]:
    """Every metric of ``task`` on one set of rows.

    Probability metrics are left out when ``proba`` is ``None``.

    Args:
        task: The learning task.
        y_true: True targets.
        y_pred: Predicted labels or values.
        proba: Predicted probabilities (columns in ``classes`` order), or ``None``.
        classes: The model's ``classes_`` (empty for regression).

    Returns:
        Metric name to score, in :func:`metrics_for` order.
    """
    return {
        name: score(name, y_true, y_pred, proba, classes)
        for name in metrics_for(task)
        if proba is not None or not METRICS[name].needs_proba
    }


# internals -----------------------------------------------------------------------------------


def _label_score(name: str, y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray) -> float:
    if name == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected on small folds, and handled.
        warnings.simplefilter("ignore")
        if name == "balanced_accuracy":
            return float(skm.balanced_accuracy_score(y_true, y_pred))
        fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
        if len(classes) == 2:
            # average="binary" insists both labels occur; score the positive class one-vs-rest.
            positive = classes[1]
            return float(fn(y_true == positive, y_pred == positive, zero_division=0))
        return float(fn(y_true, y_pred, average="macro", zero_division=0))


def _proba_score(name: str, y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"proba has shape {proba.shape}, expected one column per class ({len(classes)}).")
    if name == "log_loss":
        if not np.isin(y_true, classes).all():
            return float("nan")  # a label the model never saw: its probability is 0, the loss infinite
        clipped = np.clip(proba, _EPS, 1 - _EPS)
        clipped /= clipped.sum(axis=1, keepdims=True)
        order = np.argsort(classes)  # log_loss reads the columns in sorted order, not oriented()'s
        return float(skm.log_loss(y_true, clipped[:, order], labels=classes[order]))
    # Ranking metrics need every class present (and nothing else) to be defined.
    if not (np.isin(y_true, classes).all() and np.isin(classes, y_true).all()):
        return float("nan")
    if len(classes) == 2:
        positive = y_true == classes[1]
        fn = skm.roc_auc_score if name == "roc_auc" else skm.average_precision_score
        return float(fn(positive, proba[:, 1]))
    if name == "roc_auc":
        return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes))
    onehot = (y_true[:, None] == classes[None, :]).astype(int)
    return float(skm.average_precision_score(onehot, proba, average="macro"))


def _mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    keep = y_true != 0
    if not keep.any():
        return float("nan")
    return float(np.mean(np.abs((y_true[keep] - y_pred[keep]) / y_true[keep])))


_REGRESSION_SCORERS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "rmse": skm.root_mean_squared_error,
    "mae": skm.mean_absolute_error,
    "r2": skm.r2_score,
    "mape": _mape,
}
