"""The Monitor page against a real local deployment with real traffic and feedback."""
from __future__ import annotations

import json
import time

import httpx
import pandas as pd
import pytest

from core import deploy
from core.deploy import local
from core.monitoring import alerts
from tests.deploy.conftest import MODEL_NAME, registered, trained  # noqa: F401 - fixtures

pytestmark = pytest.mark.xdist_group("deploy-local")
PAGE = "pages/monitor.py"
CLASSES = ("Adelie", "Chinstrap", "Gentoo")


@pytest.fixture(autouse=True)
def _stop_everything(engine):
    yield
    for row in deploy.list_deployments(engine):
        local.stop(row.pid, row.port, grace_s=2)


def _table(at, column: str) -> pd.DataFrame:
    """The first table on the page with this column (AppTest does not expose dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _no_exceptions(at) -> None:
    assert [e.value for e in at.exception] == []


def test_without_deployments(app) -> None:
    at = app(PAGE)
    _no_exceptions(at)
    assert any("No deployment yet" in i.value for i in at.info)
    assert not at.sidebar.warning  # no alert fires without rules


def test_health_drift_performance_and_alerts(app, engine, settings, registered, trained) -> None:  # noqa: F811
    row = deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
    rows = json.loads(pd.read_parquet(trained / "reference.parquet").head(12).to_json(orient="records"))
    with httpx.Client(base_url=row.endpoint, timeout=30) as client:
        answers = [client.post("/predict", json={"rows": rows[i:i + 4]}) for i in (0, 4, 8)]
        assert all(a.status_code == 200 for a in answers)
        predicted = [p["prediction"] for a in answers for p in a.json()["predictions"]]
        labels = list(predicted)
        labels[0] = next(c for c in CLASSES if c != predicted[0])  # 9 of 10 labels agree: accuracy 0.9
        items = [{"request_id": answers[i // 4].json()["request_id"], "row": i % 4, "label": labels[i]}
                 for i in range(10)]
        assert client.post("/feedback", json={"items": items}).status_code == 200
    time.sleep(0.6)  # the service's log writes every 0.25 s

    at = app(PAGE)
    _no_exceptions(at)
    assert at.selectbox(key="mon_deployment").value == row.id  # the newest RUNNING one
    # Health: a fresh scrape shows the three /predict requests and their latency.
    at.button(key="mon_collect").click().run()
    _no_exceptions(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Error rate"] == "0.00%" and metrics["p99"].endswith(" ms") and metrics["In flight"] in ("0", "1")  # the scrape itself may count
    assert any("3 requests" in c.value for c in at.caption)

    # Drift: one row per feature, with method and threshold, and a formula-safe CSV.
    at.button(key="mon_drift_go").click().run()
    _no_exceptions(at)
    table = _table(at, "threshold")
    assert list(table.columns[:5]) == ["column", "method", "score", "threshold", "drifted"]
    assert len(table) >= 4 and {"bill_length_mm", "island"} <= set(table["column"])
    assert any(m.label == "Share drifted" for m in at.metric)
    assert any(m.label == "Prediction drift" for m in at.metric)

    # Performance from /feedback: the window's accuracy against the training CV score.
    perf = _table(at, "metric")
    accuracy = perf.set_index("metric").loc["accuracy"]
    assert accuracy["latest"] == pytest.approx(0.9) and accuracy["training_cv"] > 0.9
    assert any("10 labelled rows" in c.value for c in at.caption)

    # Alerts: a rule with a zero p99 threshold fires once evaluated, on the page and in the sidebar.
    at.selectbox(key="mon_rule_kind").set_value("p99_latency")
    at.number_input(key="mon_rule_threshold").set_value(0.0)
    at.number_input(key="mon_rule_window").set_value(30)
    next(b for b in at.button if b.label == "Add rule").click().run()
    _no_exceptions(at)
    [rule] = alerts.list_rules(engine, deployment_id=row.id)
    assert rule.kind == "p99_latency" and rule.state == "ok"
    with httpx.Client(base_url=row.endpoint, timeout=30) as client:  # traffic after the first snapshot
        assert client.post("/predict", json={"rows": rows[:2]}).status_code == 200
    at.button(key="mon_evaluate").click().run()  # collects a second snapshot, then evaluates
    _no_exceptions(at)
    assert alerts.list_rules(engine, deployment_id=row.id)[0].state == "firing"
    rules = _table(at, "rule")
    assert rules.loc[0, "state"] == "firing"
    assert _table(at, "message").loc[0, "state"] == "firing"
    # AppTest renders the sidebar on an app's first run only: a fresh session sees the firing rule.
    assert any("1 alert(s) firing" in w.value for w in app().sidebar.warning)

    # Disable, then delete.
    at.button(key=f"mon_toggle_{rule.id}").click().run()
    _no_exceptions(at)
    assert alerts.list_rules(engine, deployment_id=row.id)[0].enabled is False
    at.button(key=f"mon_delete_{rule.id}").click().run()
    _no_exceptions(at)
    assert alerts.list_rules(engine, deployment_id=row.id) == []
