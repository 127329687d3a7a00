"""A/B splits and shadow mode in the service: sticky key hashing, the 90/10 split of a real
process across a restart, shadow predictions logged off the response path, routing reloads."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time

import httpx
import numpy as np
import pytest
from scipy import stats

from core.config import Settings
from core.serving import metrics
from core.serving.predlog import make_log_engine, read_rows
from core.serving.routing import RoutingSpec, assign, key_position, write_spec
from core.store.db import make_engine
from core.data.profile import Task
from tests.serving.conftest import _train, records

pytestmark = pytest.mark.xdist_group("serving-server")


@pytest.fixture(scope="session")
def pair(tmp_path_factory):
    """Two versions of one churn model: v1 LightGBM (champion), v2 logistic regression."""
    base = tmp_path_factory.mktemp("ab-models")
    settings = Settings(workspace=base / "workspace")
    engine = make_engine(settings.db_url)
    try:
        a = _train(settings, engine, name="churn", sample="mlc_churn.csv", target="churn", task=Task.BINARY,
                   family="lightgbm", nrows=1500)
        moved = a.dir.with_name("churn-v1")
        a.dir.rename(moved)  # _train exports every version of a name to the same folder
        a = dataclasses.replace(a, dir=moved)
        b = _train(settings, engine, name="churn", sample="mlc_churn.csv", target="churn", task=Task.BINARY,
                   family="logistic_regression", nrows=1500)
    finally:
        engine.dispose()
    return a, b


def test_key_positions_are_uniform_and_stable() -> None:
    # The documented rule, so a key's variant never changes between releases or replicas.
    import hashlib
    expected = int.from_bytes(hashlib.sha256(b"customer-42").digest()[:8], "big") / 2**64
    assert key_position("customer-42") == expected
    positions = np.array([key_position(f"k{i}") for i in range(20_000)])
    assert stats.kstest(positions, "uniform").pvalue > 0.001
    # Raising the weight only moves keys to the challenger, never back.
    keys = [f"user-{i}" for i in range(2000)]
    at10 = {k for k in keys if assign(k, 0.1) == "challenger"}
    at30 = {k for k in keys if assign(k, 0.3) == "challenger"}
    assert at10 < at30
    assert all(assign(k, 0.0) == "champion" for k in keys) and all(assign(k, 1.0) == "challenger" for k in keys)


def test_routing_spec_is_checked() -> None:
    from core.errors import BadInput

    with pytest.raises(BadInput):
        RoutingSpec(champion="a", weight_b=0.2)  # a weight without a challenger
    with pytest.raises(BadInput):
        RoutingSpec(champion="a", challenger="b", weight_b=1.5)


async def _send(url: str, keys: list[str | None], row: dict, concurrency: int = 16) -> list[tuple[str | None, int, str]]:
    """Single-row requests, ``concurrency`` at a time: (key, version, variant) per request."""
    out: list = [None] * len(keys)
    queue = list(enumerate(keys))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def worker() -> None:
            while queue:
                i, key = queue.pop()
                body = {"rows": [row], **({"key": key} if key is not None else {})}
                r = await client.post("/predict", json=body)
                assert r.status_code == 200, r.text
                version = r.json()["model"]["version"]
                assert str(version) == r.headers["x-model-version"]
                out[i] = (key, version, r.headers["x-model-variant"])
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def _run(coro):
    """asyncio.run on a thread of its own (a session event loop may exist in this worker)."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(coro)))
    thread.start()
    thread.join()
    return box[0]


