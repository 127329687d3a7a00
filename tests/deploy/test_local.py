"""The local target with real service processes: deploy, predict, stop, restore after a restart."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from core import deploy, registry
from core.deploy import local
from core.deploy.source import ModelSource, check_folder, folder_identity, materialise
from core.errors import BadInput
from core.serving_io import predict_frame
from tests.deploy.promql import family, metric_names

pytestmark = pytest.mark.xdist_group("deploy-local")
TOKEN = "a-long-enough-token-42"


@pytest.fixture(autouse=True)
def _stop_everything(engine, settings):
    """No test leaves a service running, whatever happened."""
    yield
    for row in deploy.list_deployments(engine):
        local.stop(row.pid, row.port, grace_s=2)


def _rows(model_dir: Path, n: int = 3) -> pd.DataFrame:
    return pd.read_parquet(model_dir / "reference.parquet").head(n)


def _predict(endpoint: str, frame: pd.DataFrame, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"rows": json.loads(frame.to_json(orient="records"))}
    return httpx.post(f"{endpoint}/predict", json=body, headers=headers, timeout=30)


def _wait_dead(pid: int, port: int) -> None:
    deadline = time.monotonic() + 10
    while local.alive(pid, port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not local.alive(pid, port)


def test_deploy_from_the_registry_predicts_like_offline_and_stops(engine, settings, registered, trained) -> None:
    row = deploy.deploy(engine, model="pen guins@champion", target="local", settings=settings)
    assert row.status == deploy.RUNNING and row.version_id == registered.id and not row.auth
    assert row.endpoint == f"http://127.0.0.1:{row.port}" and local.alive(row.pid, row.port)
    assert deploy.probe(row) == "up"
    # It serves its own export of the version, never the registry's files directly.
    assert Path(row.model_dir) == deploy.deployment_dir(row.id, settings=settings) / "model"

    frame = _rows(trained, 5)
    answer = _predict(row.endpoint, frame)
    assert answer.status_code == 200, answer.text
    pipeline, meta = registry.load_exported(trained)
    offline = predict_frame(pipeline, frame, threshold=meta["metrics"].get("decision_threshold"))
    body = answer.json()
    assert body["model"] == {"name": "pen guins", "version": 1}
    assert [p["prediction"] for p in body["predictions"]] == list(offline["prediction"])
    for p, (_, expected) in zip(body["predictions"], offline.iterrows()):
        for cls, value in p["probabilities"].items():
            assert value == pytest.approx(expected[f"proba_{cls}"], abs=1e-9)

    # The bundle's rules and dashboard query metrics the live /metrics page really declares.
    page = httpx.get(f"{row.endpoint}/metrics", timeout=10).text
    declared = dict(re.findall(r"^# TYPE (\S+) (\S+)$", page, flags=re.M))
    assert {k: declared.get(k) for k in deploy.monitoring.METRICS} == deploy.monitoring.METRICS
    bundle = Path(row.manifest_dir) / "monitoring"
    scrape = yaml.safe_load((bundle / "prometheus.yml").read_text())["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == [f"127.0.0.1:{row.port}"]
    rules = yaml.safe_load((bundle / "alerts.yml").read_text())
    used = {family(n, {"shipml_request_latency_seconds", "shipml_prediction_value"})
            for g in rules["groups"] for r in g["rules"] for n in metric_names(r["expr"])}
    assert used - {"up"} <= set(declared)

    stopped = deploy.stop_deployment(engine, row.id, settings=settings)
    assert stopped.status == deploy.STOPPED and stopped.pid is None
    _wait_dead(row.pid, row.port)
    assert deploy.probe(stopped) == "-"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{row.endpoint}/health/live", timeout=2)
    assert deploy.stop_deployment(engine, row.id, settings=settings).status == deploy.STOPPED  # idempotent
    assert "ready" in deploy.deployment_logs(stopped)


def test_a_killed_service_is_restarted_on_its_port_with_its_token(engine, settings, trained) -> None:
    row = deploy.deploy(engine, model=str(trained), target="local", settings=settings, token=TOKEN)
    assert row.auth and row.version_id is None and Path(row.model_dir) == trained  # a folder serves as is
    assert _predict(row.endpoint, _rows(trained)).status_code == 401
    assert _predict(row.endpoint, _rows(trained), TOKEN).status_code == 200
    token_file = Path(row.manifest_dir) / local.TOKEN_FILE
    assert token_file.stat().st_mode & 0o077 == 0  # readable by this user only
    assert TOKEN not in json.dumps(deploy.get_deployment(engine, row.id).model_dump(mode="json"))

    assert deploy.restore_local_deployments(engine, settings=settings) == []  # alive: left alone
    os.kill(row.pid, signal.SIGKILL)  # a crash, or the machine rebooted
    _wait_dead(row.pid, row.port)
    outcomes = deploy.restore_local_deployments(engine, settings=settings)
    assert outcomes == [deploy.Restored(row.id, deploy.RUNNING)]
    again = deploy.get_deployment(engine, row.id)
    assert again.status == deploy.RUNNING and again.port == row.port and again.pid != row.pid
    assert _predict(again.endpoint, _rows(trained)).status_code == 401
    assert _predict(again.endpoint, _rows(trained), TOKEN).status_code == 200

    # Killed again, and meanwhile another program took its port: FAILED with the reason.
    os.kill(again.pid, signal.SIGKILL)
    _wait_dead(again.pid, again.port)
    assert local.wait_port_free(row.port)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like any server
        squatter.bind(("127.0.0.1", row.port))
        squatter.listen()
        (outcome,) = deploy.restore_local_deployments(engine, settings=settings)
    assert outcome.status == deploy.FAILED and f"port {row.port} is now used" in outcome.error
    failed = deploy.get_deployment(engine, row.id)
    assert failed.status == deploy.FAILED and failed.error == outcome.error
    assert deploy.restore_local_deployments(engine, settings=settings) == []  # FAILED stays FAILED


def test_a_model_changed_since_deploying_is_not_restarted(engine, settings, registered) -> None:
    row = deploy.deploy(engine, model="pen guins@1", target="local", settings=settings)
    os.kill(row.pid, signal.SIGKILL)
    _wait_dead(row.pid, row.port)
    artifact = Path(row.model_dir) / "model.joblib"
    artifact.chmod(0o644)
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    (outcome,) = deploy.restore_local_deployments(engine, settings=settings)
    assert outcome.status == deploy.FAILED and "does not match" in outcome.error


def test_bad_requests_start_nothing(engine, settings, registered, trained, tmp_path) -> None:
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for file in ("model.json", "reference.parquet"):
        (tampered / file).write_bytes((trained / file).read_bytes())
    (tampered / "model.joblib").write_bytes((trained / "model.joblib").read_bytes() + b"x")
    with pytest.raises(BadInput, match="does not match"):
        deploy.deploy(engine, model=str(tampered), target="local", settings=settings)
    # Showing what a folder holds reads model.json only; serving it checks the model file.
    assert folder_identity(tampered).version == check_folder(trained).version
    # A copy for a container is checked before it takes its place: nothing is left behind.
    out = tmp_path / "data" / "deployed"
    out.parent.mkdir()
    with pytest.raises(BadInput, match="does not match"):
        materialise(ModelSource(model_name="x", version=1, model_dir=tampered, registry_version=None),
                    settings=settings, out_dir=out, copy=True)
    assert list(out.parent.iterdir()) == []
    good = ModelSource(model_name="x", version=1, model_dir=trained, registry_version=None)
    assert check_folder(materialise(good, settings=settings, out_dir=out, copy=True)).model_dir == out
    with pytest.raises(BadInput, match="model.json"):
        deploy.deploy(engine, model=str(tmp_path), target="local", settings=settings)
    with pytest.raises(BadInput, match="no such model folder"):
        deploy.deploy(engine, model=str(tmp_path / "nope"), target="local", settings=settings)
    with pytest.raises(BadInput, match="no ready version|no version"):
        deploy.deploy(engine, model="unknown@1", target="local", settings=settings)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(BadInput, match="already in use"):
            deploy.deploy(engine, model="pen guins@1", target="local", settings=settings,
                          port=busy.getsockname()[1])
    with pytest.raises(BadInput, match="1024 to 65535"):
        deploy.deploy(engine, model="pen guins@1", target="local", settings=settings, port=80)
    with pytest.raises(BadInput, match="unknown target"):
        deploy.deploy(engine, model="pen guins@1", target="mainframe", settings=settings)
    assert deploy.list_deployments(engine) == []


def test_a_service_that_never_gets_ready_fails_cleanly(engine, settings, registered, trained) -> None:
    # A model file that is not a Pipeline passes the hash check but cannot be served.
    import hashlib

    broken = settings.workspace / "broken"
    broken.mkdir(parents=True)
    (broken / "model.joblib").write_bytes(b"not a pickle")
    info = json.loads((trained / "model.json").read_text())
    info["sha256"] = hashlib.sha256(b"not a pickle").hexdigest()
    (broken / "model.json").write_text(json.dumps(info))
    (broken / "reference.parquet").write_bytes((trained / "reference.parquet").read_bytes())
    with pytest.raises(BadInput, match=r"deployment \d+ failed: the service (stopped during start-up|was not ready)"):
        deploy.deploy(engine, model=str(broken), target="local", settings=settings, ready_timeout_s=5)
    (row,) = deploy.list_deployments(engine)
    assert row.status == deploy.FAILED and row.pid is None
    assert "Traceback" not in row.error and str(broken) not in row.error


def test_another_service_answering_on_the_port_is_not_taken_for_ours(settings, trained, tmp_path) -> None:
    # Two starts that got the same free port: the second cannot bind, and the first one's
    # "ready" must not be read as the second's.
    port = local.free_port()
    first = local.spawn(trained, port, folder=tmp_path / "first", settings=settings, token=None)
    try:
        local.wait_ready(first, port)
        second = local.spawn(trained, port, folder=tmp_path / "second", settings=settings, token=None)
        with pytest.raises(local.StartFailed, match="stopped during start-up"):
            local.wait_ready(second, port, timeout_s=60)
        assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).json()["pid"] == first
    finally:
        local.stop(first, port)


def test_a_start_interrupted_by_an_app_crash_is_marked_failed(engine, settings) -> None:
    from datetime import timedelta

    from core.deploy import records
    from core.store.db import session_scope
    from core.store.models import Deployment, utcnow

    row = records.create_deployment(engine, model_name="m", version=1, version_id=None, target="local", auth=False)
    fresh = records.create_deployment(engine, model_name="m", version=2, version_id=None, target="local", auth=False)
    with session_scope(engine) as session:
        old = session.get(Deployment, row.id)
        old.updated_at, old.pid = utcnow() - timedelta(hours=1), 999_999_999
        session.add(old)
    outcomes = deploy.restore_local_deployments(engine, settings=settings)
    assert outcomes == [deploy.Restored(row.id, deploy.FAILED, "interrupted during start-up")]
    assert deploy.get_deployment(engine, fresh.id).status == deploy.STARTING  # may still be starting
