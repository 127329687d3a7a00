"""Service health from /metrics snapshots: parsing, PromQL-style quantiles, rates, resets, the log."""
from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest

from core import deploy
from core.deploy import local
from core.errors import BadInput
from core.monitoring import health
from core.serving.predlog import LoggedRequest, PredictionLog, make_log_engine
from core.store.db import session_scope
from core.store.models import Deployment
from tests.deploy.conftest import registered, trained  # noqa: F401  (fixtures)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
INF = float("inf")


def test_histogram_quantile_matches_a_hand_computation() -> None:
    # 10 requests: 4 up to 0.1 s, 4 more up to 0.2 s, 2 more up to 0.5 s, none slower.
    buckets = [(0.1, 4.0), (0.2, 8.0), (0.5, 10.0), (INF, 10.0)]
    # p50: rank 5 lies in (0.1, 0.2] holding ranks 4..8 -> 0.1 + 0.1 * (5 - 4) / 4
    assert health.histogram_quantile(0.5, buckets) == pytest.approx(0.125)
    # p95: rank 9.5 in (0.2, 0.5] holding 8..10 -> 0.2 + 0.3 * 1.5 / 2
    assert health.histogram_quantile(0.95, buckets) == pytest.approx(0.425)
    # p25: rank 2.5 in the first bucket, which starts at 0 -> 0.1 * 2.5 / 4
    assert health.histogram_quantile(0.25, buckets) == pytest.approx(0.0625)
    # A rank in the +Inf bucket gives the highest finite bound, as PromQL does.
    assert health.histogram_quantile(0.99, [(0.1, 1.0), (INF, 5.0)]) == 0.1
    assert math.isnan(health.histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]))
    assert math.isnan(health.histogram_quantile(0.5, []))


def _page(ok: int, bad: int, buckets: dict[str, int], *, start: float = 1000.0, rows: int = 0,
          in_flight: int = 0) -> str:
    lines = [
        "# HELP shipml_requests_total HTTP requests", "# TYPE shipml_requests_total counter",
        f'shipml_requests_total{{endpoint="/predict",status="200"}} {ok}',
        f'shipml_requests_total{{endpoint="/predict",status="500"}} {bad}',
        'shipml_requests_total{endpoint="/health/ready",status="200"} 99',
        "# TYPE shipml_request_latency_seconds histogram",
        *[f'shipml_request_latency_seconds_bucket{{endpoint="/predict",le="{le}"}} {c}' for le, c in buckets.items()],
        f'shipml_request_latency_seconds_count{{endpoint="/predict"}} {ok + bad}',
        'shipml_request_latency_seconds_sum{endpoint="/predict"} 1.5',
        'shipml_request_latency_seconds_bucket{endpoint="/metrics",le="+Inf"} 1000',
        "# TYPE shipml_in_flight_requests gauge", f"shipml_in_flight_requests {in_flight}",
        "# TYPE shipml_prediction_rows_total counter", f'shipml_prediction_rows_total{{model_version="1"}} {rows}',
        "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {start}",
    ]
    return "\n".join(lines) + "\n"


def test_series_count_refusals_apart_from_errors(engine) -> None:
    refused = 'shipml_requests_total{endpoint="/predict",status="422"} %d\n'
    pages = [(T0, _page(0, 0, {"+Inf": 0}) + refused % 0),
             (T0 + timedelta(seconds=10), _page(15, 1, {"+Inf": 20}) + refused % 4)]  # 20 requests: 4 refused, 1 failed
    for at, text in pages:
        health.save_snapshot(engine, 7, health.parse_metrics(text, taken_at=at))
    [interval] = health.health_series(health.snapshots(engine, 7)).to_dict("records")
    assert interval["refused_rate"] == pytest.approx(4 / 20) and interval["error_rate"] == pytest.approx(1 / 20)
    assert health.window_stats(*health.snapshots(engine, 7)).refused_rate == pytest.approx(4 / 20)


