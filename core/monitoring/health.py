"""Service health over time: requests/s, error rate, latency percentiles, in-flight requests.

Two sources, one shape of result (:data:`SERIES_COLUMNS`):

- **snapshots** (no Prometheus): :func:`collect` scrapes a deployment's ``/metrics`` (the Prometheus
  text format, parsed with prometheus_client's parser) and stores the counters as a
  ``MetricSnapshot`` row. Whoever schedules it (the app through :class:`Scheduler`, the CLI, a
  cron job) calls it every so often; :func:`health_series` turns consecutive snapshots into rates.
  Counters restart at zero when the service restarts; as in Prometheus's ``rate()``, a value
  lower than the one before is read as a reset, so the increase is the new value itself.
- **Prometheus** (``Settings.prometheus_url`` set): :func:`prometheus_series` asks its HTTP API
  (``query_range``) for ``rate()`` and ``histogram_quantile()`` of the same metrics, selected by
  the ``shipml_deployment`` label that every deployment's scrape config attaches.

Latency percentiles from snapshots use the same interpolation as PromQL's
``histogram_quantile`` (:func:`histogram_quantile`) on the bucket increases between snapshots,
so both sources agree up to Prometheus's extrapolation at the window edges.

Prediction volume and distribution over time come from the prediction log
(:func:`prediction_volume`, :func:`prediction_distribution`).
"""
from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
import msgspec
import numpy as np
import pandas as pd
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import col, delete, select

from core.config import Settings
from core.deploy.monitoring import PREDICT, SCRAPE_LABEL
from core.deploy.names import dns_label
from core.errors import BadInput
from core.serving import predlog
from core.store.db import session_scope
from core.store.models import Deployment, MetricSnapshot, utcnow

log = logging.getLogger("shipml.monitoring")

SCRAPE_TIMEOUT_S = 5.0
RETENTION = timedelta(days=14)  # snapshots older than this are pruned by the scheduler
MIN_WINDOW_S = 10.0  # "now" on the Monitor page covers at least this many seconds (see current_health)
SERIES_COLUMNS = ("time", "requests_per_s", "error_rate", "refused_rate", "p50_s", "p95_s", "p99_s", "in_flight",
                  "rows_per_s")


@dataclass(frozen=True)
class Snapshot:
    """The service's counters at one moment (cumulative since ``process_start``).

    ``requests`` and ``latency_*`` cover the /predict endpoint only (health probes and scrapes
    are not traffic); ``errors`` covers every endpoint, by kind.
    """

    taken_at: datetime
    ok: bool = True
    error: str | None = None
    process_start: float | None = None
    requests: dict[str, float] = field(default_factory=dict)  # status code -> count
    latency_buckets: tuple[tuple[float, float], ...] = ()  # (upper bound, cumulative count), +Inf last
    latency_sum: float = 0.0
    latency_count: float = 0.0
    errors: dict[str, float] = field(default_factory=dict)  # kind -> count
    predictions: dict[str, float] = field(default_factory=dict)  # predicted label -> rows
    prediction_rows: float = 0.0
    feedback: float = 0.0
    in_flight: float = 0.0
    model: dict[str, str] = field(default_factory=dict)  # shipml_model_info labels

    @property
    def requests_total(self) -> float:
        return float(sum(self.requests.values()))

    @property
    def server_errors(self) -> float:
        """/predict requests answered with a 5xx status."""
        return float(sum(v for k, v in self.requests.items() if k.startswith("5")))


@dataclass(frozen=True)
class HealthNow:
    """Health over the interval between two snapshots (or since the service started)."""

    up: bool
    taken_at: datetime
    window_s: float | None  # the interval the rates cover
    requests: float  # /predict requests in the window
    requests_per_s: float | None
    error_rate: float | None  # share of /predict answered 5xx; None without requests
    refused_rate: float | None  # share answered 4xx: rows the schema refused, a bad token...
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    in_flight: float
    rows_per_s: float | None
    requests_total: float  # since the service started
    model: dict[str, str]
    error: str | None = None


# --------------------------------------------------------------------------- parsing and scraping


