"""Distributed tuning: worker processes join one study on SQLite and on a real PostgreSQL."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest

from core.config import PROJECT_ROOT, SAMPLES_DIR
from core.data.profile import Task
from core.errors import BadInput
from core.modeling.splits import CVScheme
from core.modeling.tuning import CANCELLED_ATTR, STUDY_ATTR, TuningConfig, close_storage, open_storage, tune
from core.modeling.worker import run_worker
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table
from core.prep.steps import Recipe

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A worker process: import everything, say so, wait for the study to be ready, then join it.
_WORKER = """
import sys, time
import optuna
from core.modeling.tuning import STUDY_ATTR
from core.modeling.worker import run_worker

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, name = sys.argv[1], sys.argv[2]
storage = optuna.storages.RDBStorage(url)
print("ready", flush=True)
deadline = time.monotonic() + 60
while True:
    try:
        if STUDY_ATTR in storage.get_study_user_attrs(storage.get_study_id_from_name(name)):
            break
    except KeyError:
        pass
    if time.monotonic() > deadline:
        sys.exit("the study never appeared")
    time.sleep(0.05)
storage.engine.dispose()
print(run_worker(name, url), flush=True)
"""


def _data():
    X, y = prepare_training_table(pd.read_csv(SAMPLES_DIR / "penguins.csv"), Recipe(), target="species")
    return X, y


def _tune(url: str, work_dir: Path, name: str, config: TuningConfig, **kwargs):
    X, y = _data()
    return tune(X, y, task=Task.MULTICLASS, recipe=Recipe(), plan=FeaturePlan(), target="species",
                scheme=CVScheme(kind="stratified", n_folds=3, seed=0), config=config, storage_url=url,
                study_name=name, work_dir=work_dir, **kwargs)


@pytest.mark.timeout(180)
def test_two_worker_processes_join_one_study(store_url: str, tmp_path: Path) -> None:
    total = 10
    # Optuna's schema first, so three processes never race to create it.
    close_storage(open_storage(store_url))
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, store_url, "study-1"], cwd=PROJECT_ROOT,
                         stdout=subprocess.PIPE, stderr=open(tmp_path / f"worker{i}.log", "w"), text=True)
        for i in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready", (tmp_path / "worker0.log").read_text()
        mine = []
        config = TuningConfig(models=("logistic_regression", "random_forest"), max_trials=total, budget_s=90.0)
        result = _tune(store_url, tmp_path, "study-1", config, on_trial=mine.append)
        counts = [int(worker.communicate(timeout=90)[0].strip()) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert all(w.returncode == 0 for w in workers), logs
    assert result.stopped == "trials"
    assert len(mine) + sum(counts) == total and all(c >= 1 for c in counts), (len(mine), counts)

    study = optuna.load_study(study_name="study-1", storage=store_url)
    trials = study.get_trials()
    real = [t for t in trials if not t.user_attrs.get("over_cap")]
    assert len(real) == total
    assert len({t.number for t in trials}) == len(trials)  # no duplicate numbers
    assert sorted(t.number for t in real) == list(range(total))
    assert all(t.state.is_finished() for t in trials)
    pids = {t.user_attrs["worker_pid"] for t in real}
    assert {w.pid for w in workers} <= pids
    assert {t.user_attrs["model"] for t in real} == {"logistic_regression", "random_forest"}


def test_the_study_records_what_a_worker_needs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = TuningConfig(models=("knn",), budget_s=None, max_trials=2, metric="accuracy")
    result = _tune(url, tmp_path / "work", "study-2", config)
    attrs = optuna.load_study(study_name="study-2", storage=url).user_attrs[STUDY_ATTR]
    assert attrs["target"] == "species" and attrs["task"] == "multiclass"
    assert TuningConfig.from_dict(attrs["config"]) == config
    assert CVScheme(**attrs["scheme"]) == CVScheme(kind="stratified", n_folds=3, seed=0)
    shared = pd.read_parquet(attrs["data_path"])
    X, y = _data()
    # Parquet reads a missing text value back as None rather than NaN; both are missing to the Pipeline.
    pd.testing.assert_frame_equal(shared.drop(columns=["species"]).fillna(0), X.fillna(0))
    assert shared["species"].tolist() == y.tolist()
    assert Path(attrs["data_path"]).parent == tmp_path / "work"
    assert [p.name for p in (tmp_path / "work").iterdir()] == [Path(attrs["data_path"]).name]  # no temp left
    # The study's cap is reached: a late worker has nothing to do.
    assert run_worker("study-2", url) == 0
    assert len(result.trials) == 2

    with pytest.raises(BadInput, match="already exists"):
        _tune(url, tmp_path / "work", "study-2", config)
    with pytest.raises(ValueError, match="work_dir is required"):
        X, y = _data()
        tune(X, y, task=Task.MULTICLASS, recipe=Recipe(), plan=FeaturePlan(), target="species",
             scheme=CVScheme(kind="stratified", n_folds=3), config=config, storage_url=url)


def test_workers_stop_on_cancel_and_keep_their_own_limits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    config = TuningConfig(models=("knn", "logistic_regression"), budget_s=None, max_trials=5)
    result = _tune(url, tmp_path, "study-3", config, should_stop=lambda: True)
    assert result.stopped == "cancelled" and result.trials == ()
    assert run_worker("study-3", url) == 0  # a cancelled study stops its workers
    optuna.load_study(study_name="study-3", storage=url).set_user_attr(CANCELLED_ATTR, False)  # resumed
    assert run_worker("study-3", url, max_trials=2) == 2
    assert run_worker("study-3", url) == 3  # the rest of the study's cap
    trials = optuna.load_study(study_name="study-3", storage=url).get_trials()
    assert [t.user_attrs["model"] for t in trials[:2]] == ["knn", "logistic_regression"]  # defaults first


def test_bad_studies_and_limits_are_bad_input(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    with pytest.raises(BadInput, match="No tuning study named 'missing'"):
        run_worker("missing", url)
    optuna.create_study(study_name="foreign", storage=url)
    with pytest.raises(BadInput, match="not started by ShipML"):
        run_worker("foreign", url)
    with pytest.raises(BadInput, match="must be positive"):
        run_worker("foreign", url, max_trials=0)
    with pytest.raises(BadInput, match="Cannot open the tuning storage"):
        run_worker("x", "postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
