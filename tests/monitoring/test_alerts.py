"""Alert rules: thresholds on stored health, drift share and performance, state history, webhooks, export."""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml

from core.deploy import local
from core.errors import BadInput
from core.monitoring import alerts, health
from core.serving.predlog import LoggedRequest, PredictionLog, make_log_engine
from core.store.db import session_scope
from core.store.models import Deployment
from tests.services import missing

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=timezone.utc)
INF = float("inf")


class Receiver:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self, status: int = 204) -> None:
        received, answer = [], status

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.headers.get("Content-Type"), json.loads(body)))
                self.send_response(answer)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def deployment(engine, tmp_path) -> Deployment:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.json").write_text(json.dumps({
        "name": "churn", "version": 4, "task": "binary",
        "metrics": {"accuracy": {"mean": 0.9, "std": 0.01, "baseline": 0.5}},
        "cv": {"tuning": {"metric": "accuracy"}}}))
    row = Deployment(model_name="churn", version=4, target="local", status="RUNNING",
                     endpoint="http://127.0.0.1:9", model_dir=str(model_dir))
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
    return row


def _snap(at: datetime, ok: int, bad: int, fast: int, slow: int, start: float = 1.0) -> health.Snapshot:
    """Counters: ``fast`` requests <= 0.1 s, ``slow`` ones in (0.1, 2]."""
    return health.Snapshot(taken_at=at, process_start=start, requests={"200": ok, "500": bad},
                           latency_buckets=((0.1, fast), (2.0, fast + slow), (INF, fast + slow)))


def test_error_rate_fires_then_resolves_with_history_and_webhook(engine, settings, deployment, receiver) -> None:
    rule = alerts.create_rule(engine, deployment_id=deployment.id, kind="error_rate", threshold=0.05,
                              window_minutes=5, webhook_url=receiver.url)
    save = lambda s: health.save_snapshot(engine, deployment.id, s)  # noqa: E731
    save(_snap(T0, 0, 0, 0, 0))
    assert alerts.evaluate(engine, deployment, settings, now=T0)[0].value is None  # one snapshot: no data
    save(_snap(T0 + timedelta(minutes=1), 90, 10, 100, 0))  # 10 % failed
    first = alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(minutes=1))[0]
    assert first.state == alerts.FIRING and first.changed and first.value == pytest.approx(0.1)
    assert first.notified == "sent (204)"
    again = alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(minutes=1, seconds=5))[0]
    assert again.state == alerts.FIRING and not again.changed  # no second event while it keeps firing
    assert [r.id for r in alerts.firing(engine)] == [rule.id]

    # Six minutes later the window holds only healthy traffic.
    save(_snap(T0 + timedelta(minutes=6), 190, 10, 200, 0))
    save(_snap(T0 + timedelta(minutes=7), 290, 10, 300, 0))
    resolved = alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(minutes=7))[0]
    assert resolved.state == alerts.OK and resolved.changed and resolved.value == 0.0
    history = alerts.events(engine, deployment_id=deployment.id)
    assert [e.state for e in history] == ["resolved", "firing"]
    assert all(e.notified == "sent (204)" for e in history) and not alerts.firing(engine)
    assert [body["state"] for _, body in receiver.received] == ["firing", "resolved"]
    content_type, body = receiver.received[0]
    assert content_type == "application/json" and body["kind"] == "error_rate" and body["rule_id"] == rule.id
    assert body["value"] == pytest.approx(0.1) and body["model"] == "churn"


