"""Tests for core.data.ingest: files, uploads, SQL (SQLite and PostgreSQL) and HTTP."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import socket
import sqlite3
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from core.config import Settings
from core.data.ingest import LoadedTable, read_bytes, read_http, read_path, read_sql
from core.data.storage import load_frame, save_frame
from core.errors import BadInput

# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(workspace=tmp_path / "workspace")


@pytest.fixture
def small(tmp_path: Path) -> Settings:
    """Tight limits: 1 MB uploads, 5 rows, 3 columns, 0.5 s timeouts."""
    return Settings(
        workspace=tmp_path / "workspace",
        max_upload_mb=1,
        max_rows=5,
        max_columns=3,
        http_timeout_s=0.5,
        sql_timeout_s=0.5,
    )


def load(data: bytes, settings: Settings, name: str = "data.csv") -> LoadedTable:
    return read_bytes(name, data, settings=settings)


def refused(data: bytes, settings: Settings, name: str = "data.csv") -> str:
    with pytest.raises(BadInput) as info:
        read_bytes(name, data, settings=settings)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def xlsx_bytes(*sheets: list[list]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for i, rows in enumerate(sheets):
        sheet = workbook.create_sheet(f"Sheet{i + 1}")
        for row in rows:
            sheet.append(row)
    buf = io.BytesIO()
    workbook.save(buf)
    return buf.getvalue()


def rezip(data: bytes, edit: dict[str, bytes]) -> bytes:
    """Copy a zip archive, replacing or adding the members named in ``edit``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename not in edit:
                dst.writestr(item, src.read(item))
        for name, content in edit.items():
            dst.writestr(name, content)
    return out.getvalue()


TABLE = [["name", "age", "score"], ["ann", 31, 1.5], ["bob", 42, 2.5], ["cy", 27, None]]


# --- CSV: formats, encodings, delimiters ------------------------------------------------------


def test_csv_basic_reports_format_hash_and_source(settings: Settings) -> None:
    data = b"name,age,score\nann,31,1.5\nbob,42,2.5\n"
    table = load(data, settings, name="people.csv")
    assert table.format == "csv"
    assert table.delimiter == ","
    assert table.encoding == "utf-8"
    assert table.content_hash == hashlib.sha256(data).hexdigest()
    assert table.source == "upload:people.csv"
    assert list(table.frame.columns) == ["name", "age", "score"]
    assert table.frame["age"].dtype == "int64"
    assert table.frame["score"].dtype == "float64"
    assert table.frame["name"].tolist() == ["ann", "bob"]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(settings: Settings, delimiter: str) -> None:
    rows = [["id", "city", "amount"], ["1", "Paris", "3.5"], ["2", "Rome", "4"], ["3", "Oslo", ""]]
    data = "\n".join(delimiter.join(r) for r in rows).encode()
    table = load(data, settings, name="data.txt")
    assert table.delimiter == delimiter
    assert list(table.frame.columns) == ["id", "city", "amount"]
    assert table.frame["amount"].tolist()[:2] == [3.5, 4.0]


def test_semicolon_file_with_decimal_commas_reads_them_as_numbers(settings: Settings) -> None:
    data = "price;qty;note;code\n1,5;2;a,b;7\n2,25;3;c;8,5\n1.234,5;;d;x\n;4;e;9\n".encode()
    table = load(data, settings)
    assert table.delimiter == ";"
    assert table.frame["price"].tolist()[:3] == [1.5, 2.25, 1234.5] and pd.isna(table.frame["price"][3])
    assert table.frame["note"].tolist() == ["a,b", "c", "d", "e"]  # text with a comma stays text
    assert table.frame["code"].tolist() == ["7", "8,5", "x", "9"]  # one value is not a number: the profile judges


def test_a_comma_separated_file_keeps_quoted_commas_as_text(settings: Settings) -> None:
    # "1,5" in a comma-separated file is as likely 15 written with a thousands comma: not guessed here.
    table = load(b'price,qty\n"1,5",2\n"2,25",3\n', settings)
    assert table.frame["price"].tolist() == ["1,5", "2,25"]


