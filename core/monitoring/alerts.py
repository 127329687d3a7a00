"""Alert rules on a deployment: thresholds, evaluation, state with history, Prometheus export, webhooks.

A rule (table ``AlertRule``) watches one value of one deployment and fires above its threshold:

==================  ==========================================================================
kind                value
==================  ==========================================================================
p99_latency         /predict p99 latency in seconds over the last ``window_minutes``
error_rate          share of /predict requests answered 5xx over the window
refused_rate        share of /predict requests answered 4xx (refused: rows that break the schema,
                    a missing token) over the window: a client that started sending something new
drift_share         share of drifted features (given by the caller: the drift check computes it)
performance_drop    training CV mean minus the live score of the rule's metric (direction-aware:
                    positive = worse), over the labelled predictions of the window
no_traffic          /predict requests in the window; fires when there were none (threshold unused)
==================  ==========================================================================

Health values come from Prometheus when ``Settings.prometheus_url`` is set, else from the stored
``/metrics`` snapshots (core.monitoring.health). A value that cannot be measured (too few
snapshots, too few labels, service down for no_traffic, no drift share given) leaves the state as
it is. A change of state writes an ``AlertEvent`` (firing or resolved) and, when the rule has a
webhook, POSTs it there; a failed delivery is written on the event, never raised. Two evaluators
at once (the scheduler and a button) cannot both record the same change: the state is switched
with a conditional update and only the winner writes the event.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import yaml
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from core.config import Settings
from core.deploy.monitoring import PREDICT, SCRAPE_LABEL
from core.errors import BadInput
from core.modeling import metrics as mm
from core.monitoring import health
from core.store.db import session_scope
from core.store.models import AlertEvent, AlertRule, Deployment, utcnow

log = logging.getLogger("shipml.monitoring")

KINDS = ("p99_latency", "error_rate", "refused_rate", "drift_share", "performance_drop", "no_traffic")
OK, FIRING, RESOLVED = "ok", "firing", "resolved"
WEBHOOK_TIMEOUT_S = 5.0
_LABELS = {"p99_latency": "p99 latency (s)", "error_rate": "error rate", "refused_rate": "refused share",
           "drift_share": "drifted feature share", "performance_drop": "drop against the training score",
           "no_traffic": "requests in the window"}
_PROMETHEUS_KINDS = ("p99_latency", "error_rate", "refused_rate", "no_traffic")  # the rest: computed by ShipML


def kind_label(kind: str) -> str:
    """What a rule of ``kind`` watches, in words (``"p99 latency (s)"`` for ``p99_latency``)."""
    return "no traffic" if kind == "no_traffic" else _LABELS.get(kind, kind)


@dataclass(frozen=True)
class Evaluation:
    """One rule after one evaluation."""

    rule_id: int
    deployment_id: int
    kind: str
    state: str  # ok or firing (after this evaluation)
    value: float | None  # None: could not be measured, state unchanged
    threshold: float
    changed: bool  # this evaluation changed the state (and wrote an event)
    message: str
    notified: str | None = None  # webhook outcome when it changed


# --------------------------------------------------------------------------- rules


def validate_webhook(url: str) -> str:
    """A webhook URL: http or https with a host, at most 500 characters.

    Raises:
        BadInput: Anything else (file:, javascript:, no host...).
    """
    text = str(url).strip()
    try:
        parsed = httpx.URL(text)
    except Exception:  # noqa: BLE001 - httpx raises several types for garbage
        raise BadInput("the webhook must be an http(s) URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host or len(text) > 500:
        raise BadInput("the webhook must be an http(s) URL with a host (at most 500 characters)")
    return text


def create_rule(engine: Engine, *, deployment_id: int, kind: str, threshold: float = 0.0,
                window_minutes: int = 15, metric: str | None = None, min_samples: int = 30,
                webhook_url: str | None = None) -> AlertRule:
    """Add a rule to a deployment.

    Args:
        engine: The store.
        deployment_id: The deployment watched.
        kind: One of :data:`KINDS`.
        threshold: Fires when the value is above it (no_traffic: ignored).
        window_minutes: How far back the value looks.
        metric: performance_drop: the metric compared (default: the one the version was tuned for).
        min_samples: performance_drop: labelled predictions needed in the window.
        webhook_url: Optional http(s) URL that receives each state change as JSON.

    Raises:
        BadInput: Unknown kind or metric, a bad number, or a bad webhook URL.
    """
    if kind not in KINDS:
        raise BadInput(f"unknown alert kind; choose one of {', '.join(KINDS)}")
    if not isinstance(threshold, (int, float)) or threshold != threshold or abs(threshold) == float("inf"):
        raise BadInput("the threshold must be a number")
    if kind in ("p99_latency", "error_rate", "refused_rate", "drift_share") and threshold < 0:
        raise BadInput("the threshold must not be negative")
    if kind in ("error_rate", "refused_rate", "drift_share") and threshold > 1:
        raise BadInput("a share threshold lies between 0 and 1")
    if not isinstance(window_minutes, int) or not 1 <= window_minutes <= 60 * 24 * 90:
        raise BadInput("the window is 1 minute to 90 days")
    if metric is not None and metric not in mm.METRICS:
        raise BadInput(f"unknown metric; use one of {', '.join(mm.METRICS)}")
    if not isinstance(min_samples, int) or min_samples < 1:
        raise BadInput("min_samples must be a positive whole number")
    webhook = validate_webhook(webhook_url) if webhook_url else None
    with session_scope(engine) as session:
        row = AlertRule(deployment_id=deployment_id, kind=kind, threshold=float(threshold),
                        window_minutes=window_minutes, metric=metric, min_samples=min_samples,
                        webhook_url=webhook, state=OK)
        session.add(row)
        session.flush()
        return row


def list_rules(engine: Engine, *, deployment_id: int | None = None) -> list[AlertRule]:
    """Rules, oldest first, optionally of one deployment."""
    query = select(AlertRule).order_by(col(AlertRule.id))
    if deployment_id is not None:
        query = query.where(AlertRule.deployment_id == deployment_id)
    with session_scope(engine) as session:
        return list(session.exec(query))


def set_enabled(engine: Engine, rule_id: int, enabled: bool) -> None:
    """Enable or disable a rule (a disabled rule is not evaluated and keeps its state)."""
    with session_scope(engine) as session:
        session.exec(update(AlertRule).where(col(AlertRule.id) == rule_id).values(enabled=bool(enabled)))


def delete_rule(engine: Engine, rule_id: int) -> None:
    """Remove a rule and its history."""
    with session_scope(engine) as session:
        for event in session.exec(select(AlertEvent).where(AlertEvent.rule_id == rule_id)):
            session.delete(event)
        rule = session.get(AlertRule, rule_id)
        if rule is not None:
            session.delete(rule)


def events(engine: Engine, *, deployment_id: int | None = None, rule_id: int | None = None,
           limit: int = 200) -> list[AlertEvent]:
    """State changes, newest first."""
    query = select(AlertEvent).order_by(col(AlertEvent.id).desc()).limit(limit)
    if deployment_id is not None:
        query = query.where(AlertEvent.deployment_id == deployment_id)
    if rule_id is not None:
        query = query.where(AlertEvent.rule_id == rule_id)
    with session_scope(engine) as session:
        return list(session.exec(query))


def firing(engine: Engine) -> list[AlertRule]:
    """Every enabled rule firing now (for the sidebar)."""
    query = select(AlertRule).where(AlertRule.state == FIRING, AlertRule.enabled == True)  # noqa: E712
    with session_scope(engine) as session:
        return list(session.exec(query.order_by(col(AlertRule.id))))


def describe(rule: AlertRule) -> str:
    """A short human description, e.g. ``p99 latency (s) > 0.5 over 15 min``."""
    if rule.kind == "no_traffic":
        return f"no /predict request for {rule.window_minutes} min"
    extra = f" ({rule.metric})" if rule.kind == "performance_drop" and rule.metric else ""
    return f"{_LABELS[rule.kind]}{extra} > {rule.threshold:g} over {rule.window_minutes} min"


# --------------------------------------------------------------------------- measuring


def _snapshot_window(engine: Engine, deployment_id: int, since: datetime, until: datetime):
    """Increases of /predict requests, 5xx, 4xx and latency buckets over the stored snapshots of a window.

    Returns:
        (requests, server_errors, refused, buckets, covered_seconds, last_ok) or None with fewer
        than two good snapshots.
    """
    earlier = health.snapshots(engine, deployment_id, until=since, limit=1)
    snaps = [*earlier, *health.snapshots(engine, deployment_id, since=since, until=until)]
    good = [s for s in snaps if s.ok]
    if len(good) < 2:
        return None
    requests = errors = refused = 0.0
    buckets: dict[float, float] = {}
    previous = None
    for snap in snaps:
        if snap.ok and previous is not None and previous.ok:
            reset = previous.process_start != snap.process_start
            old_req = {} if reset else previous.requests
            old_buckets = {} if reset else dict(previous.latency_buckets)
            for status, value in snap.requests.items():
                inc = health._increase(value, old_req.get(status, 0.0), reset)
                requests += inc
                errors += inc if status.startswith("5") else 0.0
                refused += inc if status.startswith("4") else 0.0
            for le, value in snap.latency_buckets:
                buckets[le] = buckets.get(le, 0.0) + health._increase(value, old_buckets.get(le, 0.0), reset)
        previous = snap
    covered = (good[-1].taken_at - good[0].taken_at).total_seconds()
    return requests, errors, refused, sorted(buckets.items()), covered, snaps[-1].ok


def _measure_health(engine: Engine, deployment: Deployment, settings: Settings, rule: AlertRule,
                    now: datetime) -> float | None:
    since = now - timedelta(minutes=rule.window_minutes)
    if settings.prometheus_url:
        return _measure_prometheus(settings.prometheus_url, health.deployment_label(deployment), rule)
    window = _snapshot_window(engine, deployment.id, since, now)
    if window is None:
        return None
    requests, errors, refused, buckets, covered, last_ok = window
    if rule.kind == "p99_latency":
        value = health.histogram_quantile(0.99, buckets)
        return None if value != value else value
    if rule.kind in ("error_rate", "refused_rate"):
        return (errors if rule.kind == "error_rate" else refused) / requests if requests > 0 else None
    # no_traffic: only with the whole window watched (a 90 % tolerance for scrape jitter), service up
    if not last_ok or covered < 0.9 * rule.window_minutes * 60:
        return None
    return requests


def _measure_prometheus(url: str, name: str, rule: AlertRule) -> float | None:
    exprs = prometheus_exprs(name, rule.window_minutes)
    result = health.prometheus_query(url, exprs[rule.kind])
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value


def prometheus_exprs(name: str, window_minutes: int) -> dict[str, str]:
    """The PromQL of the health kinds (the value, without the comparison) for one deployment."""
    w = f"{int(window_minutes)}m"
    queries = health.prometheus_queries(name, window=w)  # the health charts' PromQL; validates the label
    predict = f'{{{SCRAPE_LABEL}="{name}", endpoint="{PREDICT}"}}'
    return {"p99_latency": queries["p99_s"], "error_rate": queries["error_rate"], "refused_rate": queries["refused_rate"],
            "no_traffic": f"sum(increase(shipml_requests_total{predict}[{w}]))"}


def _measure_performance(engine: Engine, deployment: Deployment, settings: Settings, rule: AlertRule,
                         now: datetime, log_engine) -> float | None:
    from core.monitoring import performance as perf

    info = perf.model_info(engine, model_name=deployment.model_name, version=deployment.version,
                           model_dir=_path(deployment.model_dir))
    metric = rule.metric or info.primary_metric
    if metric not in info.training:
        return None
    joined, _ = perf.labelled_predictions(log_engine, info, since=now - timedelta(minutes=rule.window_minutes),
                                          until=now)
    if len(joined) < rule.min_samples:
        return None
    live = perf.score_rows(joined, task=info.task, positive=info.positive_class).get(metric)
    if live is None or live != live:
        return None
    return mm.signed(metric, info.training[metric]) - mm.signed(metric, live)


def _path(text: str | None):
    from pathlib import Path

    return Path(text) if text else None


# --------------------------------------------------------------------------- evaluating


def evaluate(engine: Engine, deployment: Deployment, settings: Settings, *, drift_share: float | None = None,
             now: datetime | None = None, log_engine=None,
             notify: Callable[[str, dict], str] | None = None) -> list[Evaluation]:
    """Evaluate every enabled rule of one deployment now.

    Args:
        engine: The store.
        deployment: The deployment.
        settings: Prometheus URL (if any) and the prediction log.
        drift_share: The share of drifted features of the latest window, if computed.
        now: The evaluation time (default: now).
        log_engine: The prediction log (default: the deployment's own, see ``health.log_url_for``).
        notify: Sends a payload to a URL and returns the outcome (default: :func:`send_webhook`).

    Returns:
        One :class:`Evaluation` per enabled rule. Measuring errors are logged and leave a rule's
        state unchanged; nothing here raises for an unreachable service, Prometheus or webhook.
    """
    now = now or utcnow()
    notify = notify or send_webhook
    rules = [r for r in list_rules(engine, deployment_id=deployment.id) if r.enabled]
    own_log = None
    if log_engine is None and any(r.kind == "performance_drop" for r in rules):
        own_log = log_engine = health.log_engine_for(settings, deployment=deployment)
    out = []
    try:
        for rule in rules:
            try:
                if rule.kind == "drift_share":
                    value = drift_share
                elif rule.kind == "performance_drop":
                    value = _measure_performance(engine, deployment, settings, rule, now, log_engine)
                else:
                    value = _measure_health(engine, deployment, settings, rule, now)
            except Exception as exc:  # noqa: BLE001 - one rule's trouble must not stop the others
                log.warning("alert rule %s could not be measured (%s)", rule.id, type(exc).__name__)
                value = None
            out.append(_apply(engine, deployment, rule, value, now, notify))
    finally:
        if own_log is not None:
            own_log.dispose()
    return out


def evaluate_all(engine: Engine, settings: Settings, *,
                 drift_share_for: Callable[[Deployment], float | None] | None = None) -> list[Evaluation]:
    """Evaluate the rules of every RUNNING deployment (what the scheduler calls)."""
    from core.deploy.records import RUNNING, get_deployment

    out: list[Evaluation] = []
    for deployment_id in sorted({r.deployment_id for r in list_rules(engine) if r.enabled}):
        try:
            deployment = get_deployment(engine, deployment_id)
        except BadInput:
            continue
        if deployment.status != RUNNING:
            continue
        share = None
        if drift_share_for is not None:
            try:
                share = drift_share_for(deployment)
            except Exception as exc:  # noqa: BLE001
                log.warning("drift share of deployment %s failed (%s)", deployment_id, type(exc).__name__)
        out.extend(evaluate(engine, deployment, settings, drift_share=share))
    return out


def _apply(engine: Engine, deployment: Deployment, rule: AlertRule, value: float | None, now: datetime,
           notify: Callable[[str, dict], str]) -> Evaluation:
    if value is None:
        _touch(engine, rule.id, now, None)
        return Evaluation(rule.id, deployment.id, rule.kind, rule.state, None, rule.threshold, False,
                          f"{describe(rule)}: no data")
    breached = value == 0 if rule.kind == "no_traffic" else value > rule.threshold
    new_state = FIRING if breached else OK
    message = f"{describe(rule)}: value {value:.4g}"
    if new_state == rule.state:
        _touch(engine, rule.id, now, value)
        return Evaluation(rule.id, deployment.id, rule.kind, new_state, value, rule.threshold, False, message)
    with session_scope(engine) as session:
        won = session.exec(
            update(AlertRule).where(col(AlertRule.id) == rule.id, col(AlertRule.state) == rule.state)
            .values(state=new_state, state_since=now, last_value=value, last_evaluated_at=now)).rowcount == 1
        if not won:  # another evaluator recorded this change first
            return Evaluation(rule.id, deployment.id, rule.kind, new_state, value, rule.threshold, False, message)
        event = AlertEvent(rule_id=rule.id, deployment_id=deployment.id, state=FIRING if breached else RESOLVED,
                           value=value, message=message[:500], created_at=now)
        session.add(event)
        session.flush()
        event_id = event.id
    notified = None
    if rule.webhook_url:
        payload = {"rule_id": rule.id, "deployment_id": deployment.id, "model": deployment.model_name,
                   "version": deployment.version, "kind": rule.kind, "state": event.state, "value": value,
                   "threshold": rule.threshold, "window_minutes": rule.window_minutes, "message": message,
                   "at": now.isoformat()}
        try:
            notified = notify(rule.webhook_url, payload)
        except Exception as exc:  # noqa: BLE001 - a webhook is never allowed to break evaluation
            notified = f"failed: {type(exc).__name__}"
        with session_scope(engine) as session:
            session.exec(update(AlertEvent).where(col(AlertEvent.id) == event_id).values(notified=notified[:300]))
    return Evaluation(rule.id, deployment.id, rule.kind, new_state, value, rule.threshold, True, message, notified)


def _touch(engine: Engine, rule_id: int, now: datetime, value: float | None) -> None:
    values = {"last_evaluated_at": now, **({"last_value": value} if value is not None else {})}
    with session_scope(engine) as session:
        session.exec(update(AlertRule).where(col(AlertRule.id) == rule_id).values(**values))


def send_webhook(url: str, payload: dict, *, timeout_s: float = WEBHOOK_TIMEOUT_S) -> str:
    """POST ``payload`` as JSON; returns ``"sent (STATUS)"`` or ``"failed: REASON"`` (never raises).

    Redirects are not followed (a webhook that moves must be re-entered), and the URL is checked
    again, so a rule stored before validation cannot reach other schemes.
    """
    try:
        url = validate_webhook(url)
        response = httpx.post(url, json=payload, timeout=timeout_s, follow_redirects=False)
    except BadInput:
        return "failed: not an http(s) URL"
    except httpx.HTTPError as exc:
        return f"failed: {type(exc).__name__}"
    if response.status_code >= 300:
        return f"failed: HTTP {response.status_code}"
    return f"sent ({response.status_code})"


# --------------------------------------------------------------------------- Prometheus export


def prometheus_rules(engine: Engine, deployment: Deployment) -> dict:
    """The deployment's enabled health rules as a Prometheus rule file (``groups``).

    Same layout as the deployment bundle's ``alerts.yml`` (core.deploy.monitoring); drift_share
    and performance_drop are computed by ShipML from the prediction log, not by Prometheus, so they
    are left out (see :func:`prometheus_rules_yaml`).
    """
    name = health.deployment_label(deployment)
    rules = []
    for rule in list_rules(engine, deployment_id=deployment.id):
        if not rule.enabled or rule.kind not in _PROMETHEUS_KINDS:
            continue
        expr = prometheus_exprs(name, rule.window_minutes)[rule.kind]
        expr = f"({expr} or vector(0)) == 0" if rule.kind == "no_traffic" else f"({expr}) > {rule.threshold!r}"
        rules.append({
            "alert": f"ShipMLRule{rule.id}{''.join(p.title() for p in rule.kind.split('_'))}",
            "expr": expr,
            "for": "1m",
            "labels": {"severity": "warning", "shipml_rule_id": str(rule.id)},
            "annotations": {"summary": describe(rule)},
        })
    return {"groups": [{"name": f"{name}-rules", "rules": rules}]}


def prometheus_rules_yaml(engine: Engine, deployment: Deployment) -> str:
    """:func:`prometheus_rules` as YAML, with a comment naming the rules left out."""
    left_out = [r for r in list_rules(engine, deployment_id=deployment.id)
                if r.enabled and r.kind not in _PROMETHEUS_KINDS]
    head = "# ShipML alert rules of deployment %d\n" % int(deployment.id)
    if left_out:
        head += ("# Evaluated by ShipML, not Prometheus (their values are not metrics): "
                 + ", ".join(f"rule {r.id} {r.kind}" for r in left_out) + "\n")
    return head + yaml.safe_dump(prometheus_rules(engine, deployment), sort_keys=False)
