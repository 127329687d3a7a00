"""The prediction log: every /predict request and every ground-truth label, in a SQL database.

Requests only append to a queue: a large request appends references to what it already holds
(no copying, no JSON), a small one its few-µs-to-encode table row (see ``PredictionLog.submit``);
a background thread serialises the large ones and inserts everything in batches, one transaction
per batch, so logging stays off the request path. ``close`` flushes what is queued.
The default store is a SQLite file in WAL mode; any SQLAlchemy URL works (the app's PostgreSQL).

Tables (created if missing, in their own metadata so the service does not need the app's store):

* ``serving_requests``: one row per /predict request: request id, caller key (or one key per
  row), time, model name and version, latency, row count, and the rows' inputs, predictions
  and probabilities as *columnar* JSON text (``{"column": [value per row, ...]}``,
  ``[prediction per row]``, ``{"class": [probability per row]}``). In the inputs, a number
  column of a large JSON batch whose values were all floats (or null) is stored as its raw
  little-endian float64 array instead of a list: ``{"column": {"f8": "<base64>"}}``, NaN for
  null (``{"i8": ...}`` reads as int64; the service keeps integers as lists, shorter as text);
  so are the probabilities of a request of ``EXACT_ARRAY_ROWS`` rows or more.
  Formatting ~100,000 floats as text cost a 10,000-row request ~4 ms of the server's core;
  copying their bytes ~0.5 ms. Logs written before hold lists only; ``decode_columns`` reads
  both. One row per request rather than per predicted row: a 10,000-row request is one insert
  of compact text instead of 10,000 rows of repeated column names, which on the server's own
  core cost more than the prediction itself. ``read_rows`` gives them back one dict per predicted row.
* ``serving_feedback``: one row per ground-truth label, by request id and row, or by key.

If the database is down or the queue is full (``QUEUE_REQUESTS`` requests or ``QUEUE_ROWS``
rows waiting), rows are dropped and counted (``shipml_prediction_log_dropped_total``) rather
than slowing or failing predictions.
"""
from __future__ import annotations

import base64
import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from core.serving import metrics
from core.serving.schema import EXACT_ARRAY_ROWS

log = logging.getLogger("shipml.serving")

METADATA = sa.MetaData()

REQUESTS = sa.Table(
    "serving_requests", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("key", sa.String(200), nullable=True, index=True),  # the request's key (all rows)
    sa.Column("keys", sa.Text, nullable=True),  # JSON list, one key per row, when given per row
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(100), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("variant", sa.String(20), nullable=True),  # champion, challenger or shadow (A/B tests)
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),  # JSON object: column -> list of values
    sa.Column("predictions", sa.Text, nullable=False),  # JSON list: one prediction per row
    sa.Column("probabilities", sa.Text, nullable=True),  # JSON object: class -> list of probabilities
)

FEEDBACK = sa.Table(
    "serving_feedback", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=True, index=True),
    sa.Column("row_index", sa.Integer, nullable=True),
    sa.Column("key", sa.String(200), nullable=True, index=True),
    sa.Column("label", sa.Text, nullable=False),  # JSON value
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(100), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
)

QUEUE_REQUESTS = 20_000  # queued requests before new ones are dropped
QUEUE_ROWS = 500_000  # queued rows before new requests are dropped (bounds the memory held)
WAKE_AT_REQUESTS = 2_000  # wake the writer early when this many requests wait...
WAKE_AT_ROWS = 20_000  # ...or this many rows
BATCH_REQUESTS = 2_000  # at most this many requests per insert transaction...
BATCH_ROWS = 50_000  # ...and about this many rows
SQLITE_PAGE_SIZE = 65_536  # bytes per page of a new SQLite log file (make_log_engine)
FLUSH_INTERVAL_S = 0.25  # a lone request waits at most this long to be written


@dataclass(frozen=True)
class LoggedRequest:
    """One /predict request as the request path hands it over: references only, no JSON yet."""

    request_id: str
    created_at: datetime
    latency_ms: float
    key: str | None  # the request's key
    keys: list[str | None] | None  # one key per row, when the request gave them per row
    inputs: Any  # column -> the values as received (a list, or an exact ndarray: JSON), or the parsed DataFrame (CSV)
    predictions: list[Any]
    proba: Any | None  # ndarray rows x classes, or None
    classes: tuple[str, ...] | None
    # Who predicted, when two versions serve one endpoint (None: the log's own model).
    model_name: str | None = None
    model_version: int | None = None
    variant: str | None = None  # champion, challenger or shadow