def parse_metrics(text: str, *, taken_at: datetime | None = None) -> Snapshot:
    """A snapshot from a ``/metrics`` page in the Prometheus text format.

    Args:
        text: The page.
        taken_at: When it was read (default: now, UTC).

    Raises:
        BadInput: The text is not in the Prometheus format.
    """
    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    errors: dict[str, float] = {}
    predictions: dict[str, float] = {}
    values = {"sum": 0.0, "count": 0.0, "rows": 0.0, "feedback": 0.0, "in_flight": 0.0}
    process_start, model = None, {}
    try:
        families = list(text_string_to_metric_families(text))
    except Exception:  # noqa: BLE001 - the parser raises plain ValueErrors/TypeErrors on bad input
        raise BadInput("the metrics page is not in the Prometheus text format") from None
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "shipml_requests_total" and labels.get("endpoint") == PREDICT:
                requests[labels.get("status", "")] = requests.get(labels.get("status", ""), 0.0) + value
            elif name == "shipml_request_latency_seconds_bucket" and labels.get("endpoint") == PREDICT:
                buckets[float(labels["le"])] = value
            elif name == "shipml_request_latency_seconds_sum" and labels.get("endpoint") == PREDICT:
                values["sum"] = value
            elif name == "shipml_request_latency_seconds_count" and labels.get("endpoint") == PREDICT:
                values["count"] = value
            elif name == "shipml_errors_total":
                kind = labels.get("kind", "")
                errors[kind] = errors.get(kind, 0.0) + value
            elif name == "shipml_predictions_total":
                label = labels.get("label", "")
                predictions[label] = predictions.get(label, 0.0) + value
            elif name == "shipml_prediction_rows_total":
                values["rows"] += value
            elif name == "shipml_feedback_total":
                values["feedback"] += value
            elif name == "shipml_in_flight_requests":
                values["in_flight"] = value
            elif name == "process_start_time_seconds":
                process_start = value
            elif name == "shipml_model_info" and value == 1:
                model = dict(labels)
    return Snapshot(
        taken_at=taken_at or utcnow(), process_start=process_start, requests=requests,
        latency_buckets=tuple(sorted(buckets.items())), latency_sum=values["sum"], latency_count=values["count"],
        errors=errors, predictions=predictions, prediction_rows=values["rows"], feedback=values["feedback"],
        in_flight=values["in_flight"], model=model,
    )


