"""How rows are split: cross-validation schemes and their folds, the holdout, and the sample a large
table is tuned on.

Folds are row positions (``iloc``), never index labels: a user's index may repeat. Time-ordered
data is split by time (every validation row strictly later than every training row, rows sharing a
time on one side), grouped data by group, classification keeps the class shares.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedKFold,
    TimeSeriesSplit,
    train_test_split,
)

from core.data.kinds import holds_iso_date_text
from core.data.profile import Task
from core.errors import BadInput
from core.wording import plural

__all__ = [
    "CVScheme",
    "chart_times",
    "choose_scheme",
    "date_columns",
    "fold_indices",
    "holdout_split",
    "latest_rows",
    "time_ordered_column",
    "tuning_sample",
]

SchemeKind = Literal["kfold", "stratified", "group", "time"]

# A date column is only "time-ordered" with enough distinct values: a handful of batch dates
# sorted by batch says little about the rows being a time series.
_MIN_DISTINCT_TIMES = 10


# --- schemes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CVScheme:
    """How rows are split into cross-validation folds.

    Attributes:
        kind: ``kfold`` (shuffled), ``stratified`` (shuffled, class shares kept per fold),
            ``group`` (no group on both sides of a split) or ``time`` (validate on later rows).
        n_folds: Number of folds, at least 2.
        group_column: The column holding groups (``group`` only).
        time_column: The column holding times (``time`` only).
        seed: Seed of the shuffles.
    """

    kind: SchemeKind
    n_folds: int = 5
    group_column: str | None = None
    time_column: str | None = None
    seed: int = 42

    def __post_init__(self) -> None:
        if self.kind not in get_args(SchemeKind):
            raise BadInput(f"Unknown validation scheme {self.kind!r}; use one of: {', '.join(get_args(SchemeKind))}.")
        if self.n_folds < 2:
            raise BadInput(f"Cross-validation needs at least 2 folds, not {self.n_folds}.")
        if self.kind == "group" and not self.group_column:
            raise BadInput("Grouped folds need a group column.")
        if self.kind == "time" and not self.time_column:
            raise BadInput("A time-series split needs a time column.")

    def describe(self) -> str:
        """One line for a user, e.g. ``"5-fold stratified, shuffled (seed 42)"``."""
        if self.kind == "time":
            return f"{self.n_folds}-fold time-series split on '{self.time_column}' (each fold validated on later rows)"
        if self.kind == "group":
            return f"{self.n_folds}-fold grouped by '{self.group_column}', shuffled (seed {self.seed})"
        if self.kind == "stratified":
            return f"{self.n_folds}-fold stratified, shuffled (seed {self.seed})"
        return f"{self.n_folds}-fold, shuffled (seed {self.seed})"

    def to_dict(self) -> dict[str, Any]:
        """The scheme as JSON-ready values; :meth:`from_dict` rebuilds it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CVScheme | None:
        """The scheme in ``data`` (``to_dict``'s keys; others, as in a version's CV record, are
        ignored), or None when it holds none (versions registered without a scheme)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data}) if "kind" in data else None


def choose_scheme(
    frame: pd.DataFrame,
    *,
    task: Task,
    y: pd.Series | None = None,
    n_folds: int = 5,
    seed: int = 42,
    time_column: str | None = None,
    group_column: str | None = None,
    kind: str | None = None,
    allow_shuffled_time: bool = False,
) -> tuple[CVScheme, tuple[str, ...]]:
    """Pick the validation scheme for a table and check the table can support it.

    Without ``kind``: time-series when a time column is set, else grouped when a group column
    is set, else stratified for classification and plain k-fold for regression.

    Args:
        frame: The features ``X`` (or the whole table); must hold the time/group column.
        task: The learning task.
        y: The target, to check every class has a row for each fold (classification).
        n_folds: Number of folds.
        seed: Seed of the shuffles.
        time_column: The column that orders rows in time, if any.
        group_column: The column whose groups must not straddle a split, if any.
        kind: Force a scheme kind instead of choosing one.
        allow_shuffled_time: Accept a shuffled ``kind`` although a time column is set.

    Returns:
        The scheme and warnings for the user (shuffled folds on time-ordered data, or rows that
        look time-ordered by a date column nobody named).

    Raises:
        BadInput: Unknown kind; a named column is missing; a shuffled kind with a time column
            and no ``allow_shuffled_time``; stratified folds for regression; fewer groups,
            distinct times or rows of some class than folds.
    """
    task = Task(task)
    if kind is not None and kind not in get_args(SchemeKind):
        raise BadInput(f"Unknown validation scheme {kind!r}; use one of: {', '.join(get_args(SchemeKind))}.")
    for role, column in (("time", time_column), ("group", group_column)):
        if column is not None and column not in frame.columns:
            raise BadInput(f"The {role} column {column!r} is not in the table.")
    if kind is None:
        if time_column:
            kind = "time"
        elif group_column:
            kind = "group"
        else:
            kind = "kfold" if task is Task.REGRESSION else "stratified"
    if kind == "stratified" and task is Task.REGRESSION:
        raise BadInput("Stratified folds keep class shares, so they need classes: use k-fold for regression.")
    notes: list[str] = []
    if kind != "time" and time_column:
        if not allow_shuffled_time:
            raise BadInput(
                f"'{time_column}' is the time column, so shuffled {kind} folds would train on the future: "
                "use a time-series split, or allow shuffled folds explicitly."
            )
        notes.append(
            f"Shuffled folds although '{time_column}' orders the rows in time: models are scored on rows older "
            "than some of their training rows, so scores may be optimistic."
        )
    scheme = CVScheme(
        kind=kind,  # type: ignore[arg-type]  # checked in __post_init__
        n_folds=n_folds,
        group_column=group_column if kind == "group" else None,
        time_column=time_column if kind == "time" else None,
        seed=seed,
    )
    if len(frame) < n_folds:
        raise BadInput(f"{n_folds} folds need at least {n_folds} rows; the table has {len(frame)}.")
    if scheme.kind == "time":
        distinct = len(np.unique(_time_order(frame[scheme.time_column])))
        if distinct <= n_folds:
            raise BadInput(
                f"'{scheme.time_column}' has {distinct} distinct values: a {n_folds}-fold time-series split needs "
                f"at least {n_folds + 1}."
            )
    if scheme.kind == "group":
        groups = frame[scheme.group_column].nunique(dropna=False)
        if groups < n_folds:
            raise BadInput(f"'{scheme.group_column}' has {groups} groups, fewer than the {n_folds} folds.")
    if y is not None and task is not Task.REGRESSION:
        _check_class_counts(y, n_folds)
    if scheme.kind != "time" and not time_column and (ordered := time_ordered_column(frame)) is not None:
        notes.append(f"Rows look time-ordered by '{ordered}'; consider a time-series split.")
    return scheme, tuple(notes)


# A rare class keeps at least this many rows (or all it has) in a tuning sample, enough for its folds.
_MIN_CLASS_ROWS = 50


def tuning_sample(X: pd.DataFrame, y: pd.Series, *, task: Task, scheme: CVScheme, max_rows: int) -> np.ndarray | None:
    """The rows a large table is tuned and cross-validated on, so that trials fit a budget.

    A random sample of about ``max_rows`` rows in which every class keeps its share (a rare
    class at least ``_MIN_CLASS_ROWS`` rows, or all it has); for a time scheme the latest
    ``max_rows`` rows, next to the holdout; for a group scheme whole groups.

    Returns:
        Positions in ``X``, sorted; None when ``X`` has no more than ``max_rows`` rows.
    """
    n = len(X)
    if n <= max_rows:
        return None
    rng = np.random.default_rng(scheme.seed)
    if scheme.kind == "time":
        keep = np.argsort(_time_order(X[scheme.time_column]), kind="stable")[n - max_rows:]
    elif scheme.kind == "group":
        codes = _groups(X, scheme)
        order = rng.permutation(codes.max() + 1)
        sizes = np.bincount(codes)[order]
        chosen = order[: int(np.searchsorted(np.cumsum(sizes), max_rows)) + 1]
        keep = np.flatnonzero(np.isin(codes, chosen))
    elif task is Task.REGRESSION:
        keep = rng.choice(n, size=max_rows, replace=False)
    else:
        codes = pd.factorize(y)[0]
        keep = np.concatenate([
            rng.choice(rows, size=min(len(rows), max(round(max_rows * len(rows) / n), _MIN_CLASS_ROWS)), replace=False)
            for rows in (np.flatnonzero(codes == c) for c in range(codes.max() + 1))
        ])
    return np.sort(keep)


def holdout_split(
    X: pd.DataFrame, y: pd.Series, *, task: Task, scheme: CVScheme, share: float = 0.2
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Set rows aside for one final, untuned score.

    Time schemes keep the latest ``share`` of rows (rows sharing a time stay together, so the
    holdout is strictly later); group schemes whole groups; classification keeps class shares.

    Args:
        X: Features.
        y: Target.
        task: The learning task.
        scheme: The validation scheme the remaining rows will be cross-validated with.
        share: Share of rows in the holdout, in (0, 1).

    Returns:
        ``X_train, X_holdout, y_train, y_holdout``, each in the original row order.

    Raises:
        BadInput: ``share`` out of range, or the training part would be too small for the folds
            (a class with fewer rows than folds, too few distinct times).
    """
    if not 0 < share < 1:
        raise BadInput(f"The holdout share must be between 0 and 1, not {share}.")
    task = Task(task)
    n = len(X)
    positions = np.arange(n)
    try:
        if scheme.kind == "time":
            values = _time_order(X[scheme.time_column])
            order = np.argsort(values, kind="stable")
            ordered = values[order]
            first = n - max(1, round(share * n))
            cut = int(np.searchsorted(ordered, ordered[first], side="left"))  # ties go to the holdout
            if cut == 0:
                raise BadInput(f"'{scheme.time_column}' has too few distinct values to keep a later holdout.")
            train, hold = order[:cut], order[cut:]
        elif scheme.kind == "group":
            splitter = GroupShuffleSplit(n_splits=1, test_size=share, random_state=scheme.seed)
            train, hold = next(splitter.split(positions, groups=_groups(X, scheme)))
        else:
            stratify = None if task is Task.REGRESSION else y.to_numpy()
            train, hold = train_test_split(positions, test_size=share, random_state=scheme.seed, stratify=stratify)
    except ValueError as exc:
        raise BadInput(f"Cannot keep a {share:.0%} holdout: {exc}") from None
    train, hold = np.sort(train), np.sort(hold)
    if task is not Task.REGRESSION:
        _check_class_counts(y.iloc[train], scheme.n_folds, all_classes=y.unique(), context="after the holdout")
    return X.iloc[train], X.iloc[hold], y.iloc[train], y.iloc[hold]


