"""Out-of-fold evaluation against a baseline, decision thresholds and importance.

Every number a user reads about a model comes from here, so the rules are strict:

* a fresh Pipeline (cleaning and features included) is fitted inside each fold, so nothing is
  ever learned from the rows it is scored on;
* the dummy baseline is scored on the very same folds, which makes "better than the baseline"
  a paired comparison, fold by fold;
* the folds and the holdout come from :mod:`core.modeling.splits` (by time, by group or keeping
  class shares), and a holdout, when kept, stays out of all tuning and is scored once.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from core.data.profile import Task
from core.errors import BadInput
from core.modeling.metrics import METRICS, check_metric, oriented, score, score_all, signed
from core.modeling.specs import baseline
from core.modeling.splits import CVScheme, chart_times, fold_indices

__all__ = [
    "CVResult",
    "EvaluationReport",
    "MetricSummary",
    "THRESHOLD_METRICS",
    "best_threshold",
    "cross_validate",
    "evaluate",
    "model_score",
    "oof_labels",
    "per_class_table",
    "permutation_importance_table",
    "threshold_metric",
    "threshold_note",
]

MakeModel = Callable[[], BaseEstimator]  # a Pipeline factory; the dummy baseline fits it too

# "Not better than the baseline" also needs a small margin where fold-to-fold noise is ~0.
_RELATIVE_MARGIN = 0.01
# What a binary model's decision threshold can maximise, and the metrics that follow it.
THRESHOLD_METRICS = ("accuracy", "balanced_accuracy", "f1")
_LABEL_METRICS = tuple(name for name, m in METRICS.items() if Task.BINARY in m.tasks and not m.needs_proba)


# --- cross-validation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CVResult:
    """Per-fold scores and out-of-fold predictions of one model.

    Attributes:
        fold_scores: Metric name to one score per fold (``nan`` where undefined on a fold).
        y_true: The target, in row order.
        oof_pred: Out-of-fold predictions in row order; meaningful only where ``oof_mask``.
        oof_proba: Out-of-fold probabilities (columns in ``classes`` order), or ``None`` for
            regression and models without probabilities.
        oof_mask: Rows that got an out-of-fold prediction (a time-series split leaves the first
            block out: it is only ever trained on).
        classes: The class labels, sorted but for a binary task's positive class, which is last
            (:func:`core.modeling.metrics.oriented`); ``None`` for regression.
        fit_seconds: Wall time spent fitting and predicting, over all folds.
    """

    fold_scores: dict[str, tuple[float, ...]]
    y_true: np.ndarray
    oof_pred: np.ndarray
    oof_proba: np.ndarray | None
    oof_mask: np.ndarray
    classes: tuple | None
    fit_seconds: float


def cross_validate(
    make_pipeline: MakeModel,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: Task,
    scheme: CVScheme,
    metric: str,
    after_fold: Callable[[int, float], None] | None = None,
    positive: str | None = None,
) -> CVResult:
    """Fit a fresh model on each fold's training rows and score it on the fold's validation rows.

    Args:
        make_pipeline: Returns a new unfitted model (the whole Pipeline, so cleaning and features
            are learned inside the fold).
        X: Raw features, as ``prepare_training_table`` returns them.
        y: Target.
        task: The learning task.
        scheme: The validation scheme.
        metric: The primary metric, reported to ``after_fold``.
        after_fold: Called after each fold with the fold number (1-based) and the mean of the
            primary metric over the folds so far. It may raise (``optuna.TrialPruned``) to stop
            early; the exception propagates.
        positive: Binary: the positive class, as text; None takes the second in sorted order.

    Returns:
        The per-fold scores of every metric of the task and the out-of-fold predictions.

    Raises:
        BadInput: Unknown metric, or the scheme cannot split these rows.
    """
    task = Task(task)
    check_metric(metric, task)
    folds = fold_indices(X, y, scheme)
    y_true = y.to_numpy()
    n = len(y_true)
    classes = None if task is Task.REGRESSION else oriented(np.unique(y_true).tolist(), positive)
    oof_pred = np.full(n, np.nan) if classes is None else np.empty(n, dtype=y_true.dtype)
    oof_proba: np.ndarray | None = None
    mask = np.zeros(n, dtype=bool)
    scores: dict[str, list[float]] = {}
    started = time.perf_counter()
    for number, (train, valid) in enumerate(folds, start=1):
        model = make_pipeline().fit(X.iloc[train], y.iloc[train])
        X_valid = X.iloc[valid]
        pred = model.predict(X_valid)
        proba = None
        if classes is not None and hasattr(model, "predict_proba"):
            proba = aligned_proba(model, X_valid, classes)
            if oof_proba is None:
                oof_proba = np.full((n, len(classes)), np.nan)
            oof_proba[valid] = proba
        oof_pred[valid] = pred
        mask[valid] = True
        for name, value in score_all(task, y_true[valid], pred, proba, classes or ()).items():
            scores.setdefault(name, []).append(value)
        if metric not in scores:  # score_all leaves out probability metrics for such models
            raise BadInput(f"{METRICS[metric].label} needs predicted probabilities, and this model gives none.")
        if after_fold is not None:
            after_fold(number, _mean(scores[metric]))
    return CVResult(
        fold_scores={name: tuple(values) for name, values in scores.items()},
        y_true=y_true,
        oof_pred=oof_pred,
        oof_proba=oof_proba,
        oof_mask=mask,
        classes=classes,
        fit_seconds=time.perf_counter() - started,
    )


# --- evaluation report --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSummary:
    """One metric across folds, next to the baseline's score on the same folds.

    ``better_than_baseline`` uses the rule of :class:`EvaluationReport`. The prior baseline
    always predicts the majority class, so on metrics of the positive class (precision, recall,
    F1 when the positive class is the minority) it scores 0 and almost any model beats it: read
    the primary metric's flag, not these.
    """

    name: str
    label: str
    mean: float
    std: float
    baseline_mean: float
    baseline_std: float
    greater_is_better: bool
    better_than_baseline: bool


@dataclass(frozen=True)
class EvaluationReport:
    """Everything known about a model's quality before it is shipped.

    ``no_better_than_baseline`` is True when, on the primary metric, the model's mean gain over
    the dummy baseline (per fold, same folds, in the "higher is better" direction) is not larger
    than the larger of one standard deviation of those per-fold gains and 1% of the baseline's
    mean. Paired gains cancel what both models share (a hard fold is hard for both); one std
    rather than a standard error keeps the flag conservative; the 1% margin covers folds so alike
    that the std is ~0. A metric undefined on every fold also counts as no better.

    Attributes:
        task: The task's value (``"binary"``, ``"multiclass"``, ``"regression"``).
        scheme: The validation scheme.
        primary_metric: The metric the model was chosen on.
        metrics: Every metric of the task, the primary one first.
        no_better_than_baseline: See above.
        cv: The model's cross-validation result (out-of-fold predictions for the plots).
        holdout: Scores on the holdout, when one was kept.
        threshold: Binary only: the probability of the positive class (``cv.classes[1]``) from which
            a row is predicted positive, chosen on the out-of-fold probabilities to maximise
            :func:`threshold_metric` of the primary metric. The label metrics (accuracy,
            precision, ...) of ``metrics``, ``cv`` and ``holdout`` are at such a threshold, as the
            served model predicts; the baseline keeps its own labels.
        threshold_metric: The metric ``threshold`` maximises; None when there is no threshold
            (and in reports saved before it was recorded, whose label metrics are at 0.5).
        times: A time-series split's time column in row order (datetime64, or numbers for a
            numeric time column), for charts over time; None for other schemes (and in reports
            saved before it was recorded).
        holdout_rows: A time-series split's holdout, the latest rows, for the same charts: their
            ``time``, ``actual`` target, ``predicted`` value or label and, for a binary target,
            ``proba`` of the positive class, as the winner fit on the training rows scored them;
            None otherwise.
    """

    task: str
    scheme: CVScheme
    primary_metric: str
    metrics: tuple[MetricSummary, ...]
    no_better_than_baseline: bool
    cv: CVResult
    holdout: dict[str, float] | None
    threshold: float | None
    threshold_metric: str | None = None
    times: np.ndarray | None = None
    holdout_rows: pd.DataFrame | None = None

    def metric(self, name: str) -> MetricSummary:
        """The summary of the metric called ``name``.

        Raises:
            KeyError: The report has no such metric.
        """
        for summary in self.metrics:
            if summary.name == name:
                return summary
        raise KeyError(name)


def evaluate(
    make_pipeline: MakeModel,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: Task,
    scheme: CVScheme,
    metric: str,
    seed: int,
    X_holdout: pd.DataFrame | None = None,
    y_holdout: pd.Series | None = None,
    cv: CVResult | None = None,
    positive: str | None = None,
) -> EvaluationReport:
    """Cross-validate a model and the dummy baseline on the same folds, then score the holdout.

    Args:
        make_pipeline: Returns a new unfitted model Pipeline.
        X: Raw training features (the holdout excluded).
        y: Training target.
        task: The learning task.
        scheme: The validation scheme.
        metric: The primary metric.
        seed: Seed of the baseline.
        X_holdout: Holdout features; the model is then fitted on all of ``X`` and scored once.
        y_holdout: Holdout target.
        cv: The model's cross-validation on exactly these rows and ``scheme``'s folds, when it
            was already run (tuning's, for its winner, with the same ``positive``); None runs it.
        positive: Binary: the positive class, as text; None takes the second in sorted order.

    Returns:
        The report.

    Raises:
        BadInput: Unknown metric, a holdout without its target, or rows the scheme cannot split.
    """
    task = Task(task)
    check_metric(metric, task)
    if (X_holdout is None) != (y_holdout is None):
        raise BadInput("A holdout needs both its features and its target.")
    if cv is None:
        cv = cross_validate(make_pipeline, X, y, task=task, scheme=scheme, metric=metric, positive=positive)
    base = cross_validate(lambda: baseline(task, seed=seed), X, y, task=task, scheme=scheme, metric=metric,
                          positive=positive)
    threshold = None
    if task is Task.BINARY and cv.oof_proba is not None and cv.classes is not None:
        cv, threshold = _at_decision_threshold(cv, fold_indices(X, y, scheme), threshold_metric(metric),
                                               forward_only=scheme.kind == "time")
        if scheme.kind == "time":  # the baseline's first fold leaves its label metrics out too: pairs stay pairs
            base = replace(base, fold_scores={name: (float("nan"), *values[1:]) if name in _LABEL_METRICS else values
                                              for name, values in base.fold_scores.items()})
    names = [metric] + [name for name in cv.fold_scores if name != metric]
    summaries = tuple(_summary(name, cv.fold_scores[name], base.fold_scores.get(name, ())) for name in names)
    holdout = holdout_rows = None
    if X_holdout is not None and y_holdout is not None:
        final = make_pipeline().fit(X, y)
        classes = cv.classes or ()
        proba = aligned_proba(final, X_holdout, classes) if classes and hasattr(final, "predict_proba") else None
        pred = final.predict(X_holdout) if threshold is None else _labels(proba[:, 1], threshold, classes)
        holdout = score_all(task, y_holdout.to_numpy(), pred, proba, classes)
        if scheme.kind == "time":
            holdout_rows = pd.DataFrame({"time": chart_times(X_holdout[scheme.time_column]),
                                         "actual": y_holdout.to_numpy(), "predicted": pred}
                                        | ({"proba": proba[:, 1]} if task is Task.BINARY and proba is not None else {}))
    return EvaluationReport(
        task=task.value,
        scheme=scheme,
        primary_metric=metric,
        metrics=summaries,
        no_better_than_baseline=not summaries[0].better_than_baseline,
        cv=cv,
        holdout=holdout,
        threshold=threshold,
        threshold_metric=threshold_metric(metric) if threshold is not None else None,
        times=chart_times(X[scheme.time_column]) if scheme.kind == "time" else None,
        holdout_rows=holdout_rows,
    )


def threshold_metric(metric: str) -> str:
    """The label metric a binary model's decision threshold maximises when a job optimises
    ``metric``: the metric itself when it is accuracy, balanced accuracy or F1, else balanced
    accuracy. Balanced accuracy treats both classes alike, so the cut-off does not depend on which
    class sorts second, and on an imbalanced target it does not give up on the rare class.
    Precision or recall alone would be maximised by a cut-off at an extreme."""
    return metric if metric in THRESHOLD_METRICS else "balanced_accuracy"


def threshold_note(threshold: float, metric: str, positive: str | None = None, *, time_ordered: bool = False) -> str:
    """One sentence saying which threshold the label metrics are at, for the model card, the
    Evaluate page and the CLI. ``positive`` is the positive class, already escaped for where the
    sentence goes (Markdown or a terminal); nothing else in it comes from the user.
    ``time_ordered``: the folds are a time-series split (see :func:`evaluate`)."""
    label = METRICS[metric].label
    of = f" on the probability of '{positive}'" if positive is not None else ""
    folds = ("Each fold is scored at a cut-off chosen on the earlier folds (the first, which has none "
             "before it, is left out of these)" if time_ordered else
             "Each fold is scored at a cut-off chosen on the other folds")
    return (f"Accuracy, balanced accuracy, precision, recall and F1 are at the decision threshold "
            f"{threshold:.3g}{of} that the model predicts with: the cut-off that maximises "
            f"{label if label.isupper() else label.lower()} on out-of-fold predictions. {folds}; "
            "the baseline keeps its own labels.")


def baseline_notes(report: EvaluationReport, *, class_weighted: bool, positive: str | None = None) -> tuple[str, ...]:
    """Sentences explaining a metric that trails the dummy baseline for a reason other than a
    poor model, for the Evaluate page. ``positive`` is the positive class, already escaped for
    where the sentences go; nothing else in them comes from the user.

    * Accuracy, when the decision threshold serves another metric: a balanced cut-off predicts
      the rare class more often, which on a lopsided table costs accuracy, while the baseline
      always answers the common class.
    * Log loss, when the model learned with balanced class weights: weighing the rare class up
      pushes its probabilities up (on ``lending_club``, log loss 0.59 against 0.19 unweighted,
      at the same ROC AUC), and log loss reads the probabilities themselves.
    """
    trailing = {m.name: m for m in report.metrics if not m.better_than_baseline}
    notes = []
    accuracy = trailing.get("accuracy")
    if accuracy is not None and report.threshold_metric not in (None, "accuracy"):
        served = METRICS[report.threshold_metric].label
        served = served[0].lower() + served[1:] if served[1:2].islower() else served  # "balanced accuracy", "F1"
        notes.append(f"Accuracy trails the baseline's ({accuracy.baseline_mean:.4f}) because the threshold serves "
                     f"{served}, not accuracy. The baseline always answers the most common class: on a table this "
                     "lopsided that is right most of the time, and it finds none of the other class.")
    log_loss = trailing.get("log_loss")
    if log_loss is not None and class_weighted:
        of = f" of '{positive}'" if positive is not None else " of the rarer classes"
        notes.append(f"Log loss trails the baseline's ({log_loss.baseline_mean:.4f}) because the model learned with "
                     f"balanced class weights: they weigh the rarer classes up, so its probabilities{of} run high "
                     "(see Calibration). Scores of ranking, such as ROC AUC, do not suffer; train without class "
                     "weights when the probabilities themselves are used.")
    return tuple(notes)


def best_threshold(y_true: Sequence, proba_pos: Sequence[float], *, metric: str = "balanced_accuracy") -> float:
    """The probability cut-off that maximises a label metric on scored rows.

    Every way of splitting the rows by score is tried. The cut-off sits halfway between the
    two scores it separates, so a new row scored between them is not decided by chance; among
    equally good cut-offs the one nearest 0.5 wins.

    Args:
        y_true: Whether each row is positive (booleans or 0/1).
        proba_pos: Predicted probability of the positive class per row.
        metric: One of :data:`THRESHOLD_METRICS` (F1 is the positive class's).

    Returns:
        A threshold in [0, 1]: predict positive when the probability is at least this. 0.5
        when the rows hold only one class (nothing to choose from).

    Raises:
        BadInput: An unsupported metric.
    """
    if metric not in THRESHOLD_METRICS:
        raise BadInput(f"Thresholds can be chosen for {', '.join(THRESHOLD_METRICS)}, not {metric!r}.")
    positive = np.asarray(y_true).astype(bool)
    scores = np.asarray(proba_pos, dtype=float)
    if positive.all() or not positive.any():
        return 0.5
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    last = np.r_[ranked[1:] != ranked[:-1], True]  # the last row of each run of equal scores
    distinct = ranked[last]  # descending
    # Option k predicts positive the rows scoring at least distinct[k - 1]; option 0 predicts none.
    tp = np.r_[0, np.cumsum(hits)[last]].astype(float)
    fp = np.r_[0, np.cumsum(~hits)[last]].astype(float)
    n_pos, n_neg = tp[-1], fp[-1]
    if metric == "accuracy":
        value = (tp + n_neg - fp) / (n_pos + n_neg)
    elif metric == "balanced_accuracy":
        value = (tp / n_pos + (n_neg - fp) / n_neg) / 2
    else:
        value = 2 * tp / np.maximum(tp + fp + n_pos, 1e-12)  # 2TP / (2TP + FP + FN)
    cuts = (np.r_[1.0, distinct] + np.r_[distinct, 0.0]) / 2
    best = np.flatnonzero(value >= value.max() - 1e-12)
    cut = cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]]
    return float(cut)


def permutation_importance_table(
    pipeline: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: Task,
    metric: str,
    seed: int,
    max_rows: int = 5000,
    repeats: int = 3,
    threshold: float | None = None,
    positive: str | None = None,
) -> pd.DataFrame:
    """How much the score drops when one raw column's values are shuffled.

    Columns of the raw ``X`` are permuted before the Pipeline, so the answer is per source
    column (one-hot levels and date parts of a column count together), in the user's terms.

    Args:
        pipeline: A fitted model Pipeline.
        X: Raw features the model was not trained on (a holdout), or its training rows.
        y: Target.
        task: The learning task.
        metric: The metric whose drop is measured.
        seed: Seed of the row sample and the permutations.
        max_rows: Score on a random sample of at most this many rows, for speed.
        repeats: Permutations per column.
        threshold: Binary: the decision threshold the label metrics are scored at (the
            version's); None scores the most probable class.
        positive: Binary: the positive class the threshold applies to (the version's), as text.

    Returns:
        Columns ``column``, ``importance_mean``, ``importance_std`` (drop of the metric, in the
        "higher is better" direction, so positive means the column helps), most important first.

    Raises:
        BadInput: Unknown metric.
    """
    task = Task(task)
    check_metric(metric, task)
    rng = np.random.default_rng(seed)
    if len(X) > max_rows:
        rows = np.sort(rng.choice(len(X), size=max_rows, replace=False))
        X, y = X.iloc[rows], y.iloc[rows]
    work = X.reset_index(drop=True)  # permuted columns are aligned by position
    y_true = y.to_numpy()
    classes = () if task is Task.REGRESSION else oriented(pipeline.classes_.tolist(), positive)

    def higher_is_better() -> float:
        return signed(metric, model_score(pipeline, work, y_true, metric=metric, classes=classes, threshold=threshold))

    base = higher_is_better()
    records = []
    for column in X.columns:
        original = work[column]
        drops = []
        for _ in range(repeats):
            work[column] = original.iloc[rng.permutation(len(work))].set_axis(work.index)
            drops.append(base - higher_is_better())
        work[column] = original
        records.append((str(column), _mean(drops), float(np.nanstd(drops)) if len(drops) > 1 else 0.0))
    table = pd.DataFrame(records, columns=["column", "importance_mean", "importance_std"])
    return table.sort_values("importance_mean", ascending=False, ignore_index=True)


def per_class_table(report: EvaluationReport, threshold: float = 0.5) -> pd.DataFrame:
    """Precision, recall and F1 of every class, from the out-of-fold predictions: which classes
    the model finds and which it confuses, where the table of metrics gives macro averages.

    Args:
        report: An evaluation report of a classification model.
        threshold: Binary: the positive class is predicted from this probability up.

    Returns:
        One row per class, the most frequent first: ``class``, ``rows`` (actual), ``share`` of the
        rows, ``predicted`` (rows predicted as the class), ``precision``, ``recall``, ``F1``
        (NaN where a class is never predicted, or never occurs).

    Raises:
        BadInput: The report is a regression's.
    """
    if report.task == Task.REGRESSION or report.cv.classes is None:
        raise BadInput("Per-class scores apply to classification")
    actual, predicted = oof_labels(report, threshold)
    rows = []
    for cls in report.cv.classes:
        is_actual, is_predicted = actual == cls, predicted == cls
        hits = int(np.count_nonzero(is_actual & is_predicted))
        precision = hits / is_predicted.sum() if is_predicted.any() else np.nan
        recall = hits / is_actual.sum() if is_actual.any() else np.nan
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else np.nan
        rows.append({"class": str(cls), "rows": int(is_actual.sum()), "share": is_actual.mean(),
                     "predicted": int(is_predicted.sum()), "precision": precision, "recall": recall, "F1": f1})
    return pd.DataFrame(rows).sort_values("rows", ascending=False, kind="stable", ignore_index=True)


def oof_labels(report: EvaluationReport, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The actual and the predicted class of every row with an out-of-fold prediction: a binary
    model's at ``threshold`` on its positive class, a multiclass model's most probable class."""
    cv = report.cv
    actual = cv.y_true[cv.oof_mask]
    if cv.oof_proba is None:
        return actual, cv.oof_pred[cv.oof_mask]
    proba = cv.oof_proba[cv.oof_mask]
    if len(cv.classes) == 2:
        return actual, np.where(proba[:, 1] >= threshold, cv.classes[1], cv.classes[0])
    return actual, np.asarray(cv.classes, dtype=object)[proba.argmax(axis=1)]


def model_score(model: BaseEstimator, X: pd.DataFrame, y_true: np.ndarray, *, metric: str, classes: Sequence,
                threshold: float | None = None) -> float:
    """A fitted model's ``metric`` on rows, from one prediction pass.

    Args:
        model: A fitted Pipeline.
        X: Raw features.
        y_true: Their targets.
        metric: The metric.
        classes: The model's classes, oriented (empty for regression).
        threshold: Binary: the decision threshold on ``classes[1]``'s probability that labels are
            given at; None takes the most probable class.
    """
    if classes and hasattr(model, "predict_proba"):
        proba = aligned_proba(model, X, classes)
        # The labels from the probabilities save a second pass through the model.
        if threshold is not None and len(classes) == 2:
            pred = _labels(proba[:, 1], threshold, classes)
        else:
            pred = np.asarray(classes)[proba.argmax(axis=1)]
    else:
        proba, pred = None, model.predict(X)
    return score(metric, y_true, pred, proba, classes)


def aligned_proba(model: BaseEstimator, X: pd.DataFrame, classes: Sequence) -> np.ndarray:
    """``predict_proba`` with one column per entry of ``classes``, in that order (the positive
    class last, say), even when the model's fold lacked a class (its column is then 0)."""
    proba = np.asarray(model.predict_proba(X), dtype=float)
    model_classes = list(model.classes_)
    if model_classes == list(classes):
        return proba
    index = {label: i for i, label in enumerate(classes)}
    out = np.zeros((len(X), len(classes)))
    for j, label in enumerate(model_classes):
        out[:, index[label]] = proba[:, j]
    return out


# --- internals ----------------------------------------------------------------------------------


def _labels(proba_pos: np.ndarray, threshold: float, classes: Sequence) -> np.ndarray:
    """Binary labels from the positive class's probability, as the served model decides them."""
    return np.where(proba_pos >= threshold, classes[1], classes[0])


def _at_decision_threshold(cv: CVResult, folds: list, objective: str, *,
                           forward_only: bool) -> tuple[CVResult, float]:
    """The threshold the model will serve with, chosen on all out-of-fold predictions, and ``cv``
    with its label metrics scored at a threshold: each fold's at one chosen the same way on the
    other folds' predictions, so no fold is scored at a cut-off its own rows picked.

    ``forward_only`` (time-ordered folds, in time order): a fold's cut-off is chosen on the earlier
    folds only, as it could have been at the time; later folds would tell it the future. The
    first fold has no earlier predictions to choose one on, so its label metrics are left out
    (``nan``; its labels stay the model's own)."""
    positive, proba_pos, scored = cv.y_true == cv.classes[1], cv.oof_proba[:, 1], cv.oof_mask
    threshold = best_threshold(positive[scored], proba_pos[scored], metric=objective)
    fold_scores = {name: list(values) for name, values in cv.fold_scores.items()}
    oof_pred = cv.oof_pred.copy()
    earlier = np.zeros(len(scored), dtype=bool)
    for number, (_, valid) in enumerate(folds):
        others = earlier.copy() if forward_only else scored.copy()
        others[valid] = False
        earlier[valid] = True
        if not others.any():
            for name in _LABEL_METRICS:
                fold_scores[name][number] = float("nan")
            continue
        cut = best_threshold(positive[others], proba_pos[others], metric=objective)
        oof_pred[valid] = pred = _labels(proba_pos[valid], cut, cv.classes)
        for name in _LABEL_METRICS:
            fold_scores[name][number] = score(name, cv.y_true[valid], pred, None, cv.classes)
    return replace(cv, fold_scores={k: tuple(v) for k, v in fold_scores.items()}, oof_pred=oof_pred), threshold


def _summary(name: str, model: Sequence[float], base: Sequence[float]) -> MetricSummary:
    info = METRICS[name]
    return MetricSummary(
        name=name,
        label=info.label,
        mean=_mean(model),
        std=_std(model),
        baseline_mean=_mean(base),
        baseline_std=_std(base),
        greater_is_better=info.greater_is_better,
        better_than_baseline=_beats(name, model, base),
    )


def _beats(name: str, model: Sequence[float], base: Sequence[float]) -> bool:
    """The paired rule documented on :class:`EvaluationReport`."""
    if len(model) != len(base):
        return False
    gains = np.array([signed(name, m) - signed(name, b) for m, b in zip(model, base)], dtype=float)
    gains = gains[np.isfinite(gains)]
    if not len(gains):
        return False
    margin = max(_std(gains), _RELATIVE_MARGIN * abs(_mean(base)) if np.isfinite(_mean(base)) else 0.0)
    return bool(gains.mean() > margin)


def _mean(values: Sequence[float]) -> float:
    """Mean over the defined values; ``nan`` (without a warning) when there are none."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if len(finite) else float("nan")


def _std(values: Sequence[float]) -> float:
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
