"""The serving fast path gives the Pipeline's own predictions, on every model family and task.

Each model is trained on a churn-based table made to need every cleaning step and every
feature-plan option (missing values, a bool column, a 0/1 column with gaps, money written as
text, category spellings, dates, free text, interactions), then compared with the Pipeline on a
few hundred rows, on single rows and on JSON-shaped rows, with unseen categories and gaps.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from core.config import SAMPLES_DIR
from core.data.profile import Task
from core.errors import BadInput
from core.modeling.specs import SPECS
from core.prep.features import FeatureBuilder
from core.prep.pipeline import build_pipeline
from core.prep.plan import ColumnTransform, FeaturePlan, Interaction
from core.prep.recipe import build_cleaning_pipeline, prepare_training_table
from core.prep.steps import (
    DropColumns,
    FixType,
    GroupRareCategories,
    Impute,
    NormalizeCategories,
    Outliers,
    Recipe,
)
from core.serving import fastpath
from core.serving.fastpath import FastPredictor, compile_pipeline

TARGETS = {Task.BINARY: "churn", Task.MULTICLASS: "area_code", Task.REGRESSION: "account_length"}
N_TRAIN = 700
WORDS = "call plan bill late fee phone great slow support upgrade cheap network signal roaming".split()

RECIPE = Recipe(steps=(
    FixType(column="revenue_text", to="number"),
    FixType(column="paperless", to="boolean"),
    NormalizeCategories(columns=["tier"]),
    GroupRareCategories(columns=["tier"], min_share=0.05),
    Impute(columns=["total_day_minutes", "total_eve_minutes"], strategy="median", add_indicator=True),
    Impute(columns=["state"], strategy="most_frequent"),
    Impute(columns=["total_night_calls"], strategy="constant", fill_value=-1.0),
    Outliers(columns=["total_intl_minutes", "number_vmail_messages"], method="iqr", threshold=1.5),
    DropColumns(columns=["scratch"]),
))

# Every option of ColumnTransform on some column, and both interaction kinds.
PLAN = FeaturePlan(
    transforms={
        "total_day_calls": ColumnTransform(scaling="none"),
        "total_eve_calls": ColumnTransform(scaling="minmax"),
        "total_night_calls": ColumnTransform(scaling="robust"),
        "total_day_minutes": ColumnTransform(power="log"),
        "total_eve_minutes": ColumnTransform(power="yeo_johnson"),
        "total_night_minutes": ColumnTransform(power="yeo_johnson", scaling="none"),
        "total_intl_minutes": ColumnTransform(bins=5),
        "total_intl_calls": ColumnTransform(bins=4, encoding="ordinal"),
        "revenue_text": ColumnTransform(power="log", scaling="robust"),
        "state": ColumnTransform(encoding="target"),
        "tier": ColumnTransform(encoding="ordinal"),
        "signup": ColumnTransform(date_parts=("year", "month", "day", "dayofweek", "hour", "weekend")),
        "note": ColumnTransform(tfidf_max_features=30),
    },
    interactions=(
        Interaction(left="total_day_charge", right="total_day_minutes", op="ratio"),
        Interaction(left="total_eve_calls", right="number_customer_service_calls", op="product"),
    ),
)


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    frame = pd.read_csv(SAMPLES_DIR / "mlc_churn.csv").head(1_100).reset_index(drop=True)
    n = len(frame)
    frame["is_vip"] = rng.random(n) < 0.2  # bool dtype
    promo = rng.integers(0, 2, n).astype(float)
    promo[rng.random(n) < 0.1] = np.nan
    frame["promo"] = promo  # 0/1 with gaps
    frame["revenue_text"] = [f"${v:,.2f}" if v < 9_000 else "(12.50)" for v in rng.gamma(2.0, 600.0, n)]
    frame["paperless"] = rng.choice(["yes", "no", "Y", "n", None], n)
    frame["tier"] = rng.choice(["Gold", "gold ", "GOLD", "Silver", "silver", "Bronze", "Platinum"],
                               n, p=[0.2, 0.1, 0.05, 0.25, 0.1, 0.27, 0.03])
    frame["signup"] = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900 * 24, n), unit="h")
    frame["note"] = [" ".join(rng.choice(WORDS, rng.integers(4, 9))) + f" {i}" for i in range(n)]
    frame["scratch"] = rng.normal(size=n)
    for column, share in [("total_day_minutes", 0.08), ("total_eve_minutes", 0.05), ("state", 0.05),
                          ("total_night_calls", 0.05), ("total_intl_minutes", 0.05), ("tier", 0.05),
                          ("international_plan", 0.03), ("signup", 0.03), ("note", 0.03)]:
        frame.loc[rng.random(n) < share, column] = None
    return frame


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _table()


def _requests(table: pd.DataFrame, target: str) -> pd.DataFrame:
    """Held-out rows (never seen in training) with unseen categories and extra gaps."""
    rows = table.iloc[N_TRAIN:N_TRAIN + 300].drop(columns=[target]).reset_index(drop=True)
    rng = np.random.default_rng(11)
    for column, value in [("state", "ZZ"), ("tier", "Diamond"), ("paperless", "maybe"),
                          ("international_plan", "unknown"), ("voice_mail_plan", None)]:
        if column in rows:
            rows.loc[rng.random(len(rows)) < 0.1, column] = value
    for column in ("total_eve_calls", "number_customer_service_calls", "total_intl_calls", "revenue_text"):
        if column in rows:
            rows.loc[rng.random(len(rows)) < 0.05, column] = None
    return rows


def _json_like(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as a JSON body gives them: dates as ISO text, gaps as None, ints as ints."""
    records = []
    for record in rows.to_dict("records"):
        out = {}
        for key, value in record.items():
            if isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif isinstance(value, float) and value != value or value is pd.NaT:
                value = None
            elif isinstance(value, float) and value.is_integer() and key.endswith("calls"):
                value = int(value)
            out[key] = value
        records.append(out)
    return pd.DataFrame(records)