def fold_indices(X: pd.DataFrame, y: pd.Series, scheme: CVScheme) -> list[tuple[np.ndarray, np.ndarray]]:
    """Training and validation row positions for each fold.

    Args:
        X: Features (holds the group or time column when the scheme needs one).
        y: Target (stratified folds split on it).
        scheme: The scheme.

    Returns:
        One ``(train_positions, validation_positions)`` pair per fold, positions sorted.

    Raises:
        BadInput: The scheme's column is missing, or the rows cannot make that many folds.
    """
    positions = np.arange(len(X))
    try:
        if scheme.kind == "time":
            return _time_folds(_time_order(X[_column(X, scheme.time_column)]), scheme.n_folds)
        if scheme.kind == "group":
            splitter = GroupKFold(n_splits=scheme.n_folds, shuffle=True, random_state=scheme.seed)
            splits = splitter.split(positions, groups=_groups(X, scheme))
        elif scheme.kind == "stratified":
            splitter = StratifiedKFold(n_splits=scheme.n_folds, shuffle=True, random_state=scheme.seed)
            splits = splitter.split(positions, y.to_numpy())
        else:
            splits = KFold(n_splits=scheme.n_folds, shuffle=True, random_state=scheme.seed).split(positions)
        return [(np.sort(train), np.sort(valid)) for train, valid in splits]
    except ValueError as exc:  # e.g. fewer groups or rows than folds
        raise BadInput(f"Cannot make {scheme.describe()}: {exc}") from None


