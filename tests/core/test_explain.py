"""`core.explain`: a version's importance is measured on holdout rows its refit never saw."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.data.profile import Task
from core.errors import BadInput
from core.explain import explain_version, version_rows, worst_predictions
from core.modeling.evaluation import permutation_importance_table
from core.modeling.tuning import TuningConfig
from core.prep.plan import FeaturePlan
from core.prep.steps import Recipe
from core.training import TrainRequest, train_model


@pytest.fixture
def forest(engine, settings):
    """A random forest trained on one signal column and one of pure noise, which it memorises."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"signal": rng.normal(size=1_500), "noise": rng.normal(size=1_500)})
    frame["y"] = np.where(frame["signal"] + rng.normal(size=1_500) > 0, "yes", "no")
    config = TuningConfig(models=("random_forest",), budget_s=None, max_trials=1, seed=settings.random_seed)
    outcome = train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                          request=TrainRequest(model_name="forest", target="y", config=config), settings=settings)
    return frame, outcome.version


def test_importance_is_measured_on_the_holdout(forest, settings) -> None:
    frame, version = forest
    explained = explain_version(version, frame, settings=settings)
    assert (explained.scored_on, explained.n_rows, explained.metric) == ("holdout", 300, "roc_auc")
    # The same rows and the same fit as the holdout score training recorded.
    assert explained.score == json.loads(version.metrics_json)["holdout"]["roc_auc"]
    held_out = explained.importance.set_index("column")["importance_mean"]
    assert held_out.index[0] == "signal" and held_out["signal"] > 0.2
    # On the shipped model's own rows the memorised noise looks useful; on the holdout it is not.
    on_training = permutation_importance_table(explained.pipeline, explained.X, frame["y"], task=Task.BINARY,
                                               metric="roc_auc", seed=0).set_index("column")["importance_mean"]
    assert on_training["noise"] > 0.1 and abs(held_out["noise"]) < 0.02, (on_training["noise"], held_out["noise"])
    assert len(explained.X) == len(frame)  # partial dependence reads the whole training table


def test_a_version_without_a_holdout_is_explained_on_its_training_rows(forest, settings) -> None:
    frame, version = forest
    cv = json.loads(version.cv_json)
    del cv["holdout_share"]
    version.cv_json = json.dumps(cv)
    explained = explain_version(version, frame, settings=settings, max_rows=1_000)
    assert (explained.scored_on, explained.n_rows) == ("training", 1_000)
    assert explained.score > 0.99  # a forest on rows it learned


def test_label_metrics_follow_the_decision_threshold(forest, settings) -> None:
    frame, version = forest
    explained = explain_version(version, frame, settings=settings)
    X, y = explained.X, frame["y"]
    # At a threshold of 0 every row is "yes": recall is 1 whatever is shuffled.
    everything = permutation_importance_table(explained.pipeline, X, y, task=Task.BINARY, metric="recall", seed=0,
                                              threshold=0.0)
    assert (everything["importance_mean"] == 0).all()
    at_half = permutation_importance_table(explained.pipeline, X, y, task=Task.BINARY, metric="recall", seed=0)
    assert at_half.set_index("column").loc["signal", "importance_mean"] > 0.1


def test_a_regression_version_is_explained_on_its_holdout(engine, settings) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=600), "z": rng.normal(size=600)})
    frame["y"] = 3 * frame["x"] + rng.normal(size=600)
    config = TuningConfig(models=("ridge",), budget_s=None, max_trials=1, seed=settings.random_seed)
    outcome = train_model(frame, dataset_hash="1" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                          request=TrainRequest(model_name="line", target="y", config=config), settings=settings)
    explained = explain_version(outcome.version, frame, settings=settings)
    assert (explained.scored_on, explained.n_rows, explained.metric) == ("holdout", 120, "r2")
    assert explained.score == pytest.approx(json.loads(outcome.version.metrics_json)["holdout"]["r2"])
    importance = explained.importance.set_index("column")["importance_mean"]
    assert importance["x"] > 1 and abs(importance["z"]) < 0.05


def test_the_rows_most_wrong_are_the_mislabelled_ones(engine, settings) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=800), "row": rng.normal(size=800)})  # a column named like ours
    frame["y"] = np.where(frame["x"] > 0, "yes", "no")
    flipped = [10, 200, 555]
    frame.loc[flipped, "y"] = np.where(frame.loc[flipped, "x"] > 0, "no", "yes")  # three labels typed wrong
    config = TuningConfig(models=("logistic_regression",), budget_s=None, max_trials=1, seed=settings.random_seed)
    outcome = train_model(frame, dataset_hash="2" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                          request=TrainRequest(model_name="typos", target="y", config=config), settings=settings)
    rows = version_rows(outcome.version, frame, settings=settings)
    in_training = set(rows.split()[0].index)
    worst = worst_predictions(outcome.report, rows, n=5)
    assert list(worst.columns[:4]) == ["row", "actual", "predicted", "P(actual)"] and "row (column)" in worst.columns
    expected = {i + 1 for i in flipped if i in in_training}  # rows number from 1; the holdout's are not out-of-fold
    assert expected and set(worst["row"][: len(expected)]) == expected
    assert worst["P(actual)"].is_monotonic_increasing and (worst["actual"] != worst["predicted"]).iloc[0]
    first = worst.iloc[0]
    assert first["x"] == frame.loc[first["row"] - 1, "x"]  # each row's own values


def test_a_regression_s_worst_rows_have_the_largest_errors(engine, settings) -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=500)})
    frame["y"] = 2 * frame["x"] + rng.normal(scale=0.1, size=500)
    typos = [7, 50, 120, 300, 450]
    frame.loc[typos, "y"] += 40  # typos in the target
    config = TuningConfig(models=("ridge",), budget_s=None, max_trials=1, seed=settings.random_seed)
    outcome = train_model(frame, dataset_hash="3" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                          request=TrainRequest(model_name="typo", target="y", config=config), settings=settings)
    rows = version_rows(outcome.version, frame, settings=settings)
    worst = worst_predictions(outcome.report, rows, n=6)
    assert list(worst.columns) == ["row", "actual", "predicted", "error", "x"]
    assert worst["error"].abs().is_monotonic_decreasing
    expected = {i + 1 for i in typos if i in set(rows.split()[0].index)}
    assert expected and set(worst["row"][: len(expected)]) == expected and (worst["error"][: len(expected)] > 30).all()
    with pytest.raises(BadInput, match="no longer line up"):
        worst_predictions(outcome.report, version_rows(outcome.version, frame.iloc[1:], settings=settings))
