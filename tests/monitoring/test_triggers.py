"""Automatic retraining triggers: each starts one retrain with its reason when enabled, none when off.

Real models (logistic regression, one trial) on the synthetic churn tables of test_retrain, a real
prediction log with real feedback, and for the scheduler a real local deployment served real
/predict traffic with shifted inputs.
"""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import httpx
import pytest
import pandas as pd
from sqlmodel import select

from core import deploy, registry
from core.data.ingest import read_bytes
from core.errors import BadInput
from core.datasets import import_table
from core.monitoring import alerts, health
from core.monitoring import triggers as tr
from core.monitoring.alerts import Evaluation
from core.serving.predlog import LoggedRequest, PredictionLog
from core.store.db import session_scope
from core.store.models import Deployment, RetrainRun
from tests.deploy.conftest import registered, trained  # noqa: F401  (fixtures)
from tests.monitoring.test_retrain import FEATURES, MODEL, make_frame, train_champion


def _runs(engine, model: str = MODEL) -> list[RetrainRun]:
    with session_scope(engine) as session:
        return list(session.exec(select(RetrainRun).where(RetrainRun.model_name == model).order_by(RetrainRun.id)))


def _deployment(engine, target: str = "local") -> Deployment:
    row = Deployment(model_name=MODEL, version=1, target=target, status=deploy.RUNNING, endpoint="http://127.0.0.1:9")
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        return row


def _log_traffic(settings, frame: pd.DataFrame, *, labelled: bool, url: str | None = None) -> None:
    """Log ``frame``'s rows as one /predict request each (keyed), and their labels as feedback, in
    the log at ``url`` (default: the one local deployments share)."""
    log = PredictionLog(url or settings.serve_log_db_url, model_name=MODEL, model_version=1)
    now = datetime.now(timezone.utc)
    for i, row in frame.iterrows():
        log.submit(LoggedRequest(request_id=f"r{i}", created_at=now, latency_ms=1.0, key=f"k{i}", keys=None,
                                 inputs={c: [row[c]] for c in FEATURES}, predictions=["no"], proba=None,
                                 classes=None))
    if labelled:
        log.add_feedback([{"key": f"k{i}", "label": label} for i, label in frame["churned"].items()])
    log.close()


def _fired(rule, deployment_id: int, kind: str) -> Evaluation:
    return Evaluation(rule.id, deployment_id, kind, alerts.FIRING, 0.9, rule.threshold, True, "test firing")


def test_alert_triggers_retrain_on_the_labelled_window_once(engine, settings) -> None:
    train_champion(engine, settings, make_frame(200, seed=1))
    dep = _deployment(engine)
    drift = alerts.create_rule(engine, deployment_id=dep.id, kind="drift_share", threshold=0.3, window_minutes=60)
    perf = alerts.create_rule(engine, deployment_id=dep.id, kind="performance_drop", threshold=0.1)
    _log_traffic(settings, make_frame(80, seed=5), labelled=True)

    # Off by default: nothing happens, nothing is recorded.
    assert tr.on_alert_fired(engine, _fired(drift, dep.id, "drift_share"), settings, inline=True).action == "ignored"
    # A resolved event or an unrelated kind is not a trigger at all.
    resolved = Evaluation(drift.id, dep.id, "drift_share", alerts.OK, 0.1, 0.3, True, "")
    assert tr.on_alert_fired(engine, resolved, settings, inline=True) is None
    assert _runs(engine) == []

    tr.set_triggers(engine, model_name=MODEL, on_drift_alert=True, max_trials=1, budget_s=20)
    out = tr.on_alert_fired(engine, _fired(drift, dep.id, "drift_share"), settings, inline=True)
    assert out.action == "started", out.message
    runs = _runs(engine)
    assert len(runs) == 1 and runs[0].trigger == "drift_alert" and runs[0].status == "DONE"
    assert runs[0].new_rows == 80 and runs[0].decision in ("promoted", "kept_as_challenger")
    assert f"alert rule {drift.id}" in runs[0].note

    # The cool-down: a second firing right away starts nothing; the performance trigger is still off.
    again = tr.on_alert_fired(engine, _fired(drift, dep.id, "drift_share"), settings, inline=True)
    assert again.action == "ignored" and "cool-down" in again.message
    assert tr.on_alert_fired(engine, _fired(perf, dep.id, "performance_drop"), settings,
                             inline=True).action == "ignored"
    assert len(_runs(engine)) == 1

    # Enabled, no cool-down, but a retrain already RUNNING: still none.
    tr.set_triggers(engine, model_name=MODEL, on_performance_alert=True, cooldown_s=0)
    with session_scope(engine) as session:
        session.add(RetrainRun(model_name=MODEL, trigger="button", status="RUNNING"))
    busy = tr.on_alert_fired(engine, _fired(perf, dep.id, "performance_drop"), settings, inline=True)
    assert busy.action == "ignored" and "already running" in busy.message
    with session_scope(engine) as session:
        for row in session.exec(select(RetrainRun).where(RetrainRun.status == "RUNNING")):
            row.status = "FAILED"
            session.add(row)
    done = tr.on_alert_fired(engine, _fired(perf, dep.id, "performance_drop"), settings, inline=True)
    assert done.action == "started" and _runs(engine)[-1].trigger == "performance_alert"