def _fit(table: pd.DataFrame, family: str, task: Task, *, features: FeatureBuilder | None = None) -> Pipeline:
    target = TARGETS[task]
    X, y = prepare_training_table(table.iloc[:N_TRAIN], RECIPE, target=target)
    params = {"n_estimators": 40} if family in ("random_forest", "extra_trees", "lightgbm") else None
    estimator = SPECS[family].build(params, task=task, seed=3)
    if features is None:
        return build_pipeline(RECIPE, PLAN, target=target, estimator=estimator).fit(X, y)
    clean = build_cleaning_pipeline(RECIPE, target=target)
    return Pipeline([("clean", clean), ("features", features), ("model", estimator)]).fit(X, y)


def _assert_same(fast: FastPredictor, pipeline: Pipeline, frame: pd.DataFrame, *, task: Task) -> None:
    """The fast path itself (no fallback) against the Pipeline: the model's input matrix equal
    to the bit (so a feature the model happens not to use is checked too), labels exact, numbers
    to 1e-9."""
    cols = fastpath._read_columns(frame, fast._inputs)
    for step in fast._clean:
        cols = step(cols)
    matrix = fast._features(cols, len(frame))
    reference = pipeline[:-1].transform(frame)
    np.testing.assert_array_equal(
        matrix.toarray() if hasattr(matrix, "toarray") else matrix,
        reference.toarray() if hasattr(reference, "toarray") else np.asarray(reference),
    )
    labels, proba, classes = fast._fast(frame)
    expected = pipeline.predict(frame)
    if task is Task.REGRESSION:
        assert proba is None and classes is None
        np.testing.assert_allclose(labels, expected, rtol=1e-12, atol=1e-9)
        return
    np.testing.assert_array_equal(labels, expected)
    assert classes == list(pipeline.classes_)
    np.testing.assert_allclose(proba, pipeline.predict_proba(frame), rtol=0, atol=1e-9)


CASES = [(name, task) for name, spec in SPECS.items() for task in Task if task in spec.tasks]


@pytest.mark.parametrize(("family", "task"), CASES, ids=[f"{f}-{t.value}" for f, t in CASES])
def test_fast_path_equals_pipeline(table: pd.DataFrame, family: str, task: Task) -> None:
    pipeline = _fit(table, family, task)
    fast = compile_pipeline(pipeline)
    assert fast is not None, "every ShipML step and model family is covered"
    rows = _requests(table, TARGETS[task])
    _assert_same(fast, pipeline, rows, task=task)
    _assert_same(fast, pipeline, _json_like(rows), task=task)
    for i in range(0, 300, 37):  # single rows, raw and JSON-shaped (ints stay ints, no NaN upcast)
        _assert_same(fast, pipeline, rows.iloc[[i]], task=task)
        _assert_same(fast, pipeline, _json_like(rows.iloc[[i]]), task=task)
    labels, proba, classes = fast.predict(rows.iloc[:5])  # the public entry points agree too
    np.testing.assert_array_equal(labels, pipeline.predict(rows.iloc[:5]))
    few = _json_like(rows.iloc[:7])
    by_columns = fast.predict_columns({c: few[c].to_numpy() for c in few.columns}, len(few))
    np.testing.assert_array_equal(by_columns[0], pipeline.predict(few))
    if task is not Task.REGRESSION:
        np.testing.assert_allclose(by_columns[1], pipeline.predict_proba(few), rtol=0, atol=1e-9)


