"""The store's tables. Later steps (models, deployments, monitoring) add their own here."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(timezone.utc)")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def _created_at() -> Field:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class Project(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=200)
    created_at: datetime = _created_at()


class Dataset(SQLModel, table=True):
    """An uploaded table. The file under ``content_hash`` never changes once written."""

    __table_args__ = (UniqueConstraint("project_id", "content_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    content_hash: str = Field(index=True, max_length=64)
    name: str = Field(max_length=300)
    source: str = Field(max_length=2000)
    format: str = Field(max_length=20)
    rows: int
    columns: int
    column_types_json: str  # JSON list of {"name": ..., "dtype": ...}
    created_at: datetime = _created_at()


class Preparation(SQLModel, table=True):
    """What the analyst decided for one dataset: target, cleaning recipe and feature plan."""

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", unique=True)
    target: str | None = Field(default=None, max_length=300)
    recipe_json: str = '{"version": 1, "steps": []}'
    plan_json: str | None = None  # None until the analyst saves a feature plan
    updated_at: datetime = _created_at()


class ModelVersion(SQLModel, table=True):
    """One saved model: a Pipeline file plus everything needed to trust and explain it.

    A row is written PENDING before its files and turned READY only once they are on disk with
    their hash recorded, so a READY row always points at complete files. ``artifact_file`` and
    ``reference_file`` are planned names (random ids, relative to ``Settings.models_dir``) set at
    creation, so interrupted saves can be cleaned up; trust them only when READY.
    """

    __table_args__ = (UniqueConstraint("model_name", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(index=True, max_length=100)
    version: int
    status: str = Field(default="PENDING", max_length=10)  # PENDING, READY or FAILED
    artifact_file: str = Field(max_length=200)
    reference_file: str = Field(max_length=200)
    sha256: str | None = Field(default=None, max_length=64)
    size_bytes: int | None = None
    dataset_hash: str = Field(max_length=64)
    target: str = Field(max_length=300)
    task: str = Field(max_length=50)
    recipe_json: str
    plan_json: str
    model_family: str = Field(max_length=100)
    params_json: str
    metrics_json: str
    cv_json: str
    library_versions_json: str
    training_seconds: float
    description: str = ""
    error: str | None = None
    created_at: datetime = _created_at()


class ModelAlias(SQLModel, table=True):
    """A movable name for one READY version of a model, e.g. ``champion``."""

    __table_args__ = (UniqueConstraint("model_name", "alias"),)

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(index=True, max_length=100)
    alias: str = Field(max_length=40)
    version_id: int = Field(foreign_key="modelversion.id")
    updated_at: datetime = _created_at()


class TrainingJob(SQLModel, table=True):
    """A training run in its own process; the process keeps this row up to date."""

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    model_name: str = Field(max_length=100)
    request_json: str
    status: str = Field(default="QUEUED", max_length=12)  # QUEUED RUNNING DONE FAILED CANCELLED
    stage: str = Field(default="queued", max_length=20)
    pid: int | None = None
    cancel_requested: bool = False
    trials_done: int = 0
    best_score: float | None = None
    best_model: str | None = Field(default=None, max_length=50)
    version_id: int | None = Field(default=None, foreign_key="modelversion.id")
    error: str | None = Field(default=None, max_length=1000)
    warnings_json: str = "[]"
    created_at: datetime = _created_at()
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    heartbeat_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class JobTrial(SQLModel, table=True):
    """One finished tuning trial of a job: the live and the partial leaderboard."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="trainingjob.id", index=True)
    number: int
    model: str = Field(max_length=50)
    params_json: str
    score: float | None = None
    score_std: float | None = None
    duration_s: float
    state: str = Field(max_length=12)
    error: str = Field(default="", max_length=500)
    stop: str | None = Field(default=None, max_length=20)  # why a pruned trial stopped, e.g. "time limit"
    folds: int | None = None  # folds it finished before stopping


class Deployment(SQLModel, table=True):
    """A model version served somewhere: a local process, a Docker container or Kubernetes.

    Status: STARTING while it comes up, RUNNING once ready (for Kubernetes: applied and rolled
    out), STOPPED after an undeploy (or manifests written but not applied), FAILED with ``error``.
    A bearer token is never stored here: ``auth`` only says whether one was set.
    """

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(index=True, max_length=100)
    version: int
    version_id: int | None = None  # the registry row, when deployed from the registry
    target: str = Field(max_length=12)  # local, docker or kubernetes
    status: str = Field(default="STARTING", max_length=10)  # STARTING RUNNING STOPPED FAILED
    endpoint: str | None = Field(default=None, max_length=500)
    port: int | None = None
    pid: int | None = None
    container_id: str | None = Field(default=None, max_length=80)
    image: str | None = Field(default=None, max_length=300)
    model_dir: str | None = Field(default=None, max_length=1000)
    manifest_dir: str | None = Field(default=None, max_length=1000)
    auth: bool = False
    note: str | None = Field(default=None, max_length=500)
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _created_at()
    updated_at: datetime = _created_at()


