"""The model spec contract, run against every (spec, task) pair, plus the registry around it."""
from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import joblib
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.samplers import TPESampler
from sklearn.base import BaseEstimator, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from core.config import SAMPLES_DIR
from core.data.profile import Task
from core.errors import BadInput
from core.modeling.metrics import score
from core.modeling.specs import SPECS, ModelSpec, baseline, family_title, get_spec, specs_for
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table
from core.prep.steps import Recipe

optuna.logging.set_verbosity(optuna.logging.WARNING)

PAIRS = [(spec, task) for spec in SPECS.values() for task in Task if task in spec.tasks]
IDS = [f"{spec.name}-{task.value}" for spec, task in PAIRS]

# Small models keep the suite fast; the contract does not depend on size.
FAST: dict[str, dict] = {
    "random_forest": {"n_estimators": 10},
    "extra_trees": {"n_estimators": 10},
    "hist_gradient_boosting": {"max_iter": 20},
    "lightgbm": {"n_estimators": 20},
    "mlp": {"max_iter": 50},
}


def toy_frame(task: Task, n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Mixed types: numeric with missing values, a categorical, and a target fit for ``task``."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    signal = x1 + 0.3 * x2 + (color == "red") + rng.normal(scale=0.5, size=n)
    if task is Task.REGRESSION:
        target: np.ndarray = signal * 10 + 100
    elif task is Task.BINARY:
        target = np.where(signal > np.median(signal), "yes", "no")
    else:
        target = np.array(["low", "mid", "high"])[np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))]
    x1[rng.random(n) < 0.15] = np.nan  # missing values the clean/features steps must handle
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "target": target})


