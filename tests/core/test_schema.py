"""The store's migrations: new, older and newer databases, on SQLite and PostgreSQL."""
from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel, select

from core.errors import BadInput
from core.store import schema
from core.store.db import make_engine, session_scope
from core.store.models import Project


def _differences(engine: sa.Engine) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


def _baseline_store(url: str) -> None:
    """A database as ShipML made it before migrations: the baseline's tables, no revision, a row."""
    raw = sa.create_engine(url)
    with raw.begin() as connection:
        command.upgrade(schema._config(connection), schema.BASELINE)
        connection.execute(sa.text("DROP TABLE alembic_version"))
        connection.execute(sa.text("INSERT INTO project (name, created_at) VALUES ('Old', CURRENT_TIMESTAMP)"))
    raw.dispose()


def test_a_new_store_is_at_the_newest_revision_and_matches_the_models(store_url: str) -> None:
    engine = make_engine(store_url)
    assert schema.revision(engine) == schema.head()
    assert _differences(engine) == []
    engine.dispose()


def test_the_migrations_from_nothing_build_the_models_tables(store_url: str) -> None:
    """What a migration leaves is what models.py says: a column added to a model without its
    migration fails here, before it breaks someone's workspace."""
    raw = sa.create_engine(store_url)
    with raw.begin() as connection:
        command.upgrade(schema._config(connection), "head")
    assert _differences(raw) == []
    raw.dispose()


def test_a_store_from_before_migrations_is_upgraded_and_keeps_its_rows(store_url: str) -> None:
    _baseline_store(store_url)
    raw = sa.create_engine(store_url)
    assert "stop" not in {c["name"] for c in sa.inspect(raw).get_columns("jobtrial")}
    raw.dispose()

    engine = make_engine(store_url)
    assert schema.revision(engine) == schema.head()
    assert _differences(engine) == []
    with session_scope(engine) as session:
        assert [p.name for p in session.exec(select(Project))] == ["Old"]
    engine.dispose()


def test_a_store_from_a_newer_shipml_is_refused_with_what_to_do(store_url: str) -> None:
    make_engine(store_url).dispose()
    raw = sa.create_engine(store_url)
    with raw.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    raw.dispose()
    with pytest.raises(BadInput, match="schema revision '9999'.*newer ShipML"):
        make_engine(store_url)


def _open_store(url: str, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    start.wait()  # every process imported and ready: they open the store at the same moment
    try:
        engine = make_engine(url)
        results.put((schema.revision(engine), "stop" in {c["name"] for c in sa.inspect(engine).get_columns("jobtrial")}))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001  (the parent shows it)
        results.put(repr(exc))


def test_processes_opening_an_old_store_at_once_upgrade_it_once(store_url: str) -> None:
    """The app, a training job and a worker may all start on a store made by an older ShipML."""
    _baseline_store(store_url)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_open_store, args=(store_url, start, results)) for _ in range(4)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert outcomes == [(schema.head(), True)] * 4