def scrape(endpoint: str, *, timeout_s: float = SCRAPE_TIMEOUT_S) -> Snapshot:
    """Read a service's ``/metrics`` now; never raises for an unreachable or broken service.

    Returns:
        The snapshot, or one with ``ok=False`` and a short ``error`` (no response text).
    """
    now = utcnow()
    try:
        response = httpx.get(f"{endpoint.rstrip('/')}/metrics", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Snapshot(taken_at=now, ok=False, error=f"unreachable ({type(exc).__name__})")
    if response.status_code != 200:
        return Snapshot(taken_at=now, ok=False, error=f"/metrics answered {response.status_code}")
    try:
        return parse_metrics(response.text, taken_at=now)
    except BadInput as exc:
        return Snapshot(taken_at=now, ok=False, error=str(exc))


# --------------------------------------------------------------------------- storing


def collect(engine: Engine, deployment: Deployment, settings: Settings | None = None, *,
            timeout_s: float = SCRAPE_TIMEOUT_S) -> Snapshot:
    """Scrape one deployment now and store the snapshot; safe to call from any scheduler.

    A deployment without an endpoint (stopped, or Kubernetes without a reachable address) is
    stored as a failed scrape. Nothing here raises for a service that is down.

    Args:
        engine: The store.
        deployment: The deployment row.
        settings: Unused today (kept so every scheduler calls ``collect(engine, d, settings)``).
        timeout_s: Scrape timeout.

    Returns:
        The snapshot as stored.
    """
    if deployment.endpoint:
        snap = scrape(deployment.endpoint, timeout_s=timeout_s)
    else:
        snap = Snapshot(taken_at=utcnow(), ok=False, error="no endpoint")
    save_snapshot(engine, deployment.id, snap)
    return snap


def save_snapshot(engine: Engine, deployment_id: int, snap: Snapshot) -> None:
    """Store one snapshot of a deployment."""
    row = MetricSnapshot(
        deployment_id=deployment_id, taken_at=snap.taken_at, ok=snap.ok, error=(snap.error or None) and snap.error[:300],
        process_start=snap.process_start, requests_json=json.dumps(snap.requests),
        latency_json=json.dumps({"buckets": [[_le_text(le), c] for le, c in snap.latency_buckets],
                                 "sum": snap.latency_sum, "count": snap.latency_count, "model": snap.model}),
        errors_json=json.dumps(snap.errors), predictions_json=json.dumps(snap.predictions),
        prediction_rows=snap.prediction_rows, feedback=snap.feedback, in_flight=snap.in_flight,
    )
    with session_scope(engine) as session:
        session.add(row)


def snapshots(engine: Engine, deployment_id: int, *, since: datetime | None = None,
              until: datetime | None = None, limit: int = 20_000) -> list[Snapshot]:
    """Stored snapshots of one deployment, oldest first (the newest ``limit`` of the range)."""
    query = select(MetricSnapshot).where(MetricSnapshot.deployment_id == deployment_id)
    if since is not None:
        query = query.where(col(MetricSnapshot.taken_at) >= since)
    if until is not None:
        query = query.where(col(MetricSnapshot.taken_at) <= until)
    query = query.order_by(col(MetricSnapshot.taken_at).desc(), col(MetricSnapshot.id).desc()).limit(limit)
    with session_scope(engine) as session:
        rows = list(session.exec(query))
    return [_from_row(r) for r in reversed(rows)]


def prune_snapshots(engine: Engine, *, older_than: datetime) -> int:
    """Delete snapshots taken before ``older_than``; returns how many."""
    with session_scope(engine) as session:
        return session.exec(delete(MetricSnapshot).where(col(MetricSnapshot.taken_at) < older_than)).rowcount


def _from_row(row: MetricSnapshot) -> Snapshot:
    latency = json.loads(row.latency_json or "{}")
    return Snapshot(
        taken_at=row.taken_at, ok=row.ok, error=row.error, process_start=row.process_start,
        requests=json.loads(row.requests_json or "{}"),
        latency_buckets=tuple((float(le), float(c)) for le, c in latency.get("buckets", [])),
        latency_sum=float(latency.get("sum", 0.0)), latency_count=float(latency.get("count", 0.0)),
        errors=json.loads(row.errors_json or "{}"), predictions=json.loads(row.predictions_json or "{}"),
        prediction_rows=row.prediction_rows, feedback=row.feedback, in_flight=row.in_flight,
        model=latency.get("model", {}),
    )


def _le_text(le: float) -> str | float:
    return "+Inf" if math.isinf(le) else le  # JSON has no infinity


# --------------------------------------------------------------------------- series from snapshots


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The ``q`` quantile of a histogram, interpolated as PromQL's ``histogram_quantile`` does.

    Args:
        q: 0..1.
        buckets: (upper bound, cumulative count) pairs, the last one ``+Inf``.

    Returns:
        The quantile; ``nan`` when the histogram is empty. The rank is located in its bucket and
        interpolated linearly between the bucket's bounds (the first bucket starts at 0); a rank
        in the ``+Inf`` bucket returns the highest finite bound.
    """
    buckets = sorted(buckets)
    if not buckets or not math.isinf(buckets[-1][0]) or len(buckets) < 2:
        return float("nan")
    total = buckets[-1][1]
    if total <= 0 or not 0 <= q <= 1:
        return float("nan")
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            if math.isinf(le):
                return buckets[-2][0]
            if i == 0 and le <= 0:
                return le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return buckets[-2][0]


def _increase(new: float, old: float, reset: bool) -> float:
    return new if reset or new < old else new - old


def window_stats(old: Snapshot | None, new: Snapshot) -> HealthNow:
    """Health between two snapshots; with ``old`` None (or a failed scrape), since the service started.

    The increase of every counter is taken as in PromQL's ``increase()`` without extrapolation;
    when the service restarted in between (another ``process_start``), the new values are the increase.
    """
    reset = old is None or not old.ok or (old.process_start != new.process_start)
    if old is None or not old.ok:  # nothing to compare with: everything since the service started
        start = (datetime.fromtimestamp(new.process_start, timezone.utc) if new.process_start else None)
        window = (new.taken_at - start).total_seconds() if start else None
    else:  # a restart in between still covers the interval (the increase is the counters' new values)
        window = (new.taken_at - old.taken_at).total_seconds()
    if reset:
        old_requests, old_buckets, old_rows = {}, {}, 0.0
    else:
        old_requests, old_buckets, old_rows = old.requests, dict(old.latency_buckets), old.prediction_rows
    requests = {k: _increase(v, old_requests.get(k, 0.0), reset) for k, v in new.requests.items()}
    total = float(sum(requests.values()))
    errors = float(sum(v for k, v in requests.items() if k.startswith("5")))
    refused = float(sum(v for k, v in requests.items() if k.startswith("4")))
    buckets = [(le, _increase(c, old_buckets.get(le, 0.0), reset)) for le, c in new.latency_buckets]
    rows = _increase(new.prediction_rows, old_rows, reset)
    per_s = (lambda x: x / window) if window and window > 0 else (lambda x: None)
    quantile = (lambda q: _none_if_nan(histogram_quantile(q, buckets)))
    return HealthNow(
        up=new.ok, taken_at=new.taken_at, window_s=window, requests=total, requests_per_s=per_s(total),
        error_rate=errors / total if total > 0 else None, refused_rate=refused / total if total > 0 else None,
        p50_s=quantile(0.5), p95_s=quantile(0.95), p99_s=quantile(0.99), in_flight=new.in_flight,
        rows_per_s=per_s(rows), requests_total=new.requests_total, model=new.model, error=new.error,
    )


def health_series(snaps: Iterable[Snapshot]) -> pd.DataFrame:
    """Health over time from stored snapshots: one row per interval between consecutive scrapes.

    Returns:
        Columns :data:`SERIES_COLUMNS`; ``time`` is the end of each interval. A failed scrape
        gives a row with ``in_flight`` NaN and no rates (the service was not answering), and the
        next good scrape starts over from the service's own start.
    """
    rows, previous = [], None
    for snap in snaps:
        if not snap.ok:
            rows.append({"time": snap.taken_at, **{c: np.nan for c in SERIES_COLUMNS[1:]}})
        elif previous is not None:
            h = window_stats(previous, snap)
            rows.append({"time": h.taken_at, "requests_per_s": h.requests_per_s, "error_rate": h.error_rate,
                         "refused_rate": h.refused_rate, "p50_s": h.p50_s, "p95_s": h.p95_s, "p99_s": h.p99_s,
                         "in_flight": h.in_flight, "rows_per_s": h.rows_per_s})
        previous = snap
    frame = pd.DataFrame(rows, columns=list(SERIES_COLUMNS))
    for name in SERIES_COLUMNS[1:]:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


# --------------------------------------------------------------------------- Prometheus


def deployment_label(deployment: Deployment) -> str:
    """The ``shipml_deployment`` label value Prometheus attaches to this deployment's series."""
    return dns_label(deployment.model_name, deployment.version)


def prometheus_queries(name: str, *, window: str = "5m") -> dict[str, str]:
    """PromQL for each series column, for the deployment labelled ``name``.

    Args:
        name: The ``shipml_deployment`` label (see :func:`deployment_label`).
        window: The rate window, a PromQL duration such as ``1m`` or ``5m``.
    """
    if not _DNS.fullmatch(name):
        raise BadInput("not a deployment label")
    if not _DURATION.fullmatch(window):
        raise BadInput("a window is a PromQL duration such as 30s, 5m or 1h")
    sel = f'{SCRAPE_LABEL}="{name}"'
    predict = f'{{{sel}, endpoint="{PREDICT}"}}'
    bucket = f"sum by (le) (rate(shipml_request_latency_seconds_bucket{predict}[{window}]))"
    total = f"sum(rate(shipml_requests_total{predict}[{window}]))"
    # "or vector(0)": no 5xx (4xx) series at all means no errors (refusals), not no data.
    share = (lambda status: f'(sum(rate(shipml_requests_total{{{sel}, endpoint="{PREDICT}", status=~"{status}"}}'
                            f"[{window}])) or vector(0)) / ({total} > 0)")
    return {
        "requests_per_s": total,
        "error_rate": share("5.."),
        "refused_rate": share("4.."),
        "p50_s": f"histogram_quantile(0.5, {bucket})",
        "p95_s": f"histogram_quantile(0.95, {bucket})",
        "p99_s": f"histogram_quantile(0.99, {bucket})",
        "in_flight": f"sum(shipml_in_flight_requests{{{sel}}})",
        "rows_per_s": f"sum(rate(shipml_prediction_rows_total{{{sel}}}[{window}]))",
    }


def prometheus_series(url: str, name: str, *, start: datetime, end: datetime, step_s: float = 15.0,
                      window: str = "5m", timeout_s: float = 10.0) -> pd.DataFrame:
    """Health over time from Prometheus's HTTP API (``/api/v1/query_range``).

    Args:
        url: Prometheus's base URL, e.g. ``http://127.0.0.1:9090``.
        name: The deployment's ``shipml_deployment`` label.
        start: First time (timezone-aware).
        end: Last time.
        step_s: Resolution in seconds.
        window: The ``rate()`` window.
        timeout_s: Per query.

    Returns:
        Columns :data:`SERIES_COLUMNS`, one row per step where any series has a value.

    Raises:
        BadInput: Prometheus is unreachable or rejected a query (the message has no query text).
    """
    base = _check_url(url)
    frames = []
    with httpx.Client(timeout=timeout_s) as client:
        for column, expr in prometheus_queries(name, window=window).items():
            params = {"query": expr, "start": start.timestamp(), "end": end.timestamp(), "step": step_s}
            result = _prom_get(client, f"{base}/api/v1/query_range", params)
            points = {}
            for series in result:
                for ts, value in series.get("values", []):
                    points[float(ts)] = float(value)
            frames.append(pd.Series(points, name=column, dtype=float))
    frame = pd.concat(frames, axis=1) if frames else pd.DataFrame()
    frame = frame.reindex(columns=list(SERIES_COLUMNS[1:])).sort_index()
    frame.index = pd.to_datetime(frame.index, unit="s", utc=True)
    frame = frame.rename_axis("time").reset_index()
    return frame[list(SERIES_COLUMNS)]


def prometheus_query(url: str, expr: str, *, timeout_s: float = 10.0) -> list[dict]:
    """An instant query (``/api/v1/query``): the result vector's items (``metric``, ``value``)."""
    with httpx.Client(timeout=timeout_s) as client:
        return _prom_get(client, f"{_check_url(url)}/api/v1/query", {"query": expr})


def _prom_get(client: httpx.Client, url: str, params: dict) -> list:
    try:
        response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise BadInput(f"Prometheus is unreachable ({type(exc).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or body.get("status") != "success":
        raise BadInput(f"Prometheus rejected a query ({response.status_code}, {str(body.get('errorType', ''))[:40]})")
    return body.get("data", {}).get("result", [])


def _check_url(url: str) -> str:
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadInput("the Prometheus URL must be an http(s) URL")
    return str(url).rstrip("/")


_DNS = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DURATION = re.compile(r"[1-9][0-9]{0,5}(ms|s|m|h|d)")


# --------------------------------------------------------------------------- one entry point


def service_health(engine: Engine, deployment: Deployment, settings: Settings, *,
                   since: datetime | None = None, until: datetime | None = None,
                   step_s: float = 30.0, window: str = "5m") -> pd.DataFrame:
    """Health over time for the Monitor page: from Prometheus when configured, else snapshots.

    Args:
        engine: The store (snapshots).
        deployment: The deployment.
        settings: ``prometheus_url`` chooses the source.
        since: Start (default: 6 hours before ``until``).
        until: End (default: now).
        step_s: Prometheus resolution.
        window: Prometheus rate window.

    Returns:
        Columns :data:`SERIES_COLUMNS`.
    """
    until = until or utcnow()
    since = since or until - timedelta(hours=6)
    if settings.prometheus_url:
        return prometheus_series(settings.prometheus_url, deployment_label(deployment), start=since, end=until,
                                 step_s=step_s, window=window)
    # One snapshot before the range, so the first interval inside it has a start.
    earlier = snapshots(engine, deployment.id, until=since, limit=1)
    return health_series([*earlier, *snapshots(engine, deployment.id, since=since, until=until)])


def current_health(engine: Engine, deployment: Deployment, settings: Settings | None = None, *,
                   min_window_s: float = MIN_WINDOW_S) -> HealthNow:
    """Scrape now (storing the snapshot) and compare with the newest stored one at least ``min_window_s`` old.

    The minimum keeps a manual scrape right after a scheduled one from reporting a near-empty
    window (no requests, no latency). Without such a snapshot of the same service process the
    rates cover the time since the service started.
    """
    previous = snapshots(engine, deployment.id, until=utcnow() - timedelta(seconds=min_window_s), limit=1)
    snap = collect(engine, deployment, settings)
    if not snap.ok:
        return HealthNow(up=False, taken_at=snap.taken_at, window_s=None, requests=0.0, requests_per_s=None,
                         error_rate=None, refused_rate=None, p50_s=None, p95_s=None, p99_s=None,
                         in_flight=float("nan"), rows_per_s=None, requests_total=0.0, model={}, error=snap.error)
    return window_stats(previous[0] if previous else None, snap)


# --------------------------------------------------------------------------- the prediction log


def logged_requests(log_engine: Engine, *, model_name: str, version: int | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    columns: Sequence[str] = ("request_id", "created_at", "n_rows", "latency_ms", "model_version"),
                    ) -> pd.DataFrame:
    """Logged /predict requests of one model (optionally one version) as a frame, oldest first."""
    t = predlog.REQUESTS
    query = sa.select(*[t.c[c] for c in columns]).where(t.c.model_name == model_name)
    if version is not None:
        query = query.where(t.c.model_version == int(version))
    if since is not None:
        query = query.where(t.c.created_at >= since)
    if until is not None:
        query = query.where(t.c.created_at < until)
    with log_engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query.order_by(t.c.id)).mappings().all(), columns=list(columns))
    if "created_at" in frame:
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def prediction_volume(log_engine: Engine, *, model_name: str, version: int | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      freq: str = "5min") -> pd.DataFrame:
    """Requests and predicted rows per time bucket, from the prediction log.

    Returns:
        Columns ``time`` (bucket start, UTC), ``requests``, ``rows``; empty buckets are 0.
    """
    frame = logged_requests(log_engine, model_name=model_name, version=version, since=since, until=until)
    if frame.empty:
        return pd.DataFrame({"time": pd.Series(dtype="datetime64[ns, UTC]"), "requests": pd.Series(dtype=int),
                             "rows": pd.Series(dtype=int)})
    grouped = frame.set_index("created_at").resample(freq)
    out = pd.DataFrame({"requests": grouped["request_id"].count(), "rows": grouped["n_rows"].sum()})
    return out.astype(int).rename_axis("time").reset_index()