def test_a_10000_request_90_10_split_is_binomial_and_sticky_across_a_restart(pair, tmp_path) -> None:
    a, b = pair
    routing = tmp_path / "routing.json"
    write_spec(routing, RoutingSpec(champion=a.dir, challenger=b.dir, weight_b=0.1))
    row = records(a.rows.head(1))[0]
    keys = [f"customer-{i}" for i in range(10_000)]
    log_url = f"sqlite:///{tmp_path / 'log.db'}"

    first = _start_with_routing(a.dir, routing, tmp_path, log_url)
    try:
        got = _run(_send(first.url, keys, row))
    finally:
        assert first.terminate() in (0, -15)
    to_b = sum(1 for _, _, variant in got if variant == "challenger")
    low, high = stats.binom.interval(0.999, len(keys), 0.1)
    assert low <= to_b <= high, to_b
    assert {(variant, version) for _, version, variant in got} == {("champion", 1), ("challenger", 2)}
    # exactly the hash's decision, key by key
    assert all(variant == assign(key, 0.1) for key, _, variant in got)

    second = _start_with_routing(a.dir, routing, tmp_path, log_url)
    try:
        sample = keys[::10]  # 1,000 of the same keys after the restart
        again = _run(_send(second.url, sample, row))
        # requests without a key are assigned at random (by request id), about 10 % to the challenger
        unkeyed = _run(_send(second.url, [None] * 400, row))
    finally:
        assert second.terminate() in (0, -15)
    before = {key: variant for key, _, variant in got}
    assert all(before[key] == variant for key, _, variant in again)
    n_b = sum(1 for _, _, v in unkeyed if v == "challenger")
    # Random (unlike the keyed split above), so a 99.9 % interval failed one run in a thousand (a
    # clean-clone CI run saw 21 of 400); one in a million still tells 10 % from 0 %, 50 % or 100 %.
    low, high = stats.binom.interval(1 - 1e-6, 400, 0.1)
    assert low <= n_b <= high, n_b

    # the log records each request's variant and version
    logged = read_rows(make_log_engine(log_url))
    assert len(logged) == 10_000 + 1_000 + 400
    assert {(r["variant"], r["model_version"]) for r in logged} == {("champion", 1), ("challenger", 2)}
    by_key = {r["key"]: r["variant"] for r in logged if r["key"] is not None}
    assert by_key == before


class _RoutedServer:
    def __init__(self, proc, url, log, fh) -> None:
        self.proc, self.url, self.log, self._fh = proc, url, log, fh

    def terminate(self) -> int:
        import signal

        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self._fh.close()


def _start_with_routing(model_dir, routing, tmp_path, log_url) -> _RoutedServer:
    import os
    import subprocess
    import sys

    from tests.serving.conftest import ROOT
    from tests.services import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / f"routed-{port}.log"
    fh = log.open("w")
    env = {**os.environ, "SHIPML_WORKSPACE": str(tmp_path / "workspace"), "OMP_NUM_THREADS": "1"}
    env.pop("SHIPML_SERVE_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "core.serving", "--model", str(model_dir), "--port", str(port),
                             "--log-url", log_url, "--routing", str(routing)],
                            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return _RoutedServer(proc, url, log, fh)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(log.read_text())


def _offline(served, frame):
    from core import registry
    from core.serving_io import predict_frame

    pipeline, meta = registry.load_exported(served.dir)
    return predict_frame(pipeline, frame, threshold=meta["metrics"].get("decision_threshold"))


def test_shadow_mode_answers_from_the_champion_and_logs_the_challenger(pair, tmp_path) -> None:
    a, b = pair
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    frame = a.rows.head(30).reset_index(drop=True)
    from core.serving.app import create_app
    from fastapi.testclient import TestClient

    app = create_app(a.dir, Settings(workspace=tmp_path / "workspace"), log_url=log_url,
                     challenger_dir=b.dir, shadow=True)
    with TestClient(app) as client:
        assert app.state.service.wait_ready(60)
        ids = []
        for i in range(30):
            r = client.post("/predict", json={"rows": records(frame.iloc[[i]]), "key": f"k{i}"})
            assert r.status_code == 200
            assert r.json()["model"]["version"] == 1 and r.headers["x-model-version"] == "1"
            assert r.headers["x-model-variant"] == "champion"
            ids.append(r.headers["x-request-id"])
        assert client.get("/admin/routing").json()["mode"] == "shadow"
        deadline = time.monotonic() + 10
        while app.state.service.shadow_pending and time.monotonic() < deadline:
            time.sleep(0.02)
        app.state.service.predlog.flush()
        logged = read_rows(app.state.service.predlog.engine)
    expected_a, expected_b = _offline(a, frame), _offline(b, frame)
    champion = {r["request_id"]: r for r in logged if r["variant"] == "champion"}
    shadow = {r["request_id"]: r for r in logged if r["variant"] == "shadow"}
    assert set(champion) == set(shadow) == set(ids)
    for i, request_id in enumerate(ids):
        assert champion[request_id]["model_version"] == 1 and shadow[request_id]["model_version"] == 2
        assert champion[request_id]["prediction"] == expected_a["prediction"][i]
        assert shadow[request_id]["prediction"] == expected_b["prediction"][i]
        assert shadow[request_id]["probabilities"]["yes"] == pytest.approx(expected_b["proba_yes"][i], abs=1e-9)
        assert shadow[request_id]["key"] == f"k{i}"
    # the two models disagree somewhere, so the check above really tells them apart
    assert (expected_a["proba_yes"] - expected_b["proba_yes"]).abs().max() > 1e-3
    page = metrics.render().decode()
    assert 'shipml_model_latency_seconds_count{model_version="2",variant="shadow"}' in page


