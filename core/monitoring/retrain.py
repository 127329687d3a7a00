"""Retraining with a champion/challenger decision, promotion and rollback, all recorded.

``retrain`` walks the loop a team runs by hand:

1. **The champion**: the version aliased ``champion``, else the latest READY one.
2. **The data**: the champion's dataset (found by its hash) plus the new rows, stored as a *new*
   immutable dataset in the same project (with the champion's target, recipe and plan as its
   preparation); the old dataset is never touched. Rows are appended as they are: duplicates are
   dropped only if the recipe drops them, exactly as in the first training.
3. **The challenger**: trained by ``core.training.train_model`` with the champion's recipe, feature
   plan, target, task, validation scheme, holdout share, seed and tuning config (models, search,
   metric; the budget may be overridden).
4. **The comparison**, on rows neither model learned from:

   * *holdout*: the combined table's holdout, the very rows ``train_model`` kept out of the
     challenger's tuning (same function, same seed). The shipped champion has seen its old rows
     (it is refit on all its rows), so each side is refit, with its own fitted configuration
     (``sklearn.base.clone``), on the training rows it could have had: the champion on the old
     rows of the training part, the challenger on the whole training part. The champion's
     hyperparameters were chosen on old rows that may include holdout rows: any bias favours
     the champion, so a promotion errs on the side of caution.
   * *window* (optional): a labelled recent window (e.g. joined from feedback), scored with the
     two shipped models; rows equal to a training row are dropped first.

   Each is a paired bootstrap interval of the difference (``core.monitoring.policy``).
5. **The decision**: promoted (the ``champion`` alias moves, the old champion becomes
   ``previous``) only if the policy holds, else the new version is aliased ``challenger``.

Every retrain, rollback and promotion is a ``RetrainRun`` row (reason, scores, interval,
decision), so the Monitor page can show the history and undo any change.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.base import clone
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from threadpoolctl import threadpool_limits

from core import datasets
from core.config import PROJECT_ROOT, Settings, child_environment
from core.data.profile import Task
from core.data.storage import load_frame, save_frame
from core.errors import BadInput
from core.modeling.metrics import check_metric, default_metric, oriented
from core.modeling.splits import holdout_split
from core.modeling.tuning import TuningConfig
from core.monitoring.policy import Comparison, PromotionPolicy, Scored, decide, paired_bootstrap
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table, recipe_from_json
from core.registry import (READY, decision_threshold, get_version, load_pipeline, positive_class, set_alias,
                           validate_model_name)
from core.serving_io import binary_labels
from core.store import crud
from core.store.db import session_scope
from core.store.models import Dataset, ModelAlias, ModelVersion, RetrainRun, TrainingJob, utcnow

__all__ = [
    "TRIGGERS",
    "AlreadyRetrained",
    "ChampionChange",
    "RetrainOutcome",
    "SubmittedRetrain",
    "champion_of",
    "list_runs",
    "mark_stale_runs",
    "promote",
    "record_change",
    "retrain",
    "rollback",
    "submit_retrain",
]

TRIGGERS = ("button", "cli", "drift_alert", "performance_alert", "new_data", "schedule")
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
PROMOTED, KEPT, FAILED, ROLLED_BACK = "promoted", "kept_as_challenger", "failed", "rolled_back"
DEFAULT_BUDGET_S = 60.0  # for versions whose tuning config was never recorded


class AlreadyRetrained(Exception):
    """This model has already been retrained on this file content (watched folders)."""


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retrain did.

    Attributes:
        run_id: The ``RetrainRun`` row.
        model_name: The model.
        reason: What triggered it (one of ``TRIGGERS``).
        decision: ``promoted`` or ``kept_as_challenger``.
        champion_version: The champion the challenger was compared with.
        challenger_version: The version trained.
        metric: The metric compared.
        holdout: The comparison on the shared holdout.
        window: The comparison on the labelled window, if one was given.
        message: One paragraph for a person: the decision and why.
        dataset_id: The dataset the challenger trained on (new when rows were added).
        dataset_hash: Its content hash.
        new_rows: Rows added.
    """

    run_id: int
    model_name: str
    reason: str
    decision: str
    champion_version: int
    challenger_version: int
    metric: str
    holdout: Comparison
    window: Comparison | None
    message: str
    dataset_id: int | None
    dataset_hash: str
    new_rows: int

    @property
    def promoted(self) -> bool:
        return self.decision == PROMOTED


