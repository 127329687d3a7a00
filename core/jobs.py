"""Training jobs: training runs in its own process, never in a page's script thread.

A job is a row in the store plus a detached process (``python -m core job-run --job ID``).
The process writes its state, a heartbeat and every finished trial to the store, so any page,
after a page change, a browser refresh or an app restart, can show live progress. Cancelling
sets a flag the process checks between folds. A job whose process died is marked failed the
next time anyone looks (:func:`reap_dead_jobs`), never left "running" forever.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import joblib
import pandas as pd
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from core import datasets
from core.config import PROJECT_ROOT, Settings, child_environment
from core.data.profile import Task
from core.errors import BadInput, StorageError
from core.files import replaced_atomically
from core.modeling.metrics import signed
from core.modeling.tuning import TrialRecord, TuningConfig
from core.prep.plan import FeaturePlan
from core.store.db import session_scope
from core.store.models import JobTrial, TrainingJob, utcnow
from core.training import TrainingCancelled, TrainRequest, train_model

ACTIVE = ("QUEUED", "RUNNING")
HEARTBEAT_TIMEOUT_S = 120.0  # a live job beats at least every few seconds (between folds)
_CANCEL_POLL_S = 0.5


def request_to_json(request: TrainRequest) -> str:
    return json.dumps({**dataclasses.asdict(request), "config": request.config.to_dict()})


def request_from_json(text: str) -> TrainRequest:
    raw = json.loads(text)
    task = raw.pop("task")
    return TrainRequest(**raw | {"config": TuningConfig.from_dict(raw["config"])}, task=Task(task) if task else None)


def job_dir(job_id: int, *, settings: Settings) -> Path:
    return settings.workspace / "jobs" / str(int(job_id))


def submit_job(engine: Engine, *, dataset_id: int, request: TrainRequest, settings: Settings) -> int:
    """Record a job and start its process; returns the job id.

    The process gets its own session (``start_new_session``) so a Streamlit rerun or restart
    does not take it down.
    """
    with session_scope(engine) as session:
        job = TrainingJob(dataset_id=dataset_id, model_name=request.model_name, request_json=request_to_json(request))
        session.add(job)
        session.flush()
        job_id = job.id
    folder = job_dir(job_id, settings=settings)
    folder.mkdir(parents=True, exist_ok=True)
    env = child_environment(settings)
    with open(folder / "log.txt", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "job-run", "--job", str(job_id)],
            cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with session_scope(engine) as session:
        job = session.get(TrainingJob, job_id)
        job.pid = proc.pid
        session.add(job)
    return job_id


def run_job(engine: Engine, job_id: int, *, settings: Settings) -> str:
    """Run a job in this process (the job process's entry point); returns its final status."""
    with session_scope(engine) as session:
        job = session.get(TrainingJob, job_id)
        if job is None or job.status not in ACTIVE:
            raise BadInput(f"job {job_id} is not waiting to run")
        job.status, job.pid, job.started_at, job.heartbeat_at = "RUNNING", os.getpid(), utcnow(), utcnow()
        session.add(job)
        dataset_id, request = job.dataset_id, request_from_json(job.request_json)
    last_poll = [0.0]
    metric = ranking_metric(request)

    def beat(**fields) -> None:
        with session_scope(engine) as session:
            row = session.get(TrainingJob, job_id)
            for key, value in fields.items():
                setattr(row, key, value)
            row.heartbeat_at = utcnow()
            session.add(row)

    def on_trial(trial: TrialRecord) -> None:
        with session_scope(engine) as session:
            session.add(JobTrial(
                job_id=job_id, number=trial.number, model=trial.model, params_json=json.dumps(trial.params, default=str),
                score=trial.score, score_std=trial.score_std, duration_s=trial.duration_s, state=trial.state,
                error=trial.error[:500], stop=trial.stop or None, folds=trial.folds,
            ))
            row = session.get(TrainingJob, job_id)
            row.trials_done += 1
            if _improves(row.best_score, trial, metric):
                row.best_score, row.best_model = trial.score, trial.model
            row.heartbeat_at = utcnow()
            session.add(row)

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last_poll[0] < _CANCEL_POLL_S:
            return False
        last_poll[0] = now
        with session_scope(engine) as session:
            row = session.get(TrainingJob, job_id)
            row.heartbeat_at = utcnow()
            session.add(row)
            return row.cancel_requested

    try:
        dataset = datasets.get_dataset(engine, dataset_id)
        prep = datasets.get_preparation(engine, dataset_id)
        frame = datasets.load_dataset_frame(dataset, settings=settings)
        outcome = train_model(
            frame, dataset_hash=dataset.content_hash, recipe=prep.recipe, plan=prep.plan or FeaturePlan(),
            request=request, engine=engine, settings=settings, on_trial=on_trial, should_stop=should_stop,
            on_stage=lambda stage: beat(stage=stage),
        )
        version = outcome.version
        try:
            with replaced_atomically(job_dir(job_id, settings=settings) / "report.joblib", "wb",
                                     name="the job's evaluation report") as fh:
                joblib.dump(outcome.report, fh)
        except StorageError as exc:  # the model is registered all the same: say which version it is
            beat(status="FAILED", stage="failed", finished_at=utcnow(), version_id=version.id,
                 error=f"{exc} (version {version.version} of '{version.model_name}' was registered; the Evaluate "
                       "page cannot show it)"[:1000])
            return "FAILED"
        beat(status="DONE", stage=outcome.tuning.stopped, finished_at=utcnow(), version_id=version.id,
             warnings_json=json.dumps(outcome.warnings))
        return "DONE"
    except TrainingCancelled:
        beat(status="CANCELLED", stage="cancelled", finished_at=utcnow())
        return "CANCELLED"
    except BadInput as exc:
        beat(status="FAILED", stage="failed", finished_at=utcnow(), error=str(exc)[:1000])
        return "FAILED"
    except Exception as exc:  # noqa: BLE001 - the job must end in a final state whatever happened
        traceback.print_exc()  # into the job's log file, not in front of the user
        beat(status="FAILED", stage="failed", finished_at=utcnow(),
             error=f"training stopped on an internal error ({type(exc).__name__}); see the job log")
        return "FAILED"


def cancel_job(engine: Engine, job_id: int) -> None:
    """Ask a job to stop; it finishes its current fold and keeps the trials done so far."""
    with session_scope(engine) as session:
        job = session.get(TrainingJob, job_id)
        if job is not None and job.status in ACTIVE:
            job.cancel_requested = True
            session.add(job)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"job-run" in cmdline  # guards against a reused pid


def reap_dead_jobs(engine: Engine) -> int:
    """Mark jobs whose process is gone, or silent for too long, as failed; returns how many."""
    reaped = 0
    now = utcnow()
    with session_scope(engine) as session:
        for job in session.exec(select(TrainingJob).where(col(TrainingJob.status).in_(ACTIVE))):
            last_sign = job.heartbeat_at or job.created_at
            silent = (now - last_sign).total_seconds() > HEARTBEAT_TIMEOUT_S
            # A queued job's process may not have written its pid yet: give it a moment.
            starting = job.status == "QUEUED" and (now - job.created_at).total_seconds() < 30
            if silent or (not starting and not _alive(job.pid)):
                job.status, job.stage, job.finished_at = "FAILED", "failed", now
                job.error = "the training process stopped unexpectedly (killed or restarted)"
                session.add(job)
                reaped += 1
    return reaped


def get_job(engine: Engine, job_id: int) -> TrainingJob:
    with session_scope(engine) as session:
        job = session.get(TrainingJob, job_id)
    if job is None:
        raise BadInput(f"job {job_id} does not exist")
    return job


def list_jobs(engine: Engine, *, dataset_id: int | None = None) -> list[TrainingJob]:
    """Jobs, newest first."""
    query = select(TrainingJob).order_by(col(TrainingJob.id).desc())
    if dataset_id is not None:
        query = query.where(TrainingJob.dataset_id == dataset_id)
    with session_scope(engine) as session:
        return list(session.exec(query))


def job_trials(engine: Engine, job_id: int) -> pd.DataFrame:
    """Every finished trial of a job: the (partial) leaderboard's raw material."""
    with session_scope(engine) as session:
        rows = session.exec(select(JobTrial).where(JobTrial.job_id == job_id).order_by(col(JobTrial.number)))
        records = [r.model_dump(exclude={"id", "job_id"}) for r in rows]
    columns = ["number", "model", "params_json", "score", "score_std", "duration_s", "state", "error", "stop", "folds"]
    return pd.DataFrame(records, columns=columns)


def ranking_metric(request: TrainRequest) -> str:
    """The metric a job's trials are ranked by. An empty one means the task's default, and every
    default metric is higher-is-better, as ROC AUC is."""
    return request.config.metric or "roc_auc"


def _improves(best: float | None, trial: TrialRecord, metric: str) -> bool:
    """Whether ``trial`` beats the best score so far. Only a complete trial counts: a pruned
    one's score is the mean of the folds it ran, which may be its lucky ones."""
    if trial.state != "complete" or trial.score is None:
        return False
    # Compare in the "higher is better" direction: rmse or log loss improve downwards.
    return best is None or signed(metric, trial.score) > signed(metric, best)


def search_progress(elapsed_s: float, trials_done: int, config: TuningConfig) -> float:
    """How far a search is towards its end, 0 to 1: the further of its time budget and its trial
    cap (a cap of 25 trials may end a one-minute search well before the minute)."""
    shares = []
    if config.budget_s:
        shares.append(elapsed_s / config.budget_s)
    if config.max_trials:
        shares.append(trials_done / config.max_trials)
    return min(1.0, max(shares, default=0.0))


def rank_trials(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``trials`` (as :func:`job_trials` gives them) best first by ``metric``, whichever way it
    points, ties to the earliest trial as the search breaks them. Complete trials come first:
    a stopped trial's score is the mean of its first folds only (on a time-series split, not
    even a fair sample of them). Trials without a score come last."""
    key = [signed(metric, v) if pd.notna(v) else -float("inf") for v in trials["score"]]
    ranked = trials.assign(_stopped=trials["state"] != "complete", _key=key).sort_values(
        ["_stopped", "_key", "number"], ascending=[True, False, True], kind="stable")
    return ranked.drop(columns=["_stopped", "_key"])


def best_per_family(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each model family's best complete trial (best family first), with how the search spent
    its time on the family: ``trials`` run (stopped and failed ones included) and ``seconds``.

    A family none of whose trials completed is left out; its trials are on the full leaderboard.
    """
    spent = trials.groupby("model").agg(trials=("number", "size"), seconds=("duration_s", "sum"))
    best = rank_trials(trials[trials["state"] == "complete"], metric).drop_duplicates("model")
    return best.merge(spent, left_on="model", right_index=True, how="left")


def load_report(job_id: int, *, settings: Settings):
    """The evaluation report a finished job saved (written by this app, never uploaded)."""
    path = job_dir(job_id, settings=settings) / "report.joblib"
    if not path.is_file():
        raise BadInput(f"job {job_id} has no evaluation report")
    return joblib.load(path)


def job_version(engine: Engine, job: TrainingJob):
    """The model version a finished job registered."""
    from core.store.models import ModelVersion

    with session_scope(engine) as session:
        version = session.get(ModelVersion, job.version_id) if job.version_id else None
    if version is None:
        raise BadInput(f"job {job.id} registered no model version")
    return version
