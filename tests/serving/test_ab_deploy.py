"""A/B tests on a real local deployment: start, promote under load (no request dropped, every
response names its version), roll back; the registry's champion alias follows."""
from __future__ import annotations

import json
import threading
import time

import httpx
import pandas as pd
import pytest

from core import deploy, registry
from core.deploy import abtest, local
from core.monitoring.retrain import list_runs
from core.registry import VersionMeta
from tests.serving.conftest import records

pytestmark = pytest.mark.xdist_group("deploy-local")


def _register_twice(engine, settings, served) -> None:
    pipeline, info = registry.load_exported(served.dir)
    meta = VersionMeta(dataset_hash="d" * 64, target=info["target"], task=info["task"],
                       recipe_json=json.dumps(info.get("recipe") or {}), plan_json=json.dumps(info.get("plan") or {}),
                       model_family=info.get("model_family") or "x", params={}, metrics=info.get("metrics") or {},
                       cv={}, training_seconds=1.0)
    reference = pd.read_parquet(served.dir / "reference.parquet")
    for _ in range(2):
        registry.register_version(engine, name="ab churn", pipeline=pipeline, meta=meta, reference=reference,
                                  settings=settings)
    registry.set_alias(engine, name="ab churn", alias="champion", version=1)


def test_promotion_under_load_drops_nothing_and_rollback_restores(engine, settings, models) -> None:
    served = models["multiclass"]  # a small logistic model: quick to export and load
    _register_twice(engine, settings, served)
    row = deploy.deploy(engine, model="ab churn@champion", target="local", settings=settings)
    try:
        state = abtest.start_ab(engine, row.id, challenger="ab churn@2", settings=settings, weight=0.5)
        assert state.mode == "split" and state.challenger.version == 2 and state.weight_b == 0.5
        body = {"rows": records(served.rows.head(1))}
        results: list[tuple[float, int | str, str | None]] = []
        stop = threading.Event()

        def hammer(n: int) -> None:
            with httpx.Client(base_url=row.endpoint, timeout=30) as client:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        r = client.post("/predict", json={**body, "key": f"t{n}-{i}"})
                        ok = r.status_code == 200 and str(r.json()["model"]["version"]) == r.headers["x-model-version"]
                        results.append((time.monotonic(), r.status_code if ok else f"bad {r.status_code}",
                                        r.headers.get("x-model-version")))
                    except httpx.HTTPError as exc:  # a reset or refused connection
                        results.append((time.monotonic(), type(exc).__name__, None))

        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        # Promote once both versions have answered (a loaded machine may take seconds to get going).
        deadline = time.monotonic() + 60
        while {v for _, _, v in results} != {"1", "2"} or len(results) < 50:
            assert time.monotonic() < deadline, "the split did not serve both versions"
            time.sleep(0.1)
        promoting = time.monotonic()
        promoted = abtest.promote(engine, row.id, settings=settings)
        swapped = time.monotonic()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join()
        assert promoted.mode == "single" and promoted.champion.version == 2 and promoted.previous.version == 1
        assert len(results) > 100
        assert {status for _, status, _ in results} == {200}  # no error, no reset
        before = {v for t, _, v in results if t < promoting}
        after = {v for t, _, v in results if t > swapped}
        assert before == {"1", "2"} and after == {"2"}
        assert registry.aliases(engine, name="ab churn")["champion"] == 2
        assert deploy.get_deployment(engine, row.id).version == 2

        back = abtest.rollback(engine, row.id, settings=settings)
        assert back.champion.version == 1 and registry.aliases(engine, name="ab churn")["champion"] == 1
        # Both moves are in the model's champion history, next to the retrains.
        history = [(r.kind, r.champion_version, r.challenger_version)
                   for r in list_runs(engine, model_name="ab churn")]
        assert history == [("rollback", 2, 1), ("promote", 1, 2)]
        r = httpx.post(f"{row.endpoint}/predict", json=body, timeout=30)
        assert r.headers["x-model-version"] == "1"
        with pytest.raises(Exception, match="no A/B test"):
            abtest.promote(engine, row.id, settings=settings)
    finally:
        local.stop(deploy.get_deployment(engine, row.id).pid, row.port, grace_s=2)
