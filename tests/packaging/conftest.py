"""Fixtures for the packaging tests: one small real model, trained and exported once per session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory) -> Path:
    """A LightGBM Pipeline on the penguins sample: trained, registered and exported by the CLI.

    One trial on two folds keeps it to a few seconds, while it is still the real thing: the
    project's cleaning and feature Pipeline with a LightGBM classifier, as the app ships it.
    """
    base = tmp_path_factory.mktemp("packaging-model")
    env = {**os.environ, "SHIPML_WORKSPACE": str(base / "workspace"), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "core", "train", "--data", str(ROOT / "data/samples/penguins.csv"),
         "--target", "species", "--models", "lightgbm", "--trials", "1", "--folds", "2",
         "--budget", "20", "--out", str(base / "model")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return base / "model"