def latest_rows(X: pd.DataFrame, positions: np.ndarray, scheme: CVScheme, n: int) -> np.ndarray:
    """The ``n`` of ``positions`` latest in a time-series scheme's time column, in row order
    (a fold's positions are in row order, and the rows need not be in time order)."""
    times = _time_order(X[_column(X, scheme.time_column)])[positions]
    return np.sort(positions[np.argsort(times, kind="stable")[-n:]])


# --- internals ----------------------------------------------------------------------------------


def _check_class_counts(y: pd.Series, n_folds: int, *, all_classes=None, context: str = "") -> None:
    counts = y.value_counts()
    if all_classes is not None:
        counts = counts.reindex(all_classes, fill_value=0)
    rare = counts[counts < n_folds].sort_values()
    if len(rare):
        where = f" {context}" if context else ""
        listed = ", ".join(f"'{label}' has {plural(count, 'row')}" for label, count in rare.iloc[:5].items())
        # Numbered classes are often a scale (ratings, counts), which a regression learns without per-class rows.
        numbered = ptypes.is_numeric_dtype(y) and not ptypes.is_bool_dtype(y)
        scale = ", or, if the numbers are a scale, choose the regression task" if numbered else ""
        raise BadInput(
            f"Too few rows of some classes{where} for {n_folds} folds: {listed}. "
            f"Merge or drop rare classes, or use fewer folds{scale}."
        )


