"""Automatic retraining triggers: a firing drift or performance alert, an upload, a watched folder.

Every trigger is off until it is enabled for a model (one ``RetrainTrigger`` row per model, see
:func:`set_triggers`). What each one does:

* **drift_alert / performance_alert** (:func:`on_alert_fired`, called by the scheduler for each
  rule that has just changed to firing): the new rows are the deployment's *labelled* recent
  window, i.e. its logged inputs joined with the labels received through ``/feedback``. Inputs
  without labels are never training data: without labels the run is recorded as ``skipped`` with
  the reason, and nothing is trained. At most one retrain runs per model, and an alert starts at
  most one per ``cooldown_s`` (claimed with a conditional update, so two evaluators cannot both
  start one).
* **new_data** (:func:`on_new_data`, called after a new dataset is imported): a table uploaded to
  the project of the model's champion, with the champion's target column, retrains the model on
  the champion's data plus those rows. Without the target column nothing happens (logged).
* **watched folder** (:func:`run_watchers`, called by the scheduler): each enabled folder is
  scanned by :func:`core.monitoring.watch.scan_watched_folder` (once per file content).

Retrains started here run in their own process (:func:`core.monitoring.retrain.submit_retrain`)
unless ``inline=True`` (tests, the CLI), and are recorded like any other retrain.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import exc as sa_exc
from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from core.config import Settings
from core.errors import BadInput
from core.monitoring.policy import PromotionPolicy
from core.registry import validate_model_name
from core.store.db import session_scope
from core.store.models import Dataset, Deployment, RetrainRun, RetrainTrigger, utcnow

log = logging.getLogger("shipml.monitoring")

SKIPPED = "skipped"  # a trigger fired but nothing could be trained (the run's message says why)
_ALERT_REASONS = {"drift_share": ("drift_alert", "on_drift_alert"),
                  "performance_drop": ("performance_alert", "on_performance_alert")}


@dataclass(frozen=True)
class TriggerResult:
    """What one trigger did.

    Attributes:
        model_name: The model.
        reason: The retrain reason (drift_alert, performance_alert, new_data).
        action: ``started`` (a retrain was submitted or ran), ``skipped`` (recorded, nothing
            trained), ``ignored`` (trigger off, cooling down, or one already running: no record).
        message: One line for a person.
        run_id: The run recorded, when one was (inline retrains and skipped runs).
        pid: The retraining process, when it was submitted.
    """

    model_name: str
    reason: str
    action: str
    message: str
    run_id: int | None = None
    pid: int | None = None


# --------------------------------------------------------------------------- policy


def set_triggers(engine: Engine, *, model_name: str, on_drift_alert: bool | None = None,
                 on_performance_alert: bool | None = None, on_new_data: bool | None = None,
                 watch_folder: str | Path | None = None, clear_watch_folder: bool = False,
                 budget_s: float | None = None, max_trials: int | None = None, margin: float | None = None,
                 cooldown_s: float | None = None) -> RetrainTrigger:
    """Create or change a model's trigger policy; ``None`` leaves a field as it is.

    Raises:
        BadInput: An invalid model name, a watched folder that is not an existing folder given by
            its full path, or a bad number.
    """
    model_name = validate_model_name(model_name)
    folder = None if watch_folder is None else _checked_folder(watch_folder)
    for label, value, low in (("budget", budget_s, 1e-9), ("margin", margin, 0.0), ("cool-down", cooldown_s, 0.0)):
        if value is not None and not (isinstance(value, (int, float)) and value == value and low <= value < 1e12):
            raise BadInput(f"the {label} must be a number >= {low:g}")
    if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
        raise BadInput("the trial cap must be a positive whole number")
    changes = {"on_drift_alert": on_drift_alert, "on_performance_alert": on_performance_alert,
               "on_new_data": on_new_data, "budget_s": budget_s, "max_trials": max_trials, "margin": margin,
               "cooldown_s": cooldown_s, "watch_folder": folder}
    for _ in range(2):  # a concurrent first insert loses the unique race: read it back and update
        try:
            with session_scope(engine) as session:
                row = session.exec(select(RetrainTrigger).where(RetrainTrigger.model_name == model_name)).first()
                row = row or RetrainTrigger(model_name=model_name)
                for key, value in changes.items():
                    if value is not None:
                        setattr(row, key, value)
                if clear_watch_folder:
                    row.watch_folder = None
                row.updated_at = utcnow()
                session.add(row)
                session.flush()
                return row
        except sa_exc.IntegrityError:
            continue
    raise BadInput("the trigger policy changed meanwhile; retry")


def _checked_folder(watch_folder: str | Path) -> str:
    """A watched folder as its resolved full path; it is only ever listed and read, never run.

    A relative path would depend on where the app happens to run (and an empty one would be that
    folder), so a full path (or ``~/...``) is required.
    """
    text = str(watch_folder).strip()
    if not text:
        raise BadInput("give the full path of the folder to watch")
    if "\x00" in text or len(text) > 1000:
        raise BadInput("the watched folder's path is not valid")
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        raise BadInput("give the watched folder's full path (starting with / or ~), not a relative one")
    if not folder.is_dir():
        raise BadInput("the watched folder does not exist (or is not a folder)")
    resolved = str(folder.resolve())
    if len(resolved) > 1000:
        raise BadInput("the watched folder's path is too long")
    return resolved


def describe(row: RetrainTrigger | None) -> str:
    """A model's trigger policy in one line (None: the defaults, everything off)."""
    if row is None:
        return "every automatic trigger is off"
    on = [name for name, flag in (("a firing drift alert", row.on_drift_alert),
                                  ("a firing performance alert", row.on_performance_alert),
                                  ("new data uploaded to the project", row.on_new_data)) if flag]
    if row.watch_folder:
        on.append(f"new files in {row.watch_folder}")
    if not on:
        return "every automatic trigger is off"
    return f"retrains on {', '.join(on)}; at most one alert-started retrain per {row.cooldown_s / 60:g} min"