def test_p99_latency_and_no_traffic_from_snapshots(engine, settings, deployment) -> None:
    p99 = alerts.create_rule(engine, deployment_id=deployment.id, kind="p99_latency", threshold=0.5,
                             window_minutes=10)
    quiet = alerts.create_rule(engine, deployment_id=deployment.id, kind="no_traffic", window_minutes=10)
    for minute, (fast, slow) in enumerate([(0, 0), (50, 0), (90, 10), (90, 10), (90, 10), (90, 10), (90, 10),
                                           (90, 10), (90, 10), (90, 10), (90, 10), (90, 10), (90, 10)]):
        health.save_snapshot(engine, deployment.id, _snap(T0 + timedelta(minutes=minute), fast + slow, 0, fast, slow))
    # Window (minute 1, minute 11]: 40 fast + 10 slow requests; rank 49.5 of 50 -> 0.1 + 1.9 * 9.5 / 10
    by_kind = {e.kind: e for e in alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(minutes=11))}
    assert by_kind["p99_latency"].value == pytest.approx(0.1 + 1.9 * 9.5 / 10)
    assert by_kind["p99_latency"].state == alerts.FIRING
    assert by_kind["no_traffic"].value == 50 and by_kind["no_traffic"].state == alerts.OK
    # Minutes 2..12 saw no request at all: no traffic fires; p99 has nothing to measure and keeps firing.
    later = {e.kind: e for e in alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(minutes=12))}
    assert later["no_traffic"].value == 0 and later["no_traffic"].state == alerts.FIRING
    assert later["p99_latency"].value is None and later["p99_latency"].state == alerts.FIRING
    assert {r.id for r in alerts.firing(engine)} == {p99.id, quiet.id}
    # A service that is down is not "quiet": no_traffic has no value then.
    health.save_snapshot(engine, deployment.id, health.Snapshot(taken_at=T0 + timedelta(minutes=13), ok=False))
    down = {e.kind: e for e in alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(minutes=13))}
    assert down["no_traffic"].value is None


def test_drift_share_and_performance_drop(engine, settings, deployment, tmp_path) -> None:
    drift = alerts.create_rule(engine, deployment_id=deployment.id, kind="drift_share", threshold=0.3)
    perf_rule = alerts.create_rule(engine, deployment_id=deployment.id, kind="performance_drop", threshold=0.1,
                                   window_minutes=60, min_samples=10)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog(url, model_name="churn", model_version=4)
    # 10 predictions of "yes"; 7 of them truly "yes": accuracy 0.7 against 0.9 in training -> drop 0.2.
    p = np.array([[0.2, 0.8]] * 10)
    log.submit(LoggedRequest(request_id="r", created_at=T0 - timedelta(minutes=30), latency_ms=1.0, key=None,
                             keys=None, inputs={"x": list(range(10))}, predictions=["yes"] * 10, proba=p,
                             classes=("no", "yes")))
    log.flush()
    log.add_feedback([{"request_id": "r", "row_index": i, "label": "yes" if i < 7 else "no"} for i in range(9)])
    log_engine = make_log_engine(url)

    out = {e.kind: e for e in alerts.evaluate(engine, deployment, settings, now=T0, drift_share=0.5,
                                              log_engine=log_engine)}
    assert out["drift_share"].state == alerts.FIRING and out["drift_share"].value == 0.5
    assert out["performance_drop"].value is None  # 9 labels < min_samples 10
    log.add_feedback([{"request_id": "r", "row_index": 9, "label": "no"}])
    log.close()
    out = {e.kind: e for e in alerts.evaluate(engine, deployment, settings, now=T0, log_engine=log_engine)}
    assert out["performance_drop"].value == pytest.approx(0.2) and out["performance_drop"].state == alerts.FIRING
    assert out["drift_share"].value is None and out["drift_share"].state == alerts.FIRING  # not given: unchanged
    out = {e.kind: e for e in alerts.evaluate(engine, deployment, settings, now=T0, drift_share=0.1,
                                              log_engine=log_engine)}
    assert out["drift_share"].state == alerts.OK and out["drift_share"].changed
    # Outside the window the labelled predictions no longer count.
    out = {e.kind: e for e in alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(hours=2),
                                              log_engine=log_engine)}
    assert out["performance_drop"].value is None
    assert [e.state for e in alerts.events(engine, rule_id=drift.id)] == ["resolved", "firing"]
    assert [e.state for e in alerts.events(engine, rule_id=perf_rule.id)] == ["firing"]


def test_webhook_failures_are_recorded_never_raised(engine, settings, deployment) -> None:
    dead = f"http://127.0.0.1:{local.free_port()}/hook"
    refusing = Receiver(status=500)
    try:
        a = alerts.create_rule(engine, deployment_id=deployment.id, kind="drift_share", threshold=0.1, webhook_url=dead)
        b = alerts.create_rule(engine, deployment_id=deployment.id, kind="drift_share", threshold=0.1,
                               webhook_url=refusing.url)
        out = {e.rule_id: e for e in alerts.evaluate(engine, deployment, settings, drift_share=0.9)}
    finally:
        refusing.close()
    assert out[a.id].state == alerts.FIRING and out[a.id].notified == "failed: ConnectError"
    assert out[b.id].notified == "failed: HTTP 500"
    assert alerts.events(engine, rule_id=a.id)[0].notified == "failed: ConnectError"


