"""The one settings object: defaults, environment overrides, and agreement with Streamlit's config."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import PROJECT_ROOT, Settings


def test_database_defaults_to_sqlite_in_the_workspace(tmp_path: Path) -> None:
    settings = Settings(workspace=tmp_path)
    assert settings.db_url == f"sqlite:///{tmp_path / 'shipml.db'}"
    assert settings.datasets_dir == tmp_path / "datasets"


def test_environment_overrides(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHIPML_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("SHIPML_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("SHIPML_MAX_UPLOAD_MB", "5")
    settings = Settings()
    assert settings.workspace == tmp_path
    assert settings.db_url == "postgresql+psycopg://u@h/db"
    assert settings.max_upload_bytes == 5 * 1024 * 1024


def test_bad_values_are_refused(monkeypatch) -> None:
    monkeypatch.setenv("SHIPML_MAX_UPLOAD_MB", "-1")
    with pytest.raises(ValidationError):
        Settings()


def test_upload_limit_matches_streamlit_config() -> None:
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == Settings().max_upload_mb