@dataclass(frozen=True)
class ChampionChange:
    """A rollback or manual promotion: the champion alias moved from one version to another."""

    run_id: int
    model_name: str
    kind: str  # rollback or promote
    from_version: int | None
    to_version: int
    message: str


# --------------------------------------------------------------------------- public API


def champion_of(engine: Engine, *, model_name: str) -> ModelVersion:
    """The version aliased ``champion``, else the latest READY one.

    Raises:
        BadInput: The model has no READY version.
    """
    return _champion(engine, model_name)[0]


def retrain(
    engine: Engine,
    *,
    model_name: str,
    new_data: pd.DataFrame | None,
    settings: Settings,
    reason: str,
    policy: PromotionPolicy = PromotionPolicy(),
    budget_s: float | None = None,
    max_trials: int | None = None,
    window: pd.DataFrame | None = None,
    new_data_name: str = "new rows",
    note: str = "",
    source_hash: str | None = None,
    on_trial=None,
) -> RetrainOutcome:
    """Retrain a model on its data plus ``new_data`` and promote the result only if it is better.

    See the module docstring for the steps and how "better" is measured.

    Args:
        engine: The store.
        model_name: The model to retrain.
        new_data: New labelled rows with (at least) the training table's columns; extra columns
            are dropped. None retrains on the champion's own data (e.g. with a larger budget).
        settings: Workspace and limits. The seed used is the one the champion recorded.
        reason: The trigger, one of ``TRIGGERS``.
        policy: When to promote.
        budget_s: Tuning budget in seconds; None keeps the champion's recorded budget.
        max_trials: Trial cap; None keeps the recorded one.
        window: A labelled recent window (the target column included) to compare on as well.
        new_data_name: How the new rows are named in the new dataset's name.
        note: Free text stored with the run (an alert name, a file name).
        source_hash: The new data's content hash when it came from a watched folder: a second
            retrain of the same model on the same hash raises ``AlreadyRetrained``.
        on_trial: Called with each finished tuning trial (progress).

    Returns:
        The outcome; the run is recorded whatever happens.

    Raises:
        BadInput: Unknown reason, a bad policy, new data without the training columns, a window
            without the target, or anything ``train_model`` refuses. The run is recorded FAILED.
        AlreadyRetrained: ``source_hash`` was already used for this model.
    """
    if reason not in TRIGGERS:
        raise BadInput(f"unknown retrain reason {reason!r}; use one of: {', '.join(TRIGGERS)}")
    policy.validate()
    model_name = validate_model_name(model_name)
    champion, had_alias = _champion(engine, model_name)
    run_id = _start_run(engine, model_name=model_name, trigger=reason, note=note, champion=champion,
                        policy=policy, source_hash=source_hash)
    try:
        outcome = _retrain(engine, run_id=run_id, champion=champion, had_alias=had_alias, new_data=new_data,
                           settings=settings, reason=reason, policy=policy, budget_s=budget_s,
                           max_trials=max_trials, window=window, new_data_name=new_data_name, on_trial=on_trial)
    except BadInput as exc:
        _finish_run(engine, run_id, status="FAILED", decision=FAILED, message=str(exc))
        raise
    except BaseException as exc:
        _finish_run(engine, run_id, status="FAILED", decision=FAILED,
                    message=f"retraining stopped on an internal error ({type(exc).__name__})")
        raise
    return outcome


def rollback(engine: Engine, *, model_name: str, to_version: int, settings: Settings, reason: str = "button",
             note: str = "") -> ChampionChange:
    """Make an earlier READY version the champion again (one click on the Monitor page).

    The version that was champion becomes ``previous``, so the rollback itself can be undone.

    Raises:
        BadInput: No champion, ``to_version`` missing, not READY, not earlier than the champion,
            or its file no longer matches its hash.
    """
    return _move(engine, model_name=model_name, version=to_version, settings=settings, reason=reason, note=note,
                 kind="rollback")