def fit_pipeline(estimator: BaseEstimator, frame: pd.DataFrame) -> tuple[Pipeline, pd.DataFrame]:
    X, y = prepare_training_table(frame, Recipe(), target="target")
    model = build_pipeline(Recipe(), FeaturePlan(), target="target", estimator=estimator).fit(X, y)
    return model, X


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """HistGradientBoosting runs on every core through OpenMP; on a busy 2-core machine its
    threads spin waiting for each other (a 120-row fit measured 0.5 s alone, up to 58 s under
    load). Trials run in parallel should do the same: one OpenMP thread per fit."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def frames() -> dict[Task, pd.DataFrame]:
    return {task: toy_frame(task) for task in Task}


# the contract -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # FAST caps MLP epochs
@pytest.mark.parametrize(("spec", "task"), PAIRS, ids=IDS)
def test_fits_predicts_persists_and_is_deterministic(
    spec: ModelSpec, task: Task, frames: dict[Task, pd.DataFrame], tmp_path: Path
) -> None:
    frame = frames[task]
    model, X = fit_pipeline(spec.build(FAST.get(spec.name), task=task, seed=7), frame)
    pred = model.predict(X)
    assert len(pred) == len(X)
    if task is Task.REGRESSION:
        assert np.isfinite(pred.astype(float)).all()
    else:
        assert set(pred) <= set(frame["target"])
        proba = model.predict_proba(X)
        assert proba.shape == (len(X), frame["target"].nunique())
        assert np.allclose(proba.sum(axis=1), 1.0) and (proba >= 0).all()
        assert list(model.classes_) == sorted(frame["target"].unique())

    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(X), pred)
    if task is not Task.REGRESSION:
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))

    again, _ = fit_pipeline(spec.build(FAST.get(spec.name), task=task, seed=7), frame)
    np.testing.assert_array_equal(again.predict(X), pred)


@pytest.mark.parametrize(("spec", "task"), PAIRS, ids=IDS)
def test_suggest_builds_and_fits(spec: ModelSpec, task: Task, frames: dict[Task, pd.DataFrame]) -> None:
    study = optuna.create_study(sampler=TPESampler(seed=0))
    for _ in range(2):  # the first ask, and one after a told result
        trial = study.ask()
        params = spec.suggest(trial, task=task, n_rows=len(frames[task]))
        assert params and set(params) <= set(_inner(spec.build(None, task=task, seed=0)).get_params())
        # Params go through JSON on their way to the store and must still build.
        stored = json.loads(json.dumps(params))
        model, X = fit_pipeline(spec.build(stored, task=task, seed=0), frames[task])
        assert len(model.predict(X.head(5))) == 5
        study.tell(trial, 0.5)


def _inner(estimator: BaseEstimator) -> BaseEstimator:
    """The estimator proper, under the target scaler the MLP regressor is wrapped in."""
    return estimator.regressor if isinstance(estimator, TransformedTargetRegressor) else estimator


@pytest.mark.parametrize(("spec", "task"), PAIRS, ids=IDS)
def test_grid_points_build(spec: ModelSpec, task: Task) -> None:
    grid = spec.grid(task=task)
    assert grid
    points = [dict(zip(grid, values)) for values in product(*grid.values())]
    assert 1 <= len(points) <= 12
    for point in points:
        estimator = spec.build(point, task=task, seed=0)
        clone(estimator)  # a valid sklearn estimator: params are stored as given


@pytest.mark.parametrize(("spec", "task"), PAIRS, ids=IDS)
def test_portfolio_points_build_and_fit(spec: ModelSpec, task: Task, frames: dict[Task, pd.DataFrame]) -> None:
    points = spec.portfolio(task=task)
    assert len(points) == len({json.dumps(p, sort_keys=True) for p in points})  # no repeats
    assert spec.defaults(task=task) not in points  # the default trial already ran that one
    for point in points:
        model, X = fit_pipeline(spec.build(json.loads(json.dumps(point)), task=task, seed=0), frames[task])
        assert len(model.predict(X.head(5))) == 5


def test_the_boosting_families_have_a_portfolio() -> None:
    assert get_spec("lightgbm", Task.BINARY).portfolio(task=Task.BINARY)
    assert get_spec("hist_gradient_boosting", Task.REGRESSION).portfolio(task=Task.REGRESSION)


@pytest.mark.parametrize(("spec", "task"), PAIRS, ids=IDS)
def test_defaults_are_used_and_seed_is_fixed(spec: ModelSpec, task: Task) -> None:
    built = _inner(spec.build(None, task=task, seed=11)).get_params()
    assert spec.defaults(task=task).items() <= built.items()
    if "random_state" in built:
        assert built["random_state"] == 11
        # a caller's params never override the seed
        assert _inner(spec.build({"random_state": 99}, task=task, seed=11)).get_params()["random_state"] == 11


# search bounds ------------------------------------------------------------------------------


def test_knn_search_is_bounded_by_rows() -> None:
    spec = SPECS["knn"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ks = [spec.suggest(study.ask(), task=Task.BINARY, n_rows=50)["n_neighbors"] for _ in range(30)]
    assert max(ks) <= 10 and min(ks) >= 1
    assert max(spec.grid(task=Task.BINARY, n_rows=60)["n_neighbors"]) <= 12
    assert spec.grid(task=Task.BINARY, n_rows=3)["n_neighbors"] == [1]


def test_suggest_on_tiny_data() -> None:
    """Bounds that shrink with n_rows never cross (low > high would make Optuna raise)."""
    for spec, task in PAIRS:
        study = optuna.create_study(sampler=TPESampler(seed=0))  # one per family, as tuning prefixes names
        assert spec.suggest(study.ask(), task=task, n_rows=1)


# registry -----------------------------------------------------------------------------------


def test_families_per_task() -> None:
    classification = ["logistic_regression", "random_forest", "extra_trees", "hist_gradient_boosting",
                      "lightgbm", "knn", "mlp"]
    regression = ["ridge", "lasso", "elastic_net", "random_forest", "extra_trees", "hist_gradient_boosting",
                  "lightgbm", "knn", "mlp"]
    assert [s.name for s in specs_for(Task.BINARY)] == classification
    assert [s.name for s in specs_for(Task.MULTICLASS)] == classification
    assert [s.name for s in specs_for(Task.REGRESSION)] == regression
    assert type(get_spec("random_forest", Task.BINARY).build(None, task=Task.BINARY, seed=0)).__name__ == (
        "RandomForestClassifier"
    )
    assert type(get_spec("random_forest", Task.REGRESSION).build(None, task="regression", seed=0)).__name__ == (
        "RandomForestRegressor"
    )


def test_family_titles() -> None:
    assert family_title("random_forest") == "Random forest"
    assert family_title("knn") == "k-nearest neighbours"
    assert family_title("dummy") == "dummy"  # no family's name: as it is
    assert len({family_title(name) for name in SPECS}) == len(SPECS)  # no two families read alike


def test_get_spec_errors() -> None:
    assert get_spec("lightgbm", Task.BINARY).title == "LightGBM"
    with pytest.raises(BadInput, match=r"Unknown model 'xgboost'; use one of: ridge, lasso"):
        get_spec("xgboost", Task.REGRESSION)
    with pytest.raises(BadInput, match=r"ridge does not apply to binary; use one of: logistic_regression"):
        get_spec("ridge", Task.BINARY)
    with pytest.raises(BadInput, match=r"logistic_regression does not apply to regression"):
        SPECS["logistic_regression"].build(None, task=Task.REGRESSION, seed=0)
    with pytest.raises(BadInput, match=r"LightGBM has no parameter\(s\) n_trees"):
        SPECS["lightgbm"].build({"n_trees": 5}, task=Task.BINARY, seed=0)


def test_class_weight() -> None:
    supported = {s.name for s in SPECS.values() if s.supports_class_weight}
    assert supported == {"logistic_regression", "random_forest", "extra_trees", "hist_gradient_boosting",
                         "lightgbm"}
    for spec in specs_for(Task.MULTICLASS):
        if spec.supports_class_weight:
            built = spec.build(None, task=Task.MULTICLASS, seed=0, class_weight="balanced")
            assert built.get_params()["class_weight"] == "balanced"
            assert spec.build(None, task=Task.MULTICLASS, seed=0).get_params()["class_weight"] is None
        else:
            with pytest.raises(BadInput, match="does not support class weights"):
                spec.build(None, task=Task.MULTICLASS, seed=0, class_weight="balanced")
    with pytest.raises(BadInput, match="does not support class weights for regression"):
        SPECS["lightgbm"].build(None, task=Task.REGRESSION, seed=0, class_weight="balanced")
    with pytest.raises(BadInput, match="'balanced' or None"):
        SPECS["lightgbm"].build(None, task=Task.BINARY, seed=0, class_weight="heavy")


def test_class_weight_changes_the_model() -> None:
    """On a 10 % minority class, balanced weights raise its recall."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    frame = pd.DataFrame({"x": x, "target": np.where(x + rng.normal(scale=1.0, size=400) > 1.8, "rare", "common")})
    spec = SPECS["logistic_regression"]
    recalls = []
    for weight in (None, "balanced"):
        model, X = fit_pipeline(spec.build(None, task=Task.BINARY, seed=0, class_weight=weight), frame)
        recalls.append(score("recall", frame["target"], model.predict(X), None, model.classes_))
    assert model.classes_[1] == "rare"
    assert recalls[1] > recalls[0] + 0.2


