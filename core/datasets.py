"""Datasets in projects: ingest results stored immutably and recorded, with their preparation.

This is the one place that joins the file store (``core.data.storage``) and the database
(``core.store``); pages and the CLI call these functions rather than either part directly.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
from sqlalchemy.engine import Engine

from core.config import Settings
from core.data.ingest import LoadedTable
from core.data.storage import load_frame, save_frame
from core.errors import BadInput
from core.prep.plan import FeaturePlan
from core.prep.recipe import recipe_from_json, recipe_to_json
from core.prep.steps import Recipe
from core.store import crud
from core.store.db import session_scope
from core.store.models import Dataset


@dataclass(frozen=True)
class Preparation:
    """The analyst's decisions for one dataset."""

    target: str | None
    recipe: Recipe
    plan: FeaturePlan | None


def schema_of(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Column names and dtypes, in order, as stored with the dataset."""
    return [{"name": str(name), "dtype": str(dtype)} for name, dtype in frame.dtypes.items()]


def import_table(
    engine: Engine, loaded: LoadedTable, *, project: str, name: str, settings: Settings
) -> tuple[Dataset, bool]:
    """Store a loaded table under its content hash and record it in ``project``.

    The file is written (atomically, once) before the row, so a row never points at a missing
    file; a crash in between leaves only an unreferenced file, which the next import reuses.

    Returns:
        The dataset row and whether it is new to the project.
    """
    save_frame(loaded.frame, content_hash=loaded.content_hash, settings=settings)
    with session_scope(engine) as session:
        proj = crud.get_or_create_project(session, name=project)
        dataset, created = crud.add_dataset(
            session,
            project_id=proj.id,
            content_hash=loaded.content_hash,
            name=name[:300],
            source=loaded.source[:2000],
            format=loaded.format,
            rows=len(loaded.frame),
            columns=loaded.frame.shape[1],
            column_types_json=json.dumps(schema_of(loaded.frame)),
        )
    if created:  # retraining triggers (off unless enabled per model); a trigger failure never fails the upload
        _new_data_landed(engine, dataset, settings)
    return dataset, created


def _new_data_landed(engine: Engine, dataset: Dataset, settings: Settings) -> None:
    import logging

    from core.monitoring.triggers import on_new_data  # late: monitoring imports this module

    try:
        on_new_data(engine, dataset, settings)
    except Exception as exc:  # noqa: BLE001
        logging.getLogger("shipml.monitoring").warning("new-data retrain trigger failed (%s)", type(exc).__name__)


def get_dataset(engine: Engine, dataset_id: int) -> Dataset:
    """The dataset row, or BadInput when it does not exist."""
    with session_scope(engine) as session:
        dataset = crud.get_dataset(session, dataset_id=dataset_id)
    if dataset is None:
        raise BadInput(f"dataset {dataset_id} does not exist")
    return dataset


def load_dataset_frame(dataset: Dataset, *, settings: Settings) -> pd.DataFrame:
    """The dataset's table, read from its immutable file."""
    return load_frame(dataset.content_hash, settings=settings)


def get_preparation(engine: Engine, dataset_id: int) -> Preparation:
    """The saved target, recipe and plan of a dataset (empty ones when nothing is saved)."""
    with session_scope(engine) as session:
        row = crud.get_preparation(session, dataset_id=dataset_id)
    if row is None:
        return Preparation(target=None, recipe=Recipe(), plan=None)
    plan = FeaturePlan.model_validate_json(row.plan_json) if row.plan_json else None
    return Preparation(target=row.target, recipe=recipe_from_json(row.recipe_json), plan=plan)


def save_preparation(
    engine: Engine,
    dataset_id: int,
    *,
    target: str | None = None,
    recipe: Recipe | None = None,
    plan: FeaturePlan | None = None,
) -> None:
    """Save any of target, recipe and plan for a dataset; ``None`` leaves that part as it is."""
    with session_scope(engine) as session:
        crud.save_preparation(
            session,
            dataset_id=dataset_id,
            target=target,
            recipe_json=recipe_to_json(recipe) if recipe is not None else None,
            plan_json=plan.model_dump_json() if plan is not None else None,
        )