def test_unlabelled_drift_window_is_never_training_data(engine, settings) -> None:
    train_champion(engine, settings, make_frame(200, seed=1))
    dep = _deployment(engine)
    rule = alerts.create_rule(engine, deployment_id=dep.id, kind="drift_share", threshold=0.3, window_minutes=60)
    _log_traffic(settings, make_frame(80, seed=5), labelled=False)
    tr.set_triggers(engine, model_name=MODEL, on_drift_alert=True, max_trials=1)
    out = tr.on_alert_fired(engine, _fired(rule, dep.id, "drift_share"), settings, inline=True)
    assert out.action == tr.SKIPPED
    runs = _runs(engine)
    assert len(runs) == 1 and runs[0].decision == tr.SKIPPED and runs[0].challenger_version is None
    assert "no labelled predictions" in runs[0].message and runs[0].trigger == "drift_alert"
    assert [v.version for v in registry.list_versions(engine, name=MODEL)] == [1]  # nothing trained


def test_a_docker_deployments_alert_reads_its_own_log(engine, settings) -> None:
    train_champion(engine, settings, make_frame(200, seed=1))
    dep = _deployment(engine, target="docker")
    rule = alerts.create_rule(engine, deployment_id=dep.id, kind="performance_drop", threshold=0.1)
    # Labelled traffic only in the container's own log; the shared log has the same model unlabelled.
    _log_traffic(settings, make_frame(60, seed=5), labelled=True, url=health.log_url_for(settings, dep))
    _log_traffic(settings, make_frame(30, seed=6), labelled=False)
    assert health.log_url_for(settings, dep) != settings.serve_log_db_url
    tr.set_triggers(engine, model_name=MODEL, on_performance_alert=True, max_trials=1, budget_s=20)
    out = tr.on_alert_fired(engine, _fired(rule, dep.id, "performance_drop"), settings, inline=True)
    assert out.action == "started", out.message
    [run] = _runs(engine)
    assert run.trigger == "performance_alert" and run.new_rows == 60


def test_new_data_upload_and_watched_folder(engine, settings, tmp_path) -> None:
    train_champion(engine, settings, make_frame(200, seed=1))  # project "shop"

    def upload(frame: pd.DataFrame, name: str):
        loaded = read_bytes(name, frame.to_csv(index=False).encode(), settings=settings)
        return import_table(engine, loaded, project="shop", name=name, settings=settings)[0]

    # Off: an upload with the target column starts nothing.
    april = upload(make_frame(100, seed=7), "april.csv")
    assert _runs(engine) == []

    tr.set_triggers(engine, model_name=MODEL, on_new_data=True, max_trials=1, budget_s=20)
    out = tr.on_new_data(engine, april, settings, inline=True)
    assert [o.action for o in out] == ["started"]
    runs = _runs(engine)
    assert len(runs) == 1 and runs[0].trigger == "new_data" and runs[0].new_rows == 100 and runs[0].status == "DONE"

    # Without the target column: nothing (the reason is returned and logged).
    unlabelled = make_frame(50, seed=8).drop(columns=["churned"])
    assert len(_runs(engine)) == 1
    loaded = read_bytes("may.csv", unlabelled.to_csv(index=False).encode(), settings=settings)
    may, _ = import_table(engine, loaded, project="shop", name="may.csv", settings=settings)
    skipped = tr.on_new_data(engine, may, settings, inline=True)
    assert [o.action for o in skipped] == ["ignored"] and "no target column" in skipped[0].message
    assert len(_runs(engine)) == 1
    # Another project's upload is not this model's data.
    loaded = read_bytes("other.csv", make_frame(30, seed=9).to_csv(index=False).encode(), settings=settings)
    other, _ = import_table(engine, loaded, project="elsewhere", name="other.csv", settings=settings)
    assert tr.on_new_data(engine, other, settings, inline=True) == []

    # The real upload path submits a detached retrain (python -m core retrain), recorded like any other.
    upload(make_frame(120, seed=11), "june.csv")
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        runs = _runs(engine)
        if len(runs) == 2 and runs[-1].status != "RUNNING":
            break
        time.sleep(1)
    assert len(runs) == 2 and runs[-1].trigger == "new_data" and runs[-1].status == "DONE", runs[-1].message
    assert runs[-1].new_rows == 120

    # A watched folder, scanned by run_watchers: one retrain per new file, none on the next scan.
    (tmp_path / "drop").mkdir()
    tr.set_triggers(engine, model_name=MODEL, on_new_data=False, watch_folder=tmp_path / "drop")
    make_frame(90, seed=12).to_csv(tmp_path / "drop" / "july.csv", index=False)
    past = time.time() - 60  # a finished copy, not one being written
    os.utime(tmp_path / "drop" / "july.csv", (past, past))
    results = tr.run_watchers(engine, settings)
    assert [r.status for r in results[MODEL]] == ["retrained"]
    assert tr.run_watchers(engine, settings) == {MODEL: []}
    runs = _runs(engine)
    assert len(runs) == 3 and runs[-1].trigger == "new_data" and runs[-1].new_rows == 90