def test_every_single_row_of_a_lightgbm_model(table: pd.DataFrame) -> None:
    pipeline = _fit(table, "lightgbm", Task.BINARY)
    fast = compile_pipeline(pipeline)
    rows = _json_like(_requests(table, "churn"))
    expected = pipeline.predict_proba(rows)
    got = np.vstack([fast._fast(rows.iloc[[i]])[1] for i in range(len(rows))])
    assert np.abs(got - expected).max() <= 1e-9


def test_wide_features_go_to_the_model_as_sparse(table: pd.DataFrame) -> None:
    """Above max_dense_features the FeatureBuilder hands CSR to the model; so does the fast path."""
    for family in ("logistic_regression", "lightgbm"):
        pipeline = _fit(table, family, Task.BINARY, features=FeatureBuilder(PLAN, max_dense_features=10))
        fast = compile_pipeline(pipeline)
        assert fast is not None and fast._features.sparse_out
        rows = _requests(table, "churn")
        _assert_same(fast, pipeline, rows, task=Task.BINARY)
        _assert_same(fast, pipeline, rows.iloc[[3]], task=Task.BINARY)


def test_default_plan_and_empty_recipe(table: pd.DataFrame) -> None:
    """The plain churn model, as `python -m core train` builds it."""
    raw = pd.read_csv(SAMPLES_DIR / "mlc_churn.csv")
    X, y = prepare_training_table(raw.iloc[:N_TRAIN], Recipe(), target="churn")
    estimator = SPECS["lightgbm"].build({"n_estimators": 40}, task=Task.BINARY, seed=1)
    pipeline = build_pipeline(Recipe(), FeaturePlan(), target="churn", estimator=estimator).fit(X, y)
    fast = compile_pipeline(pipeline)
    rows = raw.iloc[N_TRAIN:N_TRAIN + 300].drop(columns=["churn"])
    _assert_same(fast, pipeline, rows, task=Task.BINARY)
    _assert_same(fast, pipeline, rows.iloc[[0]], task=Task.BINARY)
    _assert_same(fast, pipeline, rows.assign(extra_column="ignored", state="XX"), task=Task.BINARY)


def test_inputs_it_was_not_built_for_go_through_the_pipeline(table: pd.DataFrame) -> None:
    pipeline = _fit(table, "lightgbm", Task.MULTICLASS)
    fast = compile_pipeline(pipeline)
    rows = _requests(table, "area_code").iloc[:20]
    odd = rows.astype({"total_day_calls": "Int64", "tier": "string", "total_eve_calls": "float32"})
    labels, proba, classes = fast.predict(odd)
    np.testing.assert_array_equal(labels, pipeline.predict(odd))
    np.testing.assert_allclose(proba, pipeline.predict_proba(odd), atol=1e-9)
    with pytest.raises(BadInput, match="total_day_charge"):  # the Pipeline's own error
        fast.predict(rows.drop(columns=["total_day_charge"]))
    text_in_numbers = rows.astype({"total_day_charge": object})
    text_in_numbers.loc[text_in_numbers.index[0], "total_day_charge"] = "lots"
    with pytest.raises(ValueError):
        pipeline.predict(text_in_numbers)
    with pytest.raises(ValueError):
        fast.predict(text_in_numbers)


def test_unknown_steps_are_not_compiled(table: pd.DataFrame) -> None:
    """Never guess: a step the fast path does not know gives None (serve with the Pipeline)."""
    pipeline = _fit(table, "logistic_regression", Task.BINARY)
    clean, features, model = (step for _, step in pipeline.steps)
    assert compile_pipeline(pipeline) is not None
    assert compile_pipeline(Pipeline([("clean", clean), ("features", features)])) is None
    assert compile_pipeline(Pipeline([("clean", clean), ("features", StandardScaler()), ("model", model)])) is None
    foreign = Pipeline([("clean", Pipeline([("scale", StandardScaler())])), ("features", features), ("model", model)])
    assert compile_pipeline(foreign) is None