def test_rule_validation(engine, deployment) -> None:
    for url in ("file:///etc/passwd", "javascript:alert(1)", "ftp://example.com/x", "http://", "not a url"):
        with pytest.raises(BadInput, match="http"):
            alerts.create_rule(engine, deployment_id=deployment.id, kind="drift_share", threshold=0.5, webhook_url=url)
    with pytest.raises(BadInput, match="kind"):
        alerts.create_rule(engine, deployment_id=deployment.id, kind="cpu", threshold=1)
    with pytest.raises(BadInput, match="between 0 and 1"):
        alerts.create_rule(engine, deployment_id=deployment.id, kind="error_rate", threshold=5)
    with pytest.raises(BadInput, match="metric"):
        alerts.create_rule(engine, deployment_id=deployment.id, kind="performance_drop", metric="bogus")
    assert alerts.list_rules(engine) == []


def test_concurrent_evaluations_record_one_change(engine, settings, deployment, receiver) -> None:
    alerts.create_rule(engine, deployment_id=deployment.id, kind="drift_share", threshold=0.1, webhook_url=receiver.url)
    barrier = threading.Barrier(4)
    results = []

    def run() -> None:
        barrier.wait()
        results.extend(alerts.evaluate(engine, deployment, settings, drift_share=0.9))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.changed for r in results) == 1 and all(r.state == alerts.FIRING for r in results)
    assert len(alerts.events(engine, deployment_id=deployment.id)) == 1 and len(receiver.received) == 1


def test_prometheus_export_passes_promtool(engine, deployment, tmp_path) -> None:
    alerts.create_rule(engine, deployment_id=deployment.id, kind="p99_latency", threshold=0.25, window_minutes=10)
    alerts.create_rule(engine, deployment_id=deployment.id, kind="error_rate", threshold=0.02)
    alerts.create_rule(engine, deployment_id=deployment.id, kind="no_traffic", window_minutes=30)
    alerts.create_rule(engine, deployment_id=deployment.id, kind="drift_share", threshold=0.5)
    alerts.create_rule(engine, deployment_id=deployment.id, kind="refused_rate", threshold=0.1)
    text = alerts.prometheus_rules_yaml(engine, deployment)
    assert "drift_share" in text.splitlines()[1]  # named as left out, in a comment
    doc = yaml.safe_load(text)
    rules = doc["groups"][0]["rules"]
    assert [r["labels"]["shipml_rule_id"] for r in rules] == ["1", "2", "3", "5"]
    assert 'status=~"4.."' in rules[3]["expr"] and rules[3]["expr"].endswith("> 0.1")
    assert "[10m]" in rules[0]["expr"] and rules[0]["expr"].endswith("> 0.25")
    label = health.deployment_label(deployment)
    assert all(f'shipml_deployment="{label}"' in r["expr"] for r in rules)
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool (apt-get install prometheus)")
    path = tmp_path / "rules.yml"
    path.write_text(text)
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


def test_refused_rate_counts_4xx_apart_from_5xx(engine, settings, deployment) -> None:
    rule = alerts.create_rule(engine, deployment_id=deployment.id, kind="refused_rate", threshold=0.2)
    save = lambda at, ok, refused, failed: health.save_snapshot(engine, deployment.id, health.Snapshot(  # noqa: E731
        taken_at=at, process_start=1.0, requests={"200": ok, "422": refused, "500": failed}))
    save(T0, 0, 0, 0)
    save(T0 + timedelta(minutes=1), 70, 25, 5)  # a quarter refused, 5 % failed
    [first] = alerts.evaluate(engine, deployment, settings, now=T0 + timedelta(minutes=1))
    assert first.rule_id == rule.id and first.state == alerts.FIRING and first.value == pytest.approx(0.25)
    assert alerts.describe(alerts.list_rules(engine)[0]) == "refused share > 0.2 over 15 min"
    with pytest.raises(BadInput, match="between 0 and 1"):
        alerts.create_rule(engine, deployment_id=deployment.id, kind="refused_rate", threshold=2)


def test_every_kind_has_words() -> None:
    labels = [alerts.kind_label(kind) for kind in alerts.KINDS]
    assert all("_" not in label for label in labels) and len(set(labels)) == len(labels)
    assert alerts.kind_label("no_traffic") == "no traffic"