def test_tsv_extension_reports_tsv(settings: Settings) -> None:
    table = load(b"a\tb\n1\t2\n", settings, name="data.tsv")
    assert table.format == "tsv"
    assert table.delimiter == "\t"


def test_quoted_fields_keep_delimiters_and_newlines(settings: Settings) -> None:
    table = load(b'id,text\n1,"hello, world"\n2,"two\nlines"\n', settings)
    assert table.frame["text"].tolist() == ["hello, world", "two\nlines"]


def test_utf8_bom_is_removed_from_the_first_column_name(settings: Settings) -> None:
    table = load("\ufeffcafé,prix\nun,1\n".encode(), settings)
    assert table.encoding == "utf-8-sig"
    assert list(table.frame.columns) == ["café", "prix"]


def test_cp1252_is_detected(settings: Settings) -> None:
    table = load("ville;prix\nSão Paulo;5 €\nZürich;7 €\n".encode("cp1252"), settings)
    assert table.encoding == "cp1252"
    assert table.frame["ville"].tolist() == ["São Paulo", "Zürich"]
    assert table.frame["prix"].tolist() == ["5 €", "7 €"]


def test_latin1_bytes_undefined_in_cp1252_still_load(settings: Settings) -> None:
    data = b"a,b\ncaf\xe9,\x81x\n" + b"plain,row\n" * 50
    table = load(data, settings)
    assert table.encoding == "latin-1"
    assert table.frame["a"].tolist()[0] == "café"


def test_mixed_utf8_and_cp1252_loads_best_effort(settings: Settings) -> None:
    # Decision: a file that is mostly UTF-8 with lines appended in cp1252 (Excel on Windows)
    # loads; each byte UTF-8 rejects is read as cp1252, and the encoding says so.
    data = "city,n\nMünchen,1\n".encode() + "Köln,2\n".encode("cp1252")
    table = load(data, settings)
    assert table.encoding == "utf-8+cp1252"
    assert table.frame["city"].tolist() == ["München", "Köln"]


def test_utf16_with_bom_loads(settings: Settings) -> None:
    table = load("a\tb\nx\t1\n".encode("utf-16"), settings, name="export.txt")
    assert table.encoding == "utf-16"
    assert table.frame.to_dict("list") == {"a": ["x"], "b": [1]}


# --- CSV: malformed tables --------------------------------------------------------------------


def test_ragged_row_names_its_line(settings: Settings) -> None:
    message = refused(b"a,b\n1,2\n3,4\n5,6,7\n", settings)
    assert message == "line 4 has 3 fields but the header has 2"


def test_ragged_first_data_row_is_not_silently_used_as_an_index(settings: Settings) -> None:
    assert refused(b"a,b\n1,2,3\n4,5\n", settings) == "line 2 has 3 fields but the header has 2"
    assert refused(b"\na,b\n\n1,2,3\n", settings) == "line 4 has 3 fields but the header has 2"


def test_short_rows_are_padded_with_missing_values(settings: Settings) -> None:
    table = load(b"a,b,c\n1,2,3\n4,5\n", settings)
    assert table.frame["c"].isna().tolist() == [False, True]


def test_duplicate_column_names_are_named(settings: Settings) -> None:
    message = refused(b"id,age,id,score,age\n1,2,3,4,5\n", settings)
    assert message == "duplicate column names: age, id"


def test_names_equal_after_stripping_are_duplicates(settings: Settings) -> None:
    assert "duplicate column names: a" in refused(b"a, a \n1,2\n", settings)


@pytest.mark.parametrize("data", [b"", b"   \n\n  \r\n", b"\xef\xbb\xbf"])
def test_empty_file(settings: Settings, data: bytes) -> None:
    assert refused(data, settings) == "the file is empty"


def test_header_only(settings: Settings) -> None:
    assert "has a header but no rows" in refused(b"a,b,c\n", settings)


def test_single_column_is_refused(settings: Settings) -> None:
    assert "needs at least two columns" in refused(b"target\n1\n0\n1\n", settings)


def test_blank_column_names_become_column_n(settings: Settings) -> None:
    table = load(b"a,,c, \n1,2,3,4\n", settings)
    assert list(table.frame.columns) == ["a", "column_2", "c", "column_4"]