def get_triggers(engine: Engine, *, model_name: str | None = None) -> list[RetrainTrigger]:
    """The trigger policies, of one model or all, by model name."""
    query = select(RetrainTrigger).order_by(col(RetrainTrigger.model_name))
    if model_name is not None:
        query = query.where(RetrainTrigger.model_name == model_name)
    with session_scope(engine) as session:
        return list(session.exec(query))


def _policy_of(engine: Engine, model_name: str) -> RetrainTrigger | None:
    rows = get_triggers(engine, model_name=model_name)
    return rows[0] if rows else None


def _promotion(row: RetrainTrigger) -> PromotionPolicy:
    return PromotionPolicy(margin=float(row.margin or 0.0))


# --------------------------------------------------------------------------- alerts


def on_alert_fired(engine: Engine, event, settings: Settings, *, inline: bool = False,
                   log_engine: Engine | None = None) -> TriggerResult | None:
    """Start a retrain for an alert that has just changed to firing, if the model's policy says so.

    Args:
        engine: The store.
        event: An ``alerts.Evaluation`` (``kind``, ``state``, ``changed``, ``deployment_id``).
        settings: Workspace and the prediction log.
        inline: Retrain in this process (tests) instead of a detached one.
        log_engine: The prediction log (default: the one the alert's deployment writes,
            ``health.log_engine_for(settings, deployment=...)``).

    Returns:
        What happened, or None when the event is not a new drift or performance firing.
    """
    from core.deploy.records import get_deployment
    from core.monitoring.alerts import FIRING

    if event.kind not in _ALERT_REASONS or event.state != FIRING or not event.changed:
        return None
    reason, flag = _ALERT_REASONS[event.kind]
    try:
        deployment = get_deployment(engine, event.deployment_id)
    except BadInput:
        return None
    name = deployment.model_name
    row = _policy_of(engine, name)
    if row is None or not getattr(row, flag):
        return TriggerResult(name, reason, "ignored", f"the {reason} trigger is off for this model")
    if _running(engine, name):
        return TriggerResult(name, reason, "ignored", "a retrain of this model is already running")
    if not _claim(engine, row):
        return TriggerResult(name, reason, "ignored", "an alert started a retrain of this model recently "
                                                      f"(cool-down {row.cooldown_s:g} s)")
    note = f"alert rule {event.rule_id} on deployment {deployment.id}"
    window = _labelled_window(engine, deployment, settings, event, log_engine)
    if window is None or window.empty:
        message = ("not retrained: the alert's window has no labelled predictions (send ground truth through "
                   "/feedback); unlabelled inputs are never used as training data")
        run_id = _record_skip(engine, name, reason=reason, note=note, message=message)
        return TriggerResult(name, reason, SKIPPED, message, run_id=run_id)
    return _start(engine, row, settings, reason=reason, new_data=window, note=note, inline=inline,
                  new_data_name=f"labelled window of deployment {deployment.id}")


