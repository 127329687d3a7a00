"""One small scikit-learn transformer per cleaning column step.

Every transformer takes a pandas DataFrame and returns a new DataFrame with the column names
kept, so the steps chain inside a ``Pipeline`` and serving applies exactly what training learned.
They share these rules (see ``_FrameTransformer``):

* ``__init__`` only stores parameters; ``fit`` learns into ``trailing_`` attributes.
* A column a step names that is absent at fit time is skipped (the target is never in ``X``);
  ``columns_`` records the columns actually used.
* At transform time every column seen at fit must be present (else ``BadInput`` naming them);
  columns not seen at fit are left out, so the output always matches
  ``get_feature_names_out()``.
* Rows are never added, removed or reordered, and the input is never modified.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from core.errors import BadInput

MISSING_SUFFIX = "__missing"

# Number parsing: currency signs, thousands separators, spaces and the percent sign are noise.
_NUMBER_NOISE = re.compile(r"[\s,%$€£¥₹₩₽¢]")
# Accounting style negatives: "(5)" or "($1,234.50)".
_PARENTHESISED = re.compile(r"^\((.*)\)$")
_TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "1.0"})
_FALSE_WORDS = frozenset({"no", "false", "n", "f", "0", "0.0"})


class _FrameTransformer(TransformerMixin, BaseEstimator):
    """Shared DataFrame plumbing: input checks, column alignment, feature names out."""

    def fit(self, X: Any, y: Any = None) -> "_FrameTransformer":
        """Learn the step's state from ``X``.

        Args:
            X: The table (a DataFrame; a 2-D array gets columns ``x0, x1, ...``).
            y: Ignored; present for Pipeline compatibility.

        Returns:
            The fitted transformer itself.
        """
        frame = _as_frame(X)
        if frame.shape[0] == 0:
            raise BadInput("Cannot fit on an empty table (0 rows).")
        if frame.shape[1] == 0:
            # sklearn's wording, which its estimator checks look for.
            raise BadInput(f"0 feature(s) (shape={frame.shape}) while a minimum of 1 is required.")
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self._learn(frame)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        """Apply what ``fit`` learned to ``X`` and return a new DataFrame.

        Raises:
            BadInput: A column seen at fit time is missing from ``X``.
        """
        check_is_fitted(self)
        frame = _as_frame(X)
        if not isinstance(X, pd.DataFrame) and frame.shape[1] != self.n_features_in_:
            # Arrays carry no names, so only their width can be checked.
            raise BadInput(
                f"X has {frame.shape[1]} features, but {type(self).__name__} "
                f"is expecting {self.n_features_in_} features as input."
            )
        seen = list(self.feature_names_in_)
        missing = [c for c in seen if c not in frame.columns and c not in self._optional_columns()]
        if missing:
            raise BadInput(f"Missing column(s): {', '.join(map(str, missing))}.")
        # A fresh frame in fit-time order: never touches the caller's frame, and the output
        # columns always equal get_feature_names_out().
        present = [c for c in seen if c in frame.columns]
        return self._apply(frame.loc[:, present].copy())

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns, in order."""
        check_is_fitted(self)
        return np.asarray(self._names_out(list(self.feature_names_in_)), dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.requires_fit = True
        # Output is a DataFrame whose column dtypes depend on the step, not on the input dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags

    # Hooks for subclasses.
    def _learn(self, frame: pd.DataFrame) -> None:
        self.columns_ = [c for c in self._named_columns() if c in frame.columns]

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    def _names_out(self, names_in: list[Hashable]) -> list[Hashable]:
        return names_in

    def _named_columns(self) -> list[Hashable]:
        return list(getattr(self, "columns", ()) or ())

    def _optional_columns(self) -> set[Hashable]:
        return set()


class Passthrough(_FrameTransformer):
    """Identity step: an empty recipe still gives a Pipeline that checks and outputs a DataFrame."""


class DropColumnsTransformer(_FrameTransformer):
    """Drop the listed columns when present.

    Args:
        columns: Columns to drop. They need not be present at transform time either, so a
            serving request may leave them out.
    """

    def __init__(self, columns: Sequence[Hashable] = ()):
        self.columns = columns

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[c for c in self.columns_ if c in frame.columns])

    def _names_out(self, names_in: list[Hashable]) -> list[Hashable]:
        return [c for c in names_in if c not in self.columns_]

    def _optional_columns(self) -> set[Hashable]:
        return set(self.columns_)