def test_parse_metrics_reads_only_predict_traffic() -> None:
    snap = health.parse_metrics(_page(7, 1, {"0.1": 5, "0.5": 8, "+Inf": 8}, rows=20, in_flight=2), taken_at=T0)
    assert snap.requests == {"200": 7.0, "500": 1.0}  # the health probe's 99 are not traffic
    assert snap.latency_buckets == ((0.1, 5.0), (0.5, 8.0), (INF, 8.0))
    assert (snap.latency_count, snap.prediction_rows, snap.in_flight, snap.process_start) == (8.0, 20.0, 2.0, 1000.0)
    assert snap.server_errors == 1.0 and snap.requests_total == 8.0
    with pytest.raises(BadInput):
        health.parse_metrics("this is { not prometheus")


def test_series_from_stored_snapshots_rates_quantiles_and_a_restart(engine) -> None:
    pages = [
        (T0, _page(0, 0, {"0.1": 0, "0.5": 0, "+Inf": 0})),
        # +10 s: 18 OK + 2 failed; latencies: 10 <= 0.1 s, 10 in (0.1, 0.5]
        (T0 + timedelta(seconds=10), _page(18, 2, {"0.1": 10, "0.5": 20, "+Inf": 20}, rows=40, in_flight=1)),
        # +20 s: 10 more OK, all fast
        (T0 + timedelta(seconds=20), _page(28, 2, {"0.1": 20, "0.5": 30, "+Inf": 30}, rows=50)),
        # +30 s: the service restarted (new start time), and has answered 5 since
        (T0 + timedelta(seconds=30), _page(5, 0, {"0.1": 5, "0.5": 5, "+Inf": 5}, start=2000.0, rows=5)),
    ]
    for at, text in pages:
        health.save_snapshot(engine, 7, health.parse_metrics(text, taken_at=at))
    health.save_snapshot(engine, 7, health.Snapshot(taken_at=T0 + timedelta(seconds=40), ok=False, error="down"))
    health.save_snapshot(engine, 8, health.parse_metrics(pages[1][1], taken_at=T0))  # another deployment

    stored = health.snapshots(engine, 7)
    assert [s.taken_at for s in stored] == [at for at, _ in pages] + [T0 + timedelta(seconds=40)]
    assert stored[1].latency_buckets[-1] == (INF, 20.0)  # +Inf survives the JSON round trip
    series = health.health_series(stored)
    assert list(series.columns) == list(health.SERIES_COLUMNS) and len(series) == 4
    first, second, restart, down = series.to_dict("records")
    assert first["requests_per_s"] == pytest.approx(2.0) and first["error_rate"] == pytest.approx(0.1)
    assert first["p50_s"] == pytest.approx(0.1)  # rank 10 of 20 ends the first bucket exactly
    assert first["p99_s"] == pytest.approx(0.1 + 0.4 * (19.8 - 10) / 10)
    assert first["rows_per_s"] == pytest.approx(4.0) and first["in_flight"] == 1.0
    assert second["requests_per_s"] == pytest.approx(1.0) and second["error_rate"] == 0.0
    assert second["p99_s"] == pytest.approx(0.1 * 9.9 / 10)  # only the bucket increases count
    # After a restart the counters start over: 5 requests in 10 s, not a negative rate.
    assert restart["requests_per_s"] == pytest.approx(0.5) and restart["rows_per_s"] == pytest.approx(0.5)
    assert math.isnan(down["requests_per_s"]) and math.isnan(down["in_flight"])

    window = health.snapshots(engine, 7, since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=25))
    assert len(window) == 2
    assert health.prune_snapshots(engine, older_than=T0 + timedelta(seconds=15)) == 3
    assert len(health.snapshots(engine, 7)) == 3


