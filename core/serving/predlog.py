"""The prediction log: every predicted row and every ground-truth label, in a SQL database.

Requests only append a record to a queue; a background thread turns queued requests into rows
and inserts them in batches (one transaction per batch), so logging stays off the request path
and costs little. ``close`` flushes what is queued. The default store is a SQLite file in WAL
mode; any SQLAlchemy URL works (the app's PostgreSQL, for example).

Tables (created if missing, in their own metadata so the service does not need the app's store):

* ``serving_predictions``: one row per predicted row: request id, row index, caller key, time,
  model name and version, request latency, inputs, prediction and probabilities (JSON text).
* ``serving_feedback``: one row per ground-truth label, by request id and row, or by key.

If the database is down or the queue is full, rows are dropped and counted
(``shipml_prediction_log_dropped_total``) rather than slowing or failing predictions.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from core.serving import metrics

log = logging.getLogger("shipml.serving")

METADATA = sa.MetaData()

PREDICTIONS = sa.Table(
    "serving_predictions", METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("row_index", sa.Integer, nullable=False),
    sa.Column("key", sa.String(200), nullable=True, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(100), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),  # JSON object: column -> value
    sa.Column("prediction", sa.Text, nullable=False),  # JSON value
    sa.Column("probabilities", sa.Text, nullable=True),  # JSON object: class -> probability
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

QUEUE_REQUESTS = 20_000  # queued requests (not rows) before new ones are dropped
WAKE_AT_REQUESTS = 2_000  # wake the writer early when this many requests wait
BATCH_ROWS = 5_000  # rows per insert transaction
FLUSH_INTERVAL_S = 0.25  # a lone request waits at most this long to be written


@dataclass(frozen=True)
class LoggedRequest:
    """One /predict request as the request path hands it over: cheap to build, no JSON yet."""

    request_id: str
    created_at: datetime
    latency_ms: float
    keys: list[str | None]  # one per row
    inputs: Any  # the rows as received (a list of dicts, JSON) or as parsed (a DataFrame, CSV)
    predictions: list[Any]
    proba: Any | None  # ndarray rows x classes, or None
    classes: tuple[str, ...] | None


def make_log_engine(url: str) -> Engine:
    """An engine for the log; SQLite files get WAL, a busy timeout and ``synchronous=NORMAL``.

    ``synchronous=NORMAL`` in WAL mode keeps every committed batch across a process crash
    (only a power cut can lose the last ones) at a fraction of the fsync cost.
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
        METADATA.create_all(self.engine)
        self.model_name, self.model_version = model_name, model_version
        # A deque, not a queue.Queue: appending wakes no thread. Waking the writer on every request
        # would hand it the GIL each time, which measurably slows single-row requests; it wakes
        # on a timer instead, or early once a batch is full.
        self._pending: deque[LoggedRequest] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._drain_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="shipml-predlog", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- predictions

    def submit(self, item: LoggedRequest) -> None:
        """Queue one request's rows for writing; never blocks (drops and counts when full)."""
        if self._closed or len(self._pending) >= QUEUE_REQUESTS:
            metrics.LOG_DROPPED.inc(len(item.predictions))
            return
        self._pending.append(item)
        if len(self._pending) >= WAKE_AT_REQUESTS or len(item.predictions) >= BATCH_ROWS:
            self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, stop the thread and release the database."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self.engine.dispose()

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
                while self._pending and rows < BATCH_ROWS:
                    item = self._pending.popleft()
                    batch.append(item)
                    rows += len(item.predictions)
                self._write(batch)

    def _write(self, batch: list[LoggedRequest]) -> None:
        rows = [row for item in batch for row in self._rows(item)]
        try:
            with self.engine.begin() as conn:
                conn.execute(PREDICTIONS.insert(), rows)
        except Exception as exc:  # noqa: BLE001 - a log outage must not stop predictions
            metrics.LOG_DROPPED.inc(len(rows))
            log.warning("prediction log write failed (%s); %d rows dropped", type(exc).__name__, len(rows))

    def _rows(self, item: LoggedRequest) -> list[dict]:
        dumps = _dumps
        proba = item.proba.tolist() if item.proba is not None else None
        inputs_list = item.inputs
        if hasattr(inputs_list, "to_dict"):  # a CSV frame: missing values as null, not NaN
            frame = inputs_list.astype(object)
            inputs_list = frame.where(frame.notna(), None).to_dict("records")
        out = []
        for i, (inputs, prediction) in enumerate(zip(inputs_list, item.predictions)):
            out.append({
                "request_id": item.request_id, "row_index": i, "key": item.keys[i],
                "created_at": item.created_at, "model_name": self.model_name,
                "model_version": self.model_version, "latency_ms": item.latency_ms,
                "inputs": dumps(inputs), "prediction": dumps(prediction),
                "probabilities": dumps(dict(zip(item.classes, proba[i]))) if proba is not None else None,
            })
        return out

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


def _dumps(value: Any) -> str:
    """JSON text; msgspec is several times faster than the json module (NaN becomes null)."""
    return _ENCODE(value).decode()


def _default(value: Any) -> Any:
    """JSON for values the request parser produced: numpy scalars, timestamps."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


_ENCODE = msgspec.json.Encoder(enc_hook=_default).encode
