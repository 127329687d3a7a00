"""`core.learning_curve`: the version's model refit on growing cuts of its own folds."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import BadInput
from core.learning_curve import SHARES, LearningCurve, learning_curve
from core.modeling import plots
from core.modeling.tuning import TuningConfig
from core.prep.plan import FeaturePlan
from core.prep.steps import Recipe
from core.training import TrainRequest, train_model


def _train(engine, settings, frame: pd.DataFrame, model: str, **request):
    config = TuningConfig(models=(model,), budget_s=None, max_trials=1, seed=settings.random_seed)
    return train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                       request=TrainRequest(model_name=model, target="y", config=config, **request), settings=settings)


def test_more_rows_help_a_model_with_much_to_learn(engine, settings) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(1_500, 6)), columns=[f"x{i}" for i in range(6)])
    frame["y"] = np.where(np.sin(2 * frame["x0"]) + frame["x1"] * frame["x2"] + rng.normal(scale=0.5, size=1_500) > 0,
                          "yes", "no")
    outcome = _train(engine, settings, frame, "random_forest")
    progress = []
    curve = learning_curve(outcome.version, frame, settings=settings, on_fit=lambda done, total: progress.append((done, total)))
    folds = outcome.report.scheme.n_folds
    assert progress[-1] == (len(SHARES) * folds, len(SHARES) * folds) and len(progress) == len(SHARES) * folds
    # Training rows: 1,500 less the 300 of the holdout, of which each fold trains on 4 in 5.
    assert curve.rows == tuple(round(share * 960) for share in SHARES) and curve.metric == "roc_auc"
    # All of a fold's rows is the evaluation's own fit: the same scores, fold by fold.
    assert curve.validation[-1] == pytest.approx(outcome.report.cv.fold_scores["roc_auc"])
    means = [np.mean(scores) for scores in curve.validation]
    assert means[-1] > means[0] + 0.03, means  # still learning
    assert all(np.mean(t) > np.mean(v) for t, v in zip(curve.training, curve.validation))  # a forest memorises
    assert curve.reading().startswith("Still climbing: from 720 to 960 rows, ROC AUC moved by +0.0"), curve.reading()

    figure = plots.learning_curve_chart(curve)
    lines = [t for t in figure.data if t.name in ("validation", "training rows")]
    assert [list(t.x) for t in lines] == [list(curve.rows)] * 2
    assert list(lines[0].y) == pytest.approx(means)
    band = next(t for t in figure.data if t.name == "validation, range over folds")
    assert max(band.y) == max(map(max, curve.validation)) and min(band.y) == min(map(min, curve.validation))


def test_a_time_split_cuts_the_latest_rows_before_each_fold(engine, settings) -> None:
    # The target's relation to x flips halfway: only the latest rows teach what the later folds need.
    rng = np.random.default_rng(1)
    n = 800
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n, freq="D"), "x": rng.normal(size=n)})
    frame["y"] = np.where(np.arange(n) < n // 2, 1.0, -1.0) * frame["x"] * 3 + rng.normal(scale=0.3, size=n)
    frame = frame.sample(frac=1.0, random_state=0, ignore_index=True)  # rows out of time order: cut by time
    outcome = _train(engine, settings, frame, "ridge", time_column="day")
    assert outcome.report.scheme.kind == "time"
    curve = learning_curve(outcome.version, frame, settings=settings, shares=(0.25, 1.0))
    last_fold = [scores[-1] for scores in curve.validation]
    # In the last fold, the latest quarter holds only rows of the new regime; all rows mix both.
    assert last_fold[0] > last_fold[1] + 0.5, last_fold


def test_a_version_without_its_cross_validation_is_refused(engine, settings) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=300)})
    frame["y"] = 2 * frame["x"] + rng.normal(size=300)
    version = _train(engine, settings, frame, "ridge").version
    version.cv_json = json.dumps({"holdout_share": 0.2})
    with pytest.raises(BadInput, match="recorded no cross-validation"):
        learning_curve(version, frame, settings=settings)


def test_a_flat_curve_reads_as_flat() -> None:
    # RMSE: lower is better, so a fall is a gain; here it moves less than its spread over the folds.
    curve = LearningCurve(metric="rmse", rows=(100, 400), validation=((3.0, 3.2, 2.8), (2.99, 3.3, 2.7)),
                          training=((1.0, 1.0, 1.0), (1.1, 1.1, 1.1)))
    assert curve.reading().startswith("Flat at the right: from 100 to 400 rows, RMSE moved by +0.0033 (± 0.0578")
    steeper = LearningCurve(metric="rmse", rows=(100, 400), validation=((3.0, 3.2, 2.8), (2.0, 2.1, 1.9)),
                            training=curve.training)
    assert steeper.reading().startswith("Still climbing: from 100 to 400 rows, RMSE moved by +1.0000")
