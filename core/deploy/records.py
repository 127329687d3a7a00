"""Deployment rows in the store: keyword-only functions, each in its own short transaction."""
from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from core.errors import BadInput
from core.store.db import session_scope
from core.store.models import Deployment, utcnow

TARGETS = ("local", "docker", "kubernetes")
STARTING, RUNNING, STOPPED, FAILED = "STARTING", "RUNNING", "STOPPED", "FAILED"
STATUSES = (STARTING, RUNNING, STOPPED, FAILED)
_LIMITS = {"error": 1000, "note": 500, "endpoint": 500}


def create_deployment(engine: Engine, *, model_name: str, version: int, version_id: int | None,
                      target: str, auth: bool) -> Deployment:
    """Insert a STARTING deployment and return it (with its id)."""
    if target not in TARGETS:
        raise BadInput(f"unknown target; choose one of {', '.join(TARGETS)}")
    with session_scope(engine) as session:
        row = Deployment(model_name=model_name, version=version, version_id=version_id, target=target,
                         status=STARTING, auth=auth)
        session.add(row)
        session.flush()
        return row


def update_deployment(engine: Engine, deployment_id: int, *, only_if: dict | None = None, **fields) -> bool:
    """Set ``fields`` on one deployment; with ``only_if`` only while those columns still match.

    The condition makes claims safe between processes: two app processes restoring the same
    deployment both try ``only_if={"status": RUNNING, "pid": old}``, and only one wins.

    Returns:
        Whether the row was changed.
    """
    for key, limit in _LIMITS.items():
        if isinstance(fields.get(key), str):
            fields[key] = fields[key][:limit]
    query = update(Deployment).where(col(Deployment.id) == deployment_id)
    for key, value in (only_if or {}).items():
        column = getattr(Deployment, key)
        query = query.where(column.is_(None) if value is None else column == value)
    with session_scope(engine) as session:
        return session.exec(query.values(**fields, updated_at=utcnow())).rowcount == 1


def get_deployment(engine: Engine, deployment_id: int) -> Deployment:
    """One deployment.

    Raises:
        BadInput: There is no deployment with that id.
    """
    with session_scope(engine) as session:
        row = session.get(Deployment, deployment_id)
    if row is None:
        raise BadInput(f"deployment {deployment_id} does not exist")
    return row


def list_deployments(engine: Engine, *, target: str | None = None, status: str | None = None,
                     model_name: str | None = None) -> list[Deployment]:
    """Deployments, newest first, optionally filtered."""
    query = select(Deployment).order_by(col(Deployment.id).desc())
    if target is not None:
        query = query.where(Deployment.target == target)
    if status is not None:
        query = query.where(Deployment.status == status)
    if model_name is not None:
        query = query.where(Deployment.model_name == model_name)
    with session_scope(engine) as session:
        return list(session.exec(query))