def test_unclosed_quote_is_a_clear_error(settings: Settings) -> None:
    assert "could not parse the file: EOF inside string" in refused(b'a,b\n1,"open\n', settings)


# --- limits -----------------------------------------------------------------------------------


def test_too_many_rows(small: Settings) -> None:
    data = b"a,b\n" + b"1,2\n" * 6
    assert refused(data, small) == "the table has more than 5 rows, the limit"
    assert len(load(b"a,b\n" + b"1,2\n" * 5, small).frame) == 5


def test_too_many_columns(small: Settings) -> None:
    assert "4 columns; the limit is 3" in refused(b"a,b,c,d\n1,2,3,4\n", small)


def test_upload_over_the_size_limit_names_the_limit_in_mb(small: Settings) -> None:
    data = b"a,b\n" + b"1,2\n" * 300_000  # 1.2 MB
    assert refused(data, small) == "the file is larger than the 1 MB limit"


def test_read_path_refuses_a_large_file_before_reading_it(tmp_path: Path, small: Settings) -> None:
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as fh:
        fh.truncate(50 * 1024**3)  # sparse: 50 GB that would never fit in memory
    with pytest.raises(BadInput, match="larger than the 1 MB limit"):
        read_path(huge, settings=small)


def test_read_path_reads_a_file(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    table = read_path(path, settings=settings)
    assert table.source == "file:data.csv"
    assert table.content_hash == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def test_read_path_missing_file_does_not_show_the_full_path(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(BadInput) as info:
        read_path(tmp_path / "nope.csv", settings=settings)
    assert str(info.value) == "file not found: nope.csv"


# --- magic bytes: safe formats load, unsafe ones are refused -----------------------------------


def test_parquet_renamed_csv_loads_as_parquet(settings: Settings) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    table = load(parquet_bytes(frame), settings, name="actually.csv")
    assert table.format == "parquet"
    pd.testing.assert_frame_equal(table.frame, frame)


def test_parquet_row_limit_is_checked_from_metadata(small: Settings) -> None:
    frame = pd.DataFrame({"a": range(10), "b": range(10)})
    assert "more than 5 rows" in refused(parquet_bytes(frame), small, name="d.parquet")


def test_parquet_extension_without_parquet_bytes(settings: Settings) -> None:
    assert refused(b"a,b\n1,2\n", settings, name="d.parquet") == "not a valid Parquet file"


def test_corrupt_parquet_is_a_clear_error(settings: Settings) -> None:
    assert refused(b"PAR1" + b"\x01" * 100, settings, name="d.parquet").startswith("could not read the PARQUET")


class _Boom:
    triggered = False

    def __reduce__(self):
        return (_Boom._trigger, ())

    @staticmethod
    def _trigger() -> None:
        _Boom.triggered = True


@pytest.mark.parametrize("name", ["model.pkl", "data.csv", "data", "data.parquet"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickles_are_never_loaded(settings: Settings, name: str, protocol: int) -> None:
    data = pickle.dumps(_Boom(), protocol=protocol)
    assert refused(data, settings, name=name).startswith("pickle files are never loaded")
    assert not _Boom.triggered


def test_pickle_extension_is_refused_whatever_the_bytes(settings: Settings) -> None:
    assert refused(b"a,b\n1,2\n", settings, name="frame.joblib").startswith("pickle files are never loaded")


def test_binary_with_nul_bytes_is_not_a_text_table(settings: Settings) -> None:
    assert "not a text table" in refused(bytes(range(256)) * 20, settings)


def test_binary_without_nul_bytes_is_not_a_text_table(settings: Settings) -> None:
    assert "not a text table" in refused(bytes(range(1, 256)) * 20, settings, name="blob.bin")


def test_legacy_xls_is_refused(settings: Settings) -> None:
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500
    assert "legacy .xls" in refused(data, settings, name="old.xls")


def test_compressed_csv_is_refused(settings: Settings) -> None:
    import gzip

    assert "compressed files are not supported" in refused(gzip.compress(b"a,b\n1,2\n"), settings, name="d.csv.gz")


# --- Excel ------------------------------------------------------------------------------------


def test_xlsx_first_sheet_only_with_types(settings: Settings) -> None:
    data = xlsx_bytes(TABLE, [["other", "sheet"], [1, 2]])
    table = load(data, settings, name="book.xlsx")
    assert table.format == "xlsx"
    assert list(table.frame.columns) == ["name", "age", "score"]
    assert table.frame["age"].dtype == "int64"
    assert table.frame["score"].dtype == "float64"
    assert table.frame["name"].tolist() == ["ann", "bob", "cy"]


def test_xlsx_renamed_csv_loads_as_xlsx(settings: Settings) -> None:
    assert load(xlsx_bytes(TABLE), settings, name="book.csv").format == "xlsx"


def test_xlsx_duplicate_and_blank_headers(settings: Settings) -> None:
    assert refused(xlsx_bytes([["a", "b", "a"], [1, 2, 3]]), settings, name="b.xlsx") == "duplicate column names: a"
    table = load(xlsx_bytes([["a", None, "c"], [1, 2, 3]]), settings, name="b.xlsx")
    assert list(table.frame.columns) == ["a", "column_2", "c"]


def test_xlsx_mixed_column_becomes_text(settings: Settings) -> None:
    table = load(xlsx_bytes([["id", "code"], [1, 7], [2, "A7"]]), settings, name="b.xlsx")
    assert table.frame["code"].tolist() == ["7", "A7"]


def test_xlsx_header_only(settings: Settings) -> None:
    assert "has a header but no rows" in refused(xlsx_bytes([["a", "b"]]), settings, name="b.xlsx")


@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><worksheet/>',
        b'<?xml version="1.0"?><!doctype x SYSTEM "file:///etc/passwd"><worksheet/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'.encode("utf-16-le"),
    ],
)
def test_xlsx_with_xml_entities_is_refused(settings: Settings, payload: bytes) -> None:
    data = rezip(xlsx_bytes(TABLE), {"xl/worksheets/sheet1.xml": payload})
    assert "XML entity declarations" in refused(data, settings, name="evil.xlsx")


def test_xlsx_zip_bomb_is_refused_before_parsing(settings: Settings) -> None:
    data = rezip(xlsx_bytes(TABLE), {"xl/media/padding.bin": b"\x00" * 20_000_000})
    assert "possible zip bomb" in refused(data, settings, name="bomb.xlsx")


def test_zip_that_is_not_a_workbook(settings: Settings) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    assert "not an Excel workbook" in refused(buf.getvalue(), settings, name="data.zip")


def test_xlsx_extension_without_zip_bytes(settings: Settings) -> None:
    assert refused(b"a,b\n1,2\n", settings, name="b.xlsx") == "not a valid Excel workbook (.xlsx)"


# --- JSON -------------------------------------------------------------------------------------


def test_json_array_of_records(settings: Settings) -> None:
    table = load(b'[{"a": 1, "b": "x", "c": 1.5}, {"a": 2, "b": "y", "c": null}]', settings, name="d.json")
    assert table.format == "json"
    assert table.frame["a"].dtype == "int64"
    assert table.frame["c"].dtype == "float64"
    assert table.frame["b"].tolist() == ["x", "y"]


def test_json_lines(settings: Settings) -> None:
    table = load(b'{"a": 1, "b": true}\n{"a": 2, "b": false}\n', settings, name="d.jsonl")
    assert table.format == "jsonl"
    assert table.frame.to_dict("list") == {"a": [1, 2], "b": [True, False]}


def test_json_lines_detected_without_extension(settings: Settings) -> None:
    assert load(b'{"a": 1, "b": 2}\n{"a": 3, "b": 4}\n', settings, name="export").format == "jsonl"


def test_json_date_like_column_names_are_not_converted(settings: Settings) -> None:
    table = load(b'[{"id": 1, "created_at": 1700000000}]', settings, name="d.json")
    assert table.frame["created_at"].tolist() == [1700000000]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2, 3]", "JSON must be an array of records (objects) or JSON lines"),
        (b'[{"a": 1,', "not valid JSON"),
        (b'{"a": 1}\n{"a": ', "not valid JSON lines"),
        (b"[]", "the JSON holds no records"),
    ],
)
def test_bad_json(settings: Settings, data: bytes, message: str) -> None:
    assert refused(data, settings, name="d.json").startswith(message)


