"""`python -m core monitor --deployment ID [--json]` against a real local deployment with feedback."""
from __future__ import annotations

import json
import time

import httpx
import pandas as pd
import pytest

from core import deploy
from core.deploy import local
from core.monitoring import alerts, health
from tests.deploy.conftest import registered, run_cli, trained  # noqa: F401  (fixtures)

pytestmark = pytest.mark.xdist_group("deploy-local")


@pytest.fixture(autouse=True)
def _stop_services(engine):
    yield
    for row in deploy.list_deployments(engine):
        local.stop(row.pid, row.port, grace_s=2)


def test_monitor_prints_health_performance_drift_and_alerts(engine, settings, registered, trained) -> None:
    row = deploy.deploy(engine, model="pen guins@champion", target="local", settings=settings)
    rule = alerts.create_rule(engine, deployment_id=row.id, kind="p99_latency", threshold=0.0, window_minutes=30)
    alerts.create_rule(engine, deployment_id=row.id, kind="error_rate", threshold=0.5, window_minutes=30)
    health.collect(engine, row, settings)  # the earlier snapshot the CLI's fresh one is compared with

    rows = json.loads(pd.read_parquet(trained / "reference.parquet").head(12).to_json(orient="records"))
    with httpx.Client(base_url=row.endpoint, timeout=30) as client:
        answers = [client.post("/predict", json={"rows": rows[i:i + 4]}) for i in (0, 4, 8)]
        assert all(a.status_code == 200 for a in answers)
        predicted = [p["prediction"] for a in answers for p in a.json()["predictions"]]
        # Labels for 10 of the 12 rows: the predictions, two of them contradicted -> accuracy 8 / 10.
        labels = list(predicted)
        labels[0] = next(c for c in ("Adelie", "Chinstrap", "Gentoo") if c != predicted[0])
        labels[5] = next(c for c in ("Adelie", "Chinstrap", "Gentoo") if c != predicted[5])
        items = [{"request_id": answers[i // 4].json()["request_id"], "row": i % 4, "label": labels[i]}
                 for i in range(10)]
        assert client.post("/feedback", json={"items": items}).status_code == 200
    expected_accuracy = 0.8
    time.sleep(0.6)  # the service's log writes every 0.25 s

    done = run_cli("monitor", "--deployment", str(row.id), "--json", workspace=settings.workspace)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["deployment"]["id"] == row.id and out["deployment"]["model"] == "pen guins"
    assert out["health"]["up"] and out["health"]["requests"] == 3 and out["health"]["error_rate"] == 0
    assert out["health"]["p99_s"] > 0 and out["health"]["model"]["version"] == "1"
    perf = out["performance"]
    assert perf["labelled_rows"] == 10 and perf["primary_metric"] == "balanced_accuracy"
    assert perf["scores"]["accuracy"] == pytest.approx(expected_accuracy)
    assert perf["training_cv"]["accuracy"] > 0.9  # the version's own CV mean, for comparison
    drift = out["drift"]
    assert isinstance(drift, dict) and drift["n_current"] == 12 and drift["columns"] >= 4
    assert 0 <= drift["share_drifted"] <= 1
    assert drift["prediction_drifted"] in (True, False)  # computed as on the Monitor page
    by_rule = {a["rule_id"]: a for a in out["alerts"]}
    assert by_rule[rule.id]["state"] == "firing" and by_rule[rule.id]["value"] > 0
    assert [a["state"] for a in out["alerts"] if a["kind"] == "error_rate"] == ["ok"]

    text = run_cli("monitor", "--deployment", str(row.id), workspace=settings.workspace)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"deployment {row.id}: pen guins version 1 (local, RUNNING)"
    assert lines[1].startswith("health: up; ") and "p99" in lines[1] and "refused 0.00%" in lines[1]
    assert lines[2].startswith("performance (") and "10 labelled rows" in lines[2] and "accuracy" in lines[2]
    assert lines[3].startswith("drift (12 rows against") and "the predictions" in lines[3]
    assert f"alert {rule.id} p99 latency (s) > 0 over 30 min: FIRING" in text.stdout

    deploy.stop_deployment(engine, row.id, settings=settings)
    down = run_cli("monitor", "--deployment", str(row.id), workspace=settings.workspace)
    assert down.returncode == 0 and "health: down" in down.stdout
    missing_one = run_cli("monitor", "--deployment", "999", workspace=settings.workspace)
    assert missing_one.returncode == 2 and "deployment 999 does not exist" in missing_one.stderr