class RetrainRun(SQLModel, table=True):
    """One change of a model's champion, or an attempt at one: a retrain, a rollback, a promotion.

    A retrain is written RUNNING when it starts and finished with its comparison (the metric on
    the shared holdout, and on a labelled recent window when one was given) and its decision.
    ``source_hash`` is set only for files from a watched folder: the unique constraint makes each
    file content retrain a model at most once, even with several scanners at the same time.
    """

    __table_args__ = (UniqueConstraint("model_name", "source_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(index=True, max_length=100)
    kind: str = Field(default="retrain", max_length=12)  # retrain, rollback or promote
    trigger: str = Field(max_length=20)  # button cli drift_alert performance_alert new_data schedule
    note: str = Field(default="", max_length=500)
    status: str = Field(default="RUNNING", max_length=10)  # RUNNING DONE FAILED
    decision: str | None = Field(default=None, max_length=20)  # promoted kept_as_challenger failed rolled_back
    champion_version: int | None = None  # the champion it was compared with (or moved away from)
    challenger_version: int | None = None  # the version trained (or moved to)
    metric: str | None = Field(default=None, max_length=40)
    holdout_rows: int | None = None
    champion_score: float | None = None
    challenger_score: float | None = None
    diff: float | None = None  # challenger minus champion, "higher is better" direction
    ci_low: float | None = None
    ci_high: float | None = None
    window_rows: int | None = None
    window_champion_score: float | None = None
    window_challenger_score: float | None = None
    window_diff: float | None = None
    window_ci_low: float | None = None
    window_ci_high: float | None = None
    base_dataset_hash: str | None = Field(default=None, max_length=64)
    dataset_hash: str | None = Field(default=None, max_length=64)  # what the challenger trained on
    new_rows: int | None = None
    source_hash: str | None = Field(default=None, max_length=64)
    policy_json: str = "{}"
    tuning_json: str = "{}"
    message: str = Field(default="", max_length=2000)
    pid: int | None = None
    started_at: datetime = _created_at()
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class MetricSnapshot(SQLModel, table=True):
    """One scrape of a deployment's ``/metrics`` (core.monitoring.health): counters as read.

    Counters are cumulative since the service started (``process_start``); series are computed
    from the differences between consecutive snapshots, treating a restart as a counter reset.
    A failed scrape is stored too (``ok`` false, ``error``), so "down" shows up over time.
    """

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(index=True)
    taken_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    ok: bool = True
    error: str | None = Field(default=None, max_length=300)
    process_start: float | None = None  # the service's process_start_time_seconds
    requests_json: str = "{}"  # /predict requests by status code: {"200": 12, ...}
    latency_json: str = "{}"  # /predict latency histogram: {"buckets": [[le, cumulative]], "sum", "count"}
    errors_json: str = "{}"  # errors by kind (all endpoints)
    predictions_json: str = "{}"  # predicted rows by label (classification)
    prediction_rows: float = 0.0
    feedback: float = 0.0
    in_flight: float = 0.0


class AlertRule(SQLModel, table=True):
    """A threshold on one deployment (core.monitoring.alerts); ``state`` is ok or firing.

    Kinds: p99_latency (seconds), error_rate (share of /predict answered 5xx), drift_share (share
    of drifted features), performance_drop (training CV score minus the live score, in the
    metric's units, direction-aware), no_traffic (no /predict request for ``window_minutes``).
    """

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(index=True)
    kind: str = Field(max_length=20)
    threshold: float = 0.0
    window_minutes: int = 15
    metric: str | None = Field(default=None, max_length=30)  # performance_drop: default the task's metric
    min_samples: int = 30  # performance_drop: labelled rows needed before it can fire
    webhook_url: str | None = Field(default=None, max_length=500)
    enabled: bool = True
    state: str = Field(default="ok", max_length=10)  # ok or firing
    state_since: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_value: float | None = None
    last_evaluated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    created_at: datetime = _created_at()


class AlertEvent(SQLModel, table=True):
    """A state change of an alert rule: firing or resolved, with the value that caused it."""

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = Field(foreign_key="alertrule.id", index=True)
    deployment_id: int = Field(index=True)
    state: str = Field(max_length=10)  # firing or resolved
    value: float | None = None
    message: str = Field(default="", max_length=500)
    notified: str | None = Field(default=None, max_length=300)  # webhook outcome: "sent (204)" or "failed: ..."
    created_at: datetime = _created_at()


class RetrainTrigger(SQLModel, table=True):
    """Which automatic retraining triggers one model has (core.monitoring.triggers); all off by default.

    ``last_triggered_at`` is claimed with a conditional update when an alert starts a retrain, so
    two evaluators (the scheduler and a button) cannot both start one inside ``cooldown_s``.
    """

    id: int | None = Field(default=None, primary_key=True)
    model_name: str = Field(index=True, unique=True, max_length=100)
    on_drift_alert: bool = False
    on_performance_alert: bool = False
    on_new_data: bool = False  # an upload to the model's project that has the target column
    watch_folder: str | None = Field(default=None, max_length=1000)  # scanned by the scheduler
    budget_s: float | None = None  # tuning budget per retrain (None: the champion's)
    max_trials: int | None = None  # trial cap per retrain (None: the champion's)
    margin: float = 0.0  # promotion margin, in the metric's units
    cooldown_s: float = 3600.0  # at most one alert-started retrain per model in this time
    last_triggered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    updated_at: datetime = _created_at()
