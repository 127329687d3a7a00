"""The monitoring bundle of every deployment: a Prometheus scrape config, alerting rules and a
Grafana dashboard, using only the service's metric names (see ``METRICS``).

Every series is selected by a ``shipml_deployment`` label that the scrape config attaches, so
one Prometheus can watch many deployments and each bundle's rules see only their own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.files import write_text_atomically

# The service's metrics (core/serving, contract of issue 4). Nothing else may be referenced,
# apart from Prometheus's own ``up``.
METRICS = {
    "shipml_requests_total": "counter",
    "shipml_request_latency_seconds": "histogram",
    "shipml_in_flight_requests": "gauge",
    "shipml_model_info": "gauge",
    "shipml_predictions_total": "counter",
    "shipml_prediction_value": "histogram",
    "shipml_prediction_rows_total": "counter",
    "shipml_errors_total": "counter",
    "shipml_feedback_total": "counter",
}
PREDICT = "/predict"  # the endpoint label of prediction requests
SCRAPE_LABEL = "shipml_deployment"
FILES = ("prometheus.yml", "alerts.yml", "grafana-dashboard.json")


@dataclass(frozen=True)
class AlertThresholds:
    """When the alerts fire."""

    error_rate: float = 0.05  # share of /predict requests answered 5xx, over 5 minutes
    p99_latency_s: float = 0.5  # /predict p99 over 5 minutes
    no_traffic_minutes: int = 30  # no /predict request at all while the service is up
    down_minutes: int = 2  # scrape failing or no target at all


@dataclass(frozen=True)
class Scrape:
    """Where Prometheus finds the service: a fixed address, or Kubernetes pods by label."""

    address: str | None = None  # host:port for local and Docker deployments
    kubernetes_instance: str | None = None  # the pods' app.kubernetes.io/instance label


def write_bundle(folder: Path, *, name: str, scrape: Scrape,
                 thresholds: AlertThresholds = AlertThresholds()) -> Path:
    """Write ``prometheus.yml``, ``alerts.yml`` and ``grafana-dashboard.json`` to ``folder``.

    Args:
        folder: Created if missing.
        name: The deployment's DNS-safe name (``names.dns_label``): the scrape job and the value
            of the ``shipml_deployment`` label every rule and panel selects.
        scrape: Where the service is.
        thresholds: Alert thresholds.

    Returns:
        ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomically(folder / "prometheus.yml", yaml.safe_dump(scrape_config(name, scrape), sort_keys=False))
    write_text_atomically(folder / "alerts.yml", yaml.safe_dump(alert_rules(name, thresholds), sort_keys=False))
    write_text_atomically(folder / "grafana-dashboard.json", json.dumps(dashboard(name), indent=2))
    return folder