def test_mixed_types_become_text_and_numbers_stay_numbers(settings: Settings) -> None:
    data = b'[{"code": 1, "n": 1, "tags": ["a"]}, {"code": "A7", "n": 2.5, "tags": null}]'
    table = load(data, settings, name="d.json")
    frame = table.frame
    assert frame["code"].tolist() == ["1", "A7"]
    assert frame["n"].dtype == "float64"
    assert frame["tags"].tolist()[0] == "['a']" and pd.isna(frame["tags"].tolist()[1])
    # ... so the table can be stored as Parquet, which refuses mixed object columns.
    save_frame(frame, content_hash=table.content_hash, settings=settings)
    stored = load_frame(table.content_hash, settings=settings)
    assert stored.dtypes.to_dict() == frame.dtypes.to_dict()
    assert stored.isna().equals(frame.isna())
    assert stored["code"].tolist() == ["1", "A7"]


# --- SQL --------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER, region TEXT, amount REAL)")
        conn.executemany("INSERT INTO sales VALUES (?, ?, ?)", [(i, "north" if i % 2 else "south", i * 1.5) for i in range(10)])
    conn.close()
    return f"sqlite:///{path}"


def sqlite_count(url: str) -> int:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT count(*) FROM sales").fetchone()[0]


def test_sqlite_select(sqlite_url: str, settings: Settings) -> None:
    table = read_sql(sqlite_url, "SELECT id, region, amount FROM sales ORDER BY id", settings=settings)
    assert table.format == "sql"
    assert table.source.startswith("sql:sqlite:///")
    assert table.frame.shape == (10, 3)
    assert table.frame["amount"].dtype == "float64"
    expected = hashlib.sha256(table.frame.to_csv(index=False).encode()).hexdigest()
    assert table.content_hash == expected


