"""What drives a registered model's predictions: permutation importance on rows it never saw.

A version ships a Pipeline fitted on every row, holdout included, so no row is unseen by it.
Importance measured on its own training rows rewards what the model memorised: on the taxi
sample a random forest loses 0.07 ROC AUC on its training rows when ``company`` is shuffled and
nothing on the holdout. So the winner is fitted again, as evaluation fitted it, on the training
rows alone (the holdout is split off exactly as training split it: the data is immutable and the
split seeded), and the columns are shuffled on the holdout rows. Partial dependence describes the
shipped model itself and uses its training table.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields

import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from core import registry
from core.config import Settings
from core.data.profile import Task
from core.modeling.evaluation import CVScheme, holdout_split, model_score, permutation_importance_table
from core.modeling.metrics import oriented, tuned_metric
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


def explain_version(version: ModelVersion, frame: pd.DataFrame, *, settings: Settings,
                    max_rows: int = 5_000) -> Explanation:
    """Permutation importance of a version's source columns on its holdout rows.

    Args:
        version: A READY version.
        frame: The dataset it was trained on, as uploaded.
        settings: Where the model files live, and the seed of the permutations.
        max_rows: Shuffle columns on a sample of at most this many rows.

    Raises:
        BadInput: The model file fails its hash check, or the table no longer fits the version's
            recipe (a missing target or column).
    """
    pipeline = registry.load_pipeline(version, settings=settings)
    X, y = prepare_training_table(frame, recipe_from_json(version.recipe_json), target=version.target)
    cv = json.loads(version.cv_json or "{}")
    task = Task(version.task)
    metric = tuned_metric(cv, task)
    threshold, positive = registry.decision_threshold(version), registry.positive_class(version)
    model, X_scored, y_scored, scored_on = pipeline, X, y, "training"
    if share := cv.get("holdout_share"):
        scheme = CVScheme(**{f.name: cv[f.name] for f in fields(CVScheme) if f.name in cv})
        X_train, X_scored, y_train, y_scored = holdout_split(X, y, task=task, scheme=scheme, share=share)
        model, scored_on = clone(pipeline).fit(X_train, y_train), "holdout"
    table = permutation_importance_table(model, X_scored, y_scored, task=task, metric=metric,
                                         seed=settings.random_seed, max_rows=max_rows, threshold=threshold,
                                         positive=positive)
    classes = () if task is Task.REGRESSION else oriented(model.classes_.tolist(), positive)
    unshuffled = model_score(model, X_scored, y_scored.to_numpy(), metric=metric, classes=classes, threshold=threshold)
    return Explanation(importance=table, scored_on=scored_on, n_rows=min(len(X_scored), max_rows), metric=metric,
                       score=unshuffled, pipeline=pipeline, X=X)