def scrape_config(name: str, scrape: Scrape) -> dict:
    """A complete prometheus.yml scraping one deployment and loading ``alerts.yml``."""
    job: dict = {"job_name": name, "metrics_path": "/metrics", "scrape_interval": "15s"}
    if scrape.address:
        job["static_configs"] = [{"targets": [scrape.address], "labels": {SCRAPE_LABEL: name}}]
    else:
        job["kubernetes_sd_configs"] = [{"role": "pod"}]
        job["relabel_configs"] = [
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
             "regex": "true", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
             "regex": scrape.kubernetes_instance or name, "action": "keep"},
            {"source_labels": ["__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
             "regex": r"([^:]+)(?::\d+)?;(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"target_label": SCRAPE_LABEL, "replacement": name},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [job],
    }


def _sel(name: str, *matchers: str) -> str:
    """A label selector for one deployment's series plus extra matchers like ``status=~"5.."``."""
    return "{" + ", ".join([f'{SCRAPE_LABEL}="{name}"', *matchers]) + "}"


def queries(name: str) -> dict[str, str]:
    """The PromQL the rules and the dashboard share, by purpose."""
    sel, predict = _sel(name), _sel(name, f'endpoint="{PREDICT}"')
    errors_5xx = _sel(name, f'endpoint="{PREDICT}"', 'status=~"5.."')
    return {
        "request_rate": f"sum by (status) (rate(shipml_requests_total{predict}[5m]))",
        "error_ratio": (f"sum(rate(shipml_requests_total{errors_5xx}[5m])) / "
                        f"clamp_min(sum(rate(shipml_requests_total{predict}[5m])), 1e-9)"),
        "errors_by_kind": f"sum by (kind) (rate(shipml_errors_total{sel}[5m]))",
        "p50": f"histogram_quantile(0.5, sum by (le) (rate(shipml_request_latency_seconds_bucket{predict}[5m])))",
        "p99": f"histogram_quantile(0.99, sum by (le) (rate(shipml_request_latency_seconds_bucket{predict}[5m])))",
        "in_flight": f"sum(shipml_in_flight_requests{sel})",
        "rows_rate": f"sum(rate(shipml_prediction_rows_total{sel}[5m]))",
        "predictions_by_label": f"sum by (label) (rate(shipml_predictions_total{sel}[5m]))",
        "prediction_value_p50": (f"histogram_quantile(0.5, sum by (le) "
                                 f"(rate(shipml_prediction_value_bucket{sel}[5m])))"),
        "feedback_rate": f"sum(rate(shipml_feedback_total{sel}[5m]))",
        "model_info": f"max by (model, version, task, sha256) (shipml_model_info{sel})",
        "up": f"max(up{sel})",
    }


def alert_rules(name: str, thresholds: AlertThresholds = AlertThresholds()) -> dict:
    """Alerting rules: error rate, p99 latency, no traffic, service down."""
    q, sel, predict = queries(name), _sel(name), _sel(name, f'endpoint="{PREDICT}"')
    quiet = thresholds.no_traffic_minutes
    rules = [
        _alert("ShipMLHighErrorRate", f"({q['error_ratio']}) > {thresholds.error_rate}", "5m", "critical",
               f"More than {thresholds.error_rate:.0%} of /predict requests fail with a server error."),
        _alert("ShipMLHighLatencyP99", f"({q['p99']}) > {thresholds.p99_latency_s}", "10m", "warning",
               f"The 99th percentile of /predict latency is above {thresholds.p99_latency_s} s."),
        _alert("ShipMLNoTraffic",
               f"(sum(rate(shipml_requests_total{predict}[{quiet}m])) or vector(0)) == 0 "
               f"and on() (max(up{sel}) == 1)", f"{quiet}m", "info",
               f"The service is up but has answered no /predict request for {quiet} minutes."),
        _alert("ShipMLServiceDown", f"max(up{sel}) == 0 or absent(up{sel})", f"{thresholds.down_minutes}m",
               "critical", "Prometheus cannot scrape the prediction service."),
    ]
    return {"groups": [{"name": name, "rules": rules}]}


def _alert(alert: str, expr: str, for_: str, severity: str, summary: str) -> dict:
    return {"alert": alert, "expr": expr, "for": for_, "labels": {"severity": severity},
            "annotations": {"summary": summary}}


def dashboard(name: str) -> dict:
    """A Grafana dashboard (importable JSON; the Prometheus data source is a variable)."""
    q = queries(name)
    panels = [
        ("Requests per second by status", "timeseries", [("request_rate", "{{status}}")], "reqps"),
        ("Server error ratio", "timeseries", [("error_ratio", "5xx share")], "percentunit"),
        ("Latency of /predict", "timeseries", [("p50", "p50"), ("p99", "p99")], "s"),
        ("In-flight requests", "timeseries", [("in_flight", "in flight")], "short"),
        ("Errors by kind", "timeseries", [("errors_by_kind", "{{kind}}")], "reqps"),
        ("Rows predicted per second", "timeseries", [("rows_rate", "rows/s")], "short"),
        ("Predictions by label (classification)", "timeseries", [("predictions_by_label", "{{label}}")], "short"),
        ("Median prediction (regression)", "timeseries", [("prediction_value_p50", "p50")], "short"),
        ("Feedback received per second", "timeseries", [("feedback_rate", "feedback/s")], "short"),
        ("Service up", "stat", [("up", "up")], "short"),
        ("Model", "table", [("model_info", "")], "short"),
    ]
    source = {"type": "prometheus", "uid": "${datasource}"}
    built = []
    for index, (title, kind, targets, unit) in enumerate(panels):
        built.append({
            "id": index + 1, "type": kind, "title": title, "datasource": source,
            "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(65 + i), "datasource": source, "expr": q[key], "legendFormat": legend,
                         **({"format": "table", "instant": True} if kind == "table" else {})}
                        for i, (key, legend) in enumerate(targets)],
        })
    return {
        "title": f"ShipML {name}",
        "uid": name[:40],
        "tags": ["shipml"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus"}]},
        "panels": built,
    }