@pytest.mark.parametrize(
    "query",
    [
        "  -- top regions\n/* note */ select region, sum(amount) AS total FROM sales GROUP BY region;",
        "WITH big AS (SELECT * FROM sales WHERE amount > 3) SELECT id, amount FROM big",
    ],
)
def test_sqlite_comments_and_with_are_allowed(sqlite_url: str, settings: Settings, query: str) -> None:
    assert len(read_sql(sqlite_url, query, settings=settings).frame) > 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM sales", "only SELECT queries are allowed"),
        ("drop table sales", "only SELECT queries are allowed"),
        ("-- SELECT\nUPDATE sales SET amount = 0", "only SELECT queries are allowed"),
        ("", "only SELECT queries are allowed"),
        ("SELECT 1; DROP TABLE sales", "only one statement is allowed"),
    ],
)
def test_sql_statements_other_than_select_are_refused(sqlite_url: str, settings: Settings, query: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        read_sql(sqlite_url, query, settings=settings)
    assert sqlite_count(sqlite_url) == 10


def test_sqlite_writable_cte_is_blocked_by_read_only_mode(sqlite_url: str, settings: Settings) -> None:
    with pytest.raises(BadInput, match="the query failed"):
        read_sql(sqlite_url, "WITH x AS (SELECT 1) DELETE FROM sales", settings=settings)
    assert sqlite_count(sqlite_url) == 10


def test_sqlite_missing_file_is_not_created(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(BadInput, match="^could not connect to the database: "):
        read_sql(f"sqlite:///{path}", "SELECT 1 AS a, 2 AS b", settings=settings)
    assert not path.exists()


def test_sql_query_error_is_one_line(sqlite_url: str, settings: Settings) -> None:
    with pytest.raises(BadInput, match="^the query failed: no such table: nope$"):
        read_sql(sqlite_url, "SELECT * FROM nope", settings=settings)


def test_sql_row_limit(sqlite_url: str, small: Settings) -> None:
    with pytest.raises(BadInput, match="more than 5 rows; add a LIMIT"):
        read_sql(sqlite_url, "SELECT id, amount FROM sales", settings=small)
    assert len(read_sql(sqlite_url, "SELECT id, amount FROM sales LIMIT 5", settings=small).frame) == 5


def test_sql_empty_result_and_single_column(sqlite_url: str, settings: Settings) -> None:
    with pytest.raises(BadInput, match="the query returned no rows"):
        read_sql(sqlite_url, "SELECT id, amount FROM sales WHERE id < 0", settings=settings)
    with pytest.raises(BadInput, match="at least two columns"):
        read_sql(sqlite_url, "SELECT id FROM sales", settings=settings)
    with pytest.raises(BadInput, match="duplicate column names: id"):
        read_sql(sqlite_url, "SELECT id, id FROM sales", settings=settings)


def test_sqlite_timeout(sqlite_url: str, small: Settings) -> None:
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i), 1 FROM n"
    started = time.monotonic()
    with pytest.raises(BadInput, match="the query took longer than 0.5 s"):
        read_sql(sqlite_url, endless, settings=small)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("url", ["not a url", "nosuchdb://x/y"])
def test_sql_bad_url(settings: Settings, url: str) -> None:
    with pytest.raises(BadInput, match="database URL"):
        read_sql(url, "SELECT 1", settings=settings)


def test_sql_connection_failure_hides_the_password(settings: Settings) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://shipml:S3cretPw@127.0.0.1:{port}/db"
    with pytest.raises(BadInput) as info:
        read_sql(url, "SELECT 1", settings=settings)
    assert str(info.value).startswith("could not connect to the database: ")
    assert "S3cretPw" not in str(info.value)


# --- PostgreSQL (a real server) ---------------------------------------------------------------


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """A fresh database on the real PostgreSQL server from tests/conftest.py."""
    return postgres_url


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[str]:
    name = f"shipml_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {name} (id int, price numeric(10,2), label text, ok boolean,"
            " seen timestamptz, day date)"
        )
        conn.exec_driver_sql(
            f"INSERT INTO {name} VALUES (1, 9.99, 'a', true, '2026-01-02 03:04:05+00', '2026-01-02'),"
            " (2, 5.00, 'b', false, '2026-02-03 04:05:06+00', '2026-02-03')"
        )
        conn.exec_driver_sql(f"CREATE SEQUENCE {name}_seq")
    yield name
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(f"DROP SEQUENCE IF EXISTS {name}_seq")
    engine.dispose()


