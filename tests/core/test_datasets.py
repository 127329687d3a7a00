"""Datasets in projects: stored once, immutable, with their preparation saved alongside."""
from __future__ import annotations

import os
import stat

import pytest

from core import datasets
from core.data.ingest import read_bytes
from core.data.storage import dataset_path
from core.errors import BadInput
from core.prep.plan import FeaturePlan
from core.prep.steps import DropDuplicates, Recipe
from core.samples import DEMO_PROJECT, SAMPLES, ensure_demo_project

CSV = b"a,b,y\n1,x,0\n2,y,1\n3,x,0\n"


def test_same_bytes_are_stored_once_and_never_changed(engine, settings) -> None:
    loaded = read_bytes("t.csv", CSV, settings=settings)
    first, created = datasets.import_table(engine, loaded, project="p", name="t.csv", settings=settings)
    again, created_again = datasets.import_table(
        engine, read_bytes("copy.csv", CSV, settings=settings), project="p", name="copy.csv", settings=settings
    )
    assert created and not created_again and again.id == first.id
    other_project, created_other = datasets.import_table(engine, loaded, project="q", name="t.csv", settings=settings)
    assert created_other and other_project.id != first.id
    files = list(settings.datasets_dir.glob("*.parquet"))
    assert files == [dataset_path(loaded.content_hash, settings=settings)]
    assert not os.stat(files[0]).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    frame = datasets.load_dataset_frame(first, settings=settings)
    assert frame["a"].tolist() == [1, 2, 3] and first.rows == 3 and first.columns == 3


def test_preparation_round_trip(engine, settings) -> None:
    dataset, _ = datasets.import_table(engine, read_bytes("t.csv", CSV, settings=settings), project="p", name="t", settings=settings)
    assert datasets.get_preparation(engine, dataset.id) == datasets.Preparation(None, Recipe(), None)
    recipe = Recipe(steps=(DropDuplicates(reason="dupes"),))
    plan = FeaturePlan(include=("a", "b"))
    datasets.save_preparation(engine, dataset.id, target="y", recipe=recipe)
    datasets.save_preparation(engine, dataset.id, plan=plan)
    assert datasets.get_preparation(engine, dataset.id) == datasets.Preparation("y", recipe, plan)


def test_unknown_dataset_is_a_clear_error(engine) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        datasets.get_dataset(engine, 999)


def test_demo_project_is_created_once_with_target(engine, settings) -> None:
    ensure_demo_project(engine, settings=settings)
    ensure_demo_project(engine, settings=settings)
    from core.store import crud
    from core.store.db import session_scope

    with session_scope(engine) as session:
        projects = crud.list_projects(session)
        assert [p.name for p in projects] == [DEMO_PROJECT]
        (dataset,) = crud.list_datasets(session, project_id=projects[0].id)
    assert dataset.name == SAMPLES[0].file
    assert datasets.get_preparation(engine, dataset.id).target == SAMPLES[0].target


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.file)
def test_every_sample_loads_with_its_target(sample, settings) -> None:
    from core.data.ingest import read_path

    frame = read_path(sample.path, settings=settings).frame
    assert sample.target in frame.columns and len(frame) > 100
