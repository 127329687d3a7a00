"""The cleaning transformers: learned state, unseen values, contract checks, pickling."""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import check_estimator

from core.errors import BadInput
from core.prep.transformers import (
    DropColumnsTransformer,
    FixTypeTransformer,
    ImputeTransformer,
    NormalizeCategoriesTransformer,
    OutlierClipper,
    Passthrough,
    RareCategoryGrouper,
    outlier_bounds,
    parse_booleans,
    parse_numbers,
)


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "num": [1.0, 2.0, np.nan, 4.0, 100.0, 3.0],
            "cat": ["a", "A ", "b", None, "a", "c"],
            "text_num": ["1,234", "$5", "12%", "(5)", "x", None],
            "flag": ["Yes", "no", "TRUE", "n", "maybe", None],
        },
        index=[10, 11, 12, 13, 14, 15],  # a non-default index must survive every step
    )


# One configured instance per transformer, for the contract tests.
TRANSFORMERS = [
    Passthrough(),
    DropColumnsTransformer(columns=["flag", "not_there"]),
    FixTypeTransformer(column="text_num", to="number"),
    FixTypeTransformer(column="flag", to="boolean"),
    NormalizeCategoriesTransformer(columns=["cat"]),
    ImputeTransformer(columns=["num"], strategy="median", add_indicator=True),
    ImputeTransformer(columns=["cat"], strategy="most_frequent"),
    OutlierClipper(columns=["num"], method="iqr", threshold=1.5),
    RareCategoryGrouper(columns=["cat"], min_share=0.3, label="Other"),
]
IDS = [f"{type(t).__name__}-{i}" for i, t in enumerate(TRANSFORMERS)]


# --- the estimator contract, on every transformer ---


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=IDS)
def test_fit_returns_self_and_keeps_rows_index_and_names(transformer):
    frame = sample_frame()
    est = clone(transformer)
    assert est.fit(frame) is est
    out = est.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(frame.index)
    assert list(out.columns) == list(est.get_feature_names_out())


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=IDS)
def test_does_not_mutate_input(transformer):
    frame = sample_frame()
    copy = frame.copy()
    clone(transformer).fit_transform(frame)
    pd.testing.assert_frame_equal(frame, copy)


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=IDS)
def test_clone_and_params_round_trip(transformer):
    est = clone(transformer)
    assert est.get_params() == transformer.get_params()
    est.set_params(**transformer.get_params())
    assert est.get_params() == transformer.get_params()
    fitted = clone(transformer).fit(sample_frame())
    cloned = clone(fitted)  # a clone of a fitted estimator is unfitted
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(cloned))


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=IDS)
def test_pickle_round_trip_gives_same_output(transformer):
    frame = sample_frame()
    est = clone(transformer).fit(frame)
    restored = pickle.loads(pickle.dumps(est))
    pd.testing.assert_frame_equal(restored.transform(frame), est.transform(frame))


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=IDS)
def test_set_output_pandas_inside_pipeline(transformer):
    frame = sample_frame()
    pipe = Pipeline([("step", clone(transformer))]).set_output(transform="pandas")
    out = pipe.fit_transform(frame)
    pd.testing.assert_frame_equal(out, clone(transformer).fit_transform(frame))


@pytest.mark.parametrize("transformer", TRANSFORMERS[1:], ids=IDS[1:])
def test_missing_column_at_transform_raises_bad_input(transformer):
    frame = sample_frame()
    est = clone(transformer).fit(frame)
    with pytest.raises(BadInput, match="num"):
        est.transform(frame.drop(columns=["num"]))


def test_extra_columns_at_transform_are_left_out():
    frame = sample_frame()
    est = Passthrough().fit(frame)
    out = est.transform(frame.assign(extra=1))
    assert list(out.columns) == list(frame.columns)


def test_unfitted_transform_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ImputeTransformer(columns=["num"]).transform(sample_frame())


# The full scikit-learn suite feeds numeric arrays (columns x0, x1, ...). The grouper turns
# rare or unseen numbers into the text label by design, which breaks checks doing arithmetic.
_GROUPER_EXPECTED = {
    name: "replaces rare/unseen numeric values with a text label by design"
    for name in (
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit_idempotent",
    )
}


@pytest.mark.parametrize(
    "transformer, expected_failures",
    [
        (Passthrough(), {}),
        (DropColumnsTransformer(columns=["x0"]), {}),
        (FixTypeTransformer(column="x0", to="number"), {}),
        (NormalizeCategoriesTransformer(columns=["x0"]), {}),
        (ImputeTransformer(columns=["x0", "x1"], add_indicator=True), {}),
        (ImputeTransformer(columns=["x0"], strategy="mean"), {}),
        (OutlierClipper(columns=["x0"]), {}),
        (RareCategoryGrouper(columns=["x1"], min_share=0.05), _GROUPER_EXPECTED),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, dict) else "",
)
def test_sklearn_estimator_checks(transformer, expected_failures):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(transformer, expected_failed_checks=expected_failures, on_skip=None)