def test_postgres_select_types_and_source(pg_url: str, pg_table: str, settings: Settings) -> None:
    table = read_sql(pg_url, f"SELECT * FROM {pg_table} ORDER BY id", settings=settings)
    frame = table.frame
    assert frame["id"].dtype == "int64"
    assert frame["price"].dtype == "float64" and frame["price"].tolist() == [9.99, 5.0]
    assert frame["label"].tolist() == ["a", "b"]
    assert frame["ok"].dtype == "bool"
    assert pd.api.types.is_datetime64_any_dtype(frame["seen"])
    assert pd.api.types.is_datetime64_any_dtype(frame["day"])
    password = sa.make_url(pg_url).password
    assert table.source.startswith("sql:postgresql")
    assert not password or password not in table.source
    save_frame(frame, content_hash=table.content_hash, settings=settings)  # storable as Parquet


def test_postgres_writable_cte_is_refused(pg_url: str, pg_table: str, settings: Settings) -> None:
    with pytest.raises(BadInput, match="^the query failed: "):
        read_sql(pg_url, f"WITH d AS (DELETE FROM {pg_table} RETURNING *) SELECT * FROM d", settings=settings)
    assert len(read_sql(pg_url, f"SELECT * FROM {pg_table}", settings=settings).frame) == 2


def test_postgres_select_with_side_effects_is_refused_by_the_read_only_transaction(
    pg_url: str, pg_table: str, settings: Settings
) -> None:
    with pytest.raises(BadInput, match="read-only transaction"):
        read_sql(pg_url, f"SELECT nextval('{pg_table}_seq'), 1", settings=settings)


def test_postgres_timeout(pg_url: str, small: Settings) -> None:
    with pytest.raises(BadInput, match="the query took longer than 0.5 s"):
        read_sql(pg_url, "SELECT pg_sleep(5), 1", settings=small)


def test_postgres_wrong_password_is_not_echoed(pg_url: str, settings: Settings) -> None:
    url = sa.make_url(pg_url).set(password="Wr0ngPassw0rd")
    with pytest.raises(BadInput) as info:
        read_sql(url.render_as_string(hide_password=False), "SELECT 1, 2", settings=settings)
    assert str(info.value).startswith("could not connect to the database: ")
    assert "Wr0ngPassw0rd" not in str(info.value)


