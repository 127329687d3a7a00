"""Inferred column kinds: the vocabulary shared by profiling, cleaning and features."""
from __future__ import annotations

import re
from enum import StrEnum

import pandas as pd
from pandas.api import types as ptypes


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    TEXT = "text"
    IDENTIFIER = "identifier"


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_DATE_SNIFF_ROWS = 20


def holds_iso_date_text(series: pd.Series) -> bool:
    """True when a text column's first values all begin with an ISO date ("2024-01-31", with or
    without a time): dates as a CSV stores them, unambiguous, before any type fix."""
    if not (ptypes.is_object_dtype(series) or ptypes.is_string_dtype(series)):
        return False
    head = series.dropna().head(_DATE_SNIFF_ROWS)
    return not head.empty and all(isinstance(v, str) and _ISO_DATE.match(v) for v in head)


_BOOL_WORDS = {"true", "false", "yes", "no", "y", "n", "t", "f", "0", "1"}
# Free text: many distinct values that read as several words each.
_TEXT_MIN_MEAN_WORDS = 4.0
_TEXT_MIN_UNIQUE_SHARE = 0.5
# Identifier: (almost) every row has its own value.
_ID_MIN_UNIQUE_SHARE = 0.95
_ID_MIN_ROWS = 20


def infer_kind(series: pd.Series) -> ColumnKind:
    """Return the kind of a column from its dtype and values.

    Judged on the values as stored: a number kept as text ("1,234") is categorical here; the
    issue detector is what spots it and proposes a type fix.
    """
    values = series.dropna()
    n = len(values)
    if ptypes.is_bool_dtype(series):
        return ColumnKind.BOOLEAN
    if ptypes.is_datetime64_any_dtype(series):
        return ColumnKind.DATETIME
    unique = values.nunique()
    if ptypes.is_numeric_dtype(series):
        if n and unique <= 2 and set(pd.unique(values)) <= {0, 1}:
            return ColumnKind.BOOLEAN
        if (
            n >= _ID_MIN_ROWS
            and _holds_integers(values)
            and unique / n >= _ID_MIN_UNIQUE_SHARE
            and _is_sequential(values)
        ):
            return ColumnKind.IDENTIFIER
        return ColumnKind.NUMERIC
    text = values.astype(str)
    if 0 < unique <= 2 and set(text.str.strip().str.lower().unique()) <= _BOOL_WORDS:
        return ColumnKind.BOOLEAN
    if n >= _ID_MIN_ROWS and unique / n >= _ID_MIN_UNIQUE_SHARE:
        mean_words = text.str.split().str.len().mean()
        return ColumnKind.TEXT if mean_words >= _TEXT_MIN_MEAN_WORDS else ColumnKind.IDENTIFIER
    if n and unique / n >= _TEXT_MIN_UNIQUE_SHARE and text.str.split().str.len().mean() >= _TEXT_MIN_MEAN_WORDS:
        return ColumnKind.TEXT
    return ColumnKind.CATEGORICAL


def _holds_integers(values: pd.Series) -> bool:
    """Integer dtype, or floats that are all whole numbers (an int column with gaps)."""
    if ptypes.is_integer_dtype(values):
        return True
    return ptypes.is_float_dtype(values) and bool((values % 1 == 0).all())


def _is_sequential(values: pd.Series) -> bool:
    """True when integer values look like row numbers or keys: sorted, or a dense range."""
    lo, hi = values.min(), values.max()
    return values.is_monotonic_increasing or (hi - lo + 1) <= 1.05 * len(values)
