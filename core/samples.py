"""The sample data sets shipped in ``data/samples`` and the demo project a new install starts with."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from core.config import SAMPLES_DIR, Settings
from core.store import crud
from core.store.db import session_scope


@dataclass(frozen=True)
class Sample:
    file: str
    title: str
    target: str
    task: str
    description: str

    @property
    def path(self) -> Path:
        return SAMPLES_DIR / self.file


SAMPLES: tuple[Sample, ...] = (
    Sample("mlc_churn.csv", "Telecom churn", "churn", "binary", "5,000 customers: will they leave?"),
    Sample("penguins.csv", "Palmer penguins", "species", "multiclass", "344 penguins: which species?"),
    Sample("concrete.csv", "Concrete strength", "compressive_strength", "regression", "1,030 mixes: how strong?"),
    Sample("default.csv", "Credit default", "default", "binary", "10,000 card holders, 3% default (imbalanced)"),
    Sample("lending_club.csv", "Lending Club", "Class", "binary", "9,857 loans: good or bad?"),
    Sample("taxi.csv", "Chicago taxi tips", "tip", "binary", "10,000 trips: did the rider tip?"),
    Sample("deliveries.csv", "Food deliveries", "time_to_delivery", "regression", "10,012 orders: minutes to deliver"),
    Sample("chicago.csv", "Chicago ridership", "ridership", "regression", "5,698 days of train ridership (time-ordered)"),
)
DEMO_PROJECT = "Demo"


def import_sample(engine: Engine, sample: Sample, *, project: str, settings: Settings) -> int:
    """Store a sample in ``project`` with its target preset; returns the dataset id."""
    from core.data.ingest import read_path
    from core.datasets import get_preparation, import_table, save_preparation

    loaded = read_path(sample.path, settings=settings)
    dataset, _ = import_table(engine, loaded, project=project, name=sample.file, settings=settings)
    if get_preparation(engine, dataset.id).target is None:
        save_preparation(engine, dataset.id, target=sample.target)
    return dataset.id


def ensure_demo_project(engine: Engine, *, settings: Settings) -> None:
    """On an empty store, create the demo project with the churn sample in it."""
    with session_scope(engine) as session:
        if crud.list_projects(session):
            return
    import_sample(engine, SAMPLES[0], project=DEMO_PROJECT, settings=settings)
