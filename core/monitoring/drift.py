"""Data drift: does a window of current rows still look like the training reference?

Pure functions over DataFrames. Methods, thresholds and choice rules are those of Evidently
0.7's ``DataDriftPreset`` defaults (checked in its source:
``evidently/legacy/calculations/stattests/registry.py::_get_default_stattest``,
``evidently/core/datasets.py::infer_column_type`` and the stattest modules), so our verdicts agree
with an Evidently report on the same frames, but computed column by column with vectorised
NumPy instead of pandas ``apply`` and Python dicts.

Choice rules, after dropping missing and infinite values of each column:

- the column's *kind* comes from the current frame's dtype: float -> numeric; integer ->
  categorical when it has at most 10 distinct values, else numeric; bool and category ->
  categorical; text -> categorical, unless more than half of its values are distinct (Evidently
  calls that *text* and runs a text classifier; we skip it and say so); datetimes are skipped.
- small reference (<= 1,000 rows): numeric with more than 5 distinct values (reference and current
  together) -> Kolmogorov-Smirnov p-value; otherwise, and for categorical columns, chi-square
  p-value, or a two-proportion Z-test p-value when there are at most 2 distinct values.
  Drift when the p-value is below 0.05 (K-S: at or below).
- larger reference: numeric with more than 5 distinct values -> Wasserstein distance divided by the
  reference's standard deviation; otherwise Jensen-Shannon distance (natural log) of the value
  shares. Drift when the distance is at least 0.1.

Distances measure *how far* the distributions moved, not *whether* a move is detectable, so they do
not flag every feature just because a window holds a million rows — the sample-size problem of
p-value tests that the Monitor page must avoid. The dataset drifts when the share of drifted
columns is at least 0.5.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from core.data.kinds import holds_iso_date_text
from core.errors import BadInput

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# Method names as Evidently displays them, so a user comparing reports sees the same words.
KS = "K-S p_value"
CHI_SQUARE = "chi-square p_value"
Z_TEST = "Z-test p_value"
WASSERSTEIN = "Wasserstein distance (normed)"
JENSEN_SHANNON = "Jensen-Shannon distance"
P_VALUE_METHODS = frozenset({KS, CHI_SQUARE, Z_TEST})


@dataclass(frozen=True)
class DriftConfig:
    """How drift is decided; the defaults are Evidently 0.7's ``DataDriftPreset`` defaults."""

    drift_share: float = 0.5  # the dataset drifts when at least this share of columns drift
    small_sample_rows: int = 1000  # reference rows up to this -> p-value tests, above -> distances
    p_value_threshold: float = 0.05
    distance_threshold: float = 0.1
    discrete_max_values: int = 5  # numeric columns with at most this many values are compared as categories
    integer_categorical_max_values: int = 10  # integer columns with at most this many values are categorical
    text_unique_share: float = 0.5  # text columns with more distinct values than this share are free text


@dataclass(frozen=True)
class ColumnDrift:
    """The verdict for one column.

    ``score`` is a p-value for the p-value methods (smaller = more drift) and a distance for the
    others (larger = more drift); ``drifted`` already applies the right comparison.
    """

    column: str
    kind: str  # numeric | categorical
    method: str
    score: float
    threshold: float
    drifted: bool
    n_reference: int  # values compared (missing ones excluded)
    n_current: int
    # Jensen-Shannon only: the distance expected from sampling noise alone when nothing moved,
    # and a warning when that noise is near the threshold (many categories, few rows). The
    # verdict is Evidently's rule all the same; the note says when not to trust it.
    expected_no_drift: float | None = None
    note: str = ""

    @property
    def is_p_value(self) -> bool:
        return self.method in P_VALUE_METHODS


@dataclass(frozen=True)
class SkippedColumn:
    column: str
    reason: str


@dataclass(frozen=True)
class DriftResult:
    """Per-column verdicts and the dataset verdict."""

    columns: tuple[ColumnDrift, ...]
    skipped: tuple[SkippedColumn, ...]
    share_drifted: float
    drift_share: float  # the threshold the share is compared with
    dataset_drifted: bool
    n_reference: int  # rows
    n_current: int

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)

    def column(self, name: str) -> ColumnDrift:
        """The verdict for ``name`` (KeyError when it was not compared)."""
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class RankedFeature:
    """A feature on the review list: how important it is and how far it moved."""

    column: str
    importance: float  # share of the total importance, 0..1
    severity: float  # score relative to the threshold: 1.0 at the threshold, above 1 = drifted (capped at 10)
    priority: float  # importance x severity: what to look at first
    drifted: bool
    method: str
    score: float


