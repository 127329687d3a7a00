"""Alembic's entry point for the store's migrations.

The app hands over an open connection (``core.store.schema.upgrade``). From the alembic command
line (writing a new migration) the database is ``-x url=...``.
"""
from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from core.store.models import UTCDateTime


def _render_type(kind: str, obj, _context) -> str | bool:
    """A migration names plain SQLAlchemy types, so it reads the same when the models' Python
    types change later."""
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length!r})"
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False  # Alembic's own rendering


def _run(connection) -> None:
    # Batch mode lets a migration alter or drop a column on SQLite, which has no ALTER COLUMN.
    context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True,
                      render_item=_render_type)
    with context.begin_transaction():  # inside the caller's transaction, if it opened one
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    with create_engine(context.get_x_argument(as_dictionary=True)["url"]).connect() as own:
        _run(own)
        own.commit()