def promote(engine: Engine, *, model_name: str, version: int, settings: Settings, reason: str = "button",
            note: str = "") -> ChampionChange:
    """Make any READY version (typically the challenger) the champion, recorded like a rollback.

    Raises:
        BadInput: The version is missing, not READY, already champion, or its file is damaged.
    """
    return _move(engine, model_name=model_name, version=version, settings=settings, reason=reason, note=note,
                 kind="promote")


@dataclass(frozen=True)
class SubmittedRetrain:
    """A retrain started in its own process: watch ``list_runs`` for the run with this ``pid``."""

    pid: int
    folder: Path  # holds the new rows, the window and the process's log (log.txt)


def submit_retrain(
    *,
    model_name: str,
    new_data: pd.DataFrame | None,
    settings: Settings,
    reason: str,
    policy: PromotionPolicy = PromotionPolicy(),
    budget_s: float | None = None,
    max_trials: int | None = None,
    window: pd.DataFrame | None = None,
) -> SubmittedRetrain:
    """Run :func:`retrain` in a detached process (``python -m core retrain``), for the Monitor page.

    The page's script never trains: the process survives reruns and restarts and records its run
    (RUNNING, then DONE or FAILED) like any other retrain. The new rows and the window are written
    to Parquet files in a fresh folder under the workspace and passed by path.

    Raises:
        BadInput: An unknown reason, a bad policy or an invalid model name (checked here, so the
            page can say so at once).
    """
    if reason not in TRIGGERS:
        raise BadInput(f"unknown retrain reason {reason!r}; use one of: {', '.join(TRIGGERS)}")
    policy.validate()
    model_name = validate_model_name(model_name)
    folder = settings.workspace / "monitoring" / "retrain" / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "core", "retrain", "--model", model_name, "--reason", reason,
            "--margin", repr(float(policy.margin)), "--confidence", repr(float(policy.confidence)),
            "--bootstrap", str(int(policy.n_bootstrap)), "--json"]
    if policy.metric:
        args += ["--metric", policy.metric]
    if policy.require_window:
        args.append("--require-window")
    if budget_s is not None:
        args += ["--budget", repr(float(budget_s))]
    if max_trials is not None:
        args += ["--trials", str(int(max_trials))]
    for flag, frame, file in (("--data", new_data, "new.parquet"), ("--window", window, "window.parquet")):
        if frame is not None:
            frame.to_parquet(folder / file, index=False)
            args += [flag, str(folder / file)]
    with open(folder / "log.txt", "ab") as log:
        proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env=child_environment(settings), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return SubmittedRetrain(pid=proc.pid, folder=folder)


def list_runs(engine: Engine, *, model_name: str | None = None, limit: int = 100) -> list[RetrainRun]:
    """Retrains, rollbacks and promotions, newest first."""
    query = select(RetrainRun).order_by(col(RetrainRun.id).desc()).limit(limit)
    if model_name is not None:
        query = query.where(RetrainRun.model_name == model_name)
    with session_scope(engine) as session:
        return list(session.exec(query))


