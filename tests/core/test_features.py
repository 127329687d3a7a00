"""FeatureBuilder: every transform kind, unknown values, target encoding, selection, persistence."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from core.errors import BadInput
from core.prep.features import FeatureBuilder, feature_summary
from core.prep.plan import ColumnTransform, FeaturePlan, Interaction

N = 200


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    words = np.array(["good", "bad", "fine", "great", "slow", "fast", "cheap", "nice"])
    table = pd.DataFrame(
        {
            "row_id": np.arange(N),
            "age": rng.normal(40, 10, N),
            "income": rng.lognormal(10, 1, N) - 5_000,  # some negatives: log must shift
            "city": rng.choice(["Paris", "Lyon", "Nice", None], N),
            "plan": rng.choice(["yes", "no"], N),
            "active": rng.integers(0, 2, N),
            "signup": pd.date_range("2024-01-01", periods=N, freq="13h"),
            "review": [" ".join(rng.choice(words, 6)) for _ in range(N)],
            "empty": np.nan,
        }
    )
    table.loc[::9, "age"] = np.nan
    table.loc[::11, "review"] = None
    return table


@pytest.fixture
def y(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where(frame["city"].eq("Paris"), "churn", "stay"), name="target")


def _no_nan(out: pd.DataFrame) -> None:
    assert not out.isna().to_numpy().any()
    assert np.isfinite(out.to_numpy()).all()


def test_default_plan_builds_every_kind(frame: pd.DataFrame, y: pd.Series) -> None:
    out = FeatureBuilder(FeaturePlan()).fit_transform(frame, y)
    _no_nan(out)
    assert out.index.equals(frame.index)
    names = list(out.columns)
    assert names[:2] == ["age", "income"]  # numeric: one feature each, input order kept
    assert {"city_Paris", "city_Lyon", "city_Nice", "city_(missing)"} <= set(names)
    assert {"plan_no", "plan_yes"} <= set(names)  # a yes/no column is encoded as categories
    assert "active" in names
    assert {"signup_year", "signup_month", "signup_dayofweek"} <= set(names)
    assert {"review_good", "review_great"} <= set(names)
    # Identifier and all-missing columns are dropped by default.
    assert not any(n.startswith(("row_id", "empty")) for n in names)
    assert out[["age", "income"]].mean().abs().max() < 1e-9  # standard scaling


@pytest.mark.parametrize(
    ("spec", "n_out"),
    [
        (ColumnTransform(scaling="none"), 1),
        (ColumnTransform(scaling="minmax"), 1),
        (ColumnTransform(scaling="robust"), 1),
        (ColumnTransform(power="log"), 1),
        (ColumnTransform(power="yeo_johnson", scaling="none"), 1),
        (ColumnTransform(bins=4), 4),
        (ColumnTransform(bins=4, encoding="ordinal"), 1),
        (ColumnTransform(power="log", bins=5), 5),
    ],
)
def test_numeric_options(frame: pd.DataFrame, spec: ColumnTransform, n_out: int) -> None:
    plan = FeaturePlan(include=("income",), transforms={"income": spec})
    builder = FeatureBuilder(plan).fit(frame)
    out = builder.transform(frame)
    _no_nan(out)
    assert out.shape == (N, n_out)
    assert all(name.startswith("income") for name in out.columns)
    if spec.scaling == "minmax" and spec.bins is None:
        assert out["income"].min() == pytest.approx(0) and out["income"].max() == pytest.approx(1)
    if spec.power == "log" and spec.bins is None:
        # Shifted so the training minimum maps to log1p(0) = 0, then scaled.
        unscaled = {"income": ColumnTransform(power="log", scaling="none")}
        raw = FeatureBuilder(FeaturePlan(include=("income",), transforms=unscaled))
        logged = raw.fit_transform(frame)["income"]
        assert logged.min() == pytest.approx(0.0)
        new = frame.head(3).assign(income=-1e9)  # below the training minimum: clipped, no NaN
        _no_nan(raw.transform(new))
    if spec.bins is not None and spec.encoding == "ordinal":
        assert set(out["income"].unique()) <= {0.0, 1.0, 2.0, 3.0}


def test_unknown_categories_at_predict_time(frame: pd.DataFrame, y: pd.Series) -> None:
    unseen = frame.head(4).assign(city=["Berlin", "Rome", None, "Paris"])
    onehot = FeatureBuilder(FeaturePlan(include=("city",))).fit(frame)
    out = onehot.transform(unseen)
    _no_nan(out)
    assert out.iloc[:2].to_numpy().sum() == 0  # unseen: no known level is switched on
    assert out.loc[2, "city_(missing)"] == 1 and out.loc[3, "city_Paris"] == 1

    ordinal = FeatureBuilder(FeaturePlan(include=("city",), transforms={"city": ColumnTransform(encoding="ordinal")}))
    codes = ordinal.fit(frame).transform(unseen)["city"]
    assert list(codes.iloc[:2]) == [-1, -1] and codes.iloc[3] >= 0

    target = FeatureBuilder(FeaturePlan(include=("city",), transforms={"city": ColumnTransform(encoding="target")}))
    encoded = target.fit(frame, y).transform(unseen)["city"]
    _no_nan(encoded.to_frame())
    assert encoded.iloc[0] == pytest.approx(encoded.iloc[1])  # both unseen: the prior


def test_rare_levels_are_grouped(frame: pd.DataFrame) -> None:
    wide = pd.DataFrame({"code": [f"c{i % 80}" for i in range(4_000)]})
    out = FeatureBuilder(FeaturePlan()).fit_transform(wide)
    assert out.shape[1] == 50  # capped: the rest share one "infrequent" column
    assert "code_infrequent_sklearn" in out.columns


def test_target_encoding_uses_y(frame: pd.DataFrame, y: pd.Series) -> None:
    plan = FeaturePlan(include=("city",), transforms={"city": ColumnTransform(encoding="target")})
    with pytest.raises(BadInput, match="Target encoding needs the target"):
        FeatureBuilder(plan).fit(frame)
    builder = FeatureBuilder(plan).fit(frame, y)
    encoded = builder.transform(frame)["city"]
    paris = frame["city"].eq("Paris")
    # y is "churn" exactly for Paris, so Paris encodes far from the other cities.
    assert encoded[paris].min() > encoded[~paris].max() or encoded[paris].max() < encoded[~paris].min()
    flipped = FeatureBuilder(plan).fit(frame, y.map({"churn": "stay", "stay": "churn"})).transform(frame)["city"]
    assert np.allclose(flipped.to_numpy(), 1 - encoded.to_numpy())


def test_target_encoding_cross_fits_in_fit_transform(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    noisy = pd.Series(rng.random(N) < np.where(frame["city"].eq("Paris"), 0.8, 0.2)).astype(int)
    plan = FeaturePlan(include=("city",), transforms={"city": ColumnTransform(encoding="target")})
    builder = FeatureBuilder(plan)
    crossed = builder.fit_transform(frame, noisy)["city"]
    # Training rows are encoded by fold models that did not see them, so Paris rows differ
    # among themselves; new rows get the encoding learned on all rows (one value per city).
    assert crossed[frame["city"].eq("Paris")].nunique() > 1
    assert builder.transform(frame)["city"][frame["city"].eq("Paris")].nunique() == 1


def test_datetime_parts(frame: pd.DataFrame) -> None:
    parts = ("year", "month", "day", "dayofweek", "hour", "weekend")
    plan = FeaturePlan(include=("signup",), transforms={"signup": ColumnTransform(date_parts=parts)})
    builder = FeatureBuilder(plan).fit(frame)
    probe = pd.DataFrame({"signup": pd.to_datetime(["2024-03-09 17:00", "2024-03-11 08:00", None])})
    out = builder.transform(probe)
    assert list(out.columns) == [f"signup_{p}" for p in parts]
    assert out.iloc[0].tolist() == [2024, 3, 9, 5, 17, 1]  # a Saturday
    assert out.iloc[1].tolist() == [2024, 3, 11, 0, 8, 0]
    _no_nan(out)  # a missing date gets the training medians


def test_text_tfidf(frame: pd.DataFrame) -> None:
    plan = FeaturePlan(include=("review",), transforms={"review": ColumnTransform(tfidf_max_features=3)})
    builder = FeatureBuilder(plan).fit(frame)
    out = builder.transform(pd.DataFrame({"review": ["good good great", None, "unseen words only"]}))
    assert out.shape == (3, 3) and all(c.startswith("review_") for c in out.columns)
    _no_nan(out)
    assert out.iloc[1].sum() == 0 and out.iloc[2].sum() == 0


def test_interactions(frame: pd.DataFrame) -> None:
    table = pd.DataFrame({"a": [0.0, 1.0, 6.0, 2.0, np.nan], "b": [0.0, 0.0, 3.0, 4.0, 1.0]})
    plan = FeaturePlan(
        include=("a",),
        transforms={"a_over_b": ColumnTransform(scaling="none"), "a_times_b": ColumnTransform(scaling="none")},
        interactions=(Interaction(left="a", right="b"), Interaction(left="a", right="b", op="product")),
    )
    builder = FeatureBuilder(plan).fit(table)
    out = builder.transform(table)
    assert list(out.columns) == ["a", "a_over_b", "a_times_b"]
    _no_nan(out)
    # 0/0, 1/0 and NaN/1 are missing, then imputed with the median of 2.0 and 0.5.
    assert out["a_over_b"].tolist() == [1.25, 1.25, 2.0, 0.5, 1.25]
    assert out["a_times_b"].tolist()[2:4] == [18.0, 8.0]
    assert builder.feature_sources_[1] == ("a", "b")
    with pytest.raises(BadInput, match="needs numeric columns"):
        FeatureBuilder(FeaturePlan(interactions=(Interaction(left="city", right="age"),))).fit(frame)


def test_infinite_numbers_are_missing_in_fit_and_transform() -> None:
    table = pd.DataFrame({"a": [1.0, np.inf, 3.0, -np.inf, 5.0], "b": pd.array([1.0, None, np.inf, 2.0, 3.0],
                                                                              dtype="Float64")})
    builder = FeatureBuilder(FeaturePlan(transforms={c: ColumnTransform(scaling="none") for c in "ab"}))
    out = builder.fit_transform(table)
    _no_nan(out)
    # Imputed with the median of the finite values, like the gap in 'b': 3.0 for 'a', 2.0 for 'b'.
    assert out["a"].tolist() == [1.0, 3.0, 3.0, 3.0, 5.0] and out["b"].tolist() == [1.0, 2.0, 2.0, 2.0, 3.0]
    assert builder.transform(pd.DataFrame({"a": [np.inf], "b": [-np.inf]})).iloc[0].tolist() == [3.0, 2.0]
    assert np.isinf(table["a"]).sum() == 2  # the caller's table is left as it was


def test_include_exclude(frame: pd.DataFrame) -> None:
    only = FeatureBuilder(FeaturePlan(include=("age", "row_id"))).fit_transform(frame)
    assert list(only.columns) == ["age", "row_id"]  # an identifier stays when asked for explicitly
    minus = FeatureBuilder(FeaturePlan(include=("age", "income"), exclude=("income",))).fit_transform(frame)
    assert list(minus.columns) == ["age"]
    rest = FeatureBuilder(FeaturePlan(exclude=("city", "review", "signup", "gone"))).fit_transform(frame)
    assert not any(c.startswith(("city", "review", "signup")) for c in rest.columns)


def test_missing_planned_column_is_bad_input(frame: pd.DataFrame) -> None:
    with pytest.raises(BadInput, match="not_there"):
        FeatureBuilder(FeaturePlan(include=("age", "not_there"))).fit(frame)
    with pytest.raises(BadInput, match="ghost"):
        FeatureBuilder(FeaturePlan(interactions=(Interaction(left="age", right="ghost"),))).fit(frame)
    builder = FeatureBuilder(FeaturePlan(include=("age", "city"))).fit(frame)
    with pytest.raises(BadInput, match="city"):
        builder.transform(frame.drop(columns=["city"]))
    with pytest.raises(BadInput, match="No feature columns"):
        FeatureBuilder(FeaturePlan(include=("age",), exclude=("age",))).fit(frame)


def test_pickle_round_trip_and_clone(frame: pd.DataFrame, y: pd.Series) -> None:
    plan = FeaturePlan(
        transforms={"city": ColumnTransform(encoding="target"), "income": ColumnTransform(power="log", bins=3)},
        interactions=(Interaction(left="age", right="income"),),
    )
    builder = FeatureBuilder(plan).fit(frame, y)
    restored = pickle.loads(pickle.dumps(builder))
    pd.testing.assert_frame_equal(restored.transform(frame.tail(7)), builder.transform(frame.tail(7)))
    assert clone(builder).get_params()["plan"] == plan


def test_wide_output_is_sparse_and_frame_for_display(frame: pd.DataFrame) -> None:
    builder = FeatureBuilder(FeaturePlan(), max_dense_features=10).fit(frame)
    out = builder.transform(frame)
    assert sparse.issparse(out) and out.shape[1] == len(builder.get_feature_names_out())
    shown = builder.transformed_frame(frame.head(3))
    assert isinstance(shown, pd.DataFrame) and shown.shape == (3, out.shape[1])
    assert np.allclose(shown.to_numpy(), out[:3].toarray())


def test_works_inside_a_model_pipeline(frame: pd.DataFrame, y: pd.Series) -> None:
    plan = FeaturePlan(transforms={"city": ColumnTransform(encoding="target")})
    model = Pipeline([("features", FeatureBuilder(plan)), ("model", LogisticRegression(max_iter=500))])
    model.fit(frame.iloc[:150], y.iloc[:150])
    assert (model.predict(frame.iloc[150:]) == y.iloc[150:]).mean() > 0.9


def test_feature_summary(frame: pd.DataFrame) -> None:
    plan = FeaturePlan(
        transforms={"income": ColumnTransform(bins=4)}, interactions=(Interaction(left="age", right="income"),)
    )
    builder = FeatureBuilder(plan).fit(frame)
    rows = {row.column: row for row in feature_summary(builder)}
    assert rows["income"].n_features == 4 and "4 quantile bins" in rows["income"].transform
    assert rows["city"].kind == "categorical" and rows["city"].n_features == 4
    assert rows["signup"].kind == "datetime" and rows["review"].kind == "text"
    assert rows["age_over_income"].transform.startswith("ratio of age and income")
    assert rows["row_id"].kind == "dropped" and "identifier" in rows["row_id"].transform
    assert rows["empty"].n_features == 0
    assert sum(r.n_features for r in rows.values()) == len(builder.get_feature_names_out())


def test_names_are_safe_for_lightgbm_and_refit_starts_fresh() -> None:
    from lightgbm import LGBMClassifier

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"size:cm": rng.random(120), "band": rng.choice(["[0,10)", '{"a"}', "x:y"], 120)})
    target = rng.integers(0, 2, 120)
    model = Pipeline([("features", FeatureBuilder()), ("model", LGBMClassifier(n_estimators=5, verbose=-1))])
    model.fit(table, target)  # LightGBM refuses names with JSON characters
    names = model.named_steps["features"].feature_names_
    assert names == ("size=cm", "band_(0;10)", "band_x=y", "band_('a')")
    refit = model.named_steps["features"].fit(table[["band"]])
    assert refit.feature_names_ == names[1:]
