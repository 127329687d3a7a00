"""Real small models (binary, multiclass, regression, slow), exported once per session, and helpers
to serve them in-process (TestClient) or in a real uvicorn process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core import registry
from core.config import SAMPLES_DIR, Settings
from core.data.profile import Task
from core.modeling.specs import get_spec
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table, recipe_to_json
from core.prep.steps import Recipe
from core.registry import VersionMeta
from core.serving.app import create_app
from core.store.db import make_engine
from tests.serving.slowmodel import BrokenModel, SlowModel
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
BINARY_THRESHOLD = 0.3  # far from 0.5, so applying it changes some labels


@dataclass(frozen=True)
class Served:
    """An exported model and the rows (without the target) it can be asked about."""

    name: str
    dir: Path
    rows: pd.DataFrame
    target: str
    task: str


def _train(settings: Settings, engine, *, name: str, sample: str, target: str, task: Task, family: str,
           metrics: dict | None = None, wrap=None, nrows: int | None = None) -> Served:
    frame = pd.read_csv(SAMPLES_DIR / sample, nrows=nrows)
    X, y = prepare_training_table(frame, Recipe(), target=target)
    estimator = get_spec(family, task).build(None, task=task, seed=42)
    pipeline = build_pipeline(Recipe(), FeaturePlan(), target=target, estimator=estimator).fit(X, y)
    if wrap is not None:
        pipeline = wrap(pipeline)
    meta = VersionMeta(dataset_hash="d" * 64, target=target, task=task.value, recipe_json=recipe_to_json(Recipe()),
                       plan_json=FeaturePlan().model_dump_json(), model_family=family, params={},
                       metrics=metrics or {}, cv={}, training_seconds=1.0)
    version = registry.register_version(engine, name=name, pipeline=pipeline, meta=meta, reference=X,
                                        settings=settings)
    out = settings.workspace.parent / "exports" / name
    registry.export_version(version, settings=settings, out_dir=out)
    return Served(name, out, X.reset_index(drop=True), target, task.value)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Served]:
    """binary (LightGBM, churn, tuned threshold), multiclass (logistic, penguins), regression
    (LightGBM, concrete), slow (binary churn behind a 1.5 s delay per call) and broken (fails)."""
    base = tmp_path_factory.mktemp("serving-models")
    settings = Settings(workspace=base / "workspace")
    engine = make_engine(settings.db_url)
    try:
        return {
            "binary": _train(settings, engine, name="churn", sample="mlc_churn.csv", target="churn",
                             task=Task.BINARY, family="lightgbm", metrics={"decision_threshold": BINARY_THRESHOLD}),
            "multiclass": _train(settings, engine, name="penguins", sample="penguins.csv", target="species",
                                 task=Task.MULTICLASS, family="logistic_regression"),
            "regression": _train(settings, engine, name="concrete", sample="concrete.csv",
                                 target="compressive_strength", task=Task.REGRESSION, family="lightgbm"),
            "slow": _train(settings, engine, name="slow churn", sample="mlc_churn.csv", target="churn",
                           task=Task.BINARY, family="logistic_regression", nrows=500,
                           wrap=lambda p: SlowModel(p, delay_s=1.5)),
            "broken": _train(settings, engine, name="broken churn", sample="mlc_churn.csv", target="churn",
                             task=Task.BINARY, family="logistic_regression", nrows=500, wrap=BrokenModel),
        }
    finally:
        engine.dispose()


@contextmanager
def serve(model_dir: Path, tmp_path: Path, *, log_url: str | None = None, wait: bool = True,
          compile_trees: bool = False, **overrides) -> Iterator[TestClient]:
    """The app in-process, started (lifespan run) and, with ``wait``, ready. Compiled trees
    (a compiler process of seconds per LightGBM model) only when a test asks for them."""
    settings = Settings(workspace=tmp_path / "workspace", **overrides)
    app = create_app(model_dir, settings, log_url=log_url, compile_trees=compile_trees)
    with TestClient(app, raise_server_exceptions=False) as client:
        if wait:
            assert app.state.service.wait_ready(60), app.state.service.failure
        yield client


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON would carry them: NaN as null, numpy scalars as plain numbers."""
    import json

    return json.loads(frame.to_json(orient="records"))


class Server:
    """``python -m core.serving`` in a real process on a free port."""

    def __init__(self, model_dir: Path, workspace: Path, *, log_url: str | None = None, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "core.serving", "--model", str(model_dir), "--port", str(self.port),
                "--no-compiled-trees"]  # a compiler process per test would only load the machine
        if log_url:
            args += ["--log-url", log_url]
        environment = {**os.environ, "SHIPML_WORKSPACE": str(workspace), "OMP_NUM_THREADS": "1",
                       **{f"SHIPML_{k.upper()}": str(v) for k, v in env.items()}}
        self.log = workspace.parent / f"server-{self.port}.log"
        workspace.mkdir(parents=True, exist_ok=True)
        self._log_fh = self.log.open("w")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=environment, stdout=self._log_fh, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready: {self.log.read_text()}")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log_fh.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log_fh.close()


@pytest.fixture
def server_factory(tmp_path):
    """Start real servers; every one still running at the end is killed."""
    started: list[Server] = []

    def start(model_dir: Path, *, log_url: str | None = None, **env) -> Server:
        server = Server(model_dir, tmp_path / "workspace", log_url=log_url, **env)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.kill()


