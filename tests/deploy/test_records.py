"""Deployment rows on SQLite and a real PostgreSQL: create, list, conditional updates."""
from __future__ import annotations

import pytest

from core.deploy import records
from core.errors import BadInput
from core.store.db import make_engine


@pytest.fixture
def store(store_url: str):
    engine = make_engine(store_url)
    yield engine
    engine.dispose()


def test_rows_round_trip_and_claims_are_exclusive(store) -> None:
    first = records.create_deployment(store, model_name="churn", version=2, version_id=None, target="local",
                                      auth=True)
    second = records.create_deployment(store, model_name="other", version=1, version_id=None, target="kubernetes",
                                       auth=False)
    assert first.status == "STARTING" and first.created_at.tzinfo is not None
    assert records.update_deployment(store, first.id, status="RUNNING", pid=123, port=8123,
                                     endpoint="http://127.0.0.1:8123")
    # Two restorers race for the same dead process: only the first claim wins.
    assert records.update_deployment(store, first.id, only_if={"status": "RUNNING", "pid": 123}, status="STARTING")
    assert not records.update_deployment(store, first.id, only_if={"status": "RUNNING", "pid": 123},
                                         status="STARTING")
    row = records.get_deployment(store, first.id)
    assert (row.status, row.pid, row.port, row.auth) == ("STARTING", 123, 8123, True)
    assert row.updated_at >= row.created_at
    assert [r.id for r in records.list_deployments(store)] == [second.id, first.id]
    assert [r.id for r in records.list_deployments(store, target="local")] == [first.id]
    assert records.list_deployments(store, status="RUNNING") == []
    long = records.update_deployment(store, second.id, error="x" * 5000)
    assert long and len(records.get_deployment(store, second.id).error) == 1000


def test_unknown_ids_and_targets_are_bad_input(store) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        records.get_deployment(store, 999)
    with pytest.raises(BadInput, match="unknown target"):
        records.create_deployment(store, model_name="m", version=1, version_id=None, target="mainframe",
                                  auth=False)