def mark_stale_runs(engine: Engine, *, older_than_s: float = 6 * 3600) -> int:
    """Mark runs left RUNNING by a killed process (older than ``older_than_s``) FAILED; returns how many."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with session_scope(engine) as session:
        rows = list(session.exec(select(RetrainRun).where(
            RetrainRun.status == "RUNNING", col(RetrainRun.started_at) < cutoff)))
        for row in rows:
            row.status, row.decision, row.finished_at = "FAILED", FAILED, utcnow()
            row.message = "interrupted: the retraining process stopped before it finished"
            session.add(row)
    return len(rows)


# --------------------------------------------------------------------------- the retrain itself


def _retrain(engine: Engine, *, run_id: int, champion: ModelVersion, had_alias: bool, new_data, settings,
             reason, policy, budget_s, max_trials, window, new_data_name, on_trial) -> RetrainOutcome:
    from core import training  # imported late: training pulls in the whole modelling stack

    name = champion.model_name
    cv = json.loads(champion.cv_json or "{}")
    task = Task(champion.task)
    seed = int(cv.get("seed", settings.random_seed))
    if seed != settings.random_seed:  # the split and the estimators must use the champion's seed
        settings = settings.model_copy(update={"random_seed": seed})
    config, config_note = _tuning_config(engine, champion, cv=cv, task=task)
    config = dataclasses.replace(
        config,
        budget_s=budget_s if budget_s is not None else config.budget_s,
        max_trials=max_trials if max_trials is not None else config.max_trials,
    )
    metric = policy.metric or config.metric or default_metric(task)
    check_metric(metric, task)
    recipe = recipe_from_json(champion.recipe_json)
    plan = FeaturePlan.model_validate_json(champion.plan_json or "{}")

    base_dataset, base = _base_data(engine, champion, settings=settings)
    n_base = len(base)
    new_rows = 0
    extra_note = ""
    if new_data is not None:
        combined, dropped = _combine(base, new_data)
        new_rows = len(combined) - n_base
        if dropped:
            extra_note = f" Columns not in the training data were left out: {', '.join(map(repr, dropped[:5]))}."
    else:
        combined = base
    if len(combined) > settings.max_rows:
        raise BadInput(f"the combined table has more than {settings.max_rows:,} rows, the limit")

    request = training.TrainRequest(
        model_name=name, target=champion.target, config=config, task=task,
        cv_kind=cv.get("kind"), n_folds=int(cv.get("n_folds", settings.cv_folds)),
        time_column=cv.get("time_column"), group_column=cv.get("group_column"),
        holdout_share=float(cv.get("holdout_share", 0.2)),
        description=f"retrained ({reason}) from version {champion.version}",
    )
    # Every check that can fail on the data runs before any data is stored or time is spent.
    data = training.prepare(combined, recipe, plan, request, seed=seed)
    X_train, X_hold, y_train, y_hold = holdout_split(data.X, data.y, task=data.task, scheme=data.scheme,
                                                     share=request.holdout_share)
    window_xy = _window_rows(window, recipe=recipe, target=champion.target, columns=list(data.X.columns),
                             training=(data.X, data.y)) if window is not None else None

    if new_data is not None:
        dataset = _store_combined(engine, combined, base_dataset=base_dataset, champion=champion,
                                  new_data_name=new_data_name, recipe=recipe, plan=plan, settings=settings)
        dataset_id, dataset_hash = dataset.id, dataset.content_hash
    else:
        dataset_id, dataset_hash = (base_dataset.id if base_dataset else None), champion.dataset_hash
    _update_run(engine, run_id, dataset_hash=dataset_hash, new_rows=new_rows, metric=metric,
                tuning_json=json.dumps(config.to_dict()))

    outcome = training.train_model(combined, dataset_hash=dataset_hash, recipe=recipe, plan=plan, request=request,
                                   engine=engine, settings=settings, on_trial=on_trial)
    challenger = outcome.version
    _update_run(engine, run_id, challenger_version=challenger.version)

    champion_model = load_pipeline(champion, settings=settings)
    challenger_model = load_pipeline(challenger, settings=settings)
    compare_seed = policy.seed if policy.seed is not None else seed
    with threadpool_limits(1):  # as in training: competing OpenMP pools are slow on small machines
        # Old rows keep their positions in the combined table (index < n_base) through the recipe.
        old = np.asarray(X_train.index < n_base) if new_data is not None else np.ones(len(X_train), bool)
        if not old.any():
            raise BadInput("the holdout split left none of the champion's own rows to refit it on")
        champion_fit = clone(champion_model).fit(X_train[old], y_train[old])
        challenger_fit = clone(challenger_model).fit(X_train, y_train)
        # Each model labels rows at its own decision threshold, as its service does; both are
        # scored with the challenger's positive class (an older champion may have recorded none).
        labelling = ((decision_threshold(champion), positive_class(champion)),
                     (decision_threshold(challenger), positive_class(challenger)))
        holdout = _compare("holdout", champion_fit, challenger_fit, X_hold, y_hold, task=task, metric=metric,
                           policy=policy, seed=compare_seed, labelling=labelling)
        window_cmp = None
        if window_xy is not None:
            window_cmp = _compare("window", champion_model, challenger_model, window_xy[0], window_xy[1], task=task,
                                  metric=metric, policy=policy, seed=compare_seed, labelling=labelling)

    promote_it, why = decide(policy, holdout, window_cmp)
    if promote_it:
        moved = _compare_and_set_champion(engine, name, expected=champion if had_alias else None, new=challenger,
                                          previous=champion)
        if not moved:
            promote_it, why = False, "the champion changed while this retrain ran, so it was not replaced"
    if promote_it:
        decision = PROMOTED
        message = (f"Version {challenger.version} is now the champion: {why}. Version {champion.version} is kept "
                   f"as '{PREVIOUS}' and can be rolled back to.")
    else:
        decision = KEPT
        set_alias(engine, name=name, alias=CHALLENGER, version=challenger.version)
        if not had_alias:
            # The champion was "the latest READY version", which the challenger now is: pin it.
            _compare_and_set_champion(engine, name, expected=None, new=champion, previous=None)
        message = (f"Version {challenger.version} is kept as '{CHALLENGER}'; version {champion.version} stays "
                   f"champion: {why}.")
    message += extra_note + (f" {config_note}" if config_note else "")
    if window_xy is not None and window_xy[2]:
        message += f" {window_xy[2]} window row(s) equal to training rows were left out of the window."
    _finish_run(engine, run_id, status="DONE", decision=decision, message=message, **_comparison_fields(holdout, window_cmp))
    return RetrainOutcome(
        run_id=run_id, model_name=name, reason=reason, decision=decision, champion_version=champion.version,
        challenger_version=challenger.version, metric=metric, holdout=holdout, window=window_cmp, message=message,
        dataset_id=dataset_id, dataset_hash=dataset_hash, new_rows=new_rows,
    )


def _champion(engine: Engine, name: str) -> tuple[ModelVersion, bool]:
    try:
        return get_version(engine, name=name, alias=CHAMPION), True
    except BadInput:
        return get_version(engine, name=name), False


def _tuning_config(engine: Engine, version: ModelVersion, *, cv: dict, task: Task) -> tuple[TuningConfig, str]:
    """The search the champion came from: recorded with it, else its training job's, else its family's."""
    if isinstance(cv.get("tuning"), dict):
        return TuningConfig.from_dict(cv["tuning"]), ""
    with session_scope(engine) as session:
        job = session.exec(select(TrainingJob).where(TrainingJob.version_id == version.id)).first()
    if job is not None:
        from core.jobs import request_from_json

        return request_from_json(job.request_json).config, ""
    config = TuningConfig(models=(version.model_family,), budget_s=DEFAULT_BUDGET_S, metric=default_metric(task))
    return config, (f"Version {version.version} did not record its search space, so its model family "
                    f"({version.model_family}) was tuned.")


def _base_data(engine: Engine, version: ModelVersion, *, settings: Settings) -> tuple[Dataset | None, pd.DataFrame]:
    """The champion's training table, from the immutable dataset store, and its dataset row if any."""
    with session_scope(engine) as session:
        row = session.exec(select(Dataset).where(Dataset.content_hash == version.dataset_hash)
                           .order_by(col(Dataset.id))).first()
    try:
        frame = load_frame(version.dataset_hash, settings=settings)
    except BadInput:
        raise BadInput(f"the training data of version {version.version} (dataset {version.dataset_hash[:12]}) is not "
                       "stored in this workspace, so it cannot be retrained") from None
    return row, frame


