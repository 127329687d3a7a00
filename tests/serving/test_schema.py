"""The request schema on its own: types from the training sample, policies, JSON and CSV checks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.serving.schema import SchemaError, TooManyRows, infer_schema

REFERENCE = pd.DataFrame({
    "n": [1, 2, 3],
    "x": [0.5, np.nan, 2.0],
    "flag": [True, False, True],
    "when": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
    "color": ["red", "blue", None],
    "note": [f"free text {i}" for i in range(3)],
})


KINDS = {"n": "numeric", "x": "numeric", "flag": "boolean", "when": "datetime", "color": "categorical",
         "note": "text"}


def _schema(**policies):
    return infer_schema(list(REFERENCE.columns), REFERENCE, kinds=KINDS, **policies)


def _errors(call) -> dict:
    with pytest.raises(SchemaError) as info:
        call()
    return {e.column: e for e in info.value.errors}


def test_types_and_categories_come_from_the_reference() -> None:
    columns = {c.name: c for c in _schema().columns}
    assert {k: c.type for k, c in columns.items()} == {
        "n": "integer", "x": "number", "flag": "boolean", "when": "date-time", "color": "string", "note": "string"}
    assert columns["color"].categories == ("blue", "red")
    assert columns["n"].categories is None
    # a column the sample lacks is the most permissive type
    assert infer_schema(["zzz"], REFERENCE).columns[0].type == "string"
    assert columns["note"].categories is None  # free text
    # columns the model does not use are required but not restricted
    assert infer_schema(["color"], REFERENCE, kinds={}).columns[0].categories is None
    # without the model's kinds: categorical when a few values repeat
    guess = pd.DataFrame({"id": [f"v{i}" for i in range(500)], "size": ["S", "M", "L", "M"] * 125})
    assert [c.categories for c in infer_schema(["id", "size"], guess).columns] == [None, ("L", "M", "S")]


def test_json_rows_become_typed_columns() -> None:
    rows = [{"n": 4, "x": 1, "flag": False, "when": "2024-05-01T10:00:00", "color": "red", "note": "hi"},
            {"n": None, "x": None, "flag": None, "when": None, "color": None, "note": None}]
    frame = _schema().frame_from_records(rows)
    assert list(frame.columns) == list(REFERENCE.columns)
    assert frame["n"].isna().tolist() == [False, True] and frame["n"].iloc[0] == 4
    assert frame["x"].dtype == float
    assert frame["when"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00") and pd.isna(frame["when"].iloc[1])
    assert frame["color"].tolist() == ["red", None]
    aware = _schema().frame_from_records([{**rows[0], "when": "2024-05-01T12:00:00+02:00"}])
    assert aware["when"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00") and aware["when"].dt.tz is None
    one = _schema().frame_from_records([rows[0]])
    assert one["n"].dtype == np.int64 and one["flag"].dtype == bool
    # Whole numbers beyond int64 (a uint64 column's top half) are numbers, as the model reads them.
    big = _schema().frame_from_records([{**rows[0], "n": 2**63 + 2**11}])
    assert big["n"].dtype == float and big["n"].iloc[0] == 2.0**63 + 2**11
    assert "integer out of range" == _errors(lambda: _schema().frame_from_records([{**rows[0], "n": 10**400}]))["n"].got


def test_json_errors_name_the_column_and_the_type_only() -> None:
    good = {"n": 1, "x": 1.0, "flag": True, "when": "2024-01-01", "color": "red", "note": "a"}
    errors = _errors(lambda: _schema().frame_from_records(
        [good, {**good, "n": 2.5, "flag": "yes", "when": "not a date", "color": "mauve", "x": [1]}]))
    assert (errors["n"].got, errors["n"].rows) == ("number", (1,))
    assert errors["flag"].got == "string" and errors["x"].got == "array"
    assert errors["when"].got == "unparseable string" and errors["color"].got == "unknown category"
    errors = _errors(lambda: _schema().frame_from_records([good, {k: v for k, v in good.items() if k != "note"}]))
    assert (errors["note"].got, errors["note"].rows) == ("missing", (1,))
    assert _errors(lambda: _schema().frame_from_records(["a row?"]))[None].got == "not an object"
    # policies: extra columns ignored, unseen categories accepted
    relaxed = _schema(extra_columns="ignore", unseen_categories="accept")
    assert len(relaxed.frame_from_records([{**good, "color": "mauve", "extra": 1}])) == 1
    assert "enum" not in relaxed.row_json_schema()["properties"]["color"]
    assert _schema().row_json_schema()["properties"]["color"]["enum"] == ["blue", "red", None]


def test_csv_keeps_codes_as_text_and_checks_numbers() -> None:
    codes = pd.DataFrame({"zip": ["007", "010"]})
    schema = infer_schema(["zip", "n"], codes.assign(n=[1, 2]))
    frame = schema.frame_from_csv(b"zip,n\n007,5\n,6\n", max_rows=10)
    assert frame["zip"].tolist() == ["007", None] and frame["n"].tolist() == [5, 6]
    errors = _errors(lambda: schema.frame_from_csv(b"zip,n,extra\n007,five,1\n", max_rows=10))
    assert errors["n"].got == "string" and errors["extra"].expected == "no such column"
    with pytest.raises(TooManyRows):
        schema.frame_from_csv(b"zip,n\n" + b"007,1\n" * 11, max_rows=10)
    assert _errors(lambda: schema.frame_from_csv(b"\xff\xfe\x00", max_rows=10))[None].got == "unreadable CSV"
    flags = infer_schema(["flag"], REFERENCE)
    assert flags.frame_from_csv(b"flag\ntrue\nFalse\n", max_rows=5)["flag"].tolist() == [True, False]


def test_a_batch_decoded_with_its_types_checked_gives_what_the_plain_parse_gives() -> None:
    import msgspec

    schema = _schema()
    good = {"n": 1, "x": 1, "flag": True, "when": "2024-01-01", "color": "red", "note": "a"}
    rows = [good, {**good, "x": 2.5, "n": None, "color": None}, {k: None for k in good}] * 30
    body = msgspec.json.encode({"rows": rows, "key": "k"})
    doc = schema.decode_batch(body)
    assert doc is not None and doc["key"] == "k" and "keys" not in doc and len(doc["rows"]) == 90
    typed, plain = schema.check_records(doc["rows"]), schema.check_records(rows)
    for got, want in zip(typed, plain):
        assert list(got) == list(want)
        for name in want:
            assert pd.Series(got[name]).equals(pd.Series(want[name])), name
    # Anything off the well-trodden path is left to the plain parse, which names every problem.
    for broken in ({**good, "n": 2.0}, {**good, "n": "1"}, {**good, "color": "mauve"}, {**good, "extra": 1},
                   {k: v for k, v in good.items() if k != "note"}, "a row?"):
        assert schema.decode_batch(msgspec.json.encode({"rows": [good, broken]})) is None, broken
    for other in ([good], good, {"rows": [good], "keys": "k"}, {"rows": [good], "more": 1}):
        assert schema.decode_batch(msgspec.json.encode(other)) is None, other
    assert schema.decode_batch(b"{not json") is None
    relaxed = _schema(extra_columns="ignore", unseen_categories="accept")
    assert len(relaxed.decode_batch(msgspec.json.encode({"rows": [{**good, "color": "mauve", "extra": 1}]}))["rows"]) == 1
    # column names need not be identifiers
    odd = infer_schema(["a b", "rows"], pd.DataFrame({"a b": [1.5], "rows": ["x"]}))
    doc = odd.decode_batch(b'{"rows": [{"a b": 2, "rows": "y"}, {"a b": null, "rows": null}]}')
    assert [list(v) for v in odd.check_records(doc["rows"])[1].values()] == [[2, None], ["y", None]]


def test_text_the_model_converts_must_be_readable() -> None:
    import msgspec

    from core.serving.schema import MAX_ENUM, TextParse

    # Raw training text a recipe converts: dates, and amounts with an "n/a" the model learnt as missing.
    reference = pd.DataFrame({"day": ["2001-01-22", "2001-01-23", "2001-01-24"], "amount": ["$5", "1,200", "n/a"]})
    parses = {"day": TextParse("datetime"), "amount": TextParse("number")}
    kinds = {"day": "datetime", "amount": "numeric"}
    schema = infer_schema(["day", "amount"], reference, kinds=kinds, parses=parses)
    day, amount = schema.columns
    assert (day.type, day.parse.example, day.parse.missing) == ("string", "2001-01-22", ())
    assert (amount.parse.example, amount.parse.missing) == ("$5", ("n/a",))
    assert [c.get("read_as") for c in schema.describe()["columns"]] == ["datetime", "number"]
    good = [{"day": "2016-09-10", "amount": "$7"}, {"day": None, "amount": "n/a"}]
    assert len(schema.frame_from_records(good)) == 2  # null, and the training rows' own "n/a", pass
    bad = good + [{"day": "not a date", "amount": "N/A"}, {"day": "2016-09-11", "amount": "seven"}]
    errors = _errors(lambda: schema.frame_from_records(bad))
    assert (errors["day"].got, errors["day"].rows) == ("unreadable string", (2,))
    assert errors["amount"].rows == (2, 3) and "(like '$5')" in errors["amount"].expected
    assert "not a date" not in str(errors["day"].to_dict())  # never the value sent
    # The batch decoder and the CSV parser check the same way.
    doc = schema.decode_batch(msgspec.json.encode({"rows": bad}))
    assert _errors(lambda: schema.check_records(doc["rows"]))["day"].rows == (2,)
    csv = b"day,amount\n2016-09-10,$7\nnot a date,n/a\n"
    assert _errors(lambda: schema.frame_from_csv(csv, max_rows=5))["day"].rows == (1,)
    # No check where the model does not use the column, or the training text was mostly unreadable.
    unused = infer_schema(["day"], reference, kinds={}, parses=parses)
    assert unused.columns[0].parse is None and len(unused.frame_from_records([{"day": "not a date"}])) == 1
    messy = pd.DataFrame({"amount": [f"about {i}" for i in range(MAX_ENUM + 1)] + ["5"]})
    assert infer_schema(["amount"], messy, kinds=kinds, parses=parses).columns[0].parse is None


@pytest.mark.parametrize("text", ["2016-09-10", "2016-09-10T10:00:00+02:00", "20160910", "today", "2016/09/10",
                                  "NaT", "not a date", "", "10 Sept 2016"])
def test_a_lone_date_is_judged_as_the_pipeline_reads_it(text) -> None:
    # One value takes a shortcut past pandas' format inference; it must agree with the Pipeline's parse.
    from core.prep.transformers import parse_dates
    from core.serving.schema import TextParse

    readable = pd.notna(parse_dates(pd.Series([text], dtype=object)).iloc[0])
    assert TextParse("datetime").unreadable(np.array([text], dtype=object)).size == (not readable)
