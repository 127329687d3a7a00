"""The store against SQLite and a real PostgreSQL: CRUD, uniqueness, and concurrent writers."""
from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading

import pytest
from sqlalchemy import text

from core.errors import BadInput
from core.store import crud
from core.store.db import make_engine, session_scope


def test_projects_and_datasets_round_trip(store_url: str) -> None:
    engine = make_engine(store_url)
    with session_scope(engine) as session:
        project = crud.get_or_create_project(session, name="churn")
        again = crud.get_or_create_project(session, name=" churn ")
        assert again.id == project.id
        first, created = crud.add_dataset(
            session, project_id=project.id, content_hash="a" * 64, name="jan.csv", source="upload",
            format="csv", rows=10, columns=3, column_types_json="[]",
        )
        assert created
        same, created_again = crud.add_dataset(
            session, project_id=project.id, content_hash="a" * 64, name="copy.csv", source="upload",
            format="csv", rows=10, columns=3, column_types_json="[]",
        )
        assert not created_again and same.id == first.id
        crud.add_dataset(
            session, project_id=project.id, content_hash="b" * 64, name="feb.csv", source="upload",
            format="csv", rows=12, columns=3, column_types_json="[]",
        )
    with session_scope(engine) as session:
        names = [d.name for d in crud.list_datasets(session, project_id=project.id)]
        assert names == ["feb.csv", "jan.csv"]
        assert crud.get_dataset(session, dataset_id=first.id).created_at.tzinfo is not None
    engine.dispose()


def test_preparation_updates_only_given_parts(store_url: str) -> None:
    engine = make_engine(store_url)
    with session_scope(engine) as session:
        project = crud.get_or_create_project(session, name="p")
        dataset, _ = crud.add_dataset(
            session, project_id=project.id, content_hash="c" * 64, name="d", source="s",
            format="csv", rows=1, columns=2, column_types_json="[]",
        )
        crud.save_preparation(session, dataset_id=dataset.id, target="y")
        crud.save_preparation(session, dataset_id=dataset.id, plan_json="{}")
    with session_scope(engine) as session:
        prep = crud.get_preparation(session, dataset_id=dataset.id)
        assert (prep.target, prep.plan_json) == ("y", "{}")
        assert '"steps": []' in prep.recipe_json
    engine.dispose()


def test_blank_project_name_is_refused(store_url: str) -> None:
    engine = make_engine(store_url)
    with session_scope(engine) as session, pytest.raises(BadInput, match="name"):
        crud.get_or_create_project(session, name="   ")
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_opening_a_store_another_process_is_writing_waits_for_it(tmp_path) -> None:
    """The app, a training job and a worker may open a workspace's new store together. Switching
    the file to WAL while another connection holds the write lock fails at once in SQLite, busy
    timeout or not; the engine waits for the writer instead."""
    path = tmp_path / "store.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, writer.execute, ["COMMIT"]).start()
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()
    writer.close()


def _create_projects(url: str, worker: int, count: int) -> None:
    engine = make_engine(url)
    for i in range(count):
        with session_scope(engine) as session:
            # Read-then-write in one transaction: the pattern that hits "database is locked"
            # on SQLite without immediate transactions.
            existing = len(crud.list_projects(session))
            crud.get_or_create_project(session, name=f"w{worker}-{i}-{existing}")
    engine.dispose()


def test_concurrent_writers_do_not_lock(store_url: str) -> None:
    make_engine(store_url).dispose()  # create the tables once, before the race
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_create_projects, args=(store_url, w, 25)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    engine = make_engine(store_url)
    with session_scope(engine) as session:
        assert len(crud.list_projects(session)) == 100
    engine.dispose()
