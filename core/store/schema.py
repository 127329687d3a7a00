"""The store's schema kept current: Alembic migrations bring a workspace's database, SQLite or
PostgreSQL, to the tables in ``models.py``.

``create_all`` alone makes missing tables but never adds a column to one that exists, so a new
column would break every workspace made before it. A change to ``models.py`` therefore comes with
a migration in ``migrations/versions`` (``make migration m="..."`` writes one from the difference).
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from core.errors import BadInput
from core.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # the tables as create_all made them before there were migrations
_PG_LOCK_KEY = 7_305_112  # any fixed number: the advisory lock one migrating process holds


def upgrade(engine: Engine) -> None:
    """Bring the database behind ``engine`` to the current schema.

    A new database gets every table and is stamped current. One made before migrations existed
    (tables but no revision) is stamped as the baseline, then every migration it lacks runs.
    It all happens in one transaction that other processes starting at the same time wait for:
    on SQLite the engine's ``BEGIN IMMEDIATE``, on PostgreSQL an advisory lock.

    Raises:
        BadInput: the database is at a revision this code does not know (a newer ShipML made it).
    """
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        config = _config(connection)
        scripts = ScriptDirectory.from_config(config)
        current = MigrationContext.configure(connection).get_current_revision()
        if current is None and not inspect(connection).has_table("project"):
            SQLModel.metadata.create_all(connection)
            command.stamp(config, "head")
            return
        if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
            raise BadInput(f"the store's database is at schema revision {current!r}, which this version of "
                           f"ShipML does not know (its latest is {scripts.get_current_head()!r}): "
                           "a newer ShipML wrote it; run that version, or point this one at another database")
        if current is None:
            command.stamp(config, BASELINE)
        if current != scripts.get_current_head():
            command.upgrade(config, "head")


def revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first upgrade)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The newest schema revision this code knows."""
    return ScriptDirectory.from_config(_config(None)).get_current_head()


def _config(connection: Connection | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config