# --- HTTP (a local server on 127.0.0.1 only) --------------------------------------------------

_CSV = b"a,b\n1,x\n2,y\n"
_ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/data.csv": (200, "text/csv; charset=utf-8", _CSV),
    "/records": (200, "application/json", b'[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]'),
    "/lines": (200, "application/x-ndjson", b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n'),
    "/blob": (200, "application/octet-stream", parquet_bytes(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))),
    "/page": (200, "text/html; charset=utf-8", b"<!doctype html><html><body>hi</body></html>"),
    "/sneaky.csv": (200, "text/plain", b"\n  <html><body>not a table</body></html>"),
    "/pickle": (200, "application/octet-stream", pickle.dumps({"a": 1})),
    "/big": (200, "text/csv", b"a,b\n" + b"1,2\n" * 400_000),
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?")[0]
        if path == "/slow":
            time.sleep(3)
        if path == "/drip":  # every chunk in time, the whole far too slow
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"1,2\n")
                self.wfile.flush()
                time.sleep(0.1)
            return
        if path == "/big-chunked":  # no Content-Length: the cap must apply while streaming
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"1,2\n" * 16_384)
            return
        status, content_type, body = _ROUTES.get(path, (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up on purpose (size cap, timeout) are expected here


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_csv(base_url: str, settings: Settings) -> None:
    table = read_http(f"{base_url}/data.csv", settings=settings)
    assert table.format == "csv"
    assert table.frame.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    assert table.content_hash == hashlib.sha256(_CSV).hexdigest()
    assert table.source == f"http:{base_url}/data.csv"


@pytest.mark.parametrize(("path", "fmt"), [("/records", "json"), ("/lines", "jsonl"), ("/blob", "parquet")])
def test_http_json_and_parquet_by_content_type_and_magic(base_url: str, settings: Settings, path: str, fmt: str) -> None:
    table = read_http(base_url + path, settings=settings)
    assert table.format == fmt
    assert table.frame.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


def test_http_password_is_stripped_from_the_source(base_url: str, settings: Settings) -> None:
    url = base_url.replace("http://", "http://reader:Pa55word@") + "/data.csv"
    table = read_http(url, settings=settings)
    assert "Pa55word" not in table.source
    assert table.source == base_url.replace("http://", "http:http://reader@") + "/data.csv"


@pytest.mark.parametrize("path", ["/page", "/sneaky.csv"])
def test_http_html_page(base_url: str, settings: Settings, path: str) -> None:
    with pytest.raises(BadInput, match="^the URL returned an HTML page, not a table$"):
        read_http(base_url + path, settings=settings)


def test_http_404(base_url: str, settings: Settings) -> None:
    with pytest.raises(BadInput, match="^the URL returned HTTP 404 Not Found$"):
        read_http(f"{base_url}/missing.csv", settings=settings)


def test_http_slow_endpoint_times_out(base_url: str, small: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(BadInput, match="did not answer within 0.5 s"):
        read_http(f"{base_url}/slow", settings=small)
    assert time.monotonic() - started < 2.5


def test_http_slow_drip_hits_the_total_timeout(base_url: str, small: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(BadInput, match="did not answer within 0.5 s"):
        read_http(f"{base_url}/drip", settings=small)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_http_size_cap(base_url: str, small: Settings, path: str) -> None:
    with pytest.raises(BadInput, match="larger than the 1 MB limit"):
        read_http(base_url + path, settings=small)


def test_http_pickle_is_refused(base_url: str, settings: Settings) -> None:
    with pytest.raises(BadInput, match="pickle files are never loaded"):
        read_http(f"{base_url}/pickle", settings=settings)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.csv", "127.0.0.1/data.csv", "http://"])
def test_http_only_http_urls(settings: Settings, url: str) -> None:
    with pytest.raises(BadInput, match="only http:// and https:// URLs"):
        read_http(url, settings=settings)


def test_http_connection_refused(settings: Settings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BadInput, match="^could not load the URL: "):
        read_http(f"http://127.0.0.1:{port}/data.csv", settings=settings)