def logged_predictions(log_engine: Engine, *, model_name: str, version: int | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       inputs: bool = False) -> pd.DataFrame:
    """The logged predictions, one row per predicted row (as ``predlog.read_rows`` expands them).

    Returns:
        Columns ``request_id``, ``row_index``, ``key``, ``created_at``, ``model_version``,
        ``prediction``, ``proba_<class>`` per class (classifiers), and with ``inputs`` every
        input column under its own name.
    """
    t = predlog.REQUESTS
    query = sa.select(t.c.request_id, t.c.key, t.c["keys"], t.c.created_at, t.c.model_version, t.c.predictions,
                      t.c.probabilities, *([t.c.inputs] if inputs else [])).where(t.c.model_name == model_name)
    if version is not None:
        query = query.where(t.c.model_version == int(version))
    if since is not None:
        query = query.where(t.c.created_at >= since)
    if until is not None:
        query = query.where(t.c.created_at < until)
    decode = msgspec.json.decode
    parts: list[pd.DataFrame] = []
    with log_engine.connect() as conn:
        for rec in conn.execute(query.order_by(t.c.id)).mappings():
            predictions = decode(rec["predictions"])
            n = len(predictions)
            keys = decode(rec["keys"]) if rec["keys"] is not None else [rec["key"]] * n
            data: dict = {"request_id": [rec["request_id"]] * n, "row_index": list(range(n)), "key": keys,
                          "created_at": [rec["created_at"]] * n, "model_version": [rec["model_version"]] * n,
                          "prediction": predictions}
            if rec["probabilities"] is not None:
                for cls, values in predlog.decode_columns(rec["probabilities"]).items():
                    data[f"proba_{cls}"] = values
            if inputs:
                for name, values in predlog.decode_columns(rec["inputs"]).items():
                    data.setdefault(name, values)  # an input never overrides the log's own columns
            parts.append(pd.DataFrame(data))
    if not parts:
        return pd.DataFrame(columns=["request_id", "row_index", "key", "created_at", "model_version", "prediction"])
    frame = pd.concat(parts, ignore_index=True)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def prediction_distribution(log_engine: Engine, *, model_name: str, version: int | None = None,
                            since: datetime | None = None, until: datetime | None = None,
                            freq: str = "1h") -> pd.DataFrame:
    """How predictions are distributed per time bucket.

    Returns:
        Classification (string or boolean predictions): columns ``time``, ``label``, ``rows``,
        ``share`` (of the bucket's rows). Regression: ``time``, ``rows``, ``mean``, ``p10``,
        ``p50``, ``p90``.
    """
    frame = logged_predictions(log_engine, model_name=model_name, version=version, since=since, until=until)
    if frame.empty:
        return pd.DataFrame(columns=["time", "label", "rows", "share"])
    frame["time"] = frame["created_at"].dt.floor(freq)
    numeric = pd.to_numeric(frame["prediction"], errors="coerce")
    classifier = any(c.startswith("proba_") for c in frame.columns) or numeric.isna().any()
    if classifier:
        frame["label"] = frame["prediction"].astype(str)
        counts = frame.groupby(["time", "label"]).size().rename("rows").reset_index()
        counts["share"] = counts["rows"] / counts.groupby("time")["rows"].transform("sum")
        return counts
    frame["value"] = numeric
    grouped = frame.groupby("time")["value"]
    return pd.DataFrame({"rows": grouped.size(), "mean": grouped.mean(), "p10": grouped.quantile(0.1),
                         "p50": grouped.quantile(0.5), "p90": grouped.quantile(0.9)}).reset_index()