# --- public functions --------------------------------------------------------------------------


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    config: DriftConfig = DriftConfig(),
) -> DriftResult:
    """Compare every shared column of ``current`` with ``reference``.

    Args:
        reference: The baseline rows (e.g. the training sample stored with the model version).
        current: The window to check (e.g. logged prediction inputs).
        columns: Columns to compare; default: every column the two frames share, in the
            current frame's order.
        config: Thresholds and choice rules.

    Returns:
        The per-column verdicts, the columns that could not be compared (with the reason) and
        the dataset verdict.

    Raises:
        BadInput: a frame is empty, the frames share no column, or a requested column is missing.
    """
    if len(reference) == 0 or len(current) == 0:
        raise BadInput(f"the {'reference' if len(reference) == 0 else 'current'} data has no rows")
    if columns is None:
        ref_names = set(map(str, reference.columns))
        names = [c for c in current.columns if str(c) in ref_names]
        if not names:
            raise BadInput("the reference and current data share no column")
    else:
        names = list(columns)
        if not names:
            raise BadInput("no columns to compare")
        absent = [c for c in names if c not in reference.columns or c not in current.columns]
        if absent:
            raise BadInput(f"{len(absent)} requested column(s) are not in both tables, e.g. {str(absent[0])[:60]!r}")
    verdicts: list[ColumnDrift] = []
    skipped: list[SkippedColumn] = []
    for name in names:
        outcome = _column_drift(str(name), reference[name], current[name], config, kind=None)
        (verdicts if isinstance(outcome, ColumnDrift) else skipped).append(outcome)
    share = sum(v.drifted for v in verdicts) / len(verdicts) if verdicts else 0.0
    return DriftResult(
        columns=tuple(verdicts),
        skipped=tuple(skipped),
        share_drifted=share,
        drift_share=config.drift_share,
        dataset_drifted=bool(verdicts) and share >= config.drift_share,
        n_reference=len(reference),
        n_current=len(current),
    )


def prediction_drift(
    reference: pd.Series | np.ndarray | Sequence,
    current: pd.Series | np.ndarray | Sequence,
    *,
    kind: str | None = None,
    name: str = "prediction",
    config: DriftConfig = DriftConfig(),
) -> ColumnDrift:
    """Drift of a model's output: regression values or predicted class labels.

    Args:
        reference: Predictions on the reference sample.
        current: Predictions logged in the window.
        kind: ``"numeric"`` or ``"categorical"``; default: inferred as for a feature, except that
            an integer column with few values (class ids) is categorical, as in ``detect_drift``.
        name: The name shown for the verdict.
        config: Thresholds and choice rules.

    Raises:
        BadInput: no predictions on one side, an unknown kind, or nothing comparable.
    """
    if kind not in (None, NUMERIC, CATEGORICAL):
        raise BadInput(f"kind must be {NUMERIC!r} or {CATEGORICAL!r}")
    ref, cur = pd.Series(reference), pd.Series(current)
    if len(ref) == 0 or len(cur) == 0:
        raise BadInput(f"no {'reference' if len(ref) == 0 else 'current'} predictions")
    outcome = _column_drift(name, ref, cur, config, kind=kind)
    if isinstance(outcome, SkippedColumn):
        raise BadInput(f"prediction drift cannot be computed: {outcome.reason}")
    return outcome


