"""The model Pipeline (clean -> features -> model) and the transformed-table preview."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from core.config import SAMPLES_DIR
from core.errors import BadInput
from core.prep.features import FeatureBuilder
from core.prep.pipeline import TransformedSample, build_pipeline, transformed_sample
from core.prep.plan import ColumnTransform, FeaturePlan, Interaction
from core.prep.steps import DropColumns, DropDuplicates, Impute, Recipe


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    shipped = SAMPLES_DIR / "mlc_churn.csv"
    return pd.read_csv(shipped if shipped.exists() else Path("/work/shared/datasets/mlc_churn.csv"))


def test_build_pipeline_steps() -> None:
    bare = build_pipeline(Recipe(), FeaturePlan(), target="churn")
    assert [name for name, _ in bare.steps] == ["clean", "features"]
    assert isinstance(bare.named_steps["features"], FeatureBuilder)
    full = build_pipeline(Recipe(), FeaturePlan(), target="churn", estimator=LogisticRegression())
    assert [name for name, _ in full.steps] == ["clean", "features", "model"]


def test_auto_encoding_gives_tree_models_ordinal_codes_and_others_one_hot(churn: pd.DataFrame) -> None:
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import RandomForestClassifier

    from core.prep.recipe import prepare_training_table

    X, y = prepare_training_table(churn.head(600), Recipe(), target="churn")

    def features(plan: FeaturePlan, estimator, column: str = "state") -> list[str]:
        fitted = build_pipeline(Recipe(), plan, target="churn", estimator=estimator).fit(X, y)
        return [n for n in fitted.named_steps["features"].get_feature_names_out() if n.startswith(column)]

    auto, lightgbm = FeaturePlan(), LGBMClassifier(n_estimators=5, verbose=-1)
    assert features(auto, lightgbm) == ["state"]
    assert features(auto, RandomForestClassifier(n_estimators=5)) == ["state"]
    assert len(features(auto, LogisticRegression())) > 10  # one column per (frequent) state
    assert len(features(auto, lightgbm, "area_code")) == 3  # few levels stay one-hot in a tree model too
    chosen = FeaturePlan(transforms={"state": ColumnTransform(encoding="onehot")})  # a user's choice stands
    assert len(features(chosen, lightgbm)) > 10


def test_pipeline_is_the_model(churn: pd.DataFrame) -> None:
    from core.prep.recipe import prepare_training_table

    recipe = Recipe(
        steps=(
            DropDuplicates(),
            Impute(columns=["total_day_minutes"], strategy="median", add_indicator=True),
            DropColumns(columns=["area_code"]),
        )
    )
    plan = FeaturePlan(
        transforms={"state": ColumnTransform(encoding="target")},
        interactions=(Interaction(left="total_day_charge", right="total_day_minutes"),),
    )
    X, y = prepare_training_table(churn, recipe, target="churn")
    model = build_pipeline(recipe, plan, target="churn", estimator=LogisticRegression(max_iter=2_000))
    scores = cross_val_score(model, X, y, cv=3, scoring="roc_auc")
    assert scores.mean() > 0.75
    fitted = pickle.loads(pickle.dumps(model.fit(X, y)))
    proba = fitted.predict_proba(X.head(5))
    assert proba.shape == (5, 2) and np.isfinite(proba).all()
    names = fitted.named_steps["features"].get_feature_names_out()
    assert "total_day_minutes__missing" in names and not any(n.startswith("area_code") for n in names)


def test_transformed_sample_on_churn(churn: pd.DataFrame) -> None:
    sample = transformed_sample(churn, Recipe(), FeaturePlan(), target="churn", n=20)
    assert isinstance(sample, TransformedSample)
    assert sample.frame.shape == (20, sample.n_features)
    assert list(sample.frame.columns) == list(sample.feature_names)
    assert sample.frame.index.tolist() == list(range(20))
    assert not sample.frame.isna().to_numpy().any()
    assert sample.n_rows_used == len(churn)
    assert "churn" not in " ".join(sample.feature_names)  # the target never becomes a feature
    assert "international_plan_yes" in sample.feature_names and "total_day_minutes" in sample.feature_names


def test_transformed_sample_fits_on_a_sample(churn: pd.DataFrame) -> None:
    plan = FeaturePlan(include=("state", "account_length"))
    sample = transformed_sample(churn, Recipe(), plan, target="churn", n=5, max_fit_rows=1_000)
    assert sample.n_rows_used == 1_000 and sample.frame.shape[0] == 5


def test_transformed_sample_bad_input(churn: pd.DataFrame) -> None:
    with pytest.raises(BadInput, match="nope"):
        transformed_sample(churn, Recipe(), FeaturePlan(include=("nope",)), target="churn")
    with pytest.raises(BadInput):
        transformed_sample(churn, Recipe(), FeaturePlan(), target="missing_target")
