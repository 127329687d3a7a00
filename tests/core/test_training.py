"""`core.training`: small tables are tuned with more folds; the budget covers the winner's evaluation."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.data.profile import Task
from core.modeling.evaluation import CVScheme
from core.modeling.tuning import TuningConfig
from core.prep.plan import FeaturePlan
from core.prep.steps import Recipe
from core.training import SMALL_TABLE_FOLDS, SMALL_TABLE_ROWS, TrainRequest, finish_folds, train_model, tuning_scheme


def _target(n: int, *, rare: int = 0) -> pd.Series:
    """A binary target of ``n`` rows, ``rare`` of them (or half) in class "b"."""
    rare = rare or n // 2
    return pd.Series(["a"] * (n - rare) + ["b"] * rare)


def test_small_table_gets_more_folds() -> None:
    scheme = CVScheme(kind="kfold", n_folds=5, seed=3)
    tuned = tuning_scheme(scheme, pd.Series(range(600), dtype=float), Task.REGRESSION)
    assert tuned == CVScheme(kind="kfold", n_folds=SMALL_TABLE_FOLDS, seed=3)


def test_large_table_keeps_its_scheme() -> None:
    scheme = CVScheme(kind="stratified", n_folds=5)
    assert tuning_scheme(scheme, _target(SMALL_TABLE_ROWS), Task.BINARY) is scheme


@pytest.mark.parametrize("scheme", [CVScheme(kind="group", group_column="g"), CVScheme(kind="time", time_column="t")])
def test_grouped_and_time_splits_keep_their_folds(scheme: CVScheme) -> None:
    assert tuning_scheme(scheme, pd.Series(range(300), dtype=float), Task.REGRESSION) is scheme


def test_rare_class_caps_the_folds_but_never_below_the_request() -> None:
    scheme = CVScheme(kind="stratified", n_folds=5)
    assert tuning_scheme(scheme, _target(300, rare=7), Task.BINARY).n_folds == 7
    assert tuning_scheme(scheme, _target(300, rare=5), Task.BINARY).n_folds == 5
    assert tuning_scheme(CVScheme(kind="stratified", n_folds=12), _target(300), Task.BINARY).n_folds == 12


def test_finish_folds_counts_the_winners_fits_in_search_folds() -> None:
    five, ten = CVScheme(kind="kfold", n_folds=5), CVScheme(kind="kfold", n_folds=10)
    # Report CV: 5 fits on 4/5 of the training rows; holdout: 1 on all of them; shipped: 1 on 1/0.8 of them.
    assert finish_folds(five, five, 0.2) == pytest.approx((4 + 1 + 1.25) / 0.8)
    assert finish_folds(five, ten, 0.2) == pytest.approx((4 + 1 + 1.25) / 0.9)  # a small table's longer folds


def test_the_budget_covers_a_slow_winners_evaluation_and_refit(engine, settings) -> None:
    # One slow family, so the winner is slow and its evaluation and refit (about eight of its
    # folds) is a large part of the budget: a fixed share kept back for them ran over by ~20 %.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6_000, 30))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(30)]).assign(y=X[:, :5].sum(axis=1) + rng.normal(size=6_000))
    budget = 12.0
    config = TuningConfig(models=("hist_gradient_boosting",), budget_s=budget, seed=0)
    request = TrainRequest(model_name="slow", target="y", config=config)
    started = time.monotonic()
    outcome = train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), request=request,
                          engine=engine, settings=settings)
    elapsed = time.monotonic() - started
    assert outcome.tuning.stopped == "budget"
    assert elapsed <= 1.1 * budget, elapsed