# --- each transformer's learned state ---


def test_drop_columns_skips_absent_and_allows_them_missing_later():
    frame = sample_frame()
    est = DropColumnsTransformer(columns=["flag", "nope"]).fit(frame)
    assert est.columns_ == ["flag"]
    assert "flag" not in est.transform(frame).columns
    # The dropped column may be left out of a later request.
    out = est.transform(frame.drop(columns=["flag"]))
    assert list(out.columns) == ["num", "cat", "text_num"]


def test_parse_numbers_handles_money_thousands_percent_and_accounting():
    series = pd.Series(["1,234", "$5", "€ 3.50", "12%", "(5)", "($1,000.5)", "-7", "abc", None, " 8 "])
    expected = [1234.0, 5.0, 3.5, 12.0, -5.0, -1000.5, -7.0, np.nan, np.nan, 8.0]
    np.testing.assert_array_equal(parse_numbers(series).to_numpy(), np.array(expected))
    assert parse_numbers(pd.Series([1, 2])).dtype == float


def test_fix_type_number_and_absent_column_is_skipped():
    frame = sample_frame()
    out = FixTypeTransformer(column="text_num").fit_transform(frame)
    assert out["text_num"].tolist()[:4] == [1234.0, 5.0, 12.0, -5.0]
    assert out["text_num"].isna().tolist()[4:] == [True, True]
    est = FixTypeTransformer(column="target").fit(frame)  # the target is never in X
    assert est.columns_ == []
    pd.testing.assert_frame_equal(est.transform(frame), frame)


def test_fix_type_datetime_with_format_dayfirst_and_garbage():
    frame = pd.DataFrame({"d": ["31/01/2024", "01/02/2024", "not a date", None]})
    out = FixTypeTransformer(column="d", to="datetime", dayfirst=True).fit_transform(frame)
    assert out["d"].tolist()[:2] == [pd.Timestamp("2024-01-31"), pd.Timestamp("2024-02-01")]
    assert out["d"].isna().tolist()[2:] == [True, True]
    out = FixTypeTransformer(column="d", to="datetime", date_format="%d/%m/%Y").fit_transform(frame)
    assert out["d"].iloc[1] == pd.Timestamp("2024-02-01")


def test_parse_booleans_case_insensitive_floats_with_nan_for_unknown():
    series = pd.Series(["Yes", "no", "TRUE", "false", "Y", "n", "1", "0", "maybe", None, 1, 0, True])
    out = parse_booleans(series)
    assert out.dtype == float
    np.testing.assert_array_equal(
        out.to_numpy(), [1, 0, 1, 0, 1, 0, 1, 0, np.nan, np.nan, 1, 0, 1]
    )


def test_normalize_categories_maps_to_most_frequent_spelling():
    train = pd.DataFrame({"c": ["Yes", "yes ", "Yes", "  YES", "no", "No", "No", 3]})
    est = NormalizeCategoriesTransformer(columns=["c"]).fit(train)
    assert est.canonical_["c"] == {"yes": "Yes", "no": "No"}
    test = pd.DataFrame({"c": ["YES  ", "nO", "Maybe ", None, 3]})
    # Known keys map to the canonical spelling; unseen text and non-text values pass through.
    assert est.transform(test)["c"].tolist() == ["Yes", "No", "Maybe ", None, 3]


def test_normalize_categories_ties_are_deterministic():
    a = NormalizeCategoriesTransformer(columns=["c"]).fit(pd.DataFrame({"c": ["b", "B"]}))
    b = NormalizeCategoriesTransformer(columns=["c"]).fit(pd.DataFrame({"c": ["B", "b"]}))
    assert a.canonical_ == b.canonical_ == {"c": {"b": "B"}}


