"""The monitoring bundle: only contract metric names, valid for promtool when it is installed."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from core.deploy import monitoring
from core.deploy.names import dns_label
from tests.deploy.promql import family, metric_names
from tests.services import missing

# Copied from the contract on purpose: if the module's list drifts, this test says so.
CONTRACT = {
    "shipml_requests_total", "shipml_request_latency_seconds", "shipml_in_flight_requests", "shipml_model_info",
    "shipml_predictions_total", "shipml_prediction_value", "shipml_prediction_rows_total", "shipml_errors_total",
    "shipml_feedback_total",
}
HISTOGRAMS = {"shipml_request_latency_seconds", "shipml_prediction_value"}
PROMETHEUS_OWN = {"up"}


def test_the_parser_finds_metrics_and_skips_the_rest() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y", endpoint="/predict"}[5m]))) > 1e-9 '
            'and on() (max(up{job="j"}) == 1) or vector(0)')
    assert metric_names(expr) == {"a_bucket", "up"}


def _bundle_exprs(folder) -> list[str]:
    rules = yaml.safe_load((folder / "alerts.yml").read_text())
    dash = json.loads((folder / "grafana-dashboard.json").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return exprs + [t["expr"] for panel in dash["panels"] for t in panel["targets"]]


@pytest.mark.parametrize("scrape", [monitoring.Scrape(address="127.0.0.1:9000"),
                                    monitoring.Scrape(kubernetes_instance="shipml-x-v1")])
def test_rules_and_dashboard_use_only_contract_metrics(tmp_path, scrape) -> None:
    assert set(monitoring.METRICS) == CONTRACT
    name = dns_label("Churn $(evil)", 3)
    folder = monitoring.write_bundle(tmp_path / "m", name=name, scrape=scrape)
    exprs = _bundle_exprs(folder)
    used = {family(n, HISTOGRAMS) for expr in exprs for n in metric_names(expr)}
    assert used <= CONTRACT | PROMETHEUS_OWN, used - CONTRACT - PROMETHEUS_OWN
    assert len(used & CONTRACT) == len(CONTRACT)  # the dashboard shows every metric the service has
    assert all(f'shipml_deployment="{name}"' in expr for expr in exprs)  # each sees only its deployment
    alerts = {r["alert"] for g in yaml.safe_load((folder / "alerts.yml").read_text())["groups"] for r in g["rules"]}
    assert alerts == {"ShipMLHighErrorRate", "ShipMLHighLatencyP99", "ShipMLNoTraffic", "ShipMLServiceDown"}
    config = yaml.safe_load((folder / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"] and config["scrape_configs"][0]["job_name"] == name


@pytest.mark.parametrize("scrape", [monitoring.Scrape(address="127.0.0.1:9000"),
                                    monitoring.Scrape(kubernetes_instance="shipml-x-v1")])
def test_promtool_accepts_the_rules_and_the_config(tmp_path, scrape) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool (apt-get install prometheus)")
    folder = monitoring.write_bundle(tmp_path / "m", name=dns_label("churn", 1), scrape=scrape)
    checks = [["check", "rules", "alerts.yml"]]
    if scrape.address:  # Debian's Prometheus is built without Kubernetes discovery, so its
        checks.append(["check", "config", "prometheus.yml"])  # promtool rejects kubernetes_sd_configs
    for args in checks:
        done = subprocess.run([promtool, *args], cwd=folder, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
