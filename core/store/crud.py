"""Keyword-only CRUD functions over a ``Session``. Callers own the transaction."""
from __future__ import annotations

from sqlmodel import Session, col, select

from core.errors import BadInput
from core.store.models import Dataset, Preparation, Project, utcnow


def get_or_create_project(session: Session, *, name: str) -> Project:
    """Return the project called ``name``, creating it on first use."""
    name = name.strip()
    if not name:
        raise BadInput("a project needs a name")
    project = session.exec(select(Project).where(Project.name == name)).first()
    if project is None:
        project = Project(name=name)
        session.add(project)
        session.flush()
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.exec(select(Project).order_by(col(Project.created_at))))


def get_project(session: Session, *, project_id: int) -> Project | None:
    return session.get(Project, project_id)


def add_dataset(
    session: Session,
    *,
    project_id: int,
    content_hash: str,
    name: str,
    source: str,
    format: str,
    rows: int,
    columns: int,
    column_types_json: str,
) -> tuple[Dataset, bool]:
    """Record a dataset in a project; the same content twice returns the first row.

    Returns:
        The dataset row and whether it was created now.
    """
    existing = session.exec(
        select(Dataset).where(Dataset.project_id == project_id, Dataset.content_hash == content_hash)
    ).first()
    if existing is not None:
        return existing, False
    dataset = Dataset(
        project_id=project_id,
        content_hash=content_hash,
        name=name,
        source=source,
        format=format,
        rows=rows,
        columns=columns,
        column_types_json=column_types_json,
    )
    session.add(dataset)
    session.flush()
    return dataset, True


def list_datasets(session: Session, *, project_id: int) -> list[Dataset]:
    """A project's datasets, newest first."""
    query = (
        select(Dataset)
        .where(Dataset.project_id == project_id)
        .order_by(col(Dataset.created_at).desc(), col(Dataset.id).desc())
    )
    return list(session.exec(query))


def get_dataset(session: Session, *, dataset_id: int) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def get_preparation(session: Session, *, dataset_id: int) -> Preparation | None:
    return session.exec(select(Preparation).where(Preparation.dataset_id == dataset_id)).first()


def save_preparation(
    session: Session,
    *,
    dataset_id: int,
    target: str | None = None,
    recipe_json: str | None = None,
    plan_json: str | None = None,
) -> Preparation:
    """Create or update a dataset's preparation; ``None`` arguments leave that part unchanged."""
    prep = get_preparation(session, dataset_id=dataset_id) or Preparation(dataset_id=dataset_id)
    if target is not None:
        prep.target = target or None
    if recipe_json is not None:
        prep.recipe_json = recipe_json
    if plan_json is not None:
        prep.plan_json = plan_json
    prep.updated_at = utcnow()
    session.add(prep)
    session.flush()
    return prep
