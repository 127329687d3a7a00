"""One Pipeline is the model: cleaning, then features, then (optionally) the estimator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from lightgbm import LGBMModel
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.pipeline import Pipeline

from core.errors import BadInput
from core.prep.features import FeatureBuilder, FeatureInfo, feature_summary
from core.prep.plan import FeaturePlan
from core.prep.recipe import build_cleaning_pipeline, prepare_training_table
from core.prep.steps import Recipe

# Models that get ordinal codes for "auto" categorical columns (FeatureBuilder's ``trees``).
_TREE_ENSEMBLES = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor,
                   HistGradientBoostingClassifier, HistGradientBoostingRegressor, LGBMModel)


def build_pipeline(
    recipe: Recipe,
    plan: FeaturePlan,
    *,
    target: str,
    estimator: BaseEstimator | None = None,
    seed: int = 42,
) -> Pipeline:
    """The unfitted model Pipeline: ``clean`` -> ``features`` -> ``model``.

    Args:
        recipe: The cleaning recipe; its column steps become the ``clean`` step.
        plan: The feature plan, compiled by ``FeatureBuilder`` at fit time.
        target: The target column, which the Pipeline never sees.
        estimator: The model; ``None`` gives only the clean and features steps.
        seed: Seed for the feature step's internal folds (target encoding).

    Returns:
        A Pipeline taking the raw ``X`` from ``prepare_training_table``.

    Raises:
        BadInput: The plan uses the target as a feature.
    """
    used = set(plan.include) | {c for i in plan.interactions for c in (i.left, i.right)}
    if target in used:
        raise BadInput(f"The target {target!r} cannot also be a feature: remove it from the feature plan.")
    steps = [
        ("clean", build_cleaning_pipeline(recipe, target=target)),
        ("features", FeatureBuilder(plan, random_state=seed, trees=isinstance(estimator, _TREE_ENSEMBLES))),
    ]
    if estimator is not None:
        steps.append(("model", estimator))
    return Pipeline(steps)


@dataclass(frozen=True)
class TransformedSample:
    """The first rows of the table as the model would see them."""

    frame: pd.DataFrame
    n_features: int
    feature_names: tuple[str, ...]
    n_rows_used: int
    summary: tuple[FeatureInfo, ...]  # how each source column became features


def transformed_sample(
    frame: pd.DataFrame,
    recipe: Recipe,
    plan: FeaturePlan,
    *,
    target: str,
    n: int = 20,
    max_fit_rows: int = 50_000,
    seed: int = 42,
) -> TransformedSample:
    """Fit cleaning + features on (a sample of) the training table and transform its first rows.

    Args:
        frame: The raw table, target included; it is not modified.
        recipe: The cleaning recipe.
        plan: The feature plan.
        target: The target column (needed by row steps and target encoding).
        n: How many rows to show.
        max_fit_rows: Fit on a random sample of at most this many rows, for speed.
        seed: Seed for the sample.

    Returns:
        At most ``n`` transformed rows (index of the raw table), the feature names and how
        many rows the transformers were fitted on.

    Raises:
        BadInput: The target or a planned column is missing, or no usable column is left.
    """
    X, y = prepare_training_table(frame, recipe, target=target)
    fit_X, fit_y = X, y
    if len(X) > max_fit_rows:
        # By position: index labels of a user's table need not be unique.
        rows = np.sort(np.random.default_rng(seed).choice(len(X), size=max_fit_rows, replace=False))
        fit_X, fit_y = X.iloc[rows], y.iloc[rows]
    pipeline = build_pipeline(recipe, plan, target=target, seed=seed).fit(fit_X, fit_y)
    features: FeatureBuilder = pipeline.named_steps["features"]
    shown = features.transformed_frame(pipeline.named_steps["clean"].transform(X.head(n)))
    return TransformedSample(
        frame=shown,
        n_features=len(features.feature_names_),
        feature_names=tuple(features.feature_names_),
        n_rows_used=len(fit_X),
        summary=feature_summary(features),
    )
