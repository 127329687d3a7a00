"""CSV exports: cells a spreadsheet would run as formulas are escaped, data round-trips."""
from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from core.monitoring.export import FORMULA_STARTS, escape_cell, escape_formulas, to_safe_csv


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_every_formula_start_is_escaped(start: str) -> None:
    cell = f"{start}HYPERLINK(\"http://evil\",\"x\")"
    assert escape_cell(cell) == "'" + cell
    rows = list(csv.reader(io.StringIO(to_safe_csv(pd.DataFrame({"c": [cell], "d": ["ok"]})).decode("utf-8"),
                                       newline="")))
    assert rows == [["c", "d"], ["'" + cell, "ok"]]  # one row, even for a carriage return


def test_safe_cells_numbers_and_missing_values_are_unchanged() -> None:
    frame = pd.DataFrame({
        "text": ["a=b", "plain", None, " =x", "'quoted"],
        "amount": [-1.5, 2.0, -3.0, 4.0, 5.0],
        "count": [-1, 0, 1, 2, 3],
        "flag": [True, False, True, False, True],
        "kind": pd.Categorical(["-neg", "pos", "-neg", "pos", "@at"]),
        "mixed": [-7, "=1+1", 2.5, None, "x"],
    })
    back = pd.read_csv(io.BytesIO(to_safe_csv(frame)))
    assert back["text"].tolist()[:2] == ["a=b", "plain"] and pd.isna(back["text"][2])
    assert back["text"][3] == " =x" and back["text"][4] == "'quoted"
    assert back["amount"].tolist() == [-1.5, 2.0, -3.0, 4.0, 5.0]  # negative numbers stay numbers
    assert back["count"].tolist() == [-1, 0, 1, 2, 3]
    assert back["flag"].tolist() == [True, False, True, False, True]
    assert back["kind"].tolist() == ["'-neg", "pos", "'-neg", "pos", "'@at"]
    assert back["mixed"].tolist()[:3] == ["'-7", "'=1+1", "2.5"]  # text of a mixed column is text
    assert pd.isna(back["mixed"][3])
    assert frame["text"][0] == "a=b" and frame["kind"][0] == "-neg"  # the input is not modified


def test_header_and_index_names_are_escaped() -> None:
    frame = pd.DataFrame({"=SUM(A1:A9)": ["x"], "+cmd": [1]}, index=pd.Index(["@row"], name="-id"))
    text = to_safe_csv(frame, index=True).decode("utf-8")
    header, row = text.split("\r\n")[:2]
    assert header == "'-id,'=SUM(A1:A9),'+cmd"
    assert row == "'@row,x,1"
    assert list(escape_formulas(frame).columns) == ["'=SUM(A1:A9)", "'+cmd"]
