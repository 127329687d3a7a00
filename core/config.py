"""One typed settings object. Nothing else in ShipML reads ``os.environ``.

Every field can be set from the environment with the ``SHIPML_`` prefix, e.g.
``SHIPML_WORKSPACE=/srv/shipml`` or ``SHIPML_DATABASE_URL=postgresql+psycopg://...``.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = PROJECT_ROOT / "data" / "samples"


class Settings(BaseSettings):
    """Paths, database, limits and the random seed."""

    model_config = SettingsConfigDict(env_prefix="SHIPML_", frozen=True)

    workspace: Path = PROJECT_ROOT / "data" / "workspace"
    database_url: str | None = None  # default: a SQLite file in the workspace
    max_upload_mb: int = Field(default=200, gt=0)  # keep equal to server.maxUploadSize
    max_rows: int = Field(default=5_000_000, gt=0)
    max_columns: int = Field(default=2_000, gt=0)
    http_timeout_s: float = Field(default=20.0, gt=0)
    sql_timeout_s: float = Field(default=20.0, gt=0)
    random_seed: int = 42
    cv_folds: int = Field(default=5, ge=2, le=20)
    # Larger training tables are tuned and cross-validated on a sample of this many rows, so a
    # minute's search runs more than a few trials; the registered model learns from every row.
    tuning_max_rows: int = Field(default=50_000, ge=1_000)

    # The prediction service (core.serving). SHIPML_SERVE_TOKEN set: /predict and /feedback need
    # "Authorization: Bearer <token>"; it is compared in constant time and never logged.
    serve_token: SecretStr | None = None
    serve_log_url: str | None = None  # prediction log; default: SQLite file under the workspace
    serve_log_predictions: bool = True
    serve_max_body_mb: float = Field(default=50.0, gt=0)  # larger bodies: 413
    serve_max_rows: int = Field(default=100_000, gt=0)  # more rows in one request: 413
    serve_timeout_s: float = Field(default=10.0, gt=0)  # a slower prediction: 504
    serve_max_concurrency: int = Field(default=64, gt=0)  # more /predict at once: 503 + Retry-After
    serve_extra_columns: Literal["reject", "ignore"] = "reject"  # columns the model does not know
    serve_unseen_categories: Literal["reject", "accept"] = "reject"  # values not in the training data
    serve_fastpath_max_rows: int = Field(default=512, ge=0)  # rows per fast-path call; 0: the Pipeline only
    serve_drain_timeout_s: float = Field(default=30.0, gt=0)  # SIGTERM: wait this long for in-flight

    # Kubernetes deployments are applied with kubectl only when a kubeconfig is given (here or per
    # deployment); without one the manifests are written for the user to apply.
    kubeconfig: Path | None = None

    # Monitoring: with a Prometheus URL (e.g. http://127.0.0.1:9090) service health is read from
    # Prometheus's HTTP API; without one, from snapshots of each service's /metrics.
    prometheus_url: str | None = None

    @property
    def db_url(self) -> str:
        """The store's SQLAlchemy URL."""
        return self.database_url or f"sqlite:///{self.workspace / 'shipml.db'}"

    @property
    def datasets_dir(self) -> Path:
        """Where immutable datasets live, one file per content hash."""
        return self.workspace / "datasets"

    @property
    def models_dir(self) -> Path:
        """Where model artifacts live, named by a random id (never by the model's name)."""
        return self.workspace / "models"

    @property
    def serve_log_db_url(self) -> str:
        """Where the prediction service logs predictions and feedback."""
        return self.serve_log_url or f"sqlite:///{self.workspace / 'serving' / 'predictions.db'}"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment for a ShipML child process (a training job) that uses ``settings``."""
    env = dict(os.environ)
    env["SHIPML_WORKSPACE"] = str(settings.workspace)
    if settings.database_url:
        env["SHIPML_DATABASE_URL"] = settings.database_url
    # One OpenMP thread per process: on a small machine, competing thread pools are far slower.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
