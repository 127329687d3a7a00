"""Training jobs in real background processes: progress, cancel, death, bad input."""
from __future__ import annotations

import os
import signal
import time

import pandas as pd
import pytest

from core import datasets, jobs
from core.data.ingest import read_bytes, read_path
from core.modeling.tuning import TrialRecord, TuningConfig
from core.training import TrainRequest

pytestmark = pytest.mark.xdist_group("jobs")


def _wait(engine, job_id: int, predicate, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(engine, job_id)
        if predicate(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} stuck in {jobs.get_job(engine, job_id).status}")


@pytest.fixture
def penguins(engine, settings, sample_path):
    loaded = read_path(sample_path("penguins.csv"), settings=settings)
    dataset, _ = datasets.import_table(engine, loaded, project="birds", name="penguins.csv", settings=settings)
    datasets.save_preparation(engine, dataset.id, target="species")
    return dataset


def _request(**config) -> TrainRequest:
    config = {"models": ("logistic_regression", "random_forest"), "budget_s": 20.0, **config}
    return TrainRequest(model_name="penguins", target="species", n_folds=3, config=TuningConfig(**config))


def test_a_job_trains_registers_and_reports(engine, settings, penguins) -> None:
    job_id = jobs.submit_job(engine, dataset_id=penguins.id, request=_request(max_trials=4), settings=settings)
    job = _wait(engine, job_id, lambda j: j.status not in jobs.ACTIVE)
    assert job.status == "DONE", (job.error, (jobs.job_dir(job_id, settings=settings) / "log.txt").read_text()[-2000:])
    trials = jobs.job_trials(engine, job_id)
    assert len(trials) == job.trials_done >= 2
    assert job.stage == ("trials" if job.trials_done == 4 else "budget")  # why its search ended
    assert set(trials["model"]) == {"logistic_regression", "random_forest"}
    complete, pruned = trials[trials["state"] == "complete"], trials[trials["state"] == "pruned"]
    (n_folds,) = set(complete["folds"])  # every fold of the tuning scheme (10 on a table this small)
    assert n_folds >= 3 and complete["stop"].isna().all()
    assert pruned["stop"].isin(["median pruner", "time limit"]).all() and (pruned["folds"] < n_folds).all()
    version = jobs.job_version(engine, job)
    assert version.status == "READY" and version.dataset_hash == penguins.content_hash
    report = jobs.load_report(job_id, settings=settings)
    assert not report.no_better_than_baseline


def test_cancel_keeps_the_partial_leaderboard(engine, settings, penguins) -> None:
    job_id = jobs.submit_job(engine, dataset_id=penguins.id, request=_request(budget_s=300.0), settings=settings)
    _wait(engine, job_id, lambda j: j.trials_done >= 1)
    jobs.cancel_job(engine, job_id)
    job = _wait(engine, job_id, lambda j: j.status not in jobs.ACTIVE, timeout=60)
    assert job.status == "CANCELLED" and job.version_id is None
    from core import registry

    assert registry.list_model_names(engine) == []  # nothing registered after a cancel
    assert len(jobs.job_trials(engine, job_id)) >= 1


def test_a_killed_job_is_shown_as_failed(engine, settings, penguins) -> None:
    job_id = jobs.submit_job(engine, dataset_id=penguins.id, request=_request(budget_s=300.0), settings=settings)
    job = _wait(engine, job_id, lambda j: j.status == "RUNNING")
    os.kill(job.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while jobs.reap_dead_jobs(engine) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    job = jobs.get_job(engine, job_id)
    assert job.status == "FAILED" and "stopped unexpectedly" in job.error


def test_bad_input_fails_the_job_with_a_clear_message(engine, settings) -> None:
    csv = pd.DataFrame({"x": range(40), "y": ["same"] * 40}).to_csv(index=False).encode()
    dataset, _ = datasets.import_table(engine, read_bytes("one.csv", csv, settings=settings), project="p",
                                       name="one.csv", settings=settings)
    request = TrainRequest(model_name="one", target="y", config=TuningConfig(models=(), budget_s=10.0))
    job_id = jobs.submit_job(engine, dataset_id=dataset.id, request=request, settings=settings)
    job = _wait(engine, job_id, lambda j: j.status not in jobs.ACTIVE)
    assert job.status == "FAILED" and "only one value" in job.error


def test_trials_rank_by_their_metrics_direction_complete_first_ties_to_the_earliest() -> None:
    trials = pd.DataFrame({"number": [0, 1, 2, 3, 4, 5], "score": [5.0, 3.0, None, 3.0, 9.0, 1.0],
                           "state": ["complete"] * 2 + ["failed"] + ["complete"] * 2 + ["pruned"]})
    assert list(jobs.rank_trials(trials, "rmse")["number"]) == [1, 3, 0, 4, 5, 2]  # lower is better
    assert list(jobs.rank_trials(trials, "r2")["number"]) == [4, 0, 1, 3, 5, 2]  # complete ones first


def test_progress_is_the_further_of_the_budget_and_the_trial_cap() -> None:
    assert jobs.search_progress(6.0, 5, TuningConfig(budget_s=60.0, max_trials=25)) == pytest.approx(0.2)  # trials
    assert jobs.search_progress(30.0, 1, TuningConfig(budget_s=60.0, max_trials=25)) == pytest.approx(0.5)  # time
    assert jobs.search_progress(90.0, 0, TuningConfig(budget_s=60.0)) == 1.0  # the evaluation after the budget
    assert jobs.search_progress(5.0, 3, TuningConfig(budget_s=None, max_trials=4)) == pytest.approx(0.75)


def test_best_per_family_says_how_the_search_spent_its_time() -> None:
    trials = pd.DataFrame({
        "number": range(7),
        "model": ["lightgbm", "ridge", "ridge", "ridge", "lightgbm", "knn", "mlp"],
        "score": [0.90, 0.80, 0.82, 0.70, 0.93, None, 0.5],
        "duration_s": [2.0, 0.1, 0.2, 0.1, 3.0, 1.0, 0.5],
        "state": ["complete", "complete", "complete", "pruned", "complete", "failed", "pruned"],
    })
    board = jobs.best_per_family(trials, "r2")
    assert list(board["model"]) == ["lightgbm", "ridge"]  # best first; no complete trial, no row
    assert list(board["number"]) == [4, 2] and list(board["trials"]) == [2, 3]
    assert list(board["seconds"]) == pytest.approx([5.0, 0.4])


def test_only_a_complete_trial_sets_the_best_score() -> None:
    def trial(score: float, state: str = "complete") -> TrialRecord:
        return TrialRecord(number=1, model="ridge", params={}, score=score, score_std=None, fold_scores=(),
                           duration_s=1.0, state=state)

    assert jobs._improves(None, trial(4.0), "rmse")
    assert jobs._improves(5.0, trial(4.0), "rmse") and not jobs._improves(3.0, trial(4.0), "rmse")
    assert not jobs._improves(5.0, trial(1.0, "pruned"), "rmse")  # the mean of the folds it ran
    assert not jobs._improves(None, trial(1.0, "pruned"), "rmse")


def test_a_report_that_cannot_be_written_fails_the_job_with_a_clear_message(engine, settings, penguins) -> None:
    job_id = jobs.submit_job(engine, dataset_id=penguins.id, request=_request(max_trials=1), settings=settings)
    folder = jobs.job_dir(job_id, settings=settings)
    (folder / "report.joblib").mkdir()  # a real fault, before the job gets there: the report's place is taken
    job = _wait(engine, job_id, lambda j: j.status not in jobs.ACTIVE)
    assert job.status == "FAILED" and job.error == ("could not write the job's evaluation report: Is a directory "
                                                    "(version 1 of 'penguins' was registered; the Evaluate page "
                                                    "cannot show it)")
    assert jobs.job_version(engine, job).status == "READY"  # the model itself is usable
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # nothing half-written left
