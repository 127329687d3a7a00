"""Prometheus metrics of the prediction service, created once at import.

The names and labels are a contract: deployment bundles (alert rules, Grafana dashboards) and
monitoring rely on them exactly. They live in the service's own registry, so ``/metrics``
shows only these (plus the process collector) and tests in one process stay independent of
other libraries' metrics.
"""
from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported)

# The *_created series double the output and no dashboard uses them.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Latency buckets from 0.5 ms: single-row predictions take a few milliseconds.
_LATENCY = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter("shipml_requests", "HTTP requests by endpoint and status code",
                   ("endpoint", "status"), registry=REGISTRY)
# Every status /predict answers, at 0 from the start: rate() sees no increase in a series that first
# appears with its first request, so in Prometheus a first burst of refusals or failures would not show.
for _status in ("200", "400", "401", "413", "415", "422", "500", "503", "504"):
    REQUESTS.labels("/predict", _status)
LATENCY = Histogram("shipml_request_latency_seconds", "Request latency by endpoint",
                    ("endpoint",), buckets=_LATENCY, registry=REGISTRY)
IN_FLIGHT = Gauge("shipml_in_flight_requests", "Requests being handled now", registry=REGISTRY)
MODEL_INFO = Gauge("shipml_model_info", "The served model (value 1)",
                   ("model", "version", "task", "sha256"), registry=REGISTRY)
PREDICTIONS = Counter("shipml_predictions", "Predicted rows by predicted class (classification)",
                      ("model_version", "label"), registry=REGISTRY)
PREDICTION_VALUE = Histogram("shipml_prediction_value", "Predicted values (regression)",
                             ("model_version",), registry=REGISTRY,
                             buckets=(-1e6, -1e4, -1e3, -100, -10, -1, 0, 1, 10, 100, 1e3, 1e4, 1e6))
PREDICTION_ROWS = Counter("shipml_prediction_rows", "Rows predicted", ("model_version",), registry=REGISTRY)
ERRORS = Counter("shipml_errors", "Failed requests by kind: schema, too_large, timeout, overloaded, "
                 "unauthorized, not_ready, internal", ("endpoint", "kind"), registry=REGISTRY)
FEEDBACK = Counter("shipml_feedback", "Ground-truth labels received", ("model_version",), registry=REGISTRY)
# A/B tests and shadow mode: the prediction time of each model version (without HTTP and
# parsing), so variants compare on what differs between them; variant is champion, challenger
# or shadow. Shadow predictions are not counted in the served-prediction counters above.
MODEL_LATENCY = Histogram("shipml_model_latency_seconds", "Prediction time by model version and variant",
                          ("model_version", "variant"), buckets=_LATENCY, registry=REGISTRY)
SHADOW_ERRORS = Counter("shipml_shadow_errors", "Shadow predictions that failed or were skipped (kind: "
                        "error, schema, skipped)", ("model_version", "kind"), registry=REGISTRY)
LOG_DROPPED = Counter("shipml_prediction_log_dropped", "Prediction log rows dropped (queue full or "
                      "database unavailable)", registry=REGISTRY)


def render() -> bytes:
    """The current metrics in Prometheus text format."""
    return generate_latest(REGISTRY)
