"""Turn an upload, a file, a SQL query or an HTTP URL into a pandas DataFrame.

Every failure a user can fix is raised as :class:`~core.errors.BadInput` with a one-line
message. Nothing is ever unpickled: pickle files are refused by their magic bytes, and only
CSV/TSV, JSON, Excel (.xlsx) and Parquet are parsed.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import sqlite3
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa
from pandas.api.types import infer_dtype

from core.config import Settings
from core.errors import BadInput

__all__ = ["LoadedTable", "read_bytes", "read_http", "read_path", "read_sql"]


@dataclass(frozen=True)
class LoadedTable:
    """A table read from some source, with what was detected about it."""

    frame: pd.DataFrame
    format: str  # "csv", "tsv", "xlsx", "parquet", "jsonl", "json", "sql"
    content_hash: str  # sha256 hex of the raw bytes, or of a canonical CSV dump (SQL)
    encoding: str | None = None
    delimiter: str | None = None
    source: str = ""  # "upload:name.csv", "file:name.csv", "sql:<url>", "http:<url>"; no passwords


# --- limits and magic numbers -----------------------------------------------------------------

_SNIFF_CHARS = 32_768  # csv.Sniffer is quadratic-ish: keep its sample small
_HEADER_CHARS = 4_000_000  # enough text to hold a header of max_columns long names
_ZIP_MAX_RATIO = 100  # real workbooks compress 5-20x; a bomb compresses 1000x
_ZIP_MAX_FACTOR = 20  # uncompressed size cap, in multiples of the upload limit
_CONTROL_SHARE = 0.01  # more control characters than this and it is not text
_DELIMITERS = ",;\t|"
_PICKLE_EXTS = {"pkl", "pickle", "joblib", "pt", "pth"}  # .pt/.pth: zipped pickles
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls and encrypted Office files
_XML_DANGER = [
    marker.encode(enc) for marker in ("<!DOCTYPE", "<!ENTITY") for enc in ("ascii", "utf-16-le", "utf-16-be")
]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NON_SPACE = re.compile(r"\S")
_JSON_RECORDS = re.compile(r"\s*\[\s*[{\]]")  # an array of objects (or an empty one)
_DECIMAL_COMMA = re.compile(r"[-+]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?")  # 1,5 1.234,5 -12 (fullmatch)
_FIELDS_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_SQL_COMMENTS = re.compile(r"(--[^\n]*(\n|$)|/\*.*?\*/|\s)+", re.DOTALL)
_HTML_START = re.compile(rb"\s*<(!doctype\s+html|html|head|body)\b", re.IGNORECASE)


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Decode the bytes UTF-8 rejected as cp1252 (latin-1 for the 5 bytes cp1252 leaves out)."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in chunk), exc.end


# Registering an error handler is idempotent and holds no per-user state.
codecs.register_error("shipml-cp1252", _cp1252_fallback)


# --- public API -------------------------------------------------------------------------------


def read_bytes(name: str, data: bytes, *, settings: Settings) -> LoadedTable:
    """Read an uploaded file.

    Args:
        name: The file name as uploaded; its extension is a hint, the content decides.
        data: The whole file.
        settings: Limits on size, rows and columns.

    Returns:
        The table, its detected format, encoding and delimiter, and the sha256 of ``data``.

    Raises:
        BadInput: The file is too large, empty, not a table, unsafe (pickle, zip bomb, XML
            entities) or malformed (ragged rows, duplicate columns, a single column, ...).
    """
    _check_size(len(data), settings)
    return _load(name, data, source=f"upload:{Path(name).name}", settings=settings)


def read_path(path: Path, *, settings: Settings) -> LoadedTable:
    """Read a file from disk, refusing it by its size before reading it.

    Args:
        path: The file to read.
        settings: Limits on size, rows and columns.

    Returns:
        The table, as :func:`read_bytes` would return it.

    Raises:
        BadInput: The file is missing, too large or not a usable table.
    """
    path = Path(path)
    try:
        _check_size(path.stat().st_size, settings)
        with path.open("rb") as fh:
            # Read one byte past the limit: the file may have grown since stat().
            data = fh.read(settings.max_upload_bytes + 1)
    except FileNotFoundError:
        raise BadInput(f"file not found: {path.name}") from None
    except IsADirectoryError:
        raise BadInput(f"{path.name} is a folder, not a file") from None
    except PermissionError:
        raise BadInput(f"no permission to read {path.name}") from None
    _check_size(len(data), settings)
    return _load(path.name, data, source=f"file:{path.name}", settings=settings)


def read_sql(url: str, query: str, *, settings: Settings) -> LoadedTable:
    """Run one SELECT (or WITH ... SELECT) statement and return its result.

    The statement runs in a read-only transaction that is always rolled back, with a time
    limit of ``settings.sql_timeout_s`` (PostgreSQL and SQLite) and at most
    ``settings.max_rows`` rows fetched.

    Args:
        url: Any SQLAlchemy URL, e.g. ``postgresql+psycopg://user:pw@host/db`` or
            ``sqlite:///path/to/file.db``.
        query: A single SELECT statement.
        settings: Row, column and time limits.

    Returns:
        The table; ``content_hash`` is the sha256 of its CSV dump.

    Raises:
        BadInput: The statement is not a single SELECT, the database cannot be reached, the
            query fails or times out, or the result is empty or too large.
    """
    _check_select(query)
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise BadInput("not a valid database URL (expected e.g. postgresql+psycopg://user@host/db)") from None
    safe_url = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    engine_args: dict = {"poolclass": sa.pool.NullPool}
    if backend == "sqlite":
        parsed = _sqlite_read_only(parsed)
        engine_args["connect_args"] = {"timeout": settings.sql_timeout_s}
    elif backend == "postgresql":
        engine_args["connect_args"] = {"connect_timeout": max(1, round(settings.sql_timeout_s))}
    try:
        engine = sa.create_engine(parsed, **engine_args)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise BadInput(f"unsupported database URL: {_short(exc, parsed.password)}") from None

    deadline = time.monotonic() + settings.sql_timeout_s
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            raise BadInput(f"could not connect to the database: {_short(exc.orig, parsed.password)}") from None
        with conn:
            _guard_connection(conn, backend, settings.sql_timeout_s, deadline)
            try:
                # A server-side cursor where supported: only max_rows + 1 rows ever leave the server.
                result = conn.execution_options(stream_results=True).execute(sa.text(query))
                try:
                    columns = list(result.keys())
                    rows = result.fetchmany(settings.max_rows + 1)
                finally:
                    result.close()
            except sa.exc.DBAPIError as exc:
                if _is_timeout(exc, deadline):
                    raise BadInput(f"the query took longer than {settings.sql_timeout_s:g} s") from None
                raise BadInput(f"the query failed: {_short(exc.orig, parsed.password)}") from None
            finally:
                conn.rollback()  # never commit anything, whatever the statement did
    finally:
        engine.dispose()

    if len(rows) > settings.max_rows:
        raise BadInput(f"the query returned more than {settings.max_rows:,} rows; add a LIMIT or a filter")
    if not rows:
        raise BadInput("the query returned no rows")
    frame = pd.DataFrame.from_records(rows, columns=_clean_names(columns), coerce_float=True)
    frame = _finish(frame, settings)
    digest = hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()
    return LoadedTable(frame=frame, format="sql", content_hash=digest, source=f"sql:{safe_url}")


def read_http(url: str, *, settings: Settings) -> LoadedTable:
    """Download a CSV, JSON (records or JSON lines) or Parquet table over HTTP(S).

    The format is decided by magic bytes, then the Content-Type, then the URL's extension.
    The download stops as soon as it passes ``settings.max_upload_bytes`` or takes longer than
    ``settings.http_timeout_s`` in total.

    Args:
        url: An ``http://`` or ``https://`` URL.
        settings: Size, time, row and column limits.

    Returns:
        The table; ``source`` is ``"http:<url>"`` with any password removed.

    Raises:
        BadInput: Not an HTTP URL, unreachable, an error status, too slow, too large, an HTML
            page, or not a usable table.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise BadInput("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput("only http:// and https:// URLs can be loaded")
    safe_url = _strip_password(url)
    timeout = settings.http_timeout_s
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise BadInput(f"the URL returned HTTP {response.status_code} {response.reason_phrase}".strip())
                declared = response.headers.get("content-length", "")
                if declared.isdigit():
                    _check_size(int(declared), settings)
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    _check_size(size, settings)
                    chunks.append(chunk)
                    # httpx times each read, not the whole download: a slow drip never trips it.
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("total download time exceeded")
                content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.TimeoutException:
        raise BadInput(f"the URL did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise BadInput(f"could not load the URL: {_short(exc, parts.password)}") from None

    data = b"".join(chunks)
    if content_type in ("text/html", "application/xhtml+xml") or _HTML_START.match(data[:1024]):
        raise BadInput("the URL returned an HTML page, not a table")
    name = Path(parts.path).name
    hint = _CONTENT_TYPES.get(content_type)
    if hint:
        name = f"{Path(name).stem or 'download'}.{hint}"
    return _load(name, data, source=f"http:{safe_url}", settings=settings)


# Content-Type -> the extension that means the same thing to _load.
_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "application/json": "json",
    "text/json": "json",
    "application/x-ndjson": "jsonl",
    "application/ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}


# --- format detection and parsing ------------------------------------------------------------


def _load(name: str, data: bytes, *, source: str, settings: Settings) -> LoadedTable:
    """Detect the format of ``data`` and parse it; the shared path of files, uploads and HTTP."""
    digest = hashlib.sha256(data).hexdigest()
    fmt = _detect_format(name, data)
    encoding = delimiter = None
    try:
        if fmt == "xlsx":
            frame = _read_xlsx(data, settings)
        elif fmt == "parquet":
            frame = _read_parquet(data, settings)
        else:
            text, encoding = _decode(data)
            first = _NON_SPACE.search(text).group()  # _decode refuses blank text
            if fmt == "text":  # no telling extension: JSON if it looks like JSON, else CSV
                fmt = "json" if first in ("[", "{") else "csv"
            if fmt == "json" and first == "{":
                fmt = "jsonl"  # one object per line; a lone object is a one-row table
            if fmt in ("json", "jsonl"):
                frame = _read_json(text, lines=fmt == "jsonl")
            else:
                frame, delimiter = _read_delimited(data, text, encoding, prefer_tab=fmt == "tsv", settings=settings)
                fmt = "tsv" if delimiter == "\t" else "csv"
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - parsers of hostile input raise anything; show one line
        raise BadInput(f"could not read the {fmt.upper()} file: {_short(exc)}") from None
    frame = _finish(frame, settings)
    return LoadedTable(frame=frame, format=fmt, content_hash=digest, encoding=encoding, delimiter=delimiter, source=source)


def _detect_format(name: str, data: bytes) -> str:
    """Magic bytes first, the extension second; "text" means CSV or JSON, decided by content."""
    ext = Path(name).suffix.lower().lstrip(".")
    head = data[:8]
    if not data:
        raise BadInput("the file is empty")
    if (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or ext in _PICKLE_EXTS:
        raise BadInput("pickle files are never loaded; export the table as CSV or Parquet")
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"PAR1"):
        return "parquet"  # even when named .csv: reading Parquet is safe
    if head.startswith(_OLE_MAGIC):
        raise BadInput("legacy .xls and password-protected Excel files are not supported; save as .xlsx or CSV")
    if head.startswith(b"\x1f\x8b") or head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ"):
        raise BadInput("compressed files are not supported; upload the uncompressed table")
    if ext in ("xlsx", "xlsm"):
        raise BadInput("not a valid Excel workbook (.xlsx)")
    if ext == "parquet":
        raise BadInput("not a valid Parquet file")
    return {"json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "tsv": "tsv", "tab": "tsv", "csv": "csv"}.get(ext, "text")


def _decode(data: bytes) -> tuple[str, str]:
    """Decode text strictly as UTF-8, then cp1252, then latin-1; refuse binary data.

    Returns:
        The text and the encoding name pandas should use (``"utf-8+cp1252"`` when the file
        mixes UTF-8 with cp1252: those bytes are decoded one by one as cp1252, a best effort).
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:65_536]:
        raise BadInput("not a text table (the file contains binary data)")
    try:
        text = data.decode("utf-8-sig")  # also plain UTF-8; drops a BOM if there is one
        encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    except UnicodeDecodeError:
        # Non-ASCII text left after dropping the invalid bytes came from well-formed UTF-8
        # sequences: the file mixes UTF-8 with a single-byte encoding (lines added in Excel).
        # (str.isascii is O(1); a regex over the bytes would cost seconds on 100 MB.)
        if not data.decode("utf-8", errors="ignore").isascii():
            text, encoding = data.decode("utf-8-sig", errors="shipml-cp1252"), "utf-8+cp1252"
        else:
            try:
                text, encoding = data.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:  # cp1252 leaves 5 bytes undefined; latin-1 takes all
                text, encoding = data.decode("latin-1"), "latin-1"
    sample = text[:65_536]
    if len(_CONTROL.findall(sample)) > _CONTROL_SHARE * len(sample):
        raise BadInput("not a text table (the file contains binary data)")
    if not _NON_SPACE.search(text):
        raise BadInput("the file is empty")
    return text, encoding


def _read_delimited(
    data: bytes, text: str, encoding: str, *, prefer_tab: bool, settings: Settings
) -> tuple[pd.DataFrame, str]:
    """Parse CSV/TSV with pandas' C parser after checking the header in Python."""
    head = text[:_HEADER_CHARS]
    delimiter = _sniff_delimiter(head, prefer_tab=prefer_tab)
    reader = csv.reader(io.StringIO(head), delimiter=delimiter)
    records = (r for r in reader if r)  # skip blank lines, as pandas does
    header = next(records)
    if len(header) > settings.max_columns:
        raise BadInput(f"the table has {len(header):,} columns; the limit is {settings.max_columns:,}")
    names = _clean_names(header)
    # pandas silently treats extra fields in the *first* data row as an index (or drops them
    # with index_col=False); later ragged rows it reports itself.
    first = next(records, None)
    if first is not None and len(first) > len(header):
        raise BadInput(f"line {reader.line_num} has {len(first)} fields but the header has {len(header)}")
    if encoding == "utf-8+cp1252":
        data, encoding = text.encode("utf-8"), "utf-8"
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=delimiter,
            encoding=encoding,
            header=0,
            index_col=False,
            low_memory=False,  # one dtype per column, never a mix from different chunks
            nrows=settings.max_rows + 1,
        )
    except pd.errors.ParserError as exc:
        match = _FIELDS_ERROR.search(str(exc))
        if match:
            expected, line, saw = match.groups()
            raise BadInput(f"line {line} has {saw} fields but the header has {expected}") from None
        raise BadInput(f"could not parse the file: {_short(exc).removeprefix('Error tokenizing data. C error: ')}") from None
    except pd.errors.EmptyDataError:
        raise BadInput("the file is empty") from None
    frame.columns = names
    if frame.empty:
        raise BadInput("the file has a header but no rows")
    if delimiter != ",":  # a comma can be the decimal mark only where it does not separate fields
        frame = _decimal_commas(frame)
    return frame, delimiter


def _decimal_commas(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of numbers written with a decimal comma ("1,5", "1.234,5"), as spreadsheets in
    much of Europe save them (with ";" between fields), read as numbers. Only a column whose every
    value is such a number, one of them with a comma: anything else stays text for the profile to
    judge."""
    for name in frame.columns[frame.dtypes == object]:
        values = frame[name].dropna()
        if values.empty or not all(isinstance(v, str) for v in values):
            continue
        text = values.str.strip()
        if text.str.fullmatch(_DECIMAL_COMMA).all() and text.str.contains(",", regex=False).any():
            plain = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
            frame[name] = pd.to_numeric(plain).reindex(frame.index)
    return frame


def _sniff_delimiter(head: str, *, prefer_tab: bool) -> str:
    """Pick the delimiter among , ; tab | from a small sample, falling back to header counts."""
    lines: list[str] = []
    for line in io.StringIO(head):  # whole lines only: the sniffer misreads a cut-off line
        if line.strip():
            lines.append(line)
        if len(lines) >= 2 and sum(map(len, lines)) >= _SNIFF_CHARS:
            break
    header_line = lines[0] if lines else ""
    if prefer_tab and "\t" in header_line:
        return "\t"
    sample = "".join(lines)
    try:
        found = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
        if found in header_line:
            return found
    except csv.Error:
        pass
    counts = Counter({d: header_line.count(d) for d in _DELIMITERS})
    best, count = counts.most_common(1)[0]
    return best if count else ","


def _read_json(text: str, *, lines: bool) -> pd.DataFrame:
    """Parse a JSON array of records, or JSON lines (one object per line)."""
    if not lines and not _JSON_RECORDS.match(text):
        raise BadInput("JSON must be an array of records (objects) or JSON lines")
    try:
        # dtype/convert_dates off: keep values as written; no guessing dates from column names.
        frame = pd.read_json(io.StringIO(text), orient="records", lines=lines, dtype=False, convert_dates=False)
    except ValueError as exc:
        kind = "JSON lines" if lines else "JSON"
        raise BadInput(f"not valid {kind}: {_short(exc)}") from None
    if frame.empty:
        raise BadInput("the JSON holds no records")
    frame.columns = _clean_names(frame.columns)
    return frame


def _read_parquet(data: bytes, settings: Settings) -> pd.DataFrame:
    """Read Parquet after checking its metadata against the limits."""
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    _check_shape(meta.num_rows, meta.num_columns, settings)
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if unpacked > _ZIP_MAX_FACTOR * settings.max_upload_bytes:
        raise BadInput("the Parquet file unpacks to too much data to load")
    frame = pq.read_table(io.BytesIO(data)).to_pandas()
    frame = frame.reset_index(drop=isinstance(frame.index, pd.RangeIndex))
    frame.columns = _clean_names(frame.columns)
    return frame


def _read_xlsx(data: bytes, settings: Settings) -> pd.DataFrame:
    """Read the first sheet of a workbook after refusing zip bombs and XML entities."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise BadInput("not a valid Excel workbook (.xlsx)") from None
    with archive:
        members = archive.infolist()
        unpacked = sum(m.file_size for m in members)
        if unpacked > _ZIP_MAX_FACTOR * settings.max_upload_bytes or unpacked > _ZIP_MAX_RATIO * len(data):
            raise BadInput("the workbook unpacks to too much data (a possible zip bomb)")
        if not any(m.filename == "[Content_Types].xml" for m in members):
            raise BadInput("a zip archive that is not an Excel workbook (.xlsx)")
        for member in members:
            if _has_xml_declarations(archive, member):
                raise BadInput("the workbook contains XML entity declarations and is not loaded")
    # Header as a data row, so duplicate and blank names reach _clean_names unmangled.
    # pandas opens the workbook with openpyxl in read-only, data-only mode, without links.
    frame = pd.read_excel(
        io.BytesIO(data), sheet_name=0, header=None, engine="openpyxl", nrows=settings.max_rows + 2
    )
    if frame.empty:
        raise BadInput("the first sheet is empty")
    header = ["" if pd.isna(v) else str(v) for v in frame.iloc[0]]
    frame = frame.iloc[1:].reset_index(drop=True)
    frame.columns = _clean_names(header)
    if frame.empty:
        raise BadInput("the first sheet has a header but no rows")
    return frame.infer_objects()  # the header row made every column object; recover the types


def _has_xml_declarations(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bool:
    """Whether a member declares a DOCTYPE or ENTITY (billion laughs, external entities)."""
    overlap = max(len(m) for m in _XML_DANGER)
    tail = b""
    with archive.open(member) as fh:
        while chunk := fh.read(1 << 20):
            window = (tail + chunk).upper()
            if any(marker in window for marker in _XML_DANGER):
                return True
            tail = chunk[-overlap:]
    return False


# --- shared clean-up and checks --------------------------------------------------------------


def _clean_names(names) -> list[str]:
    """Strip column names, name blank ones column_N, and refuse duplicates."""
    cleaned = [str(n).strip() or f"column_{i}" for i, n in enumerate(names, start=1)]
    dupes = sorted(n for n, c in Counter(cleaned).items() if c > 1)
    if dupes:
        raise BadInput(f"duplicate column names: {', '.join(dupes[:5])}")
    return cleaned


def _finish(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Check the shape and make every column storable as Parquet."""
    if len(frame) == 0:
        raise BadInput("the table has a header but no rows")
    _check_shape(len(frame), len(frame.columns), settings)
    if len(frame.columns) < 2:
        raise BadInput("the table needs at least two columns (features and a target)")
    for name in frame.columns[frame.dtypes == object]:
        column = frame[name]
        kind = infer_dtype(column, skipna=True)
        if kind in ("string", "empty", "boolean", "datetime", "bytes"):
            continue
        if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
            frame[name] = pd.to_numeric(column)
        elif kind == "date":
            frame[name] = pd.to_datetime(column)
        else:  # mixed types (ints and strings, nested objects): text is the honest common type
            frame[name] = column.where(column.isna(), column.astype(str))
    return frame


def _check_shape(rows: int, columns: int, settings: Settings) -> None:
    if rows > settings.max_rows:
        raise BadInput(f"the table has more than {settings.max_rows:,} rows, the limit")
    if columns > settings.max_columns:
        raise BadInput(f"the table has {columns:,} columns; the limit is {settings.max_columns:,}")


def _check_size(size: int, settings: Settings) -> None:
    if size > settings.max_upload_bytes:
        limit_mb = settings.max_upload_bytes / (1024 * 1024)
        raise BadInput(f"the file is larger than the {limit_mb:g} MB limit")


def _short(exc: BaseException | None, secret: str | None = None) -> str:
    """The first line of an error message, with any password masked."""
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else type(exc).__name__
    if secret:
        message = message.replace(secret, "***")
    return message[:300]


# --- SQL helpers -----------------------------------------------------------------------------


def _check_select(query: str) -> None:
    """Accept one SELECT or WITH statement; anything else is refused before connecting."""
    body = _SQL_COMMENTS.sub(" ", query).strip().rstrip(";").strip()
    keyword = body.split(None, 1)[0].upper() if body else ""
    if keyword not in ("SELECT", "WITH"):
        raise BadInput("only SELECT queries are allowed (the statement must start with SELECT or WITH)")
    if ";" in body:
        raise BadInput("only one statement is allowed (remove the ';' inside the query)")


def _sqlite_read_only(url: sa.URL) -> sa.URL:
    """Open SQLite files read-only, so a missing file is an error rather than a new database."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    return url.set(database=f"file:{quote(database)}", query={**url.query, "mode": "ro", "uri": "true"})


def _guard_connection(conn: sa.Connection, backend: str, timeout_s: float, deadline: float) -> None:
    """Make the transaction read-only and time-limited where the database supports it."""
    if backend == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
    elif backend == "sqlite":
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA query_only = ON")
        # SQLite has no statement timeout: abort from the progress handler past the deadline.
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)


def _is_timeout(exc: sa.exc.DBAPIError, deadline: float) -> bool:
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError) and time.monotonic() > deadline:
        return True  # the progress handler interrupted the query
    return "statement timeout" in str(orig) or type(orig).__name__ == "QueryCanceled"


def _strip_password(url: str) -> str:
    """The URL without its userinfo password (the user name is kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