def test_a_failing_shadow_never_reaches_the_caller(pair, models, tmp_path) -> None:
    a, _ = pair
    broken = models["broken"]  # raises on predict
    row = records(a.rows.head(1))[0]
    before = metrics.SHADOW_ERRORS.labels("1", "error")._value.get()
    from core.serving.app import create_app
    from fastapi.testclient import TestClient

    app = create_app(a.dir, Settings(workspace=tmp_path / "workspace"), log_url=f"sqlite:///{tmp_path / 'l.db'}",
                     challenger_dir=broken.dir, shadow=True)
    with TestClient(app) as client:
        assert app.state.service.wait_ready(60)
        for _ in range(5):
            r = client.post("/predict", json=row)
            assert r.status_code == 200 and r.headers["x-model-version"] == "1"
        deadline = time.monotonic() + 10
        while app.state.service.shadow_pending and time.monotonic() < deadline:
            time.sleep(0.02)
    # the broken model is version 1 of its own name: its errors are counted, not answered
    assert metrics.SHADOW_ERRORS.labels("1", "error")._value.get() - before == 5


def test_reload_swaps_the_routing_and_refuses_a_bad_file(pair, tmp_path) -> None:
    a, b = pair
    routing = tmp_path / "routing.json"
    write_spec(routing, RoutingSpec(champion=a.dir, challenger=b.dir, weight_b=0.5))
    token = "admin-token-0123456789"
    row = records(a.rows.head(1))[0]
    with _routed(a.dir, tmp_path, routing, token) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.post("/admin/routing").status_code == 401
        assert client.get("/admin/routing").status_code == 401
        state = client.get("/admin/routing", headers=auth).json()
        assert state["mode"] == "split" and state["challenger"]["version"] == 2
        versions = {client.post("/predict", json={"rows": [row], "key": f"u{i}"}, headers=auth).json()["model"]["version"]
                    for i in range(40)}
        assert versions == {1, 2}
        loaded = client.app.state.service.routing.challenger
        write_spec(routing, RoutingSpec(champion=b.dir))  # promote
        r = client.post("/admin/routing", headers=auth)
        assert r.status_code == 200 and r.json()["mode"] == "single" and r.json()["champion"]["version"] == 2
        assert client.app.state.service.routing.champion is loaded  # reused, not loaded again
        for i in range(20):
            r = client.post("/predict", json={"rows": [row], "key": f"u{i}"}, headers=auth)
            assert r.json()["model"]["version"] == 2 and r.headers["x-model-variant"] == "champion"
        routing.write_text(json.dumps({"champion": str(tmp_path / "nowhere")}))
        bad = client.post("/admin/routing", headers=auth)
        assert bad.status_code == 409 and str(tmp_path) not in bad.text
        assert client.post("/predict", json=row, headers=auth).headers["x-model-version"] == "2"  # unchanged


def _routed(model_dir, tmp_path, routing, token):
    from contextlib import contextmanager

    from core.serving.app import create_app
    from fastapi.testclient import TestClient

    @contextmanager
    def run():
        app = create_app(model_dir, Settings(workspace=tmp_path / "workspace", serve_token=token),
                         log_url=f"sqlite:///{tmp_path / 'r.db'}", routing_file=routing)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert app.state.service.wait_ready(60), app.state.service.failure
            yield client

    return run()