class FixTypeTransformer(_FrameTransformer):
    """Parse a text column into numbers, datetimes or booleans; unparseable values become missing.

    Numbers: "1,234" -> 1234.0, "$5" -> 5.0, "€ 3.50" -> 3.5, "(5)" -> -5.0 (accounting style).
    The percent sign is dropped and the number kept as written: "12%" -> 12.0, not 0.12, so a
    column mixing "12%" and "12" stays on one scale. Commas are read as thousands separators.
    Datetimes: ``pd.to_datetime`` with ``date_format`` (or an inferred format) and ``dayfirst``.
    Booleans: yes/no, true/false, y/n, t/f, 1/0 (any case) -> 1.0/0.0, anything else NaN; floats
    so that imputers further down the Pipeline work on them.

    Args:
        column: The column to parse.
        to: "number", "datetime" or "boolean".
        date_format: strftime format for datetimes; None infers it.
        dayfirst: Read "01/02/2024" as 1 February.
    """

    def __init__(
        self,
        column: Hashable = None,
        to: Literal["number", "datetime", "boolean"] = "number",
        date_format: str | None = None,
        dayfirst: bool = False,
    ):
        self.column = column
        self.to = to
        self.date_format = date_format
        self.dayfirst = dayfirst

    def _named_columns(self) -> list[Hashable]:
        return [] if self.column is None else [self.column]

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        parse = {"number": parse_numbers, "datetime": self._parse_dates, "boolean": parse_booleans}
        if self.to not in parse:
            raise BadInput(f"Unknown type {self.to!r}: use number, datetime or boolean.")
        for column in self.columns_:
            frame[column] = parse[self.to](frame[column])
        return frame

    def _parse_dates(self, series: pd.Series) -> pd.Series:
        return parse_dates(series, date_format=self.date_format, dayfirst=self.dayfirst)


class NormalizeCategoriesTransformer(_FrameTransformer):
    """Merge spellings that differ only in case and surrounding or repeated spaces.

    For each normalised key (stripped, spaces collapsed, casefolded) ``fit`` learns the most
    frequent spelling (with its spacing tidied, its case kept); ``transform`` maps every
    spelling of a known key to it. Values whose key was not seen at fit pass through unchanged;
    non-text values are left alone.

    Args:
        columns: Columns to normalise.
    """

    def __init__(self, columns: Sequence[Hashable] = ()):
        self.columns = columns

    def _learn(self, frame: pd.DataFrame) -> None:
        super()._learn(frame)
        self.canonical_: dict[Hashable, dict[str, str]] = {}
        for column in self.columns_:
            texts = frame[column].dropna()
            texts = texts[texts.map(lambda v: isinstance(v, str))]
            # Spellings are counted with their spacing tidied, so "Yes" and "Yes " count as one
            # and the canonical spelling never carries stray spaces.
            counts = texts.map(lambda v: " ".join(v.split())).value_counts()
            best: dict[str, tuple[int, str]] = {}
            for spelling, count in counts.items():
                key = spelling.casefold()
                # Most frequent spelling wins; ties go to the alphabetically first, so fitting
                # is deterministic whatever the row order.
                if key not in best or (-count, spelling) < (-best[key][0], best[key][1]):
                    best[key] = (int(count), spelling)
            self.canonical_[column] = {key: spelling for key, (_, spelling) in best.items()}

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        for column in self.columns_:
            mapping = self.canonical_[column]
            frame[column] = _map_values(
                frame[column],
                lambda v: mapping.get(normalize_key(v), v) if isinstance(v, str) else v,
            )
        return frame