def test_collect_a_real_local_deployment(engine, settings, registered, trained) -> None:
    row = deploy.deploy(engine, model="pen guins@champion", target="local", settings=settings)
    try:
        first = health.collect(engine, row, settings)
        assert first.ok and first.model["model"] == "pen guins" and first.model["version"] == "1"
        rows = json.loads(pd.read_parquet(trained / "reference.parquet").head(4).to_json(orient="records"))
        with httpx.Client(base_url=row.endpoint, timeout=30) as client:
            for _ in range(6):
                assert client.post("/predict", json={"rows": rows}).status_code == 200
            assert client.post("/predict", json={"rows": [{"nonsense": 1}]}).status_code == 422
        now = health.current_health(engine, row, settings, min_window_s=0)
        assert now.up and now.requests == 7 and now.error_rate == 0.0  # a 422 is the caller's error...
        assert now.refused_rate == pytest.approx(1 / 7)  # ...counted as refused
        assert now.requests_per_s > 0 and 0 < now.p50_s <= now.p99_s < 30
        assert now.rows_per_s == pytest.approx(24 / now.window_s)
        series = health.service_health(engine, row, settings, since=first.taken_at - timedelta(seconds=1))
        assert len(series) == 1 and series["requests_per_s"].iloc[0] == pytest.approx(now.requests_per_s)
        # By default "now" skips snapshots younger than 10 s: here both are, so it covers the whole
        # life of the service (the same 7 requests), not the empty second since the last scrape.
        again = health.current_health(engine, row, settings)
        assert again.requests == 7 and again.p99_s is not None and again.window_s > now.window_s

        # The prediction log of the same service: volume and distribution over time.
        log_engine = health.log_engine_for(settings)
        volume = health.prediction_volume(log_engine, model_name="pen guins", version=1, freq="1h")
        deadline = datetime.now(timezone.utc) + timedelta(seconds=5)
        while volume["rows"].sum() < 24 and datetime.now(timezone.utc) < deadline:  # the log writes in batches
            volume = health.prediction_volume(log_engine, model_name="pen guins", version=1, freq="1h")
        assert volume["requests"].sum() == 6 and volume["rows"].sum() == 24
        dist = health.prediction_distribution(log_engine, model_name="pen guins", version=1, freq="1h")
        assert dist["rows"].sum() == 24 and dist.groupby("time")["share"].sum().round(9).eq(1).all()
        assert set(dist["label"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    finally:
        deploy.stop_deployment(engine, row.id, settings=settings)
    down = health.collect(engine, deploy.get_deployment(engine, row.id), settings)
    assert not down.ok and down.error


def test_scrape_never_raises_for_a_dead_or_broken_service() -> None:
    port = local.free_port()
    snap = health.scrape(f"http://127.0.0.1:{port}", timeout_s=1)
    assert not snap.ok and "unreachable" in snap.error


def test_prediction_distribution_for_regression(tmp_path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", model_name="m", model_version=2)
    for hour, values in ((0, [1.0, 2.0, 3.0]), (1, [10.0, 20.0])):
        log.submit(LoggedRequest(request_id=f"r{hour}", created_at=T0 + timedelta(hours=hour), latency_ms=1.0,
                                 key=None, keys=None, inputs={"x": [0] * len(values)}, predictions=values,
                                 proba=None, classes=None))
    log.close()
    engine = make_log_engine(f"sqlite:///{tmp_path / 'log.db'}")
    dist = health.prediction_distribution(engine, model_name="m", freq="1h")
    assert dist["rows"].tolist() == [3, 2] and dist["mean"].tolist() == [2.0, 15.0]
    assert dist["p50"].tolist() == [2.0, 15.0]
    rows = health.logged_predictions(engine, model_name="m", inputs=True)
    assert rows["prediction"].tolist() == [1.0, 2.0, 3.0, 10.0, 20.0] and rows["x"].tolist() == [0] * 5


def test_scheduler_collects_running_deployments_and_survives_errors(engine, settings) -> None:
    # A RUNNING deployment whose service is gone: every round stores a failed scrape, no exception.
    row = Deployment(model_name="gone", version=1, target="local", status=deploy.RUNNING,
                     endpoint=f"http://127.0.0.1:{local.free_port()}")
    with session_scope(engine) as session:
        session.add(row)
    scheduler = health.Scheduler(engine, settings, interval_s=0.2, evaluate_alerts=True).start()
    try:
        done = threading.Event()
        for _ in range(100):
            if scheduler.rounds >= 2:
                done.set()
                break
            done.wait(0.1)
        assert done.is_set() and scheduler.running
    finally:
        scheduler.stop()
    assert not scheduler.running
    stored = health.snapshots(engine, row.id)
    assert len(stored) >= 2 and not any(s.ok for s in stored)
    with pytest.raises(BadInput):
        health.Scheduler(engine, settings, interval_s=0)
