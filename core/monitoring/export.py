"""CSV exports that a spreadsheet opens as data, never as formulas (CSV/formula injection).

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return can be run as
a formula by Excel, LibreOffice or Google Sheets; such cells get a leading single quote, which the
spreadsheet shows as text (OWASP's advice). The check covers every text cell and the header.
Numeric columns (int, float, bool) are written as numbers: their text is produced by pandas from
a number, so it cannot hold a formula, and a negative number must stay a number.
"""
from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text that a spreadsheet could run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names cannot start a formula.

    Columns of any non-numeric dtype (text, category, objects, dates) are turned into text first,
    as the CSV would show them, so an object that prints as ``=...`` is caught as well.
    """
    out = frame.copy()
    for i, name in enumerate(frame.columns):
        column = frame.iloc[:, i]
        if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_datetime64_any_dtype(column.dtype):
            continue  # numbers and timestamps are written by pandas from their values
        text = column.astype(object).where(column.notna(), None)
        text = text.map(lambda v: v if v is None or isinstance(v, str) else str(v))
        starts = text.str[:1].isin(FORMULA_STARTS)
        out.isetitem(i, text.mask(starts, "'" + text.where(starts, "")))
    out.columns = [escape_cell(str(c)) for c in frame.columns]
    return out


def to_safe_csv(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    """``frame`` as UTF-8 CSV bytes (for a download button), formulas escaped."""
    safe = escape_formulas(frame.reset_index() if index else frame)
    # RFC 4180 line ends: the csv writer then quotes any cell holding a \r or \n, which a
    # "\n"-terminated file would leave bare (and a reader would split the row there).
    return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8")
