"""Scoring a file with a registered version, as the Models page does."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core import registry
from core.errors import BadInput
from core.registry import VersionMeta
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.steps import Recipe
from core.scoring import score_table


def _version(engine, settings, metrics: dict):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = np.where(X["a"] + 0.5 * rng.normal(size=200) > 0.8, "churned", "stayed")
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(X, y)
    meta = VersionMeta(dataset_hash="d" * 64, target="y", task="binary", recipe_json="{}", plan_json="{}",
                       model_family="logistic_regression", params={}, metrics=metrics, cv={}, training_seconds=1.0)
    return registry.register_version(engine, name="churn", pipeline=pipeline, meta=meta, reference=X,
                                     settings=settings), X


def test_rows_are_labelled_as_the_service_labels_them(engine, settings) -> None:
    # 'churned' sorts first and is the positive class: the threshold cuts P(churned).
    version, X = _version(engine, settings, {"decision_threshold": 0.2, "positive_class": "churned"})
    rows = X.head(80).assign(prediction="from the file", note="kept")
    scored = score_table(version, rows, settings=settings).table
    assert list(scored.columns) == ["prediction", "proba_churned", "proba_stayed", "a", "b",
                                    "prediction (in the file)", "note"]
    assert (scored["note"] == "kept").all() and (scored["prediction (in the file)"] == "from the file").all()
    expected = np.where(scored["proba_churned"] >= 0.2, "churned", "stayed")
    assert (scored["prediction"] == expected).all()
    assert (expected != np.where(scored["proba_churned"] >= 0.5, "churned", "stayed")).any()  # 0.2 mattered


def test_missing_columns_unreadable_values_or_a_tampered_model_are_refused(engine, settings) -> None:
    version, X = _version(engine, settings, {})
    with pytest.raises(BadInput, match="missing 1 column the model needs: 'b'"):
        score_table(version, X[["a"]], settings=settings)
    with pytest.raises(BadInput, match="cannot read the table's values .*'lots'"):  # not a traceback
        score_table(version, X.assign(b=["lots"] * len(X)), settings=settings)
    # One bad cell turns the column's numbers into text as a file is read: the message names its row only.
    one_bad = X.head(10).astype({"b": object}).assign(a=X["a"].head(10).astype(str))
    one_bad.loc[3, "a"] = "n.a."
    with pytest.raises(BadInput, match=r"'a': expected number, got text that is not a number \(row 4 of the file\)$"):
        score_table(version, one_bad, settings=settings)
    (settings.models_dir / version.artifact_file).write_bytes(b"not the model")
    with pytest.raises(BadInput, match="does not match its registry hash"):
        score_table(version, X, settings=settings)


def test_what_the_service_would_refuse_is_named_and_the_rows_are_scored_anyway(engine, settings) -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"plan": rng.choice(["basic", "pro"], 300), "visits": rng.integers(0, 20, 300),
                      "signup": pd.date_range("2024-01-01", periods=300, freq="D")})
    y = np.where((X["plan"] == "pro") ^ (X["visits"] > 12), "churned", "stayed")
    pipeline = build_pipeline(Recipe(), FeaturePlan(), target="y", estimator=LogisticRegression()).fit(X, y)
    meta = VersionMeta(dataset_hash="e" * 64, target="y", task="binary", recipe_json="{}", plan_json="{}",
                       model_family="logistic_regression", params={}, metrics={}, cv={}, training_seconds=1.0)
    version = registry.register_version(engine, name="plans", pipeline=pipeline, meta=meta, reference=X,
                                        settings=settings)
    rows = X.head(20).assign(churn="yes")  # a column the model does not use is not the service's business here
    rows["visits"] = rows["visits"].astype(float)
    rows.loc[9, "visits"] = np.nan  # a gap: the service takes null
    assert score_table(version, rows, settings=settings).refused == ()  # dates and whole floats pass as well

    rows.loc[[2, 5], "plan"] = "enterprise"
    rows.loc[7, "visits"] = 2.5
    scored = score_table(version, rows, settings=settings)
    assert len(scored.table) == 20 and scored.table["prediction"].notna().all()  # the Pipeline scores them
    assert scored.refused == (
        "'plan': expected one of the 2 known categories, got unknown category (rows 3, 6 of the file)",
        "'visits': expected integer, got number (row 8 of the file)",
    )


def test_text_the_recipe_converts_is_checked_as_the_service_checks_it(engine, settings) -> None:
    from core.prep.steps import FixType, NormalizeCategories
    from core.serving.model import request_schema

    rng = np.random.default_rng(2)
    X = pd.DataFrame({"signup": pd.date_range("2024-01-01", periods=300, freq="D").strftime("%Y-%m-%d"),
                      "visits": rng.integers(0, 20, 300)})
    y = np.where(X["visits"] > 9, "churned", "stayed")
    recipe = Recipe(steps=[FixType(column="signup", to="datetime")])
    pipeline = build_pipeline(recipe, FeaturePlan(), target="y", estimator=LogisticRegression()).fit(X, y)
    meta = VersionMeta(dataset_hash="f" * 64, target="y", task="binary", recipe_json="{}", plan_json="{}",
                       model_family="logistic_regression", params={}, metrics={}, cv={}, training_seconds=1.0)
    version = registry.register_version(engine, name="signups", pipeline=pipeline, meta=meta, reference=X,
                                        settings=settings)
    rows = X.head(10).copy()
    rows.loc[4, "signup"] = "the fifth"  # the Pipeline would read it as missing and predict anyway
    scored = score_table(version, rows, settings=settings)
    assert len(scored.table) == 10
    assert scored.refused == ("'signup': expected a date the model can read (like '2024-01-01'), or null, got "
                              "unreadable string (row 5 of the file)",)
    # A step before the conversion changes the raw text: what the service would parse is unknown, so no check.
    tidied = Recipe(steps=[NormalizeCategories(columns=["signup"]), FixType(column="signup", to="datetime")])
    before = build_pipeline(tidied, FeaturePlan(), target="y", estimator=LogisticRegression()).fit(X, y)
    assert request_schema(pipeline, X).columns[0].parse is not None
    assert request_schema(before, X).columns[0].parse is None


def test_a_file_holding_the_target_is_scored_against_it_at_the_version_s_threshold(engine, settings) -> None:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    version, X = _version(engine, settings, {"decision_threshold": 0.2, "positive_class": "churned"})
    rng = np.random.default_rng(5)
    truth = np.where(X["a"] + 0.5 * rng.normal(size=len(X)) > 0.8, "churned", "stayed")
    rows = X.assign(y=truth)
    rows.loc[:9, "y"] = None  # rows without a label are left out, not counted as misses
    scored = score_table(version, rows, settings=settings, content_hash="f" * 64)
    found = scored.against_target
    assert found.target == "y" and found.rows == len(X) - 10 and not found.trained_on
    labelled = scored.table.iloc[10:]
    assert found.scores["accuracy"] == pytest.approx(accuracy_score(truth[10:], labelled["prediction"]))
    # The positive class is 'churned', labelled at 0.2 as the service labels it.
    assert found.scores["f1"] == pytest.approx(f1_score(truth[10:], labelled["prediction"], pos_label="churned"))
    assert found.scores["roc_auc"] == pytest.approx(roc_auc_score(truth[10:] == "churned", labelled["proba_churned"]))
    # The very file the version learnt from: said, so its scores are not taken for an estimate.
    assert score_table(version, rows, settings=settings, content_hash="d" * 64).against_target.trained_on
    assert score_table(version, X, settings=settings).against_target is None  # no target column
    assert score_table(version, X.assign(y=None), settings=settings).against_target is None  # no value in it
    unseen = score_table(version, rows.assign(y="paused"), settings=settings).against_target
    assert unseen.scores["accuracy"] == 0 and np.isnan(unseen.scores["roc_auc"])  # a class it never saw: a miss


def test_a_regression_target_that_is_not_a_number_is_left_out() -> None:
    from core.scoring import target_scores

    predictions = pd.DataFrame({"prediction": [1.0, 2.0, 3.0, 4.0]})
    frame = pd.DataFrame({"y": ["1.5", "n/a", 2.5, 4.0]})
    found = target_scores(predictions, frame, target="y", task="regression")
    assert found.rows == 3 and found.scores["mae"] == pytest.approx((0.5 + 0.5 + 0) / 3)