def _combine(base: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Old rows then new rows, the new ones given the old columns' types; returns the dropped columns."""
    if not isinstance(new, pd.DataFrame) or new.empty:
        raise BadInput("the new data has no rows")
    new = new.copy()
    new.columns = [str(c) for c in new.columns]
    missing = [c for c in base.columns if c not in new.columns]
    if missing:
        listed = ", ".join(repr(c) for c in missing[:5])
        raise BadInput(f"the new data lacks {len(missing)} column(s) of the training data: {listed}")
    dropped = [c for c in new.columns if c not in base.columns]
    new = new[list(base.columns)]
    for name in base.columns:
        new[name] = _like(new[name], base[name])
    combined = pd.concat([base, new], ignore_index=True)
    for name in combined.columns[combined.dtypes == object]:
        column = combined[name]
        kinds = {type(v) for v in column.dropna().head(100_000)}
        if len(kinds) > 1:  # mixed types cannot be stored as Parquet; text is the honest common type
            combined[name] = column.where(column.isna(), column.astype(str))
    return combined, dropped


def _like(values: pd.Series, old: pd.Series) -> pd.Series:
    """``values`` converted to the type ``old`` has, or BadInput naming the column."""
    if values.dtype == old.dtype or values.isna().all():
        return values
    name = old.name
    try:
        if ptypes.is_bool_dtype(old):
            return values
        if ptypes.is_numeric_dtype(old):
            return values if ptypes.is_numeric_dtype(values) else pd.to_numeric(values)
        if ptypes.is_datetime64_any_dtype(old):
            converted = pd.to_datetime(values, format="ISO8601")
            if getattr(old.dt, "tz", None) is None and getattr(converted.dt, "tz", None) is not None:
                converted = converted.dt.tz_convert(None)
            return converted
    except (ValueError, TypeError):
        raise BadInput(f"column {name!r} holds {old.dtype} values in the training data but other values "
                       "in the new data") from None
    return values.where(values.isna(), values.astype(str))  # text columns stay text


def _store_combined(engine: Engine, combined: pd.DataFrame, *, base_dataset: Dataset | None, champion: ModelVersion,
                    new_data_name: str, recipe, plan, settings: Settings) -> Dataset:
    """Store the combined table as a new dataset with the champion's preparation; the old one is untouched."""
    # Hashed like a SQL result: the sha256 of the table's CSV dump, so the same rows give one dataset.
    digest = hashlib.sha256(combined.to_csv(index=False).encode("utf-8")).hexdigest()
    save_frame(combined, content_hash=digest, settings=settings)
    base_name = base_dataset.name if base_dataset is not None else f"{champion.model_name} v{champion.version} data"
    with session_scope(engine) as session:
        if base_dataset is not None:
            project_id = base_dataset.project_id
        else:
            project_id = crud.get_or_create_project(session, name=champion.model_name).id
        dataset, _ = crud.add_dataset(
            session, project_id=project_id, content_hash=digest, name=f"{base_name} + {new_data_name}"[:300],
            source=f"retrain:{champion.dataset_hash[:12]}"[:2000], format="parquet", rows=len(combined),
            columns=combined.shape[1], column_types_json=json.dumps(datasets.schema_of(combined)),
        )
    datasets.save_preparation(engine, dataset.id, target=champion.target, recipe=recipe, plan=plan)
    return dataset


def _window_rows(window: pd.DataFrame, *, recipe, target: str, columns: list[str],
                 training: tuple[pd.DataFrame, pd.Series]) -> tuple[pd.DataFrame, pd.Series, int]:
    """The window's features and target, prepared like training rows, minus rows trained on."""
    if not isinstance(window, pd.DataFrame) or window.empty:
        raise BadInput("the labelled window has no rows")
    window = window.copy()
    window.columns = [str(c) for c in window.columns]
    if target not in window.columns:
        raise BadInput(f"the labelled window has no target column {target!r}")
    missing = [c for c in columns if c not in window.columns]
    if missing:
        raise BadInput(f"the labelled window lacks {len(missing)} feature column(s): "
                       f"{', '.join(repr(c) for c in missing[:5])}")
    X, y = prepare_training_table(window, recipe, target=target)
    X = X[columns]
    X_train, y_train = training
    for name in columns:  # same types as the training rows, so equal rows hash equally
        try:
            X[name] = X[name].astype(X_train[name].dtype)
        except (ValueError, TypeError):
            pass
    seen = set(pd.util.hash_pandas_object(X_train.assign(_y=y_train.to_numpy()), index=False).tolist())
    keys = pd.util.hash_pandas_object(X.assign(_y=y.to_numpy()), index=False)
    fresh = ~keys.isin(seen).to_numpy()
    if not fresh.any():
        raise BadInput("every row of the labelled window is also a training row; it cannot judge the models")
    return X[fresh], y[fresh], int((~fresh).sum())


def _compare(name: str, champion, challenger, X: pd.DataFrame, y: pd.Series, *, task: Task, metric: str,
             policy: PromotionPolicy, seed: int, labelling: tuple[tuple, tuple]) -> Comparison:
    """The paired comparison on rows; ``labelling`` is each model's (decision threshold,
    positive class), both None where it has none."""
    if len(X) > policy.max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(X), size=policy.max_rows, replace=False))
        X, y = X.iloc[keep], y.iloc[keep]
    classes: tuple = ()
    if task is not Task.REGRESSION:
        labels = np.unique(np.concatenate([np.asarray(m.classes_) for m in (champion, challenger)])).tolist()
        classes = oriented(labels, labelling[1][1])
    return paired_bootstrap(
        y.to_numpy(), _scored(champion, X, classes, *labelling[0]), _scored(challenger, X, classes, *labelling[1]),
        metric=metric, classes=classes,
        n_bootstrap=policy.n_bootstrap, confidence=policy.confidence, seed=seed, name=name,
    )


