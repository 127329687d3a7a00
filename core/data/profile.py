"""Profile a table: per-column kinds, missing values, statistics and top values, in one pass.

Built for size: a million rows by twenty columns profiles in a few seconds. Every column is
factorised once; its codes give the distinct count, the top values and, combined across
columns, the duplicate-row count, so no column is hashed twice.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from core.data.kinds import ColumnKind, holds_iso_date_text, infer_kind
from core.errors import BadInput

__all__ = ["ColumnProfile", "TableProfile", "Task", "has_target_value", "infer_task", "profile_table"]

TOP_VALUES = 10
# A numeric target with at most this many distinct whole numbers is a set of class labels.
_MAX_NUMERIC_CLASSES = 20
# Above this many rows, a column's kind is judged on a sample where that gives the same
# answer (see _kind_input): infer_kind hashes and splits every value, seconds on big tables.
_KIND_SAMPLE_ROWS = 100_000
_ID_UNIQUE_SHARE = 0.95  # core.data.kinds' identifier threshold
_MEMORY_SAMPLE = 1_000  # strings measured to estimate a text column's memory


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


@dataclass(frozen=True)
class ColumnProfile:
    """What one column holds.

    Attributes:
        name: The column name.
        kind: The inferred kind (see :func:`core.data.kinds.infer_kind`).
        dtype: The pandas dtype as text.
        missing: Number of missing values.
        missing_share: ``missing`` over the number of rows (0 for an empty table).
        unique: Number of distinct non-missing values.
        stats: Numeric columns: mean, std, min, p25, median, p75, max, skew (finite values
            only). Text columns: mean_length, max_length. Empty otherwise.
        top_values: Up to ten ``(value as text, count)`` pairs, most frequent first.
        date_range: Datetime columns: the first and last value as ISO strings.
    """

    name: str
    kind: ColumnKind
    dtype: str
    missing: int
    missing_share: float
    unique: int
    stats: dict[str, float] = field(default_factory=dict)
    top_values: tuple[tuple[str, int], ...] = ()
    date_range: tuple[str, str] | None = None


@dataclass(frozen=True)
class TableProfile:
    """A whole table's profile; ``target`` and ``task`` are set when a target was given."""

    rows: int
    columns: int
    memory_bytes: int
    duplicate_rows: int
    column_profiles: tuple[ColumnProfile, ...]
    target: str | None = None
    task: Task | None = None
    # Duplicate rows that unrelated columns with these value frequencies would give by chance (see
    # _chance_duplicates); near duplicate_rows, the "copies" may be separate records that look alike.
    chance_duplicate_rows: float = 0.0

    def column(self, name: str) -> ColumnProfile:
        """Return the profile of the column called ``name``.

        Raises:
            KeyError: No such column.
        """
        for profile in self.column_profiles:
            if profile.name == name:
                return profile
        raise KeyError(name)

    def names(self, *kinds: ColumnKind) -> list[str]:
        """Names of the columns of the given kinds, in table order."""
        return [p.name for p in self.column_profiles if p.kind in kinds]


def has_target_value(y: pd.Series) -> np.ndarray:
    """Which rows hold a target a model can learn from and be scored on: present and, if a
    number, finite (an infinite one is a division by zero where the table was made)."""
    present = y.notna().to_numpy()
    if ptypes.is_float_dtype(y.dtype):
        present &= ~np.isinf(y.to_numpy(dtype=float, na_value=np.nan))
    return present


