"""What drives a registered model's predictions: permutation importance on rows it never saw.

A version ships a Pipeline fitted on every row, holdout included, so no row is unseen by it.
Importance measured on its own training rows rewards what the model memorised: on the taxi
sample a random forest loses 0.07 ROC AUC on its training rows when ``company`` is shuffled and
nothing on the holdout. So the winner is fitted again, as evaluation fitted it, on the training
rows alone (the holdout is split off exactly as training split it: the data is immutable and the
split seeded), and the columns are shuffled on the holdout rows. Partial dependence describes the
shipped model itself and uses its training table. The rows the model gets most wrong come from the
evaluation's out-of-fold predictions, next to the training rows they were made for.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from core import registry
from core.config import Settings
from core.data.profile import Task
from core.errors import BadInput
from core.modeling.evaluation import EvaluationReport, model_score, oof_labels, permutation_importance_table
from core.modeling.metrics import oriented, tuned_metric
from core.modeling.splits import CVScheme, holdout_split
from core.prep.recipe import prepare_training_table, recipe_from_json
from core.store.models import ModelVersion


@dataclass(frozen=True)
class Explanation:
    """Importance and what partial dependence needs, for one model version.

    Attributes:
        importance: From :func:`permutation_importance_table`: ``column``, ``importance_mean``,
            ``importance_std``, most important first.
        scored_on: ``"holdout"``, or ``"training"`` for a version that recorded no holdout.
        n_rows: How many rows the columns were shuffled on (a sample of at most 5,000).
        metric: The metric whose drop is measured: the one the version was tuned for.
        score: The metric on all of those rows, unshuffled: on the holdout, the version's
            recorded holdout score.
        pipeline: The shipped Pipeline.
        X: The version's training table (its recipe applied to the dataset), every row.
    """

    importance: pd.DataFrame
    scored_on: str
    n_rows: int
    metric: str
    score: float
    pipeline: Pipeline
    X: pd.DataFrame


@dataclass(frozen=True)
class VersionRows:
    """A version's shipped Pipeline and its training table, with what scoring them needs.

    Attributes:
        pipeline: The shipped Pipeline (fitted on every row, holdout included).
        X: The version's training table (its recipe applied to the dataset), every row.
        y: Its target.
        task: The learning task.
        metric: The metric the version was tuned for.
        threshold: A binary version's decision threshold, else None.
        positive: A binary version's positive class, else None.
        classes: The Pipeline's classes, oriented (the positive class last); empty for regression.
        scheme: The version's cross-validation scheme; None when it recorded none.
        holdout_share: The share of rows its training held out; None when it kept no holdout.
    """

    pipeline: Pipeline
    X: pd.DataFrame
    y: pd.Series
    task: Task
    metric: str
    threshold: float | None
    positive: str | None
    classes: tuple
    scheme: CVScheme | None
    holdout_share: float | None

    def split(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
        """The training rows and the holdout, split exactly as training split them (the data is
        immutable and the split seeded). Call only when ``holdout_share`` is set."""
        return holdout_split(self.X, self.y, task=self.task, scheme=self.scheme, share=self.holdout_share)


def version_rows(version: ModelVersion, frame: pd.DataFrame, *, settings: Settings) -> VersionRows:
    """A READY version's Pipeline (hash-checked) and the table it was trained on.

    Args:
        version: A READY version.
        frame: The dataset it was trained on, as uploaded.
        settings: Where the model files live.

    Raises:
        BadInput: The model file fails its hash check, or the table no longer fits the version's
            recipe (a missing target or column).
    """
    pipeline = registry.load_pipeline(version, settings=settings)
    X, y = prepare_training_table(frame, recipe_from_json(version.recipe_json), target=version.target)
    cv = json.loads(version.cv_json or "{}")
    task = Task(version.task)
    labelling = registry.labelling(version)
    scheme = CVScheme.from_dict(cv)
    return VersionRows(
        pipeline=pipeline, X=X, y=y, task=task, metric=tuned_metric(cv, task),
        threshold=labelling.threshold, positive=labelling.positive,
        classes=() if task is Task.REGRESSION else tuple(oriented(pipeline.classes_.tolist(), labelling.positive)),
        scheme=scheme, holdout_share=cv.get("holdout_share") if scheme is not None else None,
    )


def explain_version(version: ModelVersion, frame: pd.DataFrame, *, settings: Settings,
                    max_rows: int = 5_000) -> Explanation:
    """Permutation importance of a version's source columns on its holdout rows.

    Args:
        version: A READY version.
        frame: The dataset it was trained on, as uploaded.
        settings: Where the model files live, and the seed of the permutations.
        max_rows: Shuffle columns on a sample of at most this many rows.

    Raises:
        BadInput: As :func:`version_rows`.
    """
    rows = version_rows(version, frame, settings=settings)
    model, X_scored, y_scored, scored_on = rows.pipeline, rows.X, rows.y, "training"
    if rows.holdout_share:
        X_train, X_scored, y_train, y_scored = rows.split()
        model, scored_on = clone(rows.pipeline).fit(X_train, y_train), "holdout"
    table = permutation_importance_table(model, X_scored, y_scored, task=rows.task, metric=rows.metric,
                                         seed=settings.random_seed, max_rows=max_rows, threshold=rows.threshold,
                                         positive=rows.positive)
    classes = () if rows.task is Task.REGRESSION else oriented(model.classes_.tolist(), rows.positive)
    unshuffled = model_score(model, X_scored, y_scored.to_numpy(), metric=rows.metric, classes=classes,
                             threshold=rows.threshold)
    return Explanation(importance=table, scored_on=scored_on, n_rows=min(len(X_scored), max_rows), metric=rows.metric,
                       score=unshuffled, pipeline=rows.pipeline, X=rows.X)


def worst_predictions(report: EvaluationReport, rows: VersionRows, n: int = 20) -> pd.DataFrame:
    """The training rows the model got most wrong out-of-fold, each with its columns: where label
    errors, odd values and the cases the model cannot tell apart show up.

    A regression's rows are ranked by the size of their error; a classifier's by the probability
    it gave the row's actual class, lowest first (its most confident mistakes).

    Args:
        report: The version's evaluation report (its out-of-fold predictions).
        rows: :func:`version_rows` of the same version.
        n: How many rows.

    Returns:
        ``row`` (the row's number in the uploaded table, the first data row being 1), ``actual``,
        ``predicted``, then ``error`` (actual - predicted) or ``P(actual)``, then the row's columns.

    Raises:
        BadInput: The table's training rows no longer line up with the report's.
    """
    X, y = rows.X, rows.y
    if rows.holdout_share:
        X, _, y, _ = rows.split()
    cv = report.cv
    if len(y) != len(cv.y_true) or not (y.to_numpy() == cv.y_true).all():
        raise BadInput("the dataset's training rows no longer line up with this report's")
    at = np.flatnonzero(cv.oof_mask)
    # Labelled as the model labels rows: a binary one at its threshold.
    actual, predicted = oof_labels(report, report.threshold if report.threshold is not None else 0.5)
    if report.task == Task.REGRESSION:
        error = actual.astype(float) - predicted.astype(float)
        worst, judged = np.argsort(-np.abs(error), kind="stable")[:n], {"error": error}
    else:
        index = {c: i for i, c in enumerate(cv.classes)}
        p_actual = (cv.oof_proba[at, [index[c] for c in actual]] if cv.oof_proba is not None
                    else (predicted == actual).astype(float))  # no probabilities: the misses first
        worst, judged = np.argsort(p_actual, kind="stable")[:n], {"P(actual)": p_actual}
    picked = at[worst]
    head = pd.DataFrame({"row": X.index[picked] + 1, "actual": actual[worst], "predicted": predicted[worst],
                         **{name: values[worst] for name, values in judged.items()}})
    columns = X.iloc[picked].reset_index(drop=True)
    columns.columns = [f"{c} (column)" if c in head.columns else c for c in columns.columns]  # no two of a name
    return pd.concat([head, columns], axis=1)
