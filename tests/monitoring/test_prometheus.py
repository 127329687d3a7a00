"""A real Prometheus (Debian's package) scraping real local deployments: health series, alerts, dashboard metrics.

Two deployments, a classifier and a regressor, because some dashboard metrics exist only for one
task (predictions by label vs the predicted-value histogram). Prometheus runs with the
deployments' own bundle configs (scrape job, ``shipml_deployment`` label, alert rules), only with
a 1 s scrape interval so the test takes seconds.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from core import deploy
from core.config import SAMPLES_DIR, get_settings
from core.deploy import local
from core.deploy.monitoring import METRICS, dashboard
from core.monitoring import alerts, health
from core.store.models import utcnow
from tests.deploy.conftest import ROOT, registered, trained  # noqa: F401  (fixtures)
from tests.deploy.promql import family, metric_names
from tests.services import free_port, missing

pytestmark = pytest.mark.xdist_group("deploy-local")
HISTOGRAMS = {name for name, kind in METRICS.items() if kind == "histogram"}


@pytest.fixture(scope="session")
def regressor(tmp_path_factory) -> Path:
    """An exported concrete-strength ridge regression, trained by the real CLI."""
    base = tmp_path_factory.mktemp("monitor-regressor")
    out = base / "model"
    env = {**os.environ, "SHIPML_WORKSPACE": str(base / "ws"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data", str(SAMPLES_DIR / "concrete.csv"), "--target",
         "compressive_strength", "--models", "ridge", "--trials", "2", "--budget", "10", "--folds", "3",
         "--name", "concrete", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


class Prometheus:
    """``/usr/bin/prometheus`` on a free loopback port with its data in a temporary folder."""

    def __init__(self, folder: Path, bundles: list[Path]) -> None:
        binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
        if binary is None:
            missing("prometheus (apt-get install prometheus)")
        jobs, rule_files = [], []
        for bundle in bundles:  # the deployments' own configs, scraped every second
            config = yaml.safe_load((bundle / "prometheus.yml").read_text())
            for job in config["scrape_configs"]:
                jobs.append({**job, "scrape_interval": "1s", "scrape_timeout": "1s"})
            rule_files += [str(bundle / name) for name in config["rule_files"]]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": rule_files,
                  "scrape_configs": jobs}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(folder / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{self.port}",
             f"--storage.tsdb.path={folder / 'data'}", "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=folder)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, (folder / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        self.stop()
        pytest.fail("Prometheus did not become ready in 30 s")

    def value(self, expr: str) -> float | None:
        result = health.prometheus_query(self.url, expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, at_least: float, timeout_s: float = 30) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value is not None and value >= at_least:
                return value
            time.sleep(0.3)
        pytest.fail(f"{expr} did not reach {at_least} within {timeout_s} s (last: {self.value(expr)})")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture(autouse=True)
def _stop_services(engine):
    yield
    for row in deploy.list_deployments(engine):
        local.stop(row.pid, row.port, grace_s=2)


def _rows(model_dir: Path, n: int) -> list[dict]:
    return json.loads(pd.read_parquet(model_dir / "reference.parquet").head(n).to_json(orient="records"))


def _monitor_page(monkeypatch, settings, prometheus_url: str, deployment_id: int) -> AppTest:
    """The Monitor page (AppTest) on this test's workspace, showing one deployment."""
    monkeypatch.setenv("SHIPML_WORKSPACE", str(settings.workspace))
    monkeypatch.setenv("SHIPML_PROMETHEUS_URL", prometheus_url)
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.run()
        at.switch_page("pages/monitor.py").run()
        at.selectbox(key="mon_deployment").set_value(deployment_id).run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    finally:
        get_settings.cache_clear()


