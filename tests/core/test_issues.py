"""Issue detection: every detector on a tiny hand-made table, and no false alarms."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.config import SAMPLES_DIR
from core.data.issues import Issue, Severity, detect_issues, text_type_issues, unfixed_type_issues
from core.data.profile import profile_table
from core.errors import BadInput
from core.prep.steps import (
    DropColumns,
    DropDuplicates,
    DropMissingTarget,
    FixType,
    GroupRareCategories,
    Impute,
    NormalizeCategories,
    Outliers,
    Recipe,
)
from tests.core.frames import few_valued_rows


def issues_of(frame: pd.DataFrame, target: str | None = None) -> tuple[Issue, ...]:
    return detect_issues(frame, profile_table(frame, target=target), target=target)


def only(issues: tuple[Issue, ...], code: str, column: str | None = None) -> Issue:
    found = [i for i in issues if i.code == code and (column is None or column in i.columns)]
    assert len(found) == 1, [(i.code, i.columns) for i in issues]
    return found[0]


def codes(issues: tuple[Issue, ...]) -> set[tuple[str, tuple[str, ...]]]:
    return {(i.code, i.columns) for i in issues}


def clean_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A table with nothing wrong: the target depends on the features, but not perfectly."""
    rng = np.random.default_rng(seed)
    height = rng.normal(170, 10, rows)
    return pd.DataFrame(
        {
            "height": height.round(1),
            "weight": rng.normal(70, 12, rows).round(1),
            "plan": rng.choice(["basic", "plus", "pro", "team"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "visits": rng.poisson(3, rows),
            "signed_up": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"),
            "bought": np.where(height + rng.normal(0, 12, rows) > 170, "bought", "left"),
        }
    )


# --- no false alarms ---------------------------------------------------------------------------


def test_clean_table_has_no_issues() -> None:
    assert issues_of(clean_frame(), target="bought") == ()
    assert issues_of(clean_frame()) == ()


# Issues each real data set really has; anything else would be a false alarm.
EXPECTED = {
    "penguins.csv": ("species", {"missing_values"}),
    "mlc_churn.csv": ("churn", {"boolean_as_text", "outliers"}),
    "default.csv": ("default", {"class_imbalance", "boolean_as_text"}),
    "concrete.csv": ("compressive_strength", {"duplicate_rows"}),
    "taxi.csv": ("tip", {"class_imbalance", "duplicate_rows", "boolean_as_text"}),
    "lending_club.csv": ("Class", {"class_imbalance", "outliers", "near_constant_column"}),
    "deliveries.csv": ("time_to_delivery", {"outliers"}),
    "chicago.csv": ("ridership", {"date_as_text", "outliers"}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_data_sets_raise_only_their_real_issues(name: str) -> None:
    target, expected = EXPECTED[name]
    frame = pd.read_csv(SAMPLES_DIR / name)
    issues = issues_of(frame, target=target)
    assert {i.code for i in issues} == expected
    assert all(target not in i.columns for i in issues if i.code != "class_imbalance")
    for issue in issues:
        assert issue.title and issue.explanation
        assert issue.fix is None or issue.fix.reason


def test_real_data_set_specifics() -> None:
    penguins = issues_of(pd.read_csv(SAMPLES_DIR / "penguins.csv"), target="species")
    assert only(penguins, "missing_values", "sex").fix == Impute(
        columns=["sex"], strategy="most_frequent", reason=only(penguins, "missing_values", "sex").fix.reason
    )
    chicago = issues_of(pd.read_csv(SAMPLES_DIR / "chicago.csv"), target="ridership")
    date = only(chicago, "date_as_text", "date").fix
    assert (date.to, date.date_format, date.dayfirst) == ("datetime", None, False)
    churn = issues_of(pd.read_csv(SAMPLES_DIR / "mlc_churn.csv"), target="churn")
    assert {i.columns[0] for i in churn if i.code == "boolean_as_text"} == {"international_plan", "voice_mail_plan"}


# --- missing values ----------------------------------------------------------------------------


def test_missing_values_are_imputed_by_kind_with_an_indicator_when_many() -> None:
    frame = clean_frame()
    frame.loc[:7, "height"] = np.nan  # 2%
    frame.loc[:99, "weight"] = np.nan  # 25%
    frame.loc[:9, "plan"] = None
    issues = issues_of(frame, target="bought")

    few = only(issues, "missing_values", "height")
    assert few.severity is Severity.LOW
    assert isinstance(few.fix, Impute)
    assert (few.fix.columns, few.fix.strategy, few.fix.add_indicator) == (["height"], "median", False)
    assert "8 of 400 rows (2.0%)" in few.explanation

    many = only(issues, "missing_values", "weight")
    assert many.severity is Severity.MEDIUM
    assert (many.fix.strategy, many.fix.add_indicator) == ("median", True)

    assert only(issues, "missing_values", "plan").fix.strategy == "most_frequent"


def test_mostly_empty_column_is_dropped_not_imputed() -> None:
    frame = clean_frame()
    frame.loc[:359, "weight"] = np.nan  # 90%
    issue = only(issues_of(frame), "mostly_missing", "weight")
    assert issue.fix == DropColumns(columns=["weight"], reason=issue.fix.reason)
    assert "missing_values" not in {i.code for i in issues_of(frame)}


# --- rows and columns --------------------------------------------------------------------------


def test_duplicate_rows() -> None:
    frame = clean_frame()
    frame = pd.concat([frame, frame.iloc[:20]], ignore_index=True)
    issue = only(issues_of(frame, target="bought"), "duplicate_rows")
    assert isinstance(issue.fix, DropDuplicates)
    assert issue.columns == ()
    assert "20 rows" in issue.explanation
    assert issue.severity is Severity.MEDIUM
    assert "exact copies" in issue.explanation


def test_duplicate_rows_that_few_values_would_give_by_chance_are_not_called_copies() -> None:
    frame = few_valued_rows(seed=0)
    profile = profile_table(frame)
    assert profile.duplicate_rows > 5_000 and profile.chance_duplicate_rows > profile.duplicate_rows / 2
    issue = only(issues_of(frame), "duplicate_rows")
    assert "by chance alone" in issue.explanation and "exact copies" not in issue.explanation
    assert issue.severity is Severity.LOW
    assert isinstance(issue.fix, DropDuplicates)  # still offered: only the analyst knows


def test_constant_and_empty_columns() -> None:
    frame = clean_frame()
    frame["country"] = "FR"
    frame["notes"] = None
    issues = issues_of(frame)
    constant = only(issues, "constant_column", "country")
    assert constant.fix == DropColumns(columns=["country"], reason=constant.fix.reason)
    assert "'FR'" in constant.explanation
    assert only(issues, "constant_column", "notes").title == "'notes' is empty"
    assert "missing_values" not in {i.code for i in issues}  # no point imputing a column to drop


def test_near_constant_column() -> None:
    frame = clean_frame(rows=1_000)
    frame["flag"] = ["a"] * 995 + ["b"] * 5
    issue = only(issues_of(frame), "near_constant_column", "flag")
    assert isinstance(issue.fix, DropColumns)
    assert "1 value cover only 5 rows" in issue.explanation.replace("values", "value")


def test_identifier_columns() -> None:
    frame = clean_frame()
    frame["row"] = np.arange(len(frame))
    frame["customer"] = [f"CUST-{i:05d}" for i in range(len(frame))]
    issues = issues_of(frame, target="bought")
    for name in ("row", "customer"):
        issue = only(issues, "identifier_column", name)
        assert issue.fix == DropColumns(columns=[name], reason=issue.fix.reason)
        assert issue.severity is Severity.MEDIUM


def test_high_cardinality_groups_rare_categories() -> None:
    common = [f"shop_{i}" for i in range(20) for _ in range(140)]
    rare = [f"corner_{i}" for i in range(200)]
    frame = pd.DataFrame({"shop": common + rare, "amount": np.arange(3_000) % 97})
    issue = only(issues_of(frame), "high_cardinality", "shop")
    assert isinstance(issue.fix, GroupRareCategories)
    assert issue.fix.min_share == 0.01
    assert "220 different values and 200 of them" in issue.explanation


def test_many_but_common_categories_are_not_flagged() -> None:
    frame = pd.DataFrame({"state": [f"S{i}" for i in range(60)] * 50, "amount": np.arange(3_000) % 97})
    assert "high_cardinality" not in {i.code for i in issues_of(frame)}


def test_all_rare_categories_keep_the_most_frequent_few_dozen() -> None:
    rng = np.random.default_rng(0)
    cities = rng.choice([f"city_{i}" for i in range(500)], 20_000, p=np.arange(1, 501) / np.arange(1, 501).sum())
    issue = only(issues_of(pd.DataFrame({"city": cities, "n": np.arange(20_000) % 7})), "high_cardinality")
    kept = (pd.Series(cities).value_counts(normalize=True) >= issue.fix.min_share).sum()
    assert 25 <= kept <= 35


# --- text that should be something else --------------------------------------------------------


def test_numbers_stored_as_text() -> None:
    frame = clean_frame(rows=20)
    frame["price"] = ["1,234", "$5", "12%", "7", "-3.5", "$1,000.25", "80%", "n/a"] + ["42"] * 12
    issue = only(issues_of(frame), "number_as_text", "price")
    assert issue.fix == FixType(column="price", to="number", reason=issue.fix.reason)
    assert "'n/a'" in issue.explanation  # what will become empty
    assert issue.severity is Severity.MEDIUM


@pytest.mark.parametrize(
    "values",
    [
        ["02134", "00501", "10001", "02139"] * 5,  # ZIP codes keep their zeros
        ["1,5", "2,25", "3,75", "4,5"] * 5,  # decimal commas: not a format the step reads
        ["A12", "B7", "C3", "D9"] * 5,
    ],
)
def test_codes_are_not_numbers(values: list[str]) -> None:
    frame = clean_frame(rows=20)
    frame["code"] = values
    assert "number_as_text" not in {i.code for i in issues_of(frame)}


@pytest.mark.parametrize(
    ("values", "date_format", "dayfirst"),
    [
        (["31/01/2024", "15/02/2024", "01/03/2024", "28/12/2023"], "%d/%m/%Y", True),
        (["01/31/2024", "02/15/2024", "03/01/2024", "12/28/2023"], "%m/%d/%Y", False),
        (["31.01.24", "15.02.24", "01.03.24", "28.12.23"], "%d.%m.%y", True),
        (["31/01/2024 13:45", "15/02/2024 08:00", "01/03/2024 00:30", "28/12/2023 23:59"], "%d/%m/%Y %H:%M", True),
        (["2024-01-31", "2024-02-15", "2024-03-01", "2023-12-28"], None, False),
        (["2024-01-31T10:00:00Z", "2024-02-15T11:30:00Z", "2024-03-01T00:00:00Z", "2023-12-28T09:00:00Z"], None, False),
        (["2024/01/31", "2024/02/15", "2024/03/01", "2023/12/28"], "%Y/%m/%d", False),
    ],
)
def test_dates_stored_as_text(values: list[str], date_format: str | None, dayfirst: bool) -> None:
    frame = clean_frame(rows=20)
    frame["when"] = values * 5
    issue = only(issues_of(frame), "date_as_text", "when")
    assert issue.fix == FixType(
        column="when", to="datetime", date_format=date_format, dayfirst=dayfirst, reason=issue.fix.reason
    )


def test_ambiguous_dates_say_so() -> None:
    frame = clean_frame(rows=20)
    frame["when"] = ["01/02/2024", "03/04/2024", "05/06/2024", "07/08/2024"] * 5
    issue = only(issues_of(frame), "date_as_text", "when")
    assert issue.fix.dayfirst is False
    assert "either way round" in issue.explanation


def test_mixed_day_and_month_order_is_not_a_date_column() -> None:
    frame = clean_frame(rows=20)
    frame["when"] = ["31/01/2024", "01/31/2024", "15/02/2024", "02/15/2024"] * 5
    assert "date_as_text" not in {i.code for i in issues_of(frame)}


def test_type_issues_the_recipe_leaves_open() -> None:
    frame = clean_frame(rows=40)
    frame["when"] = ["2024-01-31", "2024-02-15", "2024-03-01", "2023-12-28"] * 10
    frame["price"] = ["$1,200", "$950", "$1,020", "$780"] * 10
    frame["newsletter"] = ["yes", "no"] * 20
    frame["batch"] = "2024-01-01"  # one date in every row: a constant column, not one to convert
    found = issues_of(frame, target="bought")
    # Found alike with or without a profile; yes/no as text costs a model nothing, so it is not among them.
    quick = text_type_issues(frame, target="bought")
    assert codes(quick) == {("date_as_text", ("when",)), ("number_as_text", ("price",))}
    assert all(issue in found for issue in quick) and ("boolean_as_text", ("newsletter",)) in codes(found)
    assert ("constant_column", ("batch",)) in codes(found)
    assert codes(unfixed_type_issues(found, Recipe())) == codes(quick)
    # A recipe that converts a column (in any format) or drops it settles its issue.
    recipe = Recipe(steps=(FixType(column="when", to="datetime", date_format="%Y-%m-%d", reason="r"),
                           DropColumns(columns=["price"], reason="r")))
    assert unfixed_type_issues(found, recipe) == ()
    assert codes(unfixed_type_issues(found, Recipe(steps=recipe.steps[1:]))) == {("date_as_text", ("when",))}


def test_booleans_stored_as_text() -> None:
    frame = clean_frame()
    frame["newsletter"] = np.where(np.arange(len(frame)) % 3 == 0, "yes", "no")
    issue = only(issues_of(frame), "boolean_as_text", "newsletter")
    assert issue.fix == FixType(column="newsletter", to="boolean", reason=issue.fix.reason)
    assert issue.severity is Severity.LOW


def test_inconsistent_spellings_are_normalised() -> None:
    frame = clean_frame(rows=100)
    frame["member"] = ["Yes"] * 40 + ["yes "] * 5 + ["YES"] * 5 + ["no"] * 45 + ["No"] * 5
    issues = issues_of(frame)
    issue = only(issues, "inconsistent_categories", "member")
    assert issue.fix == NormalizeCategories(columns=["member"], reason=issue.fix.reason)
    assert "'Yes' (40), 'yes ' (5), 'YES' (5)" in issue.explanation
    assert "3 spurious categories" in issue.explanation


def test_unused_categories_of_a_category_dtype_are_ignored() -> None:
    frame = clean_frame(rows=100)
    frame["member"] = pd.Categorical(["gold"] * 50 + ["silver"] * 50, categories=["gold", "Gold ", "silver"])
    assert "inconsistent_categories" not in {i.code for i in issues_of(frame)}


def test_spelling_variants_of_two_values_are_not_also_a_boolean_issue() -> None:
    frame = clean_frame(rows=100)
    frame["member"] = ["Yes"] * 60 + ["yes"] * 40
    assert {i.code for i in issues_of(frame)} == {"inconsistent_categories"}


# --- numbers -----------------------------------------------------------------------------------


def test_outliers_are_clipped() -> None:
    frame = clean_frame(rows=1_000)
    frame.loc[[3, 7], "weight"] = [7_000.0, -650.0]  # grams typed as kilograms, a sign slip
    issue = only(issues_of(frame), "outliers", "weight")
    expected = Outliers(columns=["weight"], method="iqr", threshold=3.0, action="clip", reason=issue.fix.reason)
    assert issue.fix == expected
    assert issue.title == "2 extreme values in 'weight'"
    assert "7,000" in issue.explanation


def test_infinite_values_are_reported_on_their_own_not_as_outliers() -> None:
    frame = clean_frame(rows=1_000)
    frame.loc[[3, 7, 11], "weight"] = [np.inf, -np.inf, np.inf]  # a ratio divided by zero upstream
    issue = only(issues_of(frame), "infinite_values", "weight")
    assert issue.title == "3 infinite values in 'weight'" and issue.fix is None  # the model reads them as missing
    assert "outliers" not in {i.code for i in issues_of(frame)}  # nor clipped to a fence as extreme values
    frame.loc[[3], "weight"] = 1.0
    assert only(issues_of(frame), "infinite_values", "weight").title == "2 infinite values in 'weight'"


def test_small_counts_have_a_natural_tail_but_placeholders_are_caught() -> None:
    frame = clean_frame(rows=1_000)
    frame["calls"] = [0] * 300 + [1] * 300 + [2] * 300 + [3] * 60 + [6] * 20 + [9] * 20  # real tail
    frame["rating"] = [1, 2, 3, 4, 5] * 199 + [99] * 5  # 99 = "not rated"
    found = {i.columns[0] for i in issues_of(frame) if i.code == "outliers"}
    assert found == {"rating"}


def test_long_tails_are_not_outliers() -> None:
    frame = clean_frame(rows=2_000)
    frame["income"] = np.random.default_rng(0).lognormal(10, 1.2, 2_000)  # ~5% beyond the fences
    assert "outliers" not in {i.code for i in issues_of(frame)}


# --- the target --------------------------------------------------------------------------------


def test_class_imbalance_suggests_class_weights() -> None:
    frame = clean_frame(rows=1_000)
    frame["fraud"] = ["no"] * 960 + ["yes"] * 40
    issue = only(issues_of(frame, target="fraud"), "class_imbalance")
    assert issue.fix is None
    assert "class weights" in issue.explanation
    assert "'yes'" in issue.title and "4.0%" in issue.title


def test_many_even_classes_are_not_imbalanced() -> None:
    frame = clean_frame(rows=1_000)
    frame["digit"] = [f"d{i}" for i in range(20)] * 50
    assert "class_imbalance" not in {i.code for i in issues_of(frame, target="digit")}


def test_rows_without_a_target() -> None:
    frame = clean_frame()
    frame.loc[:9, "bought"] = None
    issue = only(issues_of(frame, target="bought"), "missing_target")
    assert issue.severity is Severity.HIGH
    assert issue.fix == DropMissingTarget(target="bought", reason=issue.fix.reason)


def test_infinite_targets_are_rows_without_a_target() -> None:
    frame = clean_frame(rows=1_000)
    frame["amount"] = np.r_[np.random.default_rng(0).normal(100, 10, 990), [np.inf] * 3, [np.nan] * 7]
    issue = only(issues_of(frame, target="amount"), "missing_target")
    assert issue.title == "10 rows have no target"
    assert "empty in 7 and an infinite number" in issue.explanation and "in 3 rows (1.0%)" in issue.explanation


def test_target_with_one_class() -> None:
    frame = clean_frame()
    frame["bought"] = "left"
    issues = issues_of(frame, target="bought")
    issue = only(issues, "single_class_target")
    assert (issue.severity, issue.fix) == (Severity.HIGH, None)
    assert "constant_column" not in {i.code for i in issues}  # the target is not a feature


def test_text_target_with_too_many_classes() -> None:
    frame = clean_frame(rows=600)
    frame["product"] = [f"sku_{i % 75}" for i in range(600)]
    issue = only(issues_of(frame, target="product"), "too_many_classes")
    assert issue.fix is None and "75" in issue.title


def test_the_target_is_only_checked_as_a_target() -> None:
    frame = clean_frame(rows=1_000)
    frame["amount"] = np.r_[np.random.default_rng(0).normal(100, 10, 990), [5_000.0] * 5, [np.nan] * 5]
    issues = issues_of(frame, target="amount")
    assert {i.code for i in issues if "amount" in i.columns} == {"missing_target"}


def test_unknown_target_is_bad_input() -> None:
    frame = clean_frame()
    with pytest.raises(BadInput):
        detect_issues(frame, profile_table(frame), target="nope")


def test_profile_without_target_still_checks_the_target() -> None:
    frame = clean_frame()
    frame.loc[:4, "bought"] = None
    issues = detect_issues(frame, profile_table(frame), target="bought")
    assert "missing_target" in {i.code for i in issues}


# --- leakage -----------------------------------------------------------------------------------


def test_leakage_binary_numeric_and_categorical() -> None:
    frame = clean_frame(rows=2_000)
    bought = frame["bought"] == "bought"
    rng = np.random.default_rng(1)
    frame["refund_days"] = np.where(bought, rng.uniform(1, 30, 2_000), np.nan)  # only buyers have one
    frame["status"] = np.where(bought, "shipped", "none")
    issues = issues_of(frame, target="bought")
    for name in ("refund_days", "status"):
        issue = only(issues, "target_leakage", name)
        assert issue.severity is Severity.HIGH
        assert issue.fix == DropColumns(columns=[name], reason=issue.fix.reason)
        assert "ROC AUC" in issue.explanation
    assert {i.columns[0] for i in issues if i.code == "target_leakage"} == {"refund_days", "status"}


def test_leakage_multiclass_and_regression() -> None:
    rng = np.random.default_rng(2)
    frame = clean_frame(rows=1_500)
    frame["tier"] = rng.choice(["gold", "silver", "bronze"], 1_500)
    frame["tier_code"] = frame["tier"].map({"gold": 3, "silver": 2, "bronze": 1})
    multi = issues_of(frame, target="tier")
    assert {i.columns[0] for i in multi if i.code == "target_leakage"} == {"tier_code"}
    assert "accuracy" in only(multi, "target_leakage").explanation

    frame["price"] = rng.lognormal(3, 0.5, 1_500)
    frame["price_with_tax"] = frame["price"] * 1.2 + rng.normal(0, 0.01, 1_500)
    regression = issues_of(frame.drop(columns=["tier_code"]), target="price")
    assert {i.columns[0] for i in regression if i.code == "target_leakage"} == {"price_with_tax"}
    assert "R²" in only(regression, "target_leakage").explanation


def test_identifiers_do_not_look_like_leaks() -> None:
    frame = clean_frame(rows=2_000)
    frame["customer"] = [f"C{i}" for i in range(2_000)]  # unique per row: memorising is not predicting
    assert "target_leakage" not in {i.code for i in issues_of(frame, target="bought")}


def test_majority_guessing_is_not_a_leak() -> None:
    # 99% one class: a column matching the majority is 99% accurate but no better than guessing.
    frame = clean_frame(rows=2_000)
    frame["kind"] = ["a"] * 1_980 + ["b"] * 10 + ["c"] * 10
    frame["noise"] = np.random.default_rng(3).normal(size=2_000)
    assert "target_leakage" not in {i.code for i in issues_of(frame, target="kind")}


def test_leakage_check_is_fast_on_a_wide_table() -> None:
    rng = np.random.default_rng(4)
    rows = 50_000
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(14)})
    for i in range(5):
        frame[f"c{i}"] = rng.choice([f"v{j}" for j in range(30)], rows)
    frame["y"] = np.where(frame["x0"] + rng.normal(size=rows) > 0, "a", "b")
    profile = profile_table(frame, target="y")
    start = time.perf_counter()
    detect_issues(frame, profile, target="y")
    assert time.perf_counter() - start < 2.0


# --- ordering ----------------------------------------------------------------------------------


def test_issues_come_most_severe_first() -> None:
    frame = clean_frame(rows=500)
    frame.loc[:3, "height"] = np.nan  # low
    frame["row"] = np.arange(500)  # medium
    frame.loc[:2, "bought"] = None  # high
    issues = issues_of(frame, target="bought")
    ranks = [{"high": 0, "medium": 1, "low": 2}[i.severity] for i in issues]
    assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == 2
    assert Severity.HIGH == "high"


def test_detection_does_not_modify_the_frame() -> None:
    frame = clean_frame()
    frame.loc[:5, "plan"] = None
    before = frame.copy()
    issues_of(frame, target="bought")
    pd.testing.assert_frame_equal(frame, before)