def _labelled_window(engine: Engine, deployment: Deployment, settings: Settings, event,
                     log_engine: Engine | None) -> pd.DataFrame | None:
    """The window's logged inputs that have a label, as training rows (the target column = the label)."""
    from core.monitoring import health
    from core.monitoring import performance as perf
    from core.store.models import AlertRule

    with session_scope(engine) as session:
        rule = session.get(AlertRule, event.rule_id)
        minutes = rule.window_minutes if rule is not None else 60
    own = log_engine is None
    log_engine = log_engine or health.log_engine_for(settings, deployment=deployment)
    try:
        now = utcnow()
        predictions = health.logged_predictions(log_engine, model_name=deployment.model_name,
                                                version=deployment.version, since=now - timedelta(minutes=minutes),
                                                until=now + timedelta(seconds=1), inputs=True)
        labels = perf.read_feedback(log_engine, model_name=deployment.model_name, version=deployment.version)
        joined, _ = perf.join_labels(predictions, labels)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable log means: no labelled rows
        log.warning("labelled window of deployment %s unreadable (%s)", deployment.id, type(exc).__name__)
        return None
    finally:
        if own:
            log_engine.dispose()
    if joined.empty:
        return None
    from core import registry

    target = registry.get_version(engine, name=deployment.model_name, version=deployment.version).target
    meta = {"request_id", "row_index", "key", "created_at", "model_version", "prediction", "label"}
    features = [c for c in joined.columns if c not in meta and not str(c).startswith("proba_") and c != target]
    return joined[features].assign(**{target: joined["label"].to_numpy()}).reset_index(drop=True)


# --------------------------------------------------------------------------- new data


def on_new_data(engine: Engine, dataset: Dataset, settings: Settings, *, inline: bool = False) -> list[TriggerResult]:
    """Retrain each model with ``on_new_data`` whose champion's project received ``dataset``.

    The uploaded rows are the new data; an upload without the model's target column starts
    nothing (logged), and the champion's own dataset never retrains it.
    """
    from core import datasets
    from core.monitoring.retrain import champion_of

    out = []
    for row in get_triggers(engine):
        if not row.on_new_data:
            continue
        try:
            champion = champion_of(engine, model_name=row.model_name)
        except BadInput:
            continue
        with session_scope(engine) as session:
            base = session.exec(select(Dataset).where(Dataset.content_hash == champion.dataset_hash)
                                .order_by(col(Dataset.id))).first()
        if base is None or base.project_id != dataset.project_id or dataset.content_hash == champion.dataset_hash:
            continue
        frame = datasets.load_dataset_frame(dataset, settings=settings)
        if champion.target not in [str(c) for c in frame.columns]:
            message = (f"upload {dataset.id} has no target column {champion.target!r}: "
                       f"model {row.model_name!r} was not retrained")
            log.info(message)
            out.append(TriggerResult(row.model_name, "new_data", "ignored", message))
            continue
        out.append(_start(engine, row, settings, reason="new_data", new_data=frame, inline=inline,
                          note=f"upload: dataset {dataset.id}", new_data_name=dataset.name,
                          source_hash=dataset.content_hash))
    return out


# --------------------------------------------------------------------------- watched folders


def run_watchers(engine: Engine, settings: Settings) -> dict[str, list]:
    """Scan every enabled watched folder once; returns the scan results by model name.

    A folder that disappeared is logged and skipped; one model's trouble never stops the others.
    """
    from core.monitoring.watch import scan_watched_folder

    out: dict[str, list] = {}
    for row in get_triggers(engine):
        if not row.watch_folder:
            continue
        try:
            out[row.model_name] = scan_watched_folder(engine, Path(row.watch_folder), model_name=row.model_name,
                                                      settings=settings, policy=_promotion(row),
                                                      budget_s=row.budget_s, max_trials=row.max_trials)
        except Exception as exc:  # noqa: BLE001
            log.warning("watched folder of model %r failed (%s)", row.model_name, type(exc).__name__)
    return out


# --------------------------------------------------------------------------- drift share for the scheduler