def test_prometheus_backed_health_alerts_and_every_dashboard_metric(engine, settings, registered, trained,
                                                                    regressor, tmp_path, monkeypatch) -> None:
    classifier = deploy.deploy(engine, model="pen guins@champion", target="local", settings=settings)
    regression = deploy.deploy(engine, model=str(regressor), target="local", settings=settings)
    bundles = [Path(row.manifest_dir) / "monitoring" for row in (classifier, regression)]
    prom = Prometheus(tmp_path, bundles)
    try:
        names = {row.id: health.deployment_label(row) for row in (classifier, regression)}
        # A labelled counter appears with its first increment, and rate() cannot see an increase
        # before a series' first sample: one request each, scraped, before the measured traffic.
        with httpx.Client(timeout=30) as client:
            for row, model_dir in ((classifier, trained), (regression, regressor)):
                assert client.post(f"{row.endpoint}/predict", json={"rows": _rows(model_dir, 1)}).status_code == 200
        for name in names.values():
            prom.wait_for(f'sum(shipml_requests_total{{shipml_deployment="{name}", endpoint="/predict"}})', 1)
        time.sleep(1.2)
        started = utcnow()
        with httpx.Client(timeout=30) as client:
            for row, model_dir in ((classifier, trained), (regression, regressor)):
                rows = _rows(model_dir, 3)
                for _ in range(20):
                    answer = client.post(f"{row.endpoint}/predict", json={"rows": rows})
                    assert answer.status_code == 200, answer.text
                assert client.post(f"{row.endpoint}/predict", json={"rows": [{"nonsense": 1}]}).status_code == 422
            request_id = answer.headers["x-request-id"]
            fb = client.post(f"{regression.endpoint}/feedback", json={"request_id": request_id, "row": 0, "label": 30.5})
            assert fb.status_code == 200, fb.text
        for name in names.values():
            prom.wait_for(f'sum(shipml_requests_total{{shipml_deployment="{name}", endpoint="/predict"}})', 22)
        time.sleep(2.5)  # two more scrapes after the traffic: rate() needs points on both sides

        # The Prometheus-backed health series shows the requests (with the settings' switch).
        with_prom = settings.model_copy(update={"prometheus_url": prom.url})
        series = health.service_health(engine, classifier, with_prom, since=started - timedelta(seconds=30),
                                       step_s=1, window="1m")
        assert list(series.columns) == list(health.SERIES_COLUMNS) and not series.empty
        assert series["requests_per_s"].max() > 0
        assert series["error_rate"].dropna().eq(0).all()  # a 422 is not a server error...
        assert series["refused_rate"].max() > 0  # ...but a refusal
        last = series.dropna(subset=["p99_s"]).iloc[-1]
        assert 0 < last["p50_s"] <= last["p99_s"] < 30 and last["rows_per_s"] > 0
        total = prom.value(f'sum(increase(shipml_requests_total{{shipml_deployment="{names[classifier.id]}", '
                           f'endpoint="/predict"}}[1m]))')
        assert total == pytest.approx(21, rel=0.35)  # increase() extrapolates to the window edges

        # Alerts read the same Prometheus: a p99 above 0 s fires, an error rate above 50 % does not.
        hot = alerts.create_rule(engine, deployment_id=classifier.id, kind="p99_latency", threshold=0.0,
                                 window_minutes=1)
        calm = alerts.create_rule(engine, deployment_id=classifier.id, kind="error_rate", threshold=0.5,
                                  window_minutes=1)
        out = {e.rule_id: e for e in alerts.evaluate(engine, classifier, with_prom)}
        assert out[hot.id].state == alerts.FIRING and out[hot.id].value > 0
        assert out[calm.id].state == alerts.OK and out[calm.id].value == 0

        # The Monitor page reads the same Prometheus when SHIPML_PROMETHEUS_URL is set.
        page = _monitor_page(monkeypatch, settings, prom.url, classifier.id)
        charts = {json.loads(c.proto.spec)["layout"]["title"]["text"]: json.loads(c.proto.spec)
                  for c in page.get("plotly_chart")}
        assert max(y for t in charts["Requests/s"]["data"] for y in t["y"] if y is not None) > 0
        assert any(c.value == "From Prometheus." for c in page.caption)

        # Every metric the Grafana dashboard queries exists in Prometheus (for some deployment).
        used = set()
        for name in names.values():
            for panel in dashboard(name)["panels"]:
                for target in panel["targets"]:
                    used |= metric_names(target["expr"])
        assert {family(n, HISTOGRAMS) for n in used} - {"up"} == set(METRICS)  # the dashboard shows them all
        selector = "|".join(names.values())
        absent = [n for n in sorted(used)
                  if not prom.value(f'count({{__name__="{n}", shipml_deployment=~"{selector}"}})')]
        assert not absent, absent

        # The bundles' alert rules loaded into this real Prometheus.
        rules = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        assert {g["name"] for g in rules} == set(names.values())
    finally:
        prom.stop()