def rank_by_drift_and_importance(result: DriftResult, importance: Mapping[str, float]) -> tuple[RankedFeature, ...]:
    """Order the compared columns by importance x drift severity, most urgent first.

    Scores of different methods are not comparable (a p-value and a distance), so each is turned
    into a severity relative to its own threshold: ``distance / threshold`` for distances and
    ``log(p) / log(threshold)`` for p-values; both are 1.0 exactly at the threshold and grow with
    the drift (capped at 10, so a p-value of 0 does not swamp everything). Importances (e.g.
    permutation importance; negative values count as 0) are normalised to shares of their sum;
    columns without an importance count as 0 and go last.
    """
    weights = {str(k): max(float(v), 0.0) for k, v in importance.items() if v == v}
    total = sum(weights.get(c.column, 0.0) for c in result.columns)
    ranked = []
    for c in result.columns:
        share = weights.get(c.column, 0.0) / total if total > 0 else 0.0
        severity = _severity(c)
        ranked.append(RankedFeature(column=c.column, importance=share, severity=severity, priority=share * severity,
                                    drifted=c.drifted, method=c.method, score=c.score))
    ranked.sort(key=lambda r: (-r.priority, not r.drifted, -r.severity, r.column))
    return tuple(ranked)


def column_kinds(frame: pd.DataFrame, *, config: DriftConfig = DriftConfig()) -> dict[str, str]:
    """The kind each column is compared as: numeric, categorical, or why it is skipped
    (datetime, text, unknown, empty), decided from its dtype and values as ``detect_drift`` does."""
    return {str(name): _kind_of(frame[name], config) for name in frame.columns}


# --- one column --------------------------------------------------------------------------------

SEVERITY_CAP = 10.0


def _severity(c: ColumnDrift) -> float:
    if c.is_p_value:
        if not (c.score == c.score):
            return 0.0
        if c.score <= 0:
            return SEVERITY_CAP
        return min(math.log(min(c.score, 1.0)) / math.log(c.threshold), SEVERITY_CAP)
    if c.threshold <= 0:
        return SEVERITY_CAP if c.score > 0 else 0.0
    return min(c.score / c.threshold, SEVERITY_CAP) if c.score == c.score else 0.0


def _kind_of(current: pd.Series, config: DriftConfig, memo: dict | None = None) -> str:
    """Evidently's ``infer_column_type``, on the current column: numeric, categorical, or why not.

    Where the distinct values are counted, the counts go into ``memo["counts"]``, so a categorical
    column of a million strings is hashed once, not twice.
    """
    dtype = current.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_float_dtype(dtype):
        return NUMERIC
    if pd.api.types.is_integer_dtype(dtype):
        # Evidently counts distinct values with nunique(); unsigned and nullable integers are
        # "unknown" to it and left out, we treat them as the integers they are.
        counts = _value_counts(current)
        if len(counts) > config.integer_categorical_max_values:
            return NUMERIC
        if memo is not None:
            memo["counts"] = counts
        return CATEGORICAL
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) or dtype == object:
        present = current.notna().to_numpy()  # (no dropna copy of a million cells)
        if not present.any():
            return "empty"
        first, last = current.iloc[int(present.argmax())], current.iloc[len(present) - 1 - int(present[::-1].argmax())]
        if dtype == object and not (isinstance(first, str) and isinstance(last, str)):
            return "unknown"
        counts = _value_counts(current)
        if memo is not None:
            memo["counts"] = counts
        if len(counts) <= int(present.sum()) * config.text_unique_share:
            return CATEGORICAL
        # Dates a CSV stored as text are distinct like free text, but are said to be dates.
        return "datetime" if holds_iso_date_text(current) else "text"
    return "unknown"


_SKIP_REASONS = {
    "datetime": "date/time column (compare derived features instead)",
    "text": "free text: more than half of its values are distinct",
    "unknown": "values of mixed or unsupported types",
    "empty": "no values in the current data",
}


def _clean_numeric(series: pd.Series) -> np.ndarray | None:
    """Finite float64 values, or None when the column is not numeric."""
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        return None
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    return values if finite.all() else values[finite]


