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
