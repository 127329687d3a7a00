"""The prediction log on its own: columnar records per request, CSV inputs, the bounded queue."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from core.serving import metrics, predlog
from core.serving.predlog import LoggedRequest, PredictionLog, read_rows


def _request(n: int, *, inputs, request_id: str = "r1") -> LoggedRequest:
    return LoggedRequest(request_id=request_id, created_at=datetime.now(timezone.utc), latency_ms=1.5,
                         key="k", keys=None, inputs=inputs, predictions=["no"] * n,
                         proba=np.tile([0.75, 0.25], (n, 1)), classes=("no", "yes"))


def test_csv_frames_are_logged_with_nulls_and_read_back_per_row(tmp_path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", model_name="m", model_version=3)
    frame = pd.DataFrame({"x": [1.5, np.nan], "c": ["a", None],
                          "t": pd.to_datetime(["2024-01-02T03:04:05", None])})
    log.submit(_request(2, inputs=frame))
    log.close()
    rows = read_rows(log.engine)
    assert [r["inputs"] for r in rows] == [{"x": 1.5, "c": "a", "t": "2024-01-02T03:04:05"},
                                          {"x": None, "c": None, "t": None}]
    assert [(r["request_id"], r["row_index"], r["key"], r["model_version"]) for r in rows] == [
        ("r1", 0, "k", 3), ("r1", 1, "k", 3)]
    assert rows[1]["probabilities"] == {"no": 0.75, "yes": 0.25}


def test_the_queue_is_bounded_in_rows_and_drops_are_counted(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(predlog, "QUEUE_ROWS", 10)
    monkeypatch.setattr(predlog, "FLUSH_INTERVAL_S", 60.0)  # the writer sleeps: the queue fills
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", model_name="m", model_version=1)
    dropped = metrics.LOG_DROPPED._value.get()
    log._wake.set()  # let the writer pass its first wait and fall asleep for the long interval
    columns = {"x": [1.0] * 6}
    log.submit(_request(6, inputs=columns, request_id="a"))
    log.submit(_request(6, inputs=columns, request_id="b"))  # 12 > 10 rows: dropped
    log.submit(_request(4, inputs={"x": [1.0] * 4}, request_id="c"))  # 10 rows: fits
    assert metrics.LOG_DROPPED._value.get() - dropped == 6
    log.close()  # writes what is queued
    assert [r["request_id"] for r in read_rows(log.engine)] == ["a"] * 6 + ["c"] * 4


def test_the_sqlite_driver_path_stores_what_sqlalchemy_stores(tmp_path) -> None:
    """SQLite logs are written with the driver's own executemany (cheaper on the server's core);
    the stored rows must be the very rows SQLAlchemy's insert writes (dates' text form too)."""
    import sqlalchemy as sa

    stored = []
    item = _request(3, inputs={"x": [1.0, None, 2.5], "c": ["a", "b", None]})
    for name, driver in [("driver", True), ("sqlalchemy", False)]:
        log = PredictionLog(f"sqlite:///{tmp_path / f'{name}.db'}", model_name="m", model_version=2)
        assert log._sqlite_insert is not None
        if not driver:
            log._sqlite_insert = None  # the path every other database takes
        log.submit(item)
        log.submit(LoggedRequest(request_id="r2", created_at=item.created_at, latency_ms=0.25, key=None,
                                 keys=["a", None], inputs={"x": [1, 2]}, predictions=[1.5, 2.5], proba=None,
                                 classes=None, model_name="other", model_version=7, variant="challenger"))
        log.close()
        with log.engine.connect() as conn:
            stored.append(conn.execute(sa.text("SELECT * FROM serving_requests ORDER BY id")).all())
    assert stored[0] == stored[1] and len(stored[0]) == 2
    assert len(read_rows(log.engine)) == 5


def test_large_json_batches_store_exact_numeric_columns_as_bytes_and_read_back_as_sent(tmp_path) -> None:
    """In a batch of at least EXACT_ARRAY_ROWS rows, float/null-only columns are logged as raw
    arrays; what read_rows gives back is still exactly what was sent (ints stay
    ints, nulls stay None); a column mixing ints and floats stays a list. Old rows still read."""
    import sqlalchemy as sa

    from core.serving.schema import EXACT_ARRAY_ROWS, Column, InputSchema

    n = EXACT_ARRAY_ROWS
    schema = InputSchema((Column("i", "integer"), Column("f", "number"), Column("m", "number"),
                          Column("s", "string"), Column("z", "number")))
    sent = [{"i": 2**40 + k, "f": None if k % 3 == 0 else k / 7 - 1e300 * (k == 1), "m": k if k % 2 else k + 0.5,
             "s": f"s{k}", "z": None} for k in range(n)]
    columns, received = schema.check_records(sent)
    assert {k for k, v in received.items() if isinstance(v, np.ndarray)} == {"f", "z"}
    assert received["f"] is not columns["f"]  # the log's own copy
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", model_name="m", model_version=1)
    yes = np.arange(n) / 3 / n
    log.submit(replace(_request(n, inputs=received, request_id="new"), proba=np.column_stack([1 - yes, yes])))
    log.close()
    with log.engine.begin() as conn:
        stored, proba = conn.execute(sa.select(predlog.REQUESTS.c.inputs, predlog.REQUESTS.c.probabilities)).one()
        assert '"f8"' in stored and '"i":[' in stored and '"f8"' in proba
        assert conn.exec_driver_sql("PRAGMA page_size").scalar() == predlog.SQLITE_PAGE_SIZE  # a new file
        conn.execute(predlog.REQUESTS.insert(), [{  # a row as logs before this format hold it
            "request_id": "old", "key": None, "created_at": datetime.now(timezone.utc), "model_name": "m",
            "model_version": 1, "latency_ms": 1.0, "n_rows": 2, "inputs": '{"i":[1,2],"f":[0.5,null]}',
            "predictions": '["no","no"]', "probabilities": None}])
    rows = read_rows(log.engine)
    new = [r["inputs"] for r in rows if r["request_id"] == "new"]
    assert new == sent
    assert [r["probabilities"]["yes"] for r in rows if r["request_id"] == "new"] == yes.tolist()
    assert [type(r["i"]) for r in new] == [int] * n and [type(r["m"]) for r in new] == [type(r["m"]) for r in sent]
    assert [r["inputs"] for r in rows if r["request_id"] == "old"] == [{"i": 1, "f": 0.5}, {"i": 2, "f": None}]
    small_columns, small_received = schema.check_records(sent[:3])
    assert all(isinstance(v, list) for v in small_received.values())  # single rows pay nothing new