def test_baseline() -> None:
    frame = toy_frame(Task.MULTICLASS)
    dummy = baseline(Task.MULTICLASS, seed=3)
    assert isinstance(dummy, DummyClassifier) and dummy.strategy == "prior"
    model, X = fit_pipeline(dummy, frame)
    priors = frame["target"].value_counts(normalize=True).sort_index().to_numpy()
    np.testing.assert_allclose(model.predict_proba(X.head(2)), [priors, priors])
    reg = baseline(Task.REGRESSION, seed=3)
    assert isinstance(reg, DummyRegressor) and reg.strategy == "mean"
    assert baseline(Task.BINARY, seed=0).strategy == "prior"


# real data ----------------------------------------------------------------------------------


def _holdout(name: str, target: str, stratify: bool):
    frame = pd.read_csv(SAMPLES_DIR / name)
    X, y = prepare_training_table(frame, Recipe(), target=target)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y if stratify else None)


def _holdout_score(estimator: BaseEstimator, split, target: str, metric: str) -> float:
    X_train, X_test, y_train, y_test = split
    model = build_pipeline(Recipe(), FeaturePlan(), target=target, estimator=estimator).fit(X_train, y_train)
    classes = getattr(model, "classes_", ())
    proba = model.predict_proba(X_test) if len(classes) else None
    return score(metric, y_test, model.predict(X_test), proba, classes)


def test_real_data_beats_baseline() -> None:
    penguins = _holdout("penguins.csv", "species", stratify=True)
    task = Task.MULTICLASS
    floor = _holdout_score(baseline(task, seed=0), penguins, "species", "balanced_accuracy")
    floor_loss = _holdout_score(baseline(task, seed=0), penguins, "species", "log_loss")
    for name in ("lightgbm", "logistic_regression"):
        estimator = SPECS[name].build(None, task=task, seed=0)
        assert _holdout_score(estimator, penguins, "species", "balanced_accuracy") > max(0.9, floor + 0.4)
        assert _holdout_score(estimator, penguins, "species", "log_loss") < floor_loss / 2

    concrete = _holdout("concrete.csv", "compressive_strength", stratify=False)
    task = Task.REGRESSION
    assert _holdout_score(baseline(task, seed=0), concrete, "compressive_strength", "r2") < 0.01
    r2 = {name: _holdout_score(SPECS[name].build(None, task=task, seed=0), concrete, "compressive_strength", "r2")
          for name in ("lightgbm", "ridge")}
    assert r2["ridge"] > 0.5 and r2["lightgbm"] > 0.85