class DriftShares:
    """``drift_share_for`` for ``alerts.evaluate_all``: each deployment's drifted-feature share, cached.

    Computed only for deployments with an enabled drift_share rule, over the longest such rule's
    window, at most once per ``ttl_s`` (the scheduler's interval), without importance (not needed
    for the share). None when it cannot be computed (no traffic yet, no reference sample).
    """

    def __init__(self, engine: Engine, settings: Settings, *, ttl_s: float = 30.0) -> None:
        self.engine, self.settings, self.ttl_s = engine, settings, float(ttl_s)
        self._cache: dict[int, tuple[float, float | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, deployment: Deployment) -> float | None:
        from core.monitoring import alerts, health
        from core.monitoring.window import window_drift

        with self._lock:
            cached = self._cache.get(deployment.id)
            if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
                return cached[1]
        rules = [r for r in alerts.list_rules(self.engine, deployment_id=deployment.id)
                 if r.enabled and r.kind == "drift_share"]
        share = None
        if rules:
            minutes = max(r.window_minutes for r in rules)
            log_engine = health.log_engine_for(self.settings, deployment=deployment)  # a Docker one has its own
            try:
                now = utcnow()
                share = window_drift(self.engine, deployment, self.settings, log_engine,
                                     since=now - timedelta(minutes=minutes), until=now + timedelta(seconds=1),
                                     importance=False).result.share_drifted
            except BadInput:
                share = None
            finally:
                log_engine.dispose()
        with self._lock:
            self._cache[deployment.id] = (time.monotonic(), share)
        return share


def after_evaluation(engine: Engine, settings: Settings, evaluations) -> None:
    """The scheduler's hook: retrain triggers for new firings, then the watched folders. Never raises."""
    for event in evaluations:
        try:
            on_alert_fired(engine, event, settings)
        except Exception as exc:  # noqa: BLE001 - a trigger must never stop the scheduler
            log.warning("retrain trigger for rule %s failed (%s)", getattr(event, "rule_id", None),
                        type(exc).__name__)
    try:
        run_watchers(engine, settings)
    except Exception as exc:  # noqa: BLE001
        log.warning("watched folders failed (%s)", type(exc).__name__)


# --------------------------------------------------------------------------- helpers


def _running(engine: Engine, model_name: str) -> bool:
    with session_scope(engine) as session:
        return session.exec(select(RetrainRun.id).where(RetrainRun.model_name == model_name,
                                                        RetrainRun.status == "RUNNING")).first() is not None


def _claim(engine: Engine, row: RetrainTrigger) -> bool:
    """Take the cool-down slot of ``row``'s model (a conditional update: only one caller wins)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=float(row.cooldown_s))
    with session_scope(engine) as session:
        result = session.exec(update(RetrainTrigger).where(
            col(RetrainTrigger.id) == row.id,
            or_(col(RetrainTrigger.last_triggered_at).is_(None), col(RetrainTrigger.last_triggered_at) <= cutoff),
        ).values(last_triggered_at=now))
        return result.rowcount == 1


def _record_skip(engine: Engine, model_name: str, *, reason: str, note: str, message: str) -> int:
    """A run that trained nothing, so the history says the trigger fired and why nothing happened."""
    import os

    from core.monitoring.retrain import champion_of

    try:
        champion = champion_of(engine, model_name=model_name).version
    except BadInput:
        champion = None
    with session_scope(engine) as session:
        run = RetrainRun(model_name=model_name, trigger=reason, note=note[:500], status="DONE", decision=SKIPPED,
                         champion_version=champion, message=message[:2000], pid=os.getpid(), finished_at=utcnow())
        session.add(run)
        session.flush()
        return run.id


def _start(engine: Engine, row: RetrainTrigger, settings: Settings, *, reason: str, new_data: pd.DataFrame,
           note: str, inline: bool, new_data_name: str, source_hash: str | None = None) -> TriggerResult:
    from core.monitoring import retrain as rt

    name = row.model_name
    if not inline:
        sub = rt.submit_retrain(model_name=name, new_data=new_data, settings=settings, reason=reason,
                                policy=_promotion(row), budget_s=row.budget_s, max_trials=row.max_trials)
        return TriggerResult(name, reason, "started", f"retraining in process {sub.pid}", pid=sub.pid)
    try:
        out = rt.retrain(engine, model_name=name, new_data=new_data, settings=settings, reason=reason,
                         policy=_promotion(row), budget_s=row.budget_s, max_trials=row.max_trials,
                         new_data_name=new_data_name, note=note, source_hash=source_hash)
    except rt.AlreadyRetrained as exc:
        return TriggerResult(name, reason, "ignored", str(exc))
    except BadInput as exc:  # recorded FAILED by retrain
        runs = rt.list_runs(engine, model_name=name, limit=1)
        return TriggerResult(name, reason, "started", f"retrain failed: {exc}", run_id=runs[0].id if runs else None)
    return TriggerResult(name, reason, "started", out.message, run_id=out.run_id)
