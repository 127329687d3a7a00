"""Profiling: kinds, counts, statistics, duplicates and the inferred task."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.config import SAMPLES_DIR
from core.data.kinds import ColumnKind
from core.data.profile import TableProfile, Task, infer_task, profile_table
from core.errors import BadInput
from tests.core.frames import few_valued_rows


@pytest.fixture
def mixed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [25, 32, np.nan, 41, 25, 58],
            "city": ["Paris", "Lyon", "Paris", None, "Paris", "Nice"],
            "member": [True, False, True, True, True, False],
            "joined": pd.to_datetime(["2024-01-05", "2023-03-01", None, "2024-06-30", "2024-01-05", "2022-12-31"]),
            "label": ["yes", "no", "no", "yes", "yes", "no"],
        }
    )


# --- infer_task --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["yes", "no", "yes", None], Task.BINARY),
        ([True, False, True], Task.BINARY),
        ([0, 1, 1, 0, 1], Task.BINARY),
        ([3.5, 7.25, 3.5], Task.BINARY),  # two values are two classes, whatever their type
        (["a", "b", "c", "a"], Task.MULTICLASS),
        ([1, 2, 3, 4, 5] * 20, Task.MULTICLASS),  # a few whole numbers read as class labels
        (list(np.linspace(0, 1, 100)), Task.REGRESSION),
        (list(range(100)), Task.REGRESSION),  # many distinct whole numbers: a count or amount
        ([1, 2, 3, 4, 5, 6], Task.REGRESSION),  # as many values as rows: not labels
        ([f"class_{i}" for i in range(80)] * 2, Task.MULTICLASS),  # flagged by issues, not here
    ],
)
def test_infer_task(values: list, task: Task) -> None:
    assert infer_task(pd.Series(values, name="y")) is task


def test_infer_task_refuses_empty_and_date_targets() -> None:
    with pytest.raises(BadInput, match="no values"):
        infer_task(pd.Series([None, None], name="y", dtype=object))
    with pytest.raises(BadInput, match="dates"):
        infer_task(pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]), name="when"))
    with pytest.raises(BadInput, match="'when' holds dates"):  # as a CSV file stores them
        infer_task(pd.Series(["2024-01-01", "2024-02-01 10:00", None], name="when"))


# --- profile_table -----------------------------------------------------------------------------


def test_profile_counts_kinds_and_stats(mixed: pd.DataFrame) -> None:
    profile = profile_table(mixed, target="label")
    assert (profile.rows, profile.columns, profile.target, profile.task) == (6, 5, "label", Task.BINARY)

    age = profile.column("age")
    assert age.kind is ColumnKind.NUMERIC
    assert (age.missing, age.unique) == (1, 4)
    assert age.missing_share == pytest.approx(1 / 6)
    values = mixed["age"].dropna()
    expected = {
        "mean": values.mean(),
        "std": values.std(),
        "min": 25,
        "p25": values.quantile(0.25),
        "median": values.median(),
        "p75": values.quantile(0.75),
        "max": 58,
        "skew": values.skew(),
    }
    assert age.stats == pytest.approx(expected)
    assert age.top_values[0] == ("25", 2)  # whole floats read as whole numbers

    city = profile.column("city")
    assert city.kind is ColumnKind.CATEGORICAL
    assert (city.missing, city.unique, city.stats) == (1, 3, {})
    assert city.top_values == (("Paris", 3), ("Lyon", 1), ("Nice", 1))  # ties in order of appearance

    assert profile.column("member").kind is ColumnKind.BOOLEAN
    assert profile.column("label").kind is ColumnKind.BOOLEAN
    joined = profile.column("joined")
    assert joined.kind is ColumnKind.DATETIME
    assert joined.date_range == ("2022-12-31T00:00:00", "2024-06-30T00:00:00")
    assert joined.missing == 1


def test_profile_lookup_and_names(mixed: pd.DataFrame) -> None:
    profile = profile_table(mixed)
    assert profile.task is None and profile.target is None
    assert profile.names(ColumnKind.NUMERIC, ColumnKind.DATETIME) == ["age", "joined"]
    with pytest.raises(KeyError):
        profile.column("nope")


def test_duplicate_rows_match_pandas_including_missing_values(mixed: pd.DataFrame) -> None:
    # Row 4 repeats row 0; row 2 holds NaN and NaT, which count as equal to themselves.
    doubled = pd.concat([mixed, mixed.iloc[[1, 2, 2]]], ignore_index=True)
    assert profile_table(doubled).duplicate_rows == int(doubled.duplicated().sum()) == 4


def test_duplicate_rows_exact_when_row_keys_overflow() -> None:
    # 12 columns of 20,000 distinct values: the combined key passes 2**62 and is renumbered.
    rng = np.random.default_rng(0)
    base = pd.DataFrame({f"c{i}": rng.integers(0, 20_000, 20_000) for i in range(12)})
    frame = pd.concat([base, base.sample(500, random_state=1)], ignore_index=True)
    frame["c3"] = frame["c3"].astype(str)
    assert profile_table(frame).duplicate_rows == int(frame.duplicated().sum()) == 500


def test_text_column_stats_and_memory() -> None:
    words = np.array("the parcel arrived late and the box was damaged badly today".split())
    rng = np.random.default_rng(1)
    text = [" ".join(rng.choice(words, 6)) + f" #{i}" for i in range(3_000)]
    frame = pd.DataFrame({"review": text, "stars": rng.integers(1, 6, 3_000)})
    profile = profile_table(frame)
    review = profile.column("review")
    assert review.kind is ColumnKind.TEXT
    lengths = frame["review"].str.len()
    assert review.stats == pytest.approx({"mean_length": lengths.mean(), "max_length": lengths.max()})
    exact = frame.memory_usage(deep=True).sum()
    assert abs(profile.memory_bytes - exact) / exact < 0.1  # strings are measured on a sample


def test_big_text_columns_are_judged_on_a_sample_with_the_same_kind() -> None:
    rows = 120_000  # above the sampling threshold
    frame = pd.DataFrame(
        {
            "order_id": [f"ORD-{i:07d}" for i in range(rows)],
            "note": [f"customer {i} asked for a refund on order {i * 7}" for i in range(rows)],
            "plan": np.where(np.arange(rows) % 3 == 0, "pro", "basic"),
        }
    )
    profile = profile_table(frame)
    assert profile.column("order_id").kind is ColumnKind.IDENTIFIER
    assert profile.column("note").kind is ColumnKind.TEXT
    assert profile.column("plan").kind is ColumnKind.CATEGORICAL


def test_unhashable_values_are_profiled_as_text() -> None:
    frame = pd.DataFrame({"tags": [["a"], ["b"], ["a"], None], "n": [1, 2, 3, 4]})
    tags = profile_table(frame).column("tags")
    assert (tags.unique, tags.missing, tags.top_values[0]) == (2, 1, ("['a']", 2))


def test_empty_table_profiles() -> None:
    profile = profile_table(pd.DataFrame({"a": pd.Series([], dtype=float), "b": pd.Series([], dtype=object)}))
    assert (profile.rows, profile.duplicate_rows) == (0, 0)
    assert profile.column("a").missing_share == 0.0
    assert profile.column("a").top_values == ()


def test_profile_refuses_bad_targets_and_duplicate_names(mixed: pd.DataFrame) -> None:
    with pytest.raises(BadInput, match="no column named"):
        profile_table(mixed, target="missing")
    with pytest.raises(BadInput, match="dates"):
        profile_table(mixed, target="joined")
    with pytest.raises(BadInput, match="duplicate"):
        profile_table(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_profile_does_not_modify_the_frame(mixed: pd.DataFrame) -> None:
    before = mixed.copy()
    profile_table(mixed, target="label")
    pd.testing.assert_frame_equal(mixed, before)


@pytest.mark.parametrize(
    ("name", "target", "task"),
    [
        ("penguins.csv", "species", Task.MULTICLASS),
        ("mlc_churn.csv", "churn", Task.BINARY),
        ("concrete.csv", "compressive_strength", Task.REGRESSION),
        ("chicago.csv", "ridership", Task.REGRESSION),
    ],
)
def test_real_data_sets(name: str, target: str, task: Task) -> None:
    frame = pd.read_csv(SAMPLES_DIR / name)
    profile = profile_table(frame, target=target)
    assert isinstance(profile, TableProfile)
    assert profile.task is task
    assert profile.rows == len(frame) and profile.columns == frame.shape[1]
    assert profile.duplicate_rows == int(frame.duplicated().sum())
    for column in profile.column_profiles:
        assert column.missing == int(frame[column.name].isna().sum())
        assert column.unique == frame[column.name].nunique()
        assert len(column.top_values) == min(10, column.unique)


def test_kind_of_edge_columns() -> None:
    from core.data.kinds import ColumnKind, infer_kind

    assert infer_kind(pd.Series([np.nan] * 30, dtype=float)) == ColumnKind.NUMERIC
    ids = pd.Series(np.arange(100, dtype=float))
    ids[5] = np.nan  # an integer key with a gap is read as float by pandas
    assert infer_kind(ids) == ColumnKind.IDENTIFIER
    assert infer_kind(pd.Series(np.linspace(0, 1, 100))) == ColumnKind.NUMERIC


def test_chance_duplicates_are_what_random_rows_of_these_values_give() -> None:
    frame = few_valued_rows(seed=1)
    profile = profile_table(frame)
    # 336 combinations of about equal chance: all but about 336 rows repeat an earlier one.
    assert profile.chance_duplicate_rows == pytest.approx(profile.duplicate_rows, rel=0.01)
    frame["amount"] = np.random.default_rng(1).normal(size=6_000)  # distinct values: no row repeats by chance
    assert profile_table(frame).chance_duplicate_rows < 1e-6
    assert profile_table(frame.head(1)).chance_duplicate_rows == 0.0