class ImputeTransformer(_FrameTransformer):
    """Fill missing values with a value learned at fit, optionally flagging them first.

    Args:
        columns: Columns to fill.
        strategy: "mean" or "median" (numeric columns only), "most_frequent" or "constant".
        fill_value: The value for "constant"; None means 0 for numeric columns, "missing" else.
        add_indicator: Add a float 0/1 column ``<col>__missing`` per column, appended at the
            end, so the model can still see where values were missing.
    """

    def __init__(
        self,
        columns: Sequence[Hashable] = (),
        strategy: Literal["mean", "median", "most_frequent", "constant"] = "median",
        fill_value: str | float | None = None,
        add_indicator: bool = False,
    ):
        self.columns = columns
        self.strategy = strategy
        self.fill_value = fill_value
        self.add_indicator = add_indicator

    def _learn(self, frame: pd.DataFrame) -> None:
        super()._learn(frame)
        self.statistics_: dict[Hashable, Any] = {}
        for column in self.columns_:
            self.statistics_[column] = self._fill_value_for(column, frame[column])
        if self.add_indicator:
            clashes = [c for c in self._indicator_names() if c in frame.columns]
            if clashes:
                raise BadInput(f"Column(s) {', '.join(map(str, clashes))} already exist.")

    def _fill_value_for(self, column: Hashable, series: pd.Series) -> Any:
        series = series.infer_objects()  # numbers held in an object column count as numeric
        numeric = ptypes.is_numeric_dtype(series) and not ptypes.is_bool_dtype(series)
        if self.strategy in ("mean", "median"):
            if not numeric:
                raise BadInput(
                    f"Cannot take the {self.strategy} of non-numeric column {column!r}: "
                    "fix its type first or use most_frequent."
                )
            return float(getattr(series, self.strategy)())
        if self.strategy == "most_frequent":
            modes = series.mode(dropna=True)
            # An all-missing column has no mode: it stays missing.
            return modes.iloc[0] if len(modes) else np.nan
        if self.strategy == "constant":
            if self.fill_value is not None:
                return self.fill_value
            return 0 if numeric else "missing"
        raise BadInput(f"Unknown imputation strategy {self.strategy!r}.")

    def _indicator_names(self) -> list[str]:
        return [f"{c}{MISSING_SUFFIX}" for c in self.columns_]

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        flags = {}
        for column in self.columns_:
            series = frame[column]
            missing = series.isna()
            flags[f"{column}{MISSING_SUFFIX}"] = missing.astype(float)
            if isinstance(series.dtype, pd.CategoricalDtype):
                series = series.astype(object)  # a fill value outside the categories is allowed
            frame[column] = _fill(series, missing, self.statistics_[column])
        if self.add_indicator:
            frame = pd.concat([frame, pd.DataFrame(flags, index=frame.index)], axis=1)
        return frame

    def _names_out(self, names_in: list[Hashable]) -> list[Hashable]:
        return names_in + (self._indicator_names() if self.add_indicator else [])


class OutlierClipper(_FrameTransformer):
    """Clip numeric columns to bounds learned at fit (see ``outlier_bounds``).

    Args:
        columns: Numeric columns to clip.
        method: "iqr" or "zscore".
        threshold: IQR multiplier, or number of standard deviations.
    """

    def __init__(
        self,
        columns: Sequence[Hashable] = (),
        method: Literal["iqr", "zscore"] = "iqr",
        threshold: float = 1.5,
    ):
        self.columns = columns
        self.method = method
        self.threshold = threshold

    def _learn(self, frame: pd.DataFrame) -> None:
        super()._learn(frame)
        self.bounds_ = {
            c: outlier_bounds(frame[c], method=self.method, threshold=self.threshold, name=c)
            for c in self.columns_
        }

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        for column, (low, high) in self.bounds_.items():
            # Through float64: clipping a nullable Int64 column to 5.75 would fail.
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float).clip(low, high)
        return frame


class RareCategoryGrouper(_FrameTransformer):
    """Replace categories rarer than ``min_share`` (and categories unseen at fit) with ``label``.

    Missing values stay missing: imputation is a separate step.

    Args:
        columns: Categorical columns to group.
        min_share: A category is kept when its share of the non-missing values at fit is at
            least this.
        label: The replacement for rare and unseen categories.
    """

    def __init__(self, columns: Sequence[Hashable] = (), min_share: float = 0.01, label: str = "Other"):
        self.columns = columns
        self.min_share = min_share
        self.label = label

    def _learn(self, frame: pd.DataFrame) -> None:
        super()._learn(frame)
        self.frequent_: dict[Hashable, list[Any]] = {}
        for column in self.columns_:
            shares = frame[column].value_counts(normalize=True, dropna=True)
            self.frequent_[column] = list(shares[shares >= self.min_share].index)

    def _apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        for column in self.columns_:
            series = frame[column]
            keep = series.isna() | series.isin(self.frequent_[column])
            frame[column] = series.astype(object).where(keep, self.label)
        return frame


# Parsing and statistics shared with core.prep.recipe (row steps) and the issue detector.


def normalize_key(value: str) -> str:
    """The key two spellings share when they differ only in case and spacing."""
    return " ".join(value.split()).casefold()