def upgrade(engine: Engine) -> None:
    """Create the tables, and add columns that older logs lack (``variant``)."""
    METADATA.create_all(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("serving_requests")}
    if "variant" not in columns:
        with engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE serving_requests ADD COLUMN variant VARCHAR(20)"))


def make_log_engine(url: str) -> Engine:
    """An engine for the log; SQLite files get WAL, a busy timeout and ``synchronous=NORMAL``.

    ``synchronous=NORMAL`` in WAL mode keeps every committed batch across a process crash
    (only a power cut can lose the last ones) at a fraction of the fsync cost.

    New files get 64 KiB pages (``SQLITE_PAGE_SIZE``; an existing file keeps its own): a
    10,000-row request is ~1.8 MB of text in overflow pages, and both the insert and the WAL
    checkpoint that later copies those pages into the database cost per page. Measured on a
    10,000-row record, insert plus its share of checkpoints: 6.0 ms of CPU with 4 KiB pages,
    3.3 with 16 KiB, 2.2 with 64 KiB (the automatic checkpoint stays at 1000 pages, now up to
    64 MB of WAL between checkpoints: fewer, larger ones).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # new files only (before the first write)
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return engine


class PredictionLog:
    """Batched, background writing of predictions; synchronous writing of feedback.

    Args:
        url: SQLAlchemy URL of the log database.
        model_name: Stored with every row.
        model_version: Stored with every row.
    """

    def __init__(self, url: str, *, model_name: str, model_version: int) -> None:
        self.engine = make_log_engine(url)
        upgrade(self.engine)
        self.model_name, self.model_version = model_name, model_version
        self._sqlite_insert = _sqlite_inserter(self.engine)
        # A deque, not a queue.Queue: appending wakes no thread. Waking the writer on every request
        # would hand it the GIL (and on a one-core server, the core) each time, which measurably
        # slows single-row requests; it wakes on a timer instead, or early once a batch is full.
        self._pending: deque[LoggedRequest | dict] = deque()  # requests, or small ones' records
        self._rows = 0  # rows in _pending; a lock because the event loop and the writer both change it
        self._count_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._drain_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="shipml-predlog", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- predictions

    def submit(self, item: LoggedRequest) -> None:
        """Queue one request for writing; never blocks (drops and counts when full).

        A request of fewer than ``EXACT_ARRAY_ROWS`` rows becomes its table row right here
        (a few µs), so the queue holds a few strings instead of the request's lists and dicts:
        kept alive until the writer's next turn, those cost a busy server more (garbage
        collections, and freeing them once they have left the cache) than encoding them while
        they are hot. Larger requests are serialised by the writer, off the request path.
        """
        n = len(item.predictions)
        entry: LoggedRequest | dict = item
        if n < EXACT_ARRAY_ROWS:
            try:
                entry = self._record(item)
            except Exception as exc:  # noqa: BLE001 - a log problem must not fail the prediction
                metrics.LOG_DROPPED.inc(n)
                log.warning("prediction log record failed (%s); %d rows dropped", type(exc).__name__, n)
                return
        with self._count_lock:
            if self._closed or len(self._pending) >= QUEUE_REQUESTS or self._rows + n > max(QUEUE_ROWS, n):
                metrics.LOG_DROPPED.inc(n)
                return
            self._rows += n
            self._pending.append(entry)
            wake = len(self._pending) >= WAKE_AT_REQUESTS or self._rows >= WAKE_AT_ROWS
        if wake:
            self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, stop the thread and release the database."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self.engine.dispose()

    def flush(self) -> None:
        """Write everything queued now (tests and shutdown; the writer does it on its own)."""
        self._drain()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            self._drain()
        self._drain()  # what arrived while closing

    def _drain(self) -> None:
        with self._drain_lock:
            while self._pending:
                batch, rows = [], 0
                while self._pending and len(batch) < BATCH_REQUESTS and rows < BATCH_ROWS:
                    item = self._pending.popleft()
                    batch.append(item)
                    rows += item["n_rows"] if type(item) is dict else len(item.predictions)
                with self._count_lock:
                    self._rows -= rows
                self._write(batch, rows)

    def _write(self, batch: list[LoggedRequest | dict], n_rows: int) -> None:
        try:
            records = [item if type(item) is dict else self._record(item) for item in batch]
            if self._sqlite_insert is not None:
                self._sqlite_insert(records)
            else:
                with self.engine.begin() as conn:
                    conn.execute(REQUESTS.insert(), records)
        except Exception as exc:  # noqa: BLE001 - a log outage must not stop predictions
            metrics.LOG_DROPPED.inc(n_rows)
            log.warning("prediction log write failed (%s); %d rows dropped", type(exc).__name__, n_rows)

    def _record(self, item: LoggedRequest) -> dict:
        """One request as one table row: columnar JSON, serialised here on the writer thread."""
        inputs = item.inputs
        if hasattr(inputs, "to_dict"):  # a CSV frame: missing values as null, not NaN
            inputs = {str(name): _plain_column(series) for name, series in inputs.items()}
        # JSON inputs are lists, or arrays holding exactly the values sent (large batches),
        # which the encoder's hook stores as raw bytes.
        proba = None
        if item.proba is not None and item.classes is not None:
            column = _packed if len(item.proba) >= EXACT_ARRAY_ROWS else np.ndarray.tolist
            proba = _dumps({c: column(item.proba[:, j]) for j, c in enumerate(item.classes)})
        return {
            "request_id": item.request_id, "key": item.key,
            "keys": _dumps(item.keys) if item.keys is not None else None,
            "created_at": item.created_at, "model_name": item.model_name or self.model_name,
            "model_version": item.model_version if item.model_version is not None else self.model_version,
            "variant": item.variant, "latency_ms": item.latency_ms, "n_rows": len(item.predictions),
            "inputs": _dumps(inputs), "predictions": _dumps(item.predictions), "probabilities": proba,
        }

    # ---------------------------------------------------------------- feedback and reading

    def add_feedback(self, items: list[dict]) -> int:
        """Store ground-truth labels now (the caller gets an answer only once they are saved).

        Args:
            items: Dicts with ``request_id``/``row_index`` or ``key``, and ``label``.

        Returns:
            How many labels were stored.
        """
        now = datetime.now(timezone.utc)
        rows = [{"request_id": it.get("request_id"), "row_index": it.get("row_index"), "key": it.get("key"),
                 "label": _dumps(it["label"]), "created_at": now, "model_name": self.model_name,
                 "model_version": self.model_version} for it in items]
        with self.engine.begin() as conn:
            conn.execute(FEEDBACK.insert(), rows)
        return len(rows)


_RECORD_COLUMNS = ("request_id", "key", "keys", "created_at", "model_name", "model_version", "variant",
                   "latency_ms", "n_rows", "inputs", "predictions", "probabilities")


def _sqlite_inserter(engine: Engine):
    """For a SQLite log: insert records with the sqlite3 driver's own ``executemany``.

    The writer shares the server's only core with the requests; SQLAlchemy's executemany costs
    ~20 µs of Python per row on top of the driver's. Values go through the same type processors
    SQLAlchemy would apply (the dates' text form), so the stored rows are the same. Other
    databases (PostgreSQL) keep SQLAlchemy's path. None when the engine is not SQLite.
    """
    if engine.dialect.name != "sqlite":
        return None
    processors = []  # (position, processor) of the columns that have one: the date and the latency
    for i, name in enumerate(_RECORD_COLUMNS):
        processor = REQUESTS.c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        if processor is not None:
            processors.append((i, processor))
    values_of = itemgetter(*_RECORD_COLUMNS)
    # Fixed column names of our own table: nothing from a request is formatted into the SQL.
    sql = (f"INSERT INTO serving_requests ({', '.join(_RECORD_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _RECORD_COLUMNS)})")

    def insert(records: list[dict]) -> None:
        rows = [list(values_of(record)) for record in records]
        for row in rows:
            for i, processor in processors:
                if row[i] is not None:
                    row[i] = processor(row[i])
        connection = engine.raw_connection()  # pooled, with the WAL and busy-timeout pragmas
        try:
            cursor = connection.cursor()
            cursor.executemany(sql, rows)
            cursor.close()
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()  # back to the pool

    return insert


def read_rows(engine: Engine, *, request_id: str | None = None, limit: int | None = None) -> list[dict]:
    """The logged predictions, one dict per predicted row, oldest first.

    Each dict holds ``request_id``, ``row_index``, ``key``, ``created_at``, ``model_name``,
    ``model_version``, ``variant`` (champion, challenger, shadow; None in logs from before A/B
    tests), ``latency_ms``, ``inputs`` (column -> value), ``prediction`` and
    ``probabilities`` (class -> probability, or None).

    Args:
        engine: An engine on the log database (``make_log_engine(url)``).
        request_id: Only this request's rows.
        limit: At most this many requests (the oldest first).
    """
    upgrade(engine)  # a log written before A/B tests gains its variant column
    query = sa.select(REQUESTS).order_by(REQUESTS.c.id)
    if request_id is not None:
        query = query.where(REQUESTS.c.request_id == request_id)
    if limit is not None:
        query = query.limit(limit)
    decode = msgspec.json.decode
    out = []
    with engine.connect() as conn:
        for record in conn.execute(query).mappings():
            inputs = decode_columns(record["inputs"])
            predictions = decode(record["predictions"])
            proba = decode_columns(record["probabilities"]) if record["probabilities"] is not None else None
            keys = decode(record["keys"]) if record["keys"] is not None else None
            names = list(inputs)
            for i, prediction in enumerate(predictions):
                out.append({
                    "request_id": record["request_id"], "row_index": i,
                    "key": keys[i] if keys is not None else record["key"],
                    "created_at": record["created_at"], "model_name": record["model_name"],
                    "model_version": record["model_version"], "variant": record["variant"],
                    "latency_ms": record["latency_ms"],
                    "inputs": {name: inputs[name][i] for name in names}, "prediction": prediction,
                    "probabilities": {c: p[i] for c, p in proba.items()} if proba is not None else None,
                })
    return out


def decode_columns(text: str | bytes) -> dict[str, list]:
    """A logged ``inputs`` or ``probabilities`` value as column (or class) -> list of values
    (one per row), in either format.

    Columns stored as raw arrays (``{"i8": ...}`` or ``{"f8": ...}``) come back as the Python
    ints and floats that were sent, NaN as None; columns stored as lists, as they are.
    """
    columns = msgspec.json.decode(text)
    for name, values in columns.items():
        if type(values) is dict:
            columns[name] = _unpacked(values)
    return columns


def _packed(array: np.ndarray) -> dict[str, bytes]:
    """An exact int64 or float64 column as ``{"i8"|"f8": raw little-endian bytes}`` (base64 in JSON)."""
    if array.dtype.kind == "f":
        return {"f8": array.astype("<f8", copy=False).tobytes()}
    return {"i8": array.astype("<i8", copy=False).tobytes()}


def _unpacked(packed: dict[str, str]) -> list:
    (kind, text), = packed.items()
    array = np.frombuffer(base64.b64decode(text), dtype="<f8" if kind == "f8" else "<i8")
    values = array.tolist()
    if kind == "f8":
        missing = np.flatnonzero(np.isnan(array))
        for i in missing.tolist():
            values[i] = None
    return values


def _plain_column(series: Any) -> list:
    """A pandas column as JSON-ready values: missing as None, not NaN or NaT."""
    values = series.astype(object)
    return values.where(series.notna(), None).tolist()


def _dumps(value: Any) -> str:
    """JSON text; msgspec is several times faster than the json module (NaN becomes null)."""
    return _ENCODE(value).decode()


def _default(value: Any) -> Any:
    """JSON for values the request parser produced: exact arrays (as raw bytes, see ``_packed``),
    numpy scalars, timestamps."""
    if isinstance(value, np.ndarray):
        return _packed(value)
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


_ENCODE = msgspec.json.Encoder(enc_hook=_default).encode