def infer_task(target: pd.Series) -> Task:
    """Guess the learning task from the target's values.

    Two distinct values make a binary task; a numeric target is a regression unless it holds
    a few whole numbers (at most 20, and at most half as many as there are rows), which read
    as class labels; any other target is multiclass. A text target with very many classes is
    still multiclass: the issue detector flags it.

    Args:
        target: The target column.

    Returns:
        The task.

    Raises:
        BadInput: The target has no values, or holds dates.
    """
    values = target.dropna()
    if values.empty:
        raise BadInput(f"the target column '{target.name}' has no values")
    # Dates a CSV stores as text too: as classes, nearly every one would be a class of a single row.
    if ptypes.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype) or holds_iso_date_text(values):
        raise BadInput(f"the target column '{target.name}' holds dates; pick a column with labels or numbers")
    unique = values.nunique()
    if ptypes.is_bool_dtype(values) or unique <= 2:
        return Task.BINARY
    if ptypes.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=float)
        whole = bool(np.all(np.mod(numbers[np.isfinite(numbers)], 1) == 0))
        if whole and unique <= _MAX_NUMERIC_CLASSES and 2 * unique <= len(values):
            return Task.MULTICLASS
        return Task.REGRESSION
    return Task.MULTICLASS


def profile_table(frame: pd.DataFrame, *, target: str | None = None) -> TableProfile:
    """Profile every column of ``frame``, count duplicate rows and infer the task.

    Args:
        frame: The table. It is not modified.
        target: The target column, if one is chosen.

    Returns:
        The profile.

    Raises:
        BadInput: Duplicate column names, an unknown target, or a target with no values or
            with dates (see :func:`infer_task`).
    """
    if not frame.columns.is_unique:
        raise BadInput("the table has duplicate column names")
    if target is not None and target not in frame.columns:
        raise BadInput(f"there is no column named '{target}'")
    rows = len(frame)
    profiles = []
    memory = int(frame.index.memory_usage())
    row_keys = _RowKeys(rows)
    match = 1.0  # the chance that two different rows agree on every column so far, were columns unrelated
    # One row sample for every column: drawing a sample from a million rows costs a shuffle.
    sample = None
    if rows > _KIND_SAMPLE_ROWS:
        sample = np.sort(np.random.default_rng(0).choice(rows, size=_KIND_SAMPLE_ROWS, replace=False))
    for name in frame.columns:
        series = frame[name]
        memory += _memory_bytes(series, sample)
        try:
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
        except TypeError:  # lists or dicts (from JSON): compare and show them as text
            series = series.where(series.isna(), series.astype(str))
            codes, uniques = pd.factorize(series, use_na_sentinel=True)
        row_keys.add(codes, len(uniques))
        counts = np.bincount(codes + 1, minlength=len(uniques) + 1)  # [missing, each value]
        if rows > 1:  # the chance that two different rows share this column's value
            match *= float(np.sum(counts * (counts - 1.0))) / (rows * (rows - 1.0))
        kind = infer_kind(_kind_input(series, codes, uniques, sample))
        profiles.append(_profile_column(series, kind, counts, uniques))
    task = infer_task(frame[target]) if target is not None else None
    return TableProfile(
        rows=rows,
        columns=len(frame.columns),
        memory_bytes=memory,
        duplicate_rows=row_keys.duplicates(),
        column_profiles=tuple(profiles),
        target=target,
        task=task,
        chance_duplicate_rows=_chance_duplicates(rows, match),
    )


# --- one column -------------------------------------------------------------------------------


def _profile_column(series: pd.Series, kind: ColumnKind, counts: np.ndarray, uniques) -> ColumnProfile:
    """One column's profile; ``counts`` are its rows missing, then per value of ``uniques``."""
    rows = len(series)
    missing = int(counts[0])
    counts = counts[1:]
    stats: dict[str, float] = {}
    date_range = None
    if ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series):
        stats = _numeric_stats(series)
    elif ptypes.is_datetime64_any_dtype(series) and rows > missing:
        date_range = (series.min().isoformat(), series.max().isoformat())
    elif kind is ColumnKind.TEXT:
        lengths = series.str.len()  # missing and non-text values count as missing
        stats = {"mean_length": float(lengths.mean()), "max_length": float(lengths.max())}
    # Most frequent first; ties keep the order of first appearance, like value_counts.
    top = np.argsort(-counts, kind="stable")[:TOP_VALUES]
    return ColumnProfile(
        name=str(series.name),
        kind=kind,
        dtype=str(series.dtype),
        missing=missing,
        missing_share=missing / rows if rows else 0.0,
        unique=len(uniques),
        stats=stats,
        top_values=tuple((_as_text(uniques[i]), int(counts[i])) for i in top),
        date_range=date_range,
    )


