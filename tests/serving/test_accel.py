"""Compiled LightGBM trees (``core.serving.accel``): equal to the Pipeline, cached, never required.

Real compiles with lleaves (small models: a few seconds each), real corrupt files, a real model
lleaves cannot compile; no mocks.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.data.profile import Task
from core.modeling.specs import SPECS
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table
from core.prep.steps import Recipe
from core.serving.fastpath import compile_pipeline
from core.config import SAMPLES_DIR
from tests.serving.conftest import records, serve
from tests.serving.test_fastpath import TARGETS, _assert_same, _fit, _json_like, _requests, _table

pytest.importorskip("lleaves")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _table()


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION], ids=lambda t: t.value)
def test_compiled_trees_equal_the_pipeline(table, task, tmp_path) -> None:
    pipeline = _fit(table, "lightgbm", task)
    fast = compile_pipeline(pipeline)
    fast.accelerate(tmp_path, background=False)
    assert fast.trees.path == "lleaves", fast.trees.state
    rows = _requests(table, TARGETS[task])
    _assert_same(fast, pipeline, rows, task=task)  # labels exact, probabilities and values to 1e-9
    _assert_same(fast, pipeline, _json_like(rows), task=task)
    for i in range(0, 300, 61):
        _assert_same(fast, pipeline, rows.iloc[[i]], task=task)


def test_the_cache_is_reused_and_a_corrupt_file_never_loaded(table, tmp_path) -> None:
    pipeline = _fit(table, "lightgbm", Task.BINARY)
    first = compile_pipeline(pipeline)
    first.accelerate(tmp_path, background=False)
    [obj] = tmp_path.glob("*.o")
    compiled_at = obj.stat().st_mtime_ns

    again = compile_pipeline(pipeline)
    again.accelerate(tmp_path, background=False)
    assert again.trees.path == "lleaves" and obj.stat().st_mtime_ns == compiled_at  # loaded, not compiled

    obj.write_bytes(b"not an object file")  # LLVM aborts the process that loads this
    corrupt = compile_pipeline(pipeline)
    corrupt.accelerate(tmp_path, background=False)
    assert corrupt.trees.path == "booster" and corrupt.trees.state.startswith("failed")
    assert not obj.exists()  # removed, so the next start compiles anew
    rows = _requests(table, "churn")
    _assert_same(corrupt, pipeline, rows, task=Task.BINARY)  # this process is alive and right

    healed = compile_pipeline(pipeline)
    healed.accelerate(tmp_path, background=False)
    assert healed.trees.path == "lleaves"


def test_trees_lleaves_cannot_compile_stay_on_the_booster(tmp_path) -> None:
    """Linear trees: lleaves reads only the constant leaves; the probe rows catch the difference."""
    raw = pd.read_csv(SAMPLES_DIR / "mlc_churn.csv", nrows=600)
    X, y = prepare_training_table(raw, Recipe(), target="churn")
    estimator = SPECS["lightgbm"].build({"n_estimators": 20}, task=Task.BINARY, seed=1).set_params(linear_tree=True)
    pipeline = build_pipeline(Recipe(), FeaturePlan(), target="churn", estimator=estimator).fit(X, y)
    fast = compile_pipeline(pipeline)
    fast.accelerate(tmp_path, background=False)
    assert fast.trees.path == "booster" and fast.trees.state.startswith("failed"), fast.trees.state
    labels, proba, _ = fast.predict(X.head(50))
    np.testing.assert_allclose(proba, pipeline.predict_proba(X.head(50)), rtol=0, atol=1e-9)


def test_the_accelerator_can_be_turned_off(models, tmp_path) -> None:
    """``python -m core.serving --no-compiled-trees``: the booster answers, nothing is compiled."""
    with serve(models["binary"].dir, tmp_path, compile_trees=False) as client:
        assert client.get("/version").json()["predictor"] == {"path": "fast path", "trees": "booster",
                                                               "trees_state": "booster"}
    assert not (tmp_path / "workspace" / "serving" / "compiled").exists()


def test_the_service_answers_at_once_and_switches_when_compiled(models, tmp_path) -> None:
    served = models["binary"]
    with serve(served.dir, tmp_path, compile_trees=True) as client:
        predictor = client.get("/version").json()["predictor"]
        assert predictor["path"] == "fast path" and predictor["trees"] in ("booster", "lleaves")
        deadline = time.monotonic() + 240
        while predictor["trees"] != "lleaves" and time.monotonic() < deadline:
            assert not predictor["trees_state"].startswith("failed"), predictor
            time.sleep(0.5)
            predictor = client.get("/version").json()["predictor"]
        assert predictor == {"path": "fast path", "trees": "lleaves", "trees_state": "compiled"}
        rows = served.rows.head(300)
        answer = client.post("/predict", json={"rows": records(rows)})
        assert answer.status_code == 200
        from core.registry import load_exported

        pipeline, _ = load_exported(served.dir)
        expected = pipeline.predict_proba(rows)
        got = np.array([[p["probabilities"][str(c)] for c in pipeline.classes_] for p in answer.json()["predictions"]])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert list((tmp_path / "workspace" / "serving" / "compiled").glob("*.o"))