def _scored(model, X: pd.DataFrame, classes: tuple, threshold: float | None = None,
            positive: str | None = None) -> Scored:
    """Labels as the model's service gives them (a binary model's at its decision threshold) and
    probabilities in ``classes`` order."""
    try:
        pred = proba = None
        if classes and hasattr(model, "predict_proba"):
            raw = np.asarray(model.predict_proba(X), dtype=float)
            own = np.asarray(model.classes_)
            if threshold is not None and len(own) == 2:
                pred = binary_labels(raw, own, threshold, positive)
            proba = np.zeros((len(X), len(classes)))
            position = {label: i for i, label in enumerate(classes)}
            for j, label in enumerate(own.tolist()):
                proba[:, position[label]] = raw[:, j]
        if pred is None:
            pred = np.asarray(model.predict(X))
    except (ValueError, TypeError, KeyError) as exc:
        raise BadInput(f"a model could not score the comparison rows ({type(exc).__name__})") from None
    return Scored(pred=pred, proba=proba)


def _comparison_fields(holdout: Comparison, window: Comparison | None) -> dict:
    fields = dict(holdout_rows=holdout.rows, champion_score=_num(holdout.champion_score),
                  challenger_score=_num(holdout.challenger_score), diff=_num(holdout.diff),
                  ci_low=_num(holdout.ci_low), ci_high=_num(holdout.ci_high))
    if window is not None:
        fields |= dict(window_rows=window.rows, window_champion_score=_num(window.champion_score),
                       window_challenger_score=_num(window.challenger_score), window_diff=_num(window.diff),
                       window_ci_low=_num(window.ci_low), window_ci_high=_num(window.ci_high))
    return fields


