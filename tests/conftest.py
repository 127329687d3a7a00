"""Shared fixtures: a temporary workspace, its settings and store, and a real PostgreSQL."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.config import SAMPLES_DIR, Settings
from core.store.db import make_engine
from tests.services import PostgresCluster


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a fresh workspace in the test's temporary folder."""
    return Settings(workspace=tmp_path / "workspace")


@pytest.fixture
def engine(settings: Settings):
    engine = make_engine(settings.db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server: SHIPML_TEST_POSTGRES_URL, or a throwaway local cluster."""
    url = os.environ.get("SHIPML_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    cluster = PostgresCluster()
    url = cluster.start()
    os.environ["SHIPML_TEST_POSTGRES_URL"] = url
    try:
        yield url
    finally:
        os.environ.pop("SHIPML_TEST_POSTGRES_URL", None)
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    """A database URL for each backend the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sample_path():
    """Path of a shipped sample data set by file name."""
    return lambda name: SAMPLES_DIR / name