def test_scheduler_feeds_drift_share_and_fires_the_trigger(engine, settings, registered, trained) -> None:
    name = "pen guins"
    row = deploy.deploy(engine, model=f"{name}@champion", target="local", settings=settings)
    try:
        rule = alerts.create_rule(engine, deployment_id=row.id, kind="drift_share", threshold=0.3, window_minutes=60)
        tr.set_triggers(engine, model_name=name, on_drift_alert=True)
        reference = pd.read_parquet(trained / "reference.parquet").drop(columns=["species"], errors="ignore")
        shifted = reference.head(150).copy()
        for column in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"):
            shifted[column] = shifted[column] * 1.6
        rows = json.loads(shifted.to_json(orient="records"))
        with httpx.Client(base_url=row.endpoint, timeout=30) as client:
            for start in range(0, len(rows), 50):
                assert client.post("/predict", json={"rows": rows[start:start + 50]}).status_code == 200
        log_engine = health.log_engine_for(settings)
        deadline = time.monotonic() + 10
        while len(health.logged_predictions(log_engine, model_name=name)) < 150 and time.monotonic() < deadline:
            time.sleep(0.2)  # the log writes in batches
        log_engine.dispose()

        scheduler = health.Scheduler(engine, settings, interval_s=60)
        scheduler.run_once()
        state = alerts.list_rules(engine, deployment_id=row.id)[0]
        assert state.state == alerts.FIRING and state.last_value >= 0.5, state.last_value
        fired = alerts.events(engine, rule_id=rule.id)
        assert [e.state for e in fired] == ["firing"]
        # The trigger ran: no feedback came, so the run records why nothing was trained.
        runs = _runs(engine, name)
        assert len(runs) == 1 and runs[0].trigger == "drift_alert" and runs[0].decision == tr.SKIPPED
        scheduler.run_once()  # still firing: no new event, no new run
        assert len(_runs(engine, name)) == 1 and len(alerts.events(engine, rule_id=rule.id)) == 1
    finally:
        deploy.stop_deployment(engine, row.id, settings=settings)


def test_a_watched_folder_is_an_existing_folder_given_by_its_full_path(engine, tmp_path) -> None:
    for bad, why in (("", "full path"), ("  ", "full path"), ("drop", "full path"), (str(tmp_path / "missing"),
                     "does not exist"), (str(tmp_path / "a\x00b"), "not valid")):
        with pytest.raises(BadInput, match=why):
            tr.set_triggers(engine, model_name=MODEL, watch_folder=bad)
    (tmp_path / "file.csv").write_text("a\n1\n")
    with pytest.raises(BadInput, match="not a folder"):
        tr.set_triggers(engine, model_name=MODEL, watch_folder=tmp_path / "file.csv")
    assert tr.get_triggers(engine) == []
    assert tr.describe(None) == "every automatic trigger is off"
    row = tr.set_triggers(engine, model_name=MODEL, on_performance_alert=True, watch_folder=str(tmp_path),
                          cooldown_s=600)
    assert row.watch_folder == str(tmp_path.resolve())
    assert tr.describe(row) == (f"retrains on a firing performance alert, new files in {tmp_path.resolve()}; "
                                "at most one alert-started retrain per 10 min")
