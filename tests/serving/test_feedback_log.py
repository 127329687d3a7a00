"""Feedback, the prediction log (SQLite and PostgreSQL), metrics, readiness and a tampered model."""
from __future__ import annotations

import json
import re
import shutil
import time

import sqlalchemy as sa

from core.serving.predlog import REQUESTS, make_log_engine, read_rows
from tests.serving.conftest import records, serve


def _table(url: str, name: str) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY id"))]
    finally:
        engine.dispose()


def _check_log(url: str, models, tmp_path) -> None:
    served = models["binary"]
    rows = records(served.rows.head(3))
    with serve(served.dir, tmp_path, log_url=url) as client:
        first = client.post("/predict", json={"rows": rows}, headers={"X-Request-Key": "order-1"}).json()
        second = client.post("/predict", json={"rows": rows[:2], "keys": ["a", None]}).json()
        by_id = client.post("/feedback", json={"request_id": first["request_id"], "row": 2, "label": "yes"})
        by_key = client.post("/feedback", json={"items": [{"key": "a", "label": "no"}, {"key": "order-1", "row": 1, "label": "yes"}]})
        assert by_id.status_code == 200 and by_id.json()["stored"] == 1, by_id.text
        assert by_key.status_code == 200 and by_key.json()["stored"] == 2
        bad = client.post("/feedback", json={"request_id": "x", "label": "maybe"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["column"] == "label" and "maybe" not in bad.text
        assert client.post("/feedback", json={"label": "yes"}).status_code == 422
        assert client.post("/feedback", json={"key": "k", "request_id": "r", "label": "yes"}).status_code == 422
    # leaving the client ran the shutdown: the background writer flushed everything
    engine = make_log_engine(url)
    try:
        logged = read_rows(engine)
        with engine.connect() as conn:
            requests = [dict(r._mapping) for r in conn.execute(sa.select(REQUESTS).order_by(REQUESTS.c.id))]
    finally:
        engine.dispose()
    # one table row per request, the rows inside as columnar JSON
    assert [(r["request_id"], r["n_rows"], r["key"]) for r in requests] == [
        (first["request_id"], 3, "order-1"), (second["request_id"], 2, None)]
    assert json.loads(requests[0]["inputs"]) == {c: [row[c] for row in rows] for c in rows[0]}
    assert json.loads(requests[1]["keys"]) == ["a", None] and requests[0]["keys"] is None
    assert len(logged) == 5
    assert [(r["request_id"], r["row_index"], r["key"]) for r in logged] == [
        (first["request_id"], 0, "order-1"), (first["request_id"], 1, "order-1"), (first["request_id"], 2, "order-1"),
        (second["request_id"], 0, "a"), (second["request_id"], 1, None)]
    assert [r["inputs"] for r in logged[:3]] == rows
    assert [r["prediction"] for r in logged[:3]] == [p["prediction"] for p in first["predictions"]]
    assert [r["probabilities"] for r in logged[:3]] == [p["probabilities"] for p in first["predictions"]]
    assert logged[0]["model_name"] == "churn" and logged[0]["model_version"] == 1 and logged[0]["latency_ms"] > 0
    feedback = _table(url, "serving_feedback")
    assert [(f["request_id"], f["row_index"], f["key"], json.loads(f["label"])) for f in feedback] == [
        (first["request_id"], 2, None, "yes"), (None, None, "a", "no"), (None, 1, "order-1", "yes")]


def test_predictions_and_feedback_are_logged_to_sqlite(models, tmp_path) -> None:
    _check_log(f"sqlite:///{tmp_path / 'log.db'}", models, tmp_path)


def test_predictions_and_feedback_are_logged_to_postgresql(models, tmp_path, postgres_url) -> None:
    _check_log(postgres_url, models, tmp_path)


def test_default_log_is_a_sqlite_file_in_the_workspace(models, tmp_path) -> None:
    served = models["regression"]
    with serve(served.dir, tmp_path) as client:
        assert client.post("/predict", json=records(served.rows.head(1))[0]).status_code == 200
    path = tmp_path / "workspace" / "serving" / "predictions.db"
    assert len(_table(f"sqlite:///{path}", "serving_requests")) == 1


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_have_the_contract_names_and_follow_traffic(models, tmp_path) -> None:
    served = models["binary"]
    rows = records(served.rows.head(4))
    with serve(served.dir, tmp_path) as client:
        before = client.get("/metrics").text
        body = client.post("/predict", json={"rows": rows}).json()
        client.post("/predict", json={"rows": [{"nope": 1}]})
        client.post("/feedback", json={"request_id": body["request_id"], "label": "no"})
        after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    for name in ("shipml_requests_total", "shipml_request_latency_seconds_bucket", "shipml_in_flight_requests",
                 "shipml_model_info", "shipml_predictions_total", "shipml_prediction_rows_total",
                 "shipml_errors_total", "shipml_feedback_total"):
        assert name in text, name
    delta = lambda name, **l: _metric(text, name, **l) - _metric(before, name, **l)  # noqa: E731
    assert delta("shipml_requests_total", endpoint="/predict", status="200") == 1
    assert delta("shipml_requests_total", endpoint="/predict", status="422") == 1
    assert delta("shipml_request_latency_seconds_count", endpoint="/predict") == 2
    assert delta("shipml_prediction_rows_total", model_version="1") == 4
    labels = [p["prediction"] for p in body["predictions"]]
    assert delta("shipml_predictions_total", model_version="1", label="no") == labels.count("no")
    assert delta("shipml_errors_total", endpoint="/predict", kind="schema") == 1
    assert delta("shipml_feedback_total", model_version="1") == 1
    assert _metric(text, "shipml_model_info", model="churn", version="1", task="binary") == 1
    assert _metric(text, "shipml_in_flight_requests") == 1  # the /metrics request itself


def test_regression_values_feed_the_prediction_histogram(models, tmp_path) -> None:
    served = models["regression"]
    with serve(served.dir, tmp_path) as client:
        before = _metric(client.get("/metrics").text, "shipml_prediction_value_count", model_version="1")
        client.post("/predict", json={"rows": records(served.rows.head(7))})
        after = _metric(client.get("/metrics").text, "shipml_prediction_value_count", model_version="1")
    assert after - before == 7


def test_a_tampered_model_never_becomes_ready(models, tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(models["binary"].dir, broken)
    artifact = broken / "model.joblib"
    artifact.chmod(0o644)
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with serve(broken, tmp_path, wait=False) as client:
        time.sleep(1.5)
        for _ in range(3):
            assert client.get("/health/live").status_code == 200
            ready = client.get("/health/ready")
            assert ready.status_code == 503 and "does not match" in ready.json()["reason"]
            assert str(tmp_path) not in ready.text
        r = client.post("/predict", json={"a": 1})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert client.get("/version").status_code == 503
        assert client.app.state.service.model is None  # never unpickled


def test_an_unusable_log_database_keeps_the_service_alive_and_not_ready(models, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'sub' / 'log.db'}"  # its folder cannot be created
    with serve(models["regression"].dir, tmp_path, log_url=url, wait=False) as client:
        time.sleep(1.5)
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and "prediction log" in ready.json()["reason"]
        assert str(tmp_path) not in ready.text and "sqlite" not in ready.text