def parse_numbers(series: pd.Series) -> pd.Series:
    """Parse numbers written as text ("1,234", "$5", "€ 3.50", "12%", "(5)") into floats.

    Numeric columns are returned as floats; anything unparseable becomes NaN.
    """
    if ptypes.is_bool_dtype(series) or ptypes.is_numeric_dtype(series):
        return series.astype(float)

    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        match = _PARENTHESISED.match(text)
        if match:
            text = "-" + match.group(1)
        return _NUMBER_NOISE.sub("", text)

    return pd.to_numeric(_map_values(series, parse), errors="coerce").astype(float)


def parse_dates(series: pd.Series, *, date_format: str | None = None, dayfirst: bool = False) -> pd.Series:
    """Parse a column into datetimes; unparseable values become NaT."""
    if ptypes.is_datetime64_any_dtype(series):
        return series
    with warnings.catch_warnings():
        # "Could not infer format" is expected for messy columns; unparseable values become NaT.
        warnings.simplefilter("ignore", UserWarning)
        try:
            return pd.to_datetime(series, format=date_format, dayfirst=dayfirst, errors="coerce")
        except (ValueError, TypeError):
            # Mixed time zones or types: parse each value on its own, in UTC.
            return pd.to_datetime(series, format="mixed", dayfirst=dayfirst, errors="coerce", utc=True)


def parse_booleans(series: pd.Series) -> pd.Series:
    """Parse yes/no, true/false, y/n, t/f, 1/0 (any case) into 1.0/0.0, anything else NaN."""

    def parse(value: Any) -> float:
        if isinstance(value, (bool, np.bool_)):
            return float(value)
        if isinstance(value, (int, float, np.number)) and value in (0, 1):
            return float(value)
        text = str(value).strip().casefold()
        return 1.0 if text in _TRUE_WORDS else 0.0 if text in _FALSE_WORDS else np.nan

    return _map_values(series, parse, missing=np.nan).astype(float)


def outlier_bounds(
    series: pd.Series, *, method: str = "iqr", threshold: float = 1.5, name: Hashable = None
) -> tuple[float, float]:
    """Lower and upper bounds outside which a value counts as an outlier.

    Args:
        series: A numeric column; missing values are ignored.
        method: "iqr" (q1 - k*iqr, q3 + k*iqr) or "zscore" (mean -/+ k*std).
        threshold: k.
        name: The column name, for error messages.

    Returns:
        (low, high); NaN bounds (an all-missing column) clip nothing.

    Raises:
        BadInput: The column is not numeric or the method is unknown.
    """
    series = series.infer_objects()  # numbers held in an object column count as numeric
    if not ptypes.is_numeric_dtype(series) or ptypes.is_bool_dtype(series):
        raise BadInput(f"Outlier handling needs a numeric column; {name!r} is not numeric.")
    values = series.astype(float)
    if method == "iqr":
        q1, q3 = values.quantile(0.25), values.quantile(0.75)
        return float(q1 - threshold * (q3 - q1)), float(q3 + threshold * (q3 - q1))
    if method == "zscore":
        mean, std = values.mean(), values.std()
        return float(mean - threshold * std), float(mean + threshold * std)
    raise BadInput(f"Unknown outlier method {method!r}: use iqr or zscore.")


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError("Sparse input is not supported; pass a DataFrame.")
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(
            f"Expected a 2-D table, got an array with {array.ndim} dimension(s). "
            "Reshape your data or pass a DataFrame."
        )
    if np.iscomplexobj(array):
        raise ValueError("Complex data not supported.")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def _map_values(series: pd.Series, func: Any, *, missing: Any = None) -> pd.Series:
    """Apply ``func`` once per distinct value (fast on long categorical columns).

    Missing values are kept as they are, or replaced by ``missing`` when given.
    """
    uniques = pd.unique(series.dropna())
    mapping = {v: func(v) for v in uniques}

    def lookup(v: Any) -> Any:
        if _is_missing(v):
            return v if missing is None else missing
        return mapping.get(v, v)

    return series.map(lookup).infer_objects()


def _is_missing(value: Any) -> bool:
    if isinstance(value, float):
        return bool(np.isnan(value))
    return value is None or value is pd.NaT or value is pd.NA


def _fill(series: pd.Series, missing: pd.Series, value: Any) -> pd.Series:
    if not missing.any() or _is_missing(value):
        return series
    if ptypes.is_numeric_dtype(series) and isinstance(value, (int, float, np.number)):
        # Through float64: a nullable Int64 column cannot hold a mean like 2.33.
        return series.astype(float).fillna(value)
    # Object path: avoids pandas' silent-downcasting warnings and allows any fill value.
    filled = series.astype(object)
    filled[missing] = value
    return filled.infer_objects()
