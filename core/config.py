"""One typed settings object. Nothing else in ShipML reads ``os.environ``.

Every field can be set from the environment with the ``SHIPML_`` prefix, e.g.
``SHIPML_WORKSPACE=/srv/shipml`` or ``SHIPML_DATABASE_URL=postgresql+psycopg://...``.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