def _num(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


# --------------------------------------------------------------------------- aliases and records


def _compare_and_set_champion(engine: Engine, name: str, *, expected: ModelVersion | None, new: ModelVersion,
                              previous: ModelVersion | None) -> bool:
    """Point ``champion`` at ``new`` (and ``previous`` at ``previous``) only if it still points at
    ``expected`` (None: no champion alias yet), in one transaction. Returns whether it moved."""
    from core.registry import lock_model  # the registry's per-model write lock, shared on purpose

    try:
        with session_scope(engine) as session:
            lock_model(session, name)
            row = session.exec(select(ModelAlias).where(ModelAlias.model_name == name,
                                                        ModelAlias.alias == CHAMPION)).first()
            current = row.version_id if row is not None else None
            if current != (expected.id if expected is not None else None):
                return False
            target = session.get(ModelVersion, new.id)
            if target is None or target.status != READY:
                raise BadInput(f"version {new.version} is not READY; only READY versions become champion")
            row = row or ModelAlias(model_name=name, alias=CHAMPION, version_id=new.id)
            row.version_id, row.updated_at = new.id, utcnow()
            session.add(row)
            if previous is not None:
                prev = session.exec(select(ModelAlias).where(ModelAlias.model_name == name,
                                                             ModelAlias.alias == PREVIOUS)).first()
                prev = prev or ModelAlias(model_name=name, alias=PREVIOUS, version_id=previous.id)
                prev.version_id, prev.updated_at = previous.id, utcnow()
                session.add(prev)
    except sa_exc.IntegrityError:  # another process created the alias first
        return False
    return True


def _move(engine: Engine, *, model_name: str, version: int, settings: Settings, reason: str, note: str,
          kind: str) -> ChampionChange:
    if reason not in TRIGGERS:
        raise BadInput(f"unknown reason {reason!r}; use one of: {', '.join(TRIGGERS)}")
    model_name = validate_model_name(model_name)
    current, had_alias = _champion(engine, model_name)
    target = get_version(engine, name=model_name, version=int(version))
    if target.status != READY:
        raise BadInput(f"version {target.version} is {target.status}; only READY versions become champion")
    if had_alias and target.id == current.id:
        raise BadInput(f"version {target.version} is already the champion")
    if kind == "rollback" and target.version >= current.version:
        raise BadInput(f"a rollback goes to a version earlier than the champion (version {current.version}); "
                       "promote later versions instead")
    load_pipeline(target, settings=settings)  # refuses a missing or altered file before it goes live
    if not _compare_and_set_champion(engine, model_name, expected=current if had_alias else None, new=target,
                                     previous=current):
        raise BadInput("the champion changed meanwhile; look again and retry")
    verb = "Rolled back" if kind == "rollback" else "Promoted"
    message = (f"{verb} to version {target.version}; version {current.version} is kept as '{PREVIOUS}'.")
    return record_change(engine, model_name=model_name, kind=kind, from_version=current.version,
                         to_version=target.version, reason=reason, note=note, message=message)


def record_change(engine: Engine, *, model_name: str, kind: str, from_version: int | None, to_version: int,
                  reason: str = "button", note: str = "", message: str = "") -> ChampionChange:
    """Add a champion change made elsewhere (e.g. an A/B promotion on a live deployment) to the history.

    Args:
        engine: The store.
        model_name: The model.
        kind: ``promote`` or ``rollback``.
        from_version: The champion before, if any.
        to_version: The champion now.
        reason: One of ``TRIGGERS``.
        note: Free text (e.g. "A/B test on deployment 3").
        message: One sentence for the history; a default one is written when empty.

    Raises:
        BadInput: An unknown kind or reason.
    """
    if kind not in ("promote", "rollback"):
        raise BadInput(f"a champion change is a promote or a rollback, not {kind!r}")
    if reason not in TRIGGERS:
        raise BadInput(f"unknown reason {reason!r}; use one of: {', '.join(TRIGGERS)}")
    message = message or f"{'Rolled back' if kind == 'rollback' else 'Promoted'} to version {to_version}."
    with session_scope(engine) as session:
        row = RetrainRun(model_name=model_name, kind=kind, trigger=reason, note=note[:500], status="DONE",
                         decision=ROLLED_BACK if kind == "rollback" else PROMOTED,
                         champion_version=from_version, challenger_version=int(to_version), message=message[:2000],
                         pid=os.getpid(), finished_at=utcnow())
        session.add(row)
        session.flush()
        run_id = row.id
    return ChampionChange(run_id=run_id, model_name=model_name, kind=kind, from_version=from_version,
                          to_version=int(to_version), message=message)


def _start_run(engine: Engine, *, model_name: str, trigger: str, note: str, champion: ModelVersion,
               policy: PromotionPolicy, source_hash: str | None) -> int:
    try:
        with session_scope(engine) as session:
            row = RetrainRun(model_name=model_name, trigger=trigger, note=note[:500], champion_version=champion.version,
                             base_dataset_hash=champion.dataset_hash, source_hash=source_hash,
                             policy_json=json.dumps(policy.to_dict()), pid=os.getpid())
            session.add(row)
            session.flush()
            return row.id
    except sa_exc.IntegrityError:
        raise AlreadyRetrained(f"model {model_name!r} was already retrained on this data") from None


def _update_run(engine: Engine, run_id: int, **fields) -> None:
    with session_scope(engine) as session:
        row = session.get(RetrainRun, run_id)
        for key, value in fields.items():
            setattr(row, key, value)
        session.add(row)


def _finish_run(engine: Engine, run_id: int, *, status: str, decision: str, message: str, **fields) -> None:
    _update_run(engine, run_id, status=status, decision=decision, message=message[:2000], finished_at=utcnow(),
                **fields)