def _kind_input(series: pd.Series, codes: np.ndarray, uniques, sample: np.ndarray | None) -> pd.Series:
    """The values to call ``infer_kind`` on: a sample when it must give the same answer.

    ``infer_kind`` decides from the dtype, the set of distinct values (when there are at most
    two), the share of distinct values (identifier at 95%, text from 50%) and, for text, the
    words per value. Two samples keep all of that:

    * few distinct values: every distinct value once plus the row sample. The set is exact and
      the share stays far below 50%, as in the whole column;
    * (almost) all distinct, not integers: the row sample alone, which stays (almost) all
      distinct; words per value are then estimated on 100,000 rows. Integers are excluded
      because their identifier test looks at the whole range.

    Anything in between is judged on the whole column.
    """
    if sample is None:
        return series
    unique = len(uniques)
    if unique * 20 <= len(sample):
        return pd.concat([pd.Series(uniques, name=series.name), series.iloc[sample]], ignore_index=True)
    present = np.count_nonzero(codes >= 0)
    if unique >= _ID_UNIQUE_SHARE * present and not ptypes.is_integer_dtype(series):
        return series.iloc[sample]
    return series


def _numeric_stats(series: pd.Series) -> dict[str, float]:
    values = series.to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "max": float(q[4]),
        "skew": float(pd.Series(values).skew()) if len(values) > 2 else 0.0,
    }


def _as_text(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))  # 3.0 reads as 3
    return str(value)


def _memory_bytes(series: pd.Series, sample: np.ndarray | None) -> int:
    """Bytes held by the column; Python strings are measured on a sample, not one by one."""
    if series.dtype != object or sample is None:
        return int(series.memory_usage(index=False, deep=True))
    values = series.iloc[sample[:: len(sample) // _MEMORY_SAMPLE]]
    per_value = sum(sys.getsizeof(v) for v in values) / len(values)
    return int(len(series) * (8 + per_value))  # a pointer plus the object


# --- duplicate rows -----------------------------------------------------------------------------


def _chance_duplicates(rows: int, match: float) -> float:
    """Expected duplicate rows among ``rows`` drawn at random when two rows agree with chance
    ``match``: row i repeats one of the i before it with chance 1 - (1 - match)^i. For a rare
    match the sum is about rows^2 / 2 * match; it levels off near rows - 1 / match, once every
    likely combination of values has appeared."""
    if rows < 2 or match <= 0:
        return 0.0
    if match >= 1:  # every column holds one value: every row after the first repeats it
        return float(rows - 1)
    # The geometric series rows - (1 - (1 - match)^rows) / match; expm1 and log1p keep it exact
    # for the tiny matches of tables with a column of (nearly) distinct values.
    return max(0.0, float(rows + np.expm1(rows * np.log1p(-match)) / match))


class _RowKeys:
    """Folds each column's codes into one integer key per row; equal keys are equal rows.

    Exact (no hashing, so no collisions): the key is a mixed-radix number of the codes,
    renumbered densely whenever it would overflow int64.
    """

    def __init__(self, rows: int) -> None:
        self._key = np.zeros(rows, dtype=np.int64)
        self._radix = 1  # number of distinct values ``_key`` can take
        self._all_distinct = rows <= 1

    def add(self, codes: np.ndarray, unique: int) -> None:
        if self._all_distinct:  # no row equals another: more columns cannot change that
            return
        if unique == len(codes):  # a column of all-distinct values, an ID for instance
            self._all_distinct = True
            return
        base = unique + 1  # missing (-1) is a value of its own, as in DataFrame.duplicated
        if self._radix * base >= 2**62:
            self._key, distinct = pd.factorize(self._key)
            self._radix = max(len(distinct), 1)
            if self._radix == len(self._key):
                self._all_distinct = True
                return
        self._key = self._key * base + (codes + 1)
        self._radix *= base

    def duplicates(self) -> int:
        if self._all_distinct:
            return 0
        return int(len(self._key) - len(pd.unique(self._key)))