def _clean_any(series: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series[np.isfinite(values)]
    return series.dropna()


def _column_drift(name: str, reference: pd.Series, current: pd.Series, config: DriftConfig,
                  *, kind: str | None) -> ColumnDrift | SkippedColumn:
    memo: dict = {}
    kind = kind or _kind_of(current, config, memo)
    if kind not in (NUMERIC, CATEGORICAL):
        return SkippedColumn(name, _SKIP_REASONS[kind])
    small = None
    if kind == NUMERIC:
        ref, cur = _clean_numeric(reference), _clean_numeric(current)
        if ref is None or cur is None:
            return SkippedColumn(name, "numeric in one table but not in the other")
        if len(ref) == 0 or len(cur) == 0:
            return SkippedColumn(name, f"no values in the {'reference' if len(ref) == 0 else 'current'} data")
        small = len(ref) <= config.small_sample_rows
        ref_sorted = np.sort(ref)
        distinct = _distinct_up_to(ref_sorted, cur, config.discrete_max_values + 1)
        if distinct > config.discrete_max_values:
            if small:
                p = float(stats.ks_2samp(ref, cur)[1])
                return ColumnDrift(name, kind, KS, p, config.p_value_threshold, p <= config.p_value_threshold,
                                   len(ref), len(cur))
            score = _wasserstein_normed(ref_sorted, cur)
            return ColumnDrift(name, kind, WASSERSTEIN, score, config.distance_threshold,
                               score >= config.distance_threshold, len(ref), len(cur))
        ref_counts, cur_counts = _counts_numeric(ref, cur)
    else:
        ref_vc = _value_counts(_clean_any(reference))
        cur_vc = memo["counts"] if "counts" in memo else _value_counts(_clean_any(current))
        n_ref, n_cur = int(ref_vc.sum()), int(cur_vc.sum())
        if n_ref == 0 or n_cur == 0:
            return SkippedColumn(name, f"no values in the {'reference' if n_ref == 0 else 'current'} data")
        small = n_ref <= config.small_sample_rows
        ref_counts, cur_counts = _align(ref_vc, cur_vc)
    n_ref, n_cur = int(ref_counts[1].sum()), int(cur_counts[1].sum())
    return _discrete_verdict(name, kind, ref_counts, cur_counts, n_ref, n_cur, small, config)


def _distinct_up_to(ref_sorted: np.ndarray, cur: np.ndarray, limit: int) -> int:
    """Distinct values of reference and current together, counted exactly below ``limit``."""
    ref_unique = ref_sorted[np.concatenate(([True], ref_sorted[1:] != ref_sorted[:-1]))]
    if len(ref_unique) >= limit:
        return len(ref_unique)
    # Few reference values: only current values outside them can add new ones. A column with
    # many values shows them in its first rows already, so look there before scanning it all.
    head = cur[:10_000]
    if len(ref_unique) + len(np.unique(head[~np.isin(head, ref_unique)])) >= limit:
        return limit
    return len(ref_unique) + len(np.unique(cur[~np.isin(cur, ref_unique)]))


def _counts_numeric(ref: np.ndarray, cur: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    keys = np.unique(np.concatenate((np.unique(ref), np.unique(cur))))
    return ((keys, np.bincount(np.searchsorted(keys, ref), minlength=len(keys))),
            (keys, np.bincount(np.searchsorted(keys, cur), minlength=len(keys))))


def _align(rc: pd.Series, cc: pd.Series):
    """Counts of every value seen in either column, aligned on one set of keys."""
    both = pd.concat([rc, cc], axis=1, keys=["r", "c"]).fillna(0)
    keys = both.index.to_numpy()
    return (keys, both["r"].to_numpy(np.int64)), (keys, both["c"].to_numpy(np.int64))


def _value_counts(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        # bincount of the codes: no hashing of a million strings
        codes = series.cat.codes.to_numpy()
        counts = np.bincount(codes[codes >= 0], minlength=len(series.cat.categories))
        out = pd.Series(counts, index=pd.Index(series.cat.categories.to_numpy(dtype=object), dtype=object))
        return out[out > 0]
    counts = series.value_counts(dropna=True, sort=False)
    counts.index = pd.Index(counts.index.to_numpy(dtype=object), dtype=object)
    return counts


def _discrete_verdict(name, kind, ref_counts, cur_counts, n_ref, n_cur, small, config) -> ColumnDrift:
    keys, r = ref_counts
    _, c = cur_counts
    if small:
        if len(keys) > 2:
            # Evidently: expected = reference counts scaled to the current total.
            p = float(stats.chisquare(c, r * (n_cur / n_ref))[1])
            method = CHI_SQUARE
        else:
            p = _z_test(keys, r, c, n_ref, n_cur)
            method = Z_TEST
        return ColumnDrift(name, kind, method, p, config.p_value_threshold, p < config.p_value_threshold,
                           n_ref, n_cur)
    score = float(distance.jensenshannon(r / n_ref, c / n_cur))
    noise = _js_noise(len(keys), n_ref, n_cur)
    note = ""
    if noise >= config.distance_threshold / 2:
        note = (f"{len(keys):,} distinct values for {n_ref:,} reference and {n_cur:,} current values: "
                f"a distance of about {noise:.2f} is expected even without drift")
    return ColumnDrift(name, kind, JENSEN_SHANNON, score, config.distance_threshold,
                       score >= config.distance_threshold, n_ref, n_cur, expected_no_drift=noise, note=note)


def _js_noise(categories: int, n_ref: int, n_cur: int) -> float:
    """Expected Jensen-Shannon distance between two samples of one distribution.

    For small differences JS divergence ~ sum_i (p_i - q_i)^2 / (8 m_i); with multinomial counts
    E[(p_i - q_i)^2] = pi_i (1 - pi_i) (1/n_ref + 1/n_cur), so E[divergence] ~ (K - 1)(1/n_ref +
    1/n_cur) / 8 whatever the shares pi_i, and the distance is its square root. Checked against
    simulation: 1,000 uniform categories, 5,000 rows each: 0.224 predicted, 0.231 measured.
    """
    return math.sqrt(max(categories - 1, 0) * (1 / n_ref + 1 / n_cur) / 8)


def _z_test(keys, r, c, n_ref, n_cur) -> float:
    """Two-proportion Z-test on the share of rows that are not the first (sorted) value."""
    if len(keys) == 1:
        return 1.0  # one and the same value on both sides
    first = np.argmin(_sort_rank(keys))
    p1 = (n_ref - r[first]) / n_ref
    p2 = (n_cur - c[first]) / n_cur
    pooled = (p1 * n_ref + p2 * n_cur) / (n_ref + n_cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    return float(2 * (1 - stats.norm.cdf(abs(z))))


def _sort_rank(keys: np.ndarray) -> np.ndarray:
    try:
        order = sorted(range(len(keys)), key=lambda i: keys[i])
    except TypeError:  # values of mixed types: order by their text
        order = sorted(range(len(keys)), key=lambda i: str(keys[i]))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    return rank


def _wasserstein_normed(ref_sorted: np.ndarray, cur: np.ndarray) -> float:
    """Exact 1-Wasserstein distance of the two samples, over the reference's std (ddof 0).

    W1 = integral of |F_ref(x) - F_cur(x)| dx. Both empirical CDFs are step functions that change
    only at the sample values, so over the merged sorted values the integral is an exact sum:
    sum_i |F_ref(v_i) - F_cur(v_i)| (v_{i+1} - v_i) - the formula of
    ``scipy.stats.wasserstein_distance``. Instead of sorting the concatenation and searching
    every value in both samples, the reference values are inserted into the sorted current
    values (one search per reference row), and the CDFs are running counts of the merged order.
    Within a run of tied values the running counts are partial, but there the width is 0; at the
    run's last element every value <= it has been counted, so the sum is exact.
    """
    cur_sorted = np.sort(cur)
    n_ref, n_cur = len(ref_sorted), len(cur_sorted)
    total = n_ref + n_cur
    # position of each reference value in the merged order (after equal current values)
    ref_pos = np.searchsorted(cur_sorted, ref_sorted, side="right") + np.arange(n_ref)
    is_ref = np.zeros(total, dtype=bool)
    is_ref[ref_pos] = True
    merged = np.empty(total, dtype=np.float64)
    merged[ref_pos] = ref_sorted
    merged[~is_ref] = cur_sorted
    del cur_sorted
    widths = np.diff(merged)
    del merged
    ref_seen = np.cumsum(is_ref[:-1], dtype=np.int64)
    del is_ref
    cur_seen = np.arange(1, total, dtype=np.int64) - ref_seen
    gap = np.abs(ref_seen / n_ref - cur_seen / n_cur)
    distance_ = float(np.dot(gap, widths))
    norm = max(float(np.std(ref_sorted)), 0.001)
    return distance_ / norm