def test_impute_uses_train_statistics_and_adds_indicators():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan, 100.0], "c": ["a", "a", "b", None, "b"]})
    test = pd.DataFrame({"x": [np.nan, 1000.0, np.nan], "c": [None, "z", "a"]})
    median = ImputeTransformer(columns=["x"], strategy="median", add_indicator=True).fit(train)
    assert median.statistics_ == {"x": 2.5}
    out = median.transform(test)
    assert out["x"].tolist() == [2.5, 1000.0, 2.5]  # the train median, not the test one
    assert out["x__missing"].tolist() == [1.0, 0.0, 1.0]
    assert list(median.get_feature_names_out()) == ["x", "c", "x__missing"]
    mean = ImputeTransformer(columns=["x"], strategy="mean").fit(train)
    assert mean.statistics_["x"] == pytest.approx(26.5)
    freq = ImputeTransformer(columns=["c"], strategy="most_frequent").fit(train)
    assert freq.transform(test)["c"].tolist() == ["a", "z", "a"]  # ties: pandas mode, sorted
    const = ImputeTransformer(columns=["x", "c"], strategy="constant").fit(train)
    assert const.statistics_ == {"x": 0, "c": "missing"}
    const = ImputeTransformer(columns=["c"], strategy="constant", fill_value="?").fit(train)
    assert const.transform(test)["c"].tolist() == ["?", "z", "a"]


def test_impute_refuses_median_of_text_and_indicator_name_clash():
    with pytest.raises(BadInput, match="median"):
        ImputeTransformer(columns=["c"]).fit(pd.DataFrame({"c": ["a", None]}))
    with pytest.raises(BadInput, match="x__missing"):
        ImputeTransformer(columns=["x"], add_indicator=True).fit(
            pd.DataFrame({"x": [1.0, None], "x__missing": [0, 1]})
        )


def test_impute_categorical_dtype_with_new_fill_value():
    frame = pd.DataFrame({"c": pd.Categorical(["a", None, "b"])})
    out = ImputeTransformer(columns=["c"], strategy="constant", fill_value="missing").fit_transform(frame)
    assert out["c"].tolist() == ["a", "missing", "b"]


def test_outlier_clipper_learns_iqr_and_zscore_bounds():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan]})
    iqr = OutlierClipper(columns=["x"], threshold=1.0).fit(train)
    assert iqr.bounds_["x"] == (0.0, 6.0)  # q1=2, q3=4, iqr=2
    assert iqr.transform(pd.DataFrame({"x": [-10.0, 3.0, 10.0, np.nan]}))["x"].tolist()[:3] == [0.0, 3.0, 6.0]
    z = OutlierClipper(columns=["x"], method="zscore", threshold=2.0).fit(train)
    std = train["x"].std()
    assert z.bounds_["x"] == pytest.approx((3 - 2 * std, 3 + 2 * std))
    with pytest.raises(BadInput, match="numeric"):
        OutlierClipper(columns=["c"]).fit(pd.DataFrame({"c": ["a", "b"]}))
    with pytest.raises(BadInput):
        outlier_bounds(train["x"], method="bogus")


def test_rare_grouper_maps_rare_and_unseen_to_label_keeps_missing():
    train = pd.DataFrame({"c": ["a"] * 6 + ["b"] * 3 + ["z"] + [None] * 5})
    est = RareCategoryGrouper(columns=["c"], min_share=0.2, label="Other").fit(train)
    assert est.frequent_ == {"c": ["a", "b"]}  # z is 1/10 of the non-missing values
    out = est.transform(pd.DataFrame({"c": ["a", "z", "never seen", None, "b"]}))
    assert out["c"].tolist() == ["a", "Other", "Other", None, "b"]


def test_array_input_gets_default_names():
    est = ImputeTransformer(columns=["x0"]).fit(np.array([[1.0, 2.0], [np.nan, 3.0], [3.0, 4.0]]))
    assert list(est.get_feature_names_out()) == ["x0", "x1"]
    assert est.transform(np.array([[np.nan, 1.0]]))["x0"].tolist() == [2.0]


def test_nullable_pandas_dtypes():
    frame = pd.DataFrame(
        {
            "i": pd.array([1, 2, None, 40], dtype="Int64"),
            "s": pd.array(["1,000", "yes", None, "3"], dtype="string"),
            "b": pd.array([True, False, None, True], dtype="boolean"),
        }
    )
    mean = ImputeTransformer(columns=["i"], strategy="mean").fit_transform(frame)["i"]
    assert mean.tolist() == pytest.approx([1.0, 2.0, 43 / 3, 40.0])
    clipped = OutlierClipper(columns=["i"], threshold=0.0).fit_transform(frame)["i"]
    assert clipped.max() < 40
    numbers = FixTypeTransformer(column="s").fit_transform(frame)["s"]
    np.testing.assert_array_equal(numbers.to_numpy(), [1000.0, np.nan, np.nan, 3.0])
    flags = FixTypeTransformer(column="s", to="boolean").fit_transform(frame)["s"]
    np.testing.assert_array_equal(flags.to_numpy(), [np.nan, 1.0, np.nan, np.nan])
    bools = FixTypeTransformer(column="b", to="boolean").fit_transform(frame)["b"]
    np.testing.assert_array_equal(bools.to_numpy(), [1.0, 0.0, np.nan, 1.0])
