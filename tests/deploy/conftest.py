"""Fixtures for deployments: one really trained model, registered in each test's store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core import registry
from core.config import SAMPLES_DIR
from core.registry import VersionMeta

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "pen guins"


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """An exported penguins classifier, trained once per session by the real CLI (~7 s)."""
    base = tmp_path_factory.mktemp("deploy-trained")
    out = base / "model"
    env = {**os.environ, "SHIPML_WORKSPACE": str(base / "ws"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data", str(SAMPLES_DIR / "penguins.csv"), "--target", "species",
         "--models", "logistic_regression", "--trials", "2", "--budget", "10", "--folds", "3",
         "--name", MODEL_NAME, "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def register_trained(engine, settings, trained: Path):
    """Register the trained model as the next version of "pen guins"."""
    pipeline, info = registry.load_exported(trained)
    meta = VersionMeta(
        dataset_hash=info["dataset_hash"], target=info["target"], task=info["task"],
        recipe_json=json.dumps(info["recipe"]), plan_json=json.dumps(info["plan"]),
        model_family=info["model_family"], params=info["params"], metrics=info["metrics"], cv=info["cv"],
        training_seconds=info["training_seconds"],
    )
    reference = pd.read_parquet(trained / "reference.parquet")
    return registry.register_version(engine, name=MODEL_NAME, pipeline=pipeline, meta=meta,
                                     reference=reference, settings=settings)


@pytest.fixture
def registered(engine, settings, trained):
    """The trained model registered as version 1 of "pen guins" in this test's store, aliased champion."""
    version = register_trained(engine, settings, trained)
    registry.set_alias(engine, name=MODEL_NAME, alias="champion", version=version.version)
    return version


def run_cli(*args: str, workspace: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m core ...`` as a user runs it."""
    env = {**os.environ, "SHIPML_WORKSPACE": str(workspace)}
    env.pop("SHIPML_SERVE_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
