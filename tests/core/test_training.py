"""`core.training`: small tables are tuned with more folds; the budget covers the winner's evaluation."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pandas as pd
import pytest

from core import registry
from core.data.profile import Task
from core.errors import BadInput
from core.modeling.evaluation import cross_validate
from core.modeling.specs import get_spec
from core.modeling.splits import CVScheme, holdout_split, tuning_sample
from core.modeling.tuning import TuningConfig
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.steps import Recipe
from core.training import FEW_ROWS, SMALL_TABLE_FOLDS, SMALL_TABLE_ROWS, TrainRequest, finish_folds, train_model, tuning_scheme
from tests.core.timing import warm_fit_seconds


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
    assert finish_folds(five, five, 0.2, reuse_cv=True) == pytest.approx((1 + 1.25) / 0.8)  # no report CV
    # Tuned on a quarter of the training rows: the shipped fit learns from four times as many again.
    assert finish_folds(five, five, 0.2, sample_share=0.25) == pytest.approx((4 + 1 + 5) / 0.8)


def _regression_table(rows: int, columns: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, columns))
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(columns)]).assign(y=X[:, :5].sum(axis=1) + rng.normal(size=rows))


def _fold_seconds(frame: pd.DataFrame, settings) -> float:
    """How long one tuning fold of the default histogram boosting takes on this machine."""
    rows = int(0.64 * len(frame))  # a training fold of 5, after the 20 % holdout
    spec = get_spec("hist_gradient_boosting", Task.REGRESSION)
    return warm_fit_seconds(
        lambda: build_pipeline(Recipe(), FeaturePlan(), target="y", seed=settings.random_seed,
                               estimator=spec.build(None, task=Task.REGRESSION, seed=settings.random_seed)),
        frame.drop(columns="y").head(rows), frame["y"].head(rows))


@pytest.mark.parametrize("reuse", [False, True], ids=["cv-refitted", "cv-reused"])
def test_the_budget_covers_a_slow_winners_evaluation_and_refit(engine, settings, reuse: bool) -> None:
    # One slow family, so the winner is slow and its evaluation and refit (about eight of its
    # folds, three when tuning's CV is reused) is a large part of the budget: a fixed share kept
    # back for them ran over by ~20 %. A tuning seed other than the app's rules out the reuse.
    frame = _regression_table(6_000)
    # The budget is counted in this machine's folds: a fixed 12 s held about 17 here but under
    # 13 on the slower CI machine, too few for the first trial's 5 folds and the winner's 8 (the
    # only trial was stopped as unfinishable, and nothing finished). 25 folds did the same once
    # under `make test`, with the other worker's tests slowing the folds: 35 keep the winner's
    # evaluation and refit about a quarter of the budget.
    budget = max(12.0, 35 * _fold_seconds(frame, settings))
    config = TuningConfig(models=("hist_gradient_boosting",), budget_s=budget,
                          seed=settings.random_seed if reuse else settings.random_seed + 1)
    request = TrainRequest(model_name="slow", target="y", config=config)
    started = time.monotonic()
    outcome = train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), request=request,
                          engine=engine, settings=settings)
    elapsed = time.monotonic() - started
    assert outcome.tuning.stopped == "budget"
    assert elapsed <= 1.1 * budget, (elapsed, budget)


def test_the_winners_tuning_cross_validation_is_the_report_when_the_folds_match(engine, settings) -> None:
    frame = _regression_table(int(SMALL_TABLE_ROWS / 0.8) + 100, columns=6)  # large enough to keep 5 folds
    config = TuningConfig(models=("ridge", "knn"), search="random", budget_s=None, max_trials=4, seed=settings.random_seed)
    request = TrainRequest(model_name="reused", target="y", config=config)
    outcome = train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), request=request,
                          engine=engine, settings=settings)
    assert outcome.tuning.best_cv is not None and outcome.report.cv is outcome.tuning.best_cv
    # What the report would have computed: the same folds fitted again give the same numbers.
    best = outcome.tuning.best
    X, y = frame.drop(columns="y"), frame["y"]
    X_train, _, y_train, _ = holdout_split(X, y, task=Task.REGRESSION, scheme=outcome.report.scheme, share=0.2)
    fresh = cross_validate(
        lambda: build_pipeline(Recipe(), FeaturePlan(), target="y", seed=settings.random_seed,
                               estimator=get_spec(best.model, Task.REGRESSION).build(best.params, task=Task.REGRESSION,
                                                                                     seed=settings.random_seed)),
        X_train, y_train, task=Task.REGRESSION, scheme=outcome.report.scheme, metric="rmse",
    )
    assert fresh.fold_scores == outcome.report.cv.fold_scores
    np.testing.assert_array_equal(fresh.oof_pred, outcome.report.cv.oof_pred)


def test_a_small_tables_report_cross_validates_the_winner_again(engine, settings) -> None:
    config = TuningConfig(models=("ridge",), budget_s=None, max_trials=2, seed=settings.random_seed)
    request = TrainRequest(model_name="small", target="y", config=config)
    outcome = train_model(_regression_table(400, columns=6), dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(),
                          request=request, engine=engine, settings=settings)
    assert outcome.tuning.best_cv is None  # tuned with 10 folds, reported with 5
    assert len(outcome.report.cv.fold_scores["rmse"]) == outcome.report.scheme.n_folds == 5


def test_a_large_table_is_tuned_on_a_sample_and_the_model_learns_from_every_row(engine, settings) -> None:
    settings = settings.model_copy(update={"tuning_max_rows": 1_000})
    frame = _regression_table(2_500, columns=4)
    config = TuningConfig(models=("ridge",), budget_s=None, max_trials=2, seed=settings.random_seed)
    outcome = train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                          request=TrainRequest(model_name="large", target="y", config=config), settings=settings)
    report = outcome.report
    assert len(report.cv.oof_mask) == 1_000  # cross-validated on the sample
    assert json.loads(outcome.version.cv_json)["tuning_rows"] == 1_000
    assert "| Tuning sample | 1,000 training rows (a large table)" in registry.model_card(outcome.version)
    assert any(w.startswith("Tuned and cross-validated on a sample of 1,000 of the 2,000 training rows") and
               "learnt from all 2,500 rows" in w for w in outcome.warnings)

    def ridge():
        spec = get_spec("ridge", Task.REGRESSION)
        return build_pipeline(Recipe(), FeaturePlan(), target="y", seed=settings.random_seed,
                              estimator=spec.build(outcome.tuning.best.params, task=Task.REGRESSION, seed=settings.random_seed))

    X, y = frame.drop(columns="y"), frame["y"]
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.REGRESSION, scheme=report.scheme, share=0.2)
    rows = tuning_sample(X_train, y_train, task=Task.REGRESSION, scheme=report.scheme, max_rows=1_000)
    on_sample = ridge().fit(X_train.iloc[rows], y_train.iloc[rows])
    assert len(X_hold) == 500 and report.holdout["rmse"] == pytest.approx(  # all of the holdout, scored once
        float(np.sqrt(np.mean((on_sample.predict(X_hold) - y_hold) ** 2))))
    final = registry.load_pipeline(outcome.version, settings=settings)
    np.testing.assert_allclose(final.predict(X.head(50)), ridge().fit(X, y).predict(X.head(50)))  # all 2,500 rows


@pytest.mark.parametrize(("model", "warned"), [("knn", True), ("logistic_regression", False)])
def test_class_weights_a_winner_cannot_apply_are_warned_about(engine, settings, model: str, warned: bool) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "z": rng.normal(size=300)})
    frame["y"] = np.where(frame["x"] + rng.normal(scale=0.5, size=300) > 1.2, "rare", "common")
    config = TuningConfig(models=(model,), budget_s=None, max_trials=1, class_weight=True, seed=settings.random_seed)
    outcome = train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                          request=TrainRequest(model_name="weights", target="y", config=config), settings=settings)
    assert any("cannot weight classes" in w for w in outcome.warnings) is warned


@pytest.mark.parametrize("rows", [FEW_ROWS - 1, FEW_ROWS])
def test_a_table_of_few_rows_is_warned_about(engine, settings, rows: int) -> None:
    config = TuningConfig(models=("ridge",), budget_s=None, max_trials=1, seed=settings.random_seed)
    outcome = train_model(_regression_table(rows, columns=3), dataset_hash="0" * 64, recipe=Recipe(),
                          plan=FeaturePlan(), request=TrainRequest(model_name="few", target="y", config=config),
                          engine=engine, settings=settings)
    warned = [w for w in outcome.warnings if "to learn from" in w]
    assert bool(warned) is (rows < FEW_ROWS)
    assert not warned or warned[0].startswith(f"Only {rows} rows to learn from")


def test_a_classifier_records_each_class_s_scores_for_its_card(engine, settings) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=600), "z": rng.normal(size=600)})
    frame["y"] = np.select([frame["x"] < -0.5, frame["x"] > 0.8], ["low", "high"], "mid")
    config = TuningConfig(models=("logistic_regression",), budget_s=None, max_trials=1, seed=settings.random_seed)
    outcome = train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                          request=TrainRequest(model_name="bands", target="y", config=config), settings=settings)
    recorded = json.loads(outcome.version.metrics_json)["per_class"]
    assert sorted(r["class"] for r in recorded) == ["high", "low", "mid"]
    assert sum(r["rows"] for r in recorded) == outcome.report.cv.oof_mask.sum()
    # The macro recall of the metrics table is the mean of the classes' recalls.
    macro = next(m.mean for m in outcome.report.metrics if m.name == "recall")
    assert np.mean([r["recall"] for r in recorded]) == pytest.approx(macro, abs=0.02)
    assert "## Per class (out-of-fold)" in registry.model_card(outcome.version)
    regression = train_model(_regression_table(200, columns=3), dataset_hash="0" * 64, recipe=Recipe(),
                             plan=FeaturePlan(), engine=engine, settings=settings,
                             request=TrainRequest(model_name="line", target="y", config=dataclasses.replace(
                                 config, models=("ridge",))))
    assert "per_class" not in json.loads(regression.version.metrics_json)


@pytest.mark.parametrize(("task", "family", "asked", "expected"), [
    ("binary", "lightgbm", True, True),
    ("binary", "lightgbm", False, False),
    ("multiclass", "knn", True, False),  # asked for, but k-nearest neighbours cannot weight classes
    ("regression", "lightgbm", True, False),  # no classes to weight
])
def test_a_version_says_whether_it_learned_with_class_weights(task, family, asked, expected) -> None:
    from core.store.models import ModelVersion
    from core.training import class_weighted

    cv = CVScheme(kind="kfold").to_dict() | {"tuning": TuningConfig(class_weight=asked).to_dict()}
    version = ModelVersion(model_name="m", version=1, task=task, model_family=family, cv_json=json.dumps(cv))
    assert class_weighted(version) is expected
    assert CVScheme.from_dict(cv) == CVScheme(kind="kfold")
    before = ModelVersion(model_name="m", version=1, task=task, model_family=family, cv_json="{}")
    assert not class_weighted(before) and CVScheme.from_dict({}) is None  # registered before these were recorded


def test_a_long_tailed_target_can_be_learnt_as_its_log(engine, settings) -> None:
    from sklearn.compose import TransformedTargetRegressor

    from core.modeling.specs import exp_of_log_target, log_target_skew

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400)})
    frame["y"] = np.exp(3 + 1.5 * frame["x"] + 0.3 * rng.normal(size=400))  # multiplicative: linear in the log
    assert log_target_skew(frame["y"]) > 1 and log_target_skew(frame["x"]) is None
    assert log_target_skew(frame["y"] - 1) is None  # a value below 0: no log

    def train(log_target: bool):
        config = TuningConfig(models=("ridge",), budget_s=None, max_trials=1, seed=settings.random_seed,
                              log_target=log_target)
        return train_model(frame, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                           request=TrainRequest(model_name="amounts", target="y", config=config), settings=settings)

    plain, logged = train(False), train(True)
    model = registry.load_pipeline(logged.version, settings=settings).named_steps["model"]
    assert isinstance(model, TransformedTargetRegressor) and model.func is np.log1p
    assert json.loads(logged.version.cv_json)["tuning"]["log_target"] is True
    # Ridge on the log fits this target far better than on the raw amounts, in the target's own units.
    r2 = {name: next(m.mean for m in o.report.metrics if m.name == "r2") for name, o in [("plain", plain), ("log", logged)]}
    assert r2["log"] > r2["plain"] + 0.1, r2
    predictions = registry.load_pipeline(logged.version, settings=settings).predict(frame[["x", "z"]])
    assert predictions.min() > -1 and np.corrcoef(predictions, frame["y"])[0, 1] > 0.9
    assert "| Target | learnt as log(1 + target), predicted in the target's units |" in registry.model_card(
        logged.version).splitlines()
    assert np.isfinite(exp_of_log_target(np.array([1e4]))).all()  # a wild extrapolation stays a number

    below = frame.assign(y=frame["y"] - 2)
    config = TuningConfig(models=("ridge",), budget_s=None, max_trials=1, log_target=True)
    with pytest.raises(BadInput, match=r"needs values of 0 or more; 'y' has \d+ values below 0"):
        train_model(below, dataset_hash="0" * 64, recipe=Recipe(), plan=FeaturePlan(), engine=engine,
                    request=TrainRequest(model_name="below", target="y", config=config), settings=settings)
    with pytest.raises(BadInput, match="applies to a regression, not to binary"):
        TuningConfig(log_target=True).validate(Task.BINARY)
