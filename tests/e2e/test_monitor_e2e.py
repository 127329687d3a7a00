"""Monitor in a real Chromium: a local deployment gets traffic, the health charts draw and an alert fires."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
from playwright.sync_api import expect

from core import deploy
from core.config import Settings
from core.deploy import local
from core.monitoring import alerts
from core.store.db import make_engine
from core.store.models import Deployment
from tests.deploy.conftest import MODEL_NAME, trained  # noqa: F401 - session fixture
from tests.e2e.conftest import click_until, running_app, screenshot, settle
from tests.e2e.test_deploy_e2e import _register

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def monitor_app(tmp_path_factory, trained) -> Iterator[tuple[str, Settings, Deployment]]:  # noqa: F811
    """The app on a workspace with one model deployed locally; every deployment stopped at the end."""
    workspace = tmp_path_factory.mktemp("e2e-monitor")
    settings = Settings(workspace=workspace)
    _register(settings, trained)
    engine = make_engine(settings.db_url)
    try:
        row = deploy.deploy(engine, model=f"{MODEL_NAME}@champion", target="local", settings=settings)
        assert row.status == deploy.RUNNING, row.error
        with running_app(workspace) as url:
            yield url, settings, row
    finally:
        for each in deploy.list_deployments(engine):  # the services are detached: stop them here
            local.stop(each.pid, each.port, grace_s=2)
        engine.dispose()


def _traffic(endpoint: str, rows: list[dict], times: int) -> None:
    with httpx.Client(base_url=endpoint, timeout=30) as client:
        for i in range(times):
            assert client.post("/predict", json={"rows": rows[i % len(rows):][:3]}).status_code == 200


def test_monitor_shows_health_charts_and_an_alert_fires(page, monitor_app, trained, screenshots) -> None:  # noqa: F811
    url, settings, row = monitor_app
    rows = json.loads(pd.read_parquet(trained / "reference.parquet").head(30).to_json(orient="records"))
    _traffic(row.endpoint, rows, 5)
    page.goto(url)
    click_until(page, page.get_by_test_id("stSidebarNav").get_by_text("Monitor", exact=True),
                page.get_by_role("heading", name="Monitor", exact=True).first)
    settle(page)
    expect(page.get_by_role("combobox", name="Deployment")).to_have_value(f"#{row.id} {MODEL_NAME} v1 (local, RUNNING)")

    # Two snapshots with traffic in between: the health charts draw.
    page.get_by_role("button", name="Collect now").click()
    settle(page)
    expect(page.get_by_text("No health history yet", exact=False)).to_be_visible()
    _traffic(row.endpoint, rows, 8)
    time.sleep(0.6)  # the service's prediction log writes every 0.25 s
    requests = page.get_by_test_id("stMetric").filter(has_text="Requests/s").get_by_test_id("stMetricValue")
    click_until(page, page.get_by_role("button", name="Collect now"), requests)  # another snapshot is harmless
    expect(requests).to_have_text(re.compile(r"^\d"))  # a rate over the traffic between the snapshots
    p99 = page.get_by_test_id("stMetric").filter(has_text="p99").get_by_test_id("stMetricValue")
    expect(p99).to_have_text(re.compile(r"^[\d.]+ ms$"))
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts).to_have_count(6)  # requests/s, latency, error rate, in flight, volume, predicted classes
    for title in ("Requests/s", "Latency (s)", "Error rate", "In flight", "Volume", "Predicted classes"):
        expect(charts.filter(has=page.locator("text.gtitle", has_text=title))).to_have_count(1)
    rps = charts.filter(has=page.locator("text.gtitle", has_text="Requests/s"))
    expect(rps.locator(".scatterlayer .point").first).to_be_visible()  # a drawn point, not empty axes

    # An alert rule on p99 latency above 0 s fires on "Evaluate now": on the page and in the sidebar.
    form = page.get_by_test_id("stForm")
    kind = form.get_by_test_id("stSelectbox").filter(has_text="Kind").locator("input").first
    kind.click()
    page.keyboard.type("p99 latency")
    page.get_by_role("option", name="p99 latency (s)", exact=True).first.click()  # the kind in words
    threshold = form.get_by_test_id("stNumberInput").filter(has_text="Threshold").locator("input")
    threshold.fill("0")
    form.get_by_role("button", name="Add rule").click()
    settle(page)
    expect(page.get_by_text(re.compile(r"— ok$"))).to_be_visible()
    _traffic(row.endpoint, rows, 3)
    click_until(page, page.get_by_role("button", name="Evaluate now"), page.get_by_text(re.compile(r"— firing$")))
    expect(page.get_by_test_id("stSidebar").get_by_test_id("stAlert")).to_contain_text("1 alert(s) firing")
    engine = make_engine(settings.db_url)
    try:
        [rule] = alerts.list_rules(engine, deployment_id=row.id)
    finally:
        engine.dispose()
    assert (rule.kind, rule.threshold, rule.state) == ("p99_latency", 0.0, "firing")

    page.set_viewport_size({"width": 1400, "height": 3200})  # the whole page, charts to retraining
    settle(page)
    page.get_by_role("heading", name="Monitor", exact=True).first.scroll_into_view_if_needed()
    page.mouse.wheel(0, -5000)  # the app scrolls inside its main container: back to the top
    page.wait_for_timeout(300)
    screenshot(page, screenshots / "monitor.png")