def log_url_for(settings: Settings, deployment: Deployment | None = None) -> str:
    """Where the app reads a deployment's prediction log.

    Local deployments (and, without a deployment, every reader) use ``settings.serve_log_db_url``;
    a Docker deployment writes its own SQLite file into a host folder mounted at the container's
    ``/data`` (:func:`core.deploy.docker_target.data_dir`).
    """
    if deployment is not None and deployment.target == "docker" and deployment.id is not None:
        from core.deploy.docker_target import data_dir

        return f"sqlite:///{data_dir(settings, deployment.id) / 'serving' / 'predictions.db'}"
    return settings.serve_log_db_url


def log_engine_for(settings: Settings, *, log_url: str | None = None,
                   deployment: Deployment | None = None) -> Engine:
    """An engine on a prediction log: ``log_url``, else the one ``deployment`` writes (:func:`log_url_for`)."""
    return predlog.make_log_engine(log_url or log_url_for(settings, deployment))


# --------------------------------------------------------------------------- the scheduler


class Scheduler:
    """Collect every running deployment's metrics and evaluate alerts every ``interval_s``.

    One daemon thread; start it once per process (a Streamlit page holds it in
    ``st.cache_resource``). Errors of one round are logged and never stop the thread.

    Args:
        engine: The store.
        settings: Passed to ``collect`` and to alert evaluation.
        interval_s: Seconds between rounds.
        evaluate_alerts: Also run ``core.monitoring.alerts.evaluate_all`` after each round (with each
            deployment's drift share), then the enabled retraining triggers
            (``core.monitoring.triggers.after_evaluation``: firing alerts, watched folders).
    """

    def __init__(self, engine: Engine, settings: Settings, *, interval_s: float = 30.0,
                 evaluate_alerts: bool = True) -> None:
        if interval_s <= 0:
            raise BadInput("the interval must be positive")
        self.engine, self.settings, self.interval_s = engine, settings, float(interval_s)
        self.evaluate_alerts = evaluate_alerts
        self.rounds = 0
        self._drift_shares = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Scheduler:
        """Start the thread (once; later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipml-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_once(self) -> None:
        """One round now: collect every RUNNING deployment, evaluate alerts, prune old snapshots."""
        from core.deploy.records import RUNNING, list_deployments

        for deployment in list_deployments(self.engine, status=RUNNING):
            try:
                collect(self.engine, deployment, self.settings)
            except Exception as exc:  # noqa: BLE001 - one deployment's failure must not stop the others
                log.warning("collecting deployment %s failed (%s)", deployment.id, type(exc).__name__)
        if self.evaluate_alerts:
            from core.monitoring import alerts, triggers

            if self._drift_shares is None:  # each deployment's drift share, computed once per interval
                self._drift_shares = triggers.DriftShares(self.engine, self.settings, ttl_s=self.interval_s)
            try:
                evaluations = alerts.evaluate_all(self.engine, self.settings, drift_share_for=self._drift_shares)
            except Exception as exc:  # noqa: BLE001
                evaluations = []
                log.warning("alert evaluation failed (%s)", type(exc).__name__)
            triggers.after_evaluation(self.engine, self.settings, evaluations)  # retrain triggers; never raises
        try:
            prune_snapshots(self.engine, older_than=utcnow() - RETENTION)
        except Exception as exc:  # noqa: BLE001
            log.warning("pruning snapshots failed (%s)", type(exc).__name__)
        self.rounds += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.interval_s)