def _column(X: pd.DataFrame, name: str | None) -> str:
    if name is None or name not in X.columns:
        raise BadInput(f"The column {name!r} the validation scheme needs is not in the table.")
    return name


def _groups(X: pd.DataFrame, scheme: CVScheme) -> np.ndarray:
    """Group codes; rows without a group form one group of their own."""
    return pd.factorize(X[_column(X, scheme.group_column)], use_na_sentinel=False)[0]


def _time_folds(values: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """TimeSeriesSplit over rows sorted by time, with each boundary moved back to the first row
    of its time, so rows sharing a time never straddle a split and validation is strictly later."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    n = len(order)
    starts = [int(valid[0]) for _, valid in TimeSeriesSplit(n_splits=n_folds).split(order)]
    bounds = [int(np.searchsorted(ordered, ordered[s], side="left")) for s in starts] + [n]
    folds = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        if start == 0 or end <= start:
            raise BadInput(
                f"Too many rows share the same time for a {n_folds}-fold time-series split; use fewer folds."
            )
        folds.append((np.sort(order[:start]), np.sort(order[start:end])))
    return folds


# --- time columns -------------------------------------------------------------------------------


def _time_order(series: pd.Series) -> np.ndarray:
    """Sortable numbers for a time column: numbers as they are, dates as nanoseconds.

    Raises:
        BadInput: Missing values, or values that are neither numbers nor dates.
    """
    if series.isna().any():
        raise BadInput(f"{int(series.isna().sum()):,} rows have no value in the time column '{series.name}'.")
    if ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series):
        return series.to_numpy(dtype=float)
    dates = _as_dates(series)
    if dates is None:
        with warnings.catch_warnings():  # "could not infer format": the slow path is fine here
            warnings.simplefilter("ignore")
            dates = pd.to_datetime(series, errors="coerce", format="mixed")
    if dates.isna().any():
        example = series[dates.isna()].iloc[0]
        raise BadInput(f"The time column '{series.name}' holds values that are not dates, e.g. {str(example)[:40]!r}.")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert(None)  # compare instants, not wall-clock times
    return dates.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def chart_times(series: pd.Series) -> np.ndarray:
    """A time column's values for a chart's axis: numbers as they are, anything else as dates."""
    order = _time_order(series)
    return order if ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series) else order.astype("datetime64[ns]")


def _as_dates(series: pd.Series) -> pd.Series | None:
    """The column as datetimes when it holds dates (datetime dtype or ISO text), else None.

    Text counts only in ISO form (2024-01-31...): that is what exports write, and it never
    mistakes codes or numbers for dates."""
    if ptypes.is_datetime64_any_dtype(series):
        return series
    if not holds_iso_date_text(series):
        return None
    return pd.to_datetime(series, errors="coerce", format="ISO8601")


def date_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that hold a date in every row (datetime dtype, or text in ISO form): the time
    columns a time-series split can order rows by."""
    return [str(name) for name in frame.columns
            if (dates := _as_dates(frame[name])) is not None and not dates.isna().any()]


def time_ordered_column(frame: pd.DataFrame) -> str | None:
    """The first date column whose values never go back in time down the rows (or never forward)."""
    for name in frame.columns:
        dates = _as_dates(frame[name])
        if dates is None or dates.isna().any() or dates.nunique() < _MIN_DISTINCT_TIMES:
            continue
        if dates.is_monotonic_increasing or dates.is_monotonic_decreasing:
            return str(name)
    return None
