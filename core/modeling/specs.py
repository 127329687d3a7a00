"""Model families: one spec each, with its estimator factory, defaults and search spaces.

A spec builds the ``model`` step of the Pipeline (see ``core.prep.pipeline``). Rules every spec
keeps, checked by ``tests/core/test_specs.py`` against every (spec, task) pair:

* ``build`` is deterministic for a given seed (``random_state`` everywhere; LightGBM in its
  deterministic single-threaded mode) and accepts exactly what ``suggest`` and ``grid`` return.
* Parameters are plain JSON-friendly values (tuples come back from JSON as lists, which the
  estimators accept), so a trial's params can be stored and rebuilt. Store the dict ``suggest``
  returns, not ``trial.params``: the MLP searches ``n_layers``/``width`` and returns
  ``hidden_layer_sizes``.
* Sizes stay sane for a small machine: at most 300 trees per forest or 2,000 boosting rounds
  (the tuner's time limits stop a trial that would not fit), ``n_jobs=1`` by default (callers
  may pass ``n_jobs`` in params) so parallel trials do not oversubscribe the cores.
* ``portfolio`` lists a few configurations known to do well on many tables (small trees and
  many rounds, large trees with a small learning rate, strong column subsampling), tried right
  after the defaults: a short budget then reaches corners a sampler finds only by luck.

The features reaching the model are already imputed, encoded and (by default) standardised by
``FeatureBuilder``, so linear models, KNN and the MLP need no scaling of their own. Above
``FeatureBuilder.max_dense_features`` columns it outputs a sparse matrix, which every family here
accepts except ``hist_gradient_boosting``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.base import BaseEstimator
from sklearn.compose import TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler

from core.data.profile import Task
from core.errors import BadInput
from core.modeling.neural import LossStoppedMLPClassifier

if TYPE_CHECKING:
    import optuna

Params = dict[str, Any]
_LARGEST_LOG = float(np.log(np.finfo(np.float64).max)) - 1  # exp() of more overflows to inf


def learn_log_target(estimator: BaseEstimator) -> TransformedTargetRegressor:
    """``estimator`` learning ``log(1 + y)`` of a regression target and predicting in the
    target's own units: for a skewed target of amounts or durations, whose large values would
    otherwise dominate squared errors. Needs every target value at 0 or more."""
    return TransformedTargetRegressor(regressor=estimator, func=np.log1p, inverse_func=exp_of_log_target,
                                      check_inverse=False)


def log_target_skew(y) -> float | None:
    """The skewness of a regression target when learning its log may help (over 1, as a long
    tail of large amounts or durations has, and no value below 0), else None."""
    values = y.dropna()
    if values.empty or not np.issubdtype(values.dtype, np.number) or values.min() < 0:
        return None
    skew = float(values.skew())
    return skew if skew > 1 else None


def exp_of_log_target(values: np.ndarray) -> np.ndarray:
    """The inverse of ``log1p``, kept finite: a linear model can extrapolate a log far past any
    training value, and an infinite prediction breaks a JSON response."""
    return np.expm1(np.minimum(values, _LARGEST_LOG))


_CLASSIFICATION = frozenset({Task.BINARY, Task.MULTICLASS})
_REGRESSION = frozenset({Task.REGRESSION})
_ALL = _CLASSIFICATION | _REGRESSION


@dataclass(frozen=True)
class ModelSpec:
    """One model family for some tasks: how to build it and where to search its parameters.

    Attributes:
        name: The identifier used in configs and results, e.g. ``"lightgbm"``.
        title: The text shown to a user, e.g. ``"LightGBM"``.
        tasks: The tasks the family applies to.
        supports_class_weight: Whether ``build`` accepts ``class_weight="balanced"``.
        kind: The kind of model: families of one kind tend to find the same signal.
    """

    name: str
    title: str
    tasks: frozenset[Task]
    supports_class_weight: bool
    kind: Literal["linear", "forest", "boosting", "neighbours", "neural"]
    # How the family is made; private to this module (use the methods).
    classifier: type[BaseEstimator] | None = field(default=None, repr=False)
    regressor: type[BaseEstimator] | None = field(default=None, repr=False)
    fixed: Callable[[int], Params] = field(default=lambda seed: {}, repr=False)  # never searched
    default_params: Callable[[Task], Params] = field(default=lambda task: {}, repr=False)
    space: Callable[[optuna.Trial, Task, int], Params] = field(default=lambda t, task, n: {}, repr=False)
    grid_points: Callable[[Task, int | None], dict[str, list[Any]]] = field(
        default=lambda task, n_rows: {}, repr=False
    )
    portfolio_points: tuple[Params, ...] = field(default=(), repr=False)

    def build(
        self,
        params: Mapping[str, Any] | None,
        *,
        task: Task,
        seed: int,
        class_weight: str | None = None,
    ) -> BaseEstimator:
        """An unfitted estimator with ``params`` over the defaults.

        Args:
            params: Parameters from ``suggest``, ``grid`` or a user; ``None`` means the defaults.
                Seeds and determinism switches cannot be overridden.
            task: The learning task; picks the classifier or the regressor.
            seed: The random seed.
            class_weight: ``"balanced"`` to weight classes by inverse frequency, or ``None``.

        Returns:
            The estimator, ready to be the ``model`` step of the Pipeline.

        Raises:
            BadInput: The family does not fit the task, a parameter name is unknown, or class
                weights are asked for where they are not supported.
        """
        task = self._check_task(task)
        cls = self.regressor if task is Task.REGRESSION else self.classifier
        assert cls is not None  # guaranteed by _check_task
        chosen = {**self.default_params(task), **(params or {})}
        # LightGBM takes any **kwargs and only warns at fit; catch typos here, by sklearn's names.
        unknown = sorted(set(chosen) - set(cls().get_params()))
        if unknown:
            raise BadInput(f"{self.title} has no parameter(s) {', '.join(unknown)}.")
        if class_weight is not None:
            if class_weight != "balanced":
                raise BadInput(f"class_weight must be 'balanced' or None, not {class_weight!r}.")
            if task is Task.REGRESSION or not self.supports_class_weight:
                raise BadInput(f"{self.title} does not support class weights for {task.value}.")
            chosen["class_weight"] = class_weight
        estimator = cls(**{**chosen, **self.fixed(seed)})  # seeds and determinism always win
        if self.name == "mlp" and task is Task.REGRESSION:
            # Gradient descent on a raw target (house prices in the 1e5s) stalls; scale it.
            return TransformedTargetRegressor(regressor=estimator, transformer=StandardScaler())
        return estimator

    def suggest(self, trial: optuna.Trial, *, task: Task, n_rows: int) -> Params:
        """Sample parameters for one Bayesian or random search trial.

        Args:
            trial: The Optuna trial to sample from.
            task: The learning task.
            n_rows: Training rows, bounding size parameters (neighbours, leaf sizes).

        Returns:
            Parameters ``build`` accepts (not always ``trial.params``; store these).
        """
        return self.space(trial, self._check_task(task), max(int(n_rows), 1))

    def grid(self, *, task: Task, n_rows: int | None = None) -> dict[str, list[Any]]:
        """A small grid (at most 12 points) for grid search.

        Args:
            task: The learning task.
            n_rows: Training rows, if known; drops points too large for the data (KNN).

        Returns:
            Parameter name to the values to try; every combination builds.
        """
        return self.grid_points(self._check_task(task), n_rows)

    def portfolio(self, *, task: Task) -> tuple[Params, ...]:
        """Known-good configurations to try after the defaults, before the sampler takes over.

        Args:
            task: The learning task.

        Returns:
            Parameter dicts ``build`` accepts, in the order to try them (often empty).
        """
        self._check_task(task)
        return tuple(dict(p) for p in self.portfolio_points)

    def defaults(self, *, task: Task) -> Params:
        """The parameters ``build(None, ...)`` uses, besides seeds and determinism switches.

        Args:
            task: The learning task.

        Returns:
            Parameter name to value.
        """
        return self.default_params(self._check_task(task))

    def _check_task(self, task: Task) -> Task:
        task = Task(task)
        if task not in self.tasks:
            names = ", ".join(s.name for s in specs_for(task))
            raise BadInput(f"{self.name} does not apply to {task.value}; use one of: {names}.")
        return task


# families ------------------------------------------------------------------------------------
# Size bounds depend on n_rows so a search never proposes, say, 100 neighbours for 200 rows.


def _upper(n_rows: int, share: float, cap: int, floor: int) -> int:
    """``n_rows * share`` kept within ``[floor, cap]``."""
    return max(floor, min(cap, int(n_rows * share)))


def _logistic_space(trial: optuna.Trial, task: Task, n_rows: int) -> Params:
    return {"C": trial.suggest_float("C", 1e-4, 1e3, log=True)}


def _alpha_space(high: float, *, l1_ratio: bool) -> Callable[[optuna.Trial, Task, int], Params]:
    def space(trial: optuna.Trial, task: Task, n_rows: int) -> Params:
        params: Params = {"alpha": trial.suggest_float("alpha", 1e-4, high, log=True)}
        if l1_ratio:
            params["l1_ratio"] = trial.suggest_float("l1_ratio", 0.05, 0.95)
        return params

    return space


def _forest_defaults(task: Task) -> Params:
    # sklearn's own max_features defaults: sqrt for classification, all features for regression.
    return {"n_estimators": 200, "max_features": "sqrt" if task is not Task.REGRESSION else 1.0,
            "min_samples_leaf": 1, "n_jobs": 1}


def _forest_space(trial: optuna.Trial, task: Task, n_rows: int) -> Params:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 300, step=50),
        "max_depth": trial.suggest_int("max_depth", 2, 32, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, _upper(n_rows, 0.05, 50, 1), log=True),
        "max_features": trial.suggest_float("max_features", 0.1, 1.0),
    }


def _forest_grid(task: Task, n_rows: int | None) -> dict[str, list[Any]]:
    return {"max_depth": [None, 10], "min_samples_leaf": [1, 5], "max_features": ["sqrt", 0.5, 1.0]}


def _hgb_space(trial: optuna.Trial, task: Task, n_rows: int) -> Params:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "max_iter": trial.suggest_int("max_iter", 50, 2_000, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 256, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, _upper(n_rows, 0.1, 100, 2), log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
        "max_features": trial.suggest_float("max_features", 0.5, 1.0),
    }


def _lightgbm_fixed(seed: int) -> Params:
    # deterministic=True needs a forced histogram layout; row-wise suits few threads.
    return {"random_state": seed, "deterministic": True, "force_row_wise": True, "verbose": -1}


def _lightgbm_space(trial: optuna.Trial, task: Task, n_rows: int) -> Params:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 2_000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 256, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 2, _upper(n_rows, 0.1, 100, 2), log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "subsample_freq": 1,  # LightGBM ignores subsample unless bagging runs every k rounds
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-8, 10.0, log=True),
    }


# Widely used starting points, of the kind AutoGluon's and FLAML's portfolios hold: many small
# trees with small leaves (often best on regression tables and noisy binary ones), the same
# smaller still with row and column subsampling, and a middle road of mid-sized leaves and a
# small learning rate. Chosen by cross-validation with bench/portfolio.py on the benchmark's four
# larger tables and two it does not run (taxi, default), two splits each (bench/RESULTS.md):
# a large-tree config (127 leaves) scored below its replacement on 7 of 8 for LightGBM and 6 of 6
# for histogram boosting at 1.25-3.5x the cost; that replacement (15 leaves, subsampled) in
# turn scored below LightGBM's 5-leaf config on 11 of 12 at 0.6-0.8x the cost. First, a tiny and
# heavily regularised model for weak signals (4 leaves of at least 100 rows, 200 rounds): on taxi,
# default and lending_club, lopsided binary tables where the others overfit, it scored 0.013-0.038
# ROC AUC above the best of them cross-validated on all 8 splits; elsewhere it trails, at 0.2-1 s
# for the whole cross-validation (session 20, bench/RESULTS.md). Histogram boosting's tiny point
# did the same on 9 of 9 weak-signal splits (+0.013 to +0.044), at 0.5-2 s.
_LIGHTGBM_PORTFOLIO: tuple[Params, ...] = (
    {"n_estimators": 200, "learning_rate": 0.03, "num_leaves": 4, "min_child_samples": 100,
     "subsample": 0.7, "subsample_freq": 1, "colsample_bytree": 0.8},
    {"n_estimators": 1_000, "learning_rate": 0.05, "num_leaves": 8, "min_child_samples": 5,
     "colsample_bytree": 0.6},
    {"n_estimators": 2_000, "learning_rate": 0.04, "num_leaves": 5, "min_child_samples": 10,
     "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8},
    {"n_estimators": 1_000, "learning_rate": 0.02, "num_leaves": 31, "min_child_samples": 20,
     "colsample_bytree": 0.7, "subsample": 0.8, "subsample_freq": 1},
)
_HGB_PORTFOLIO: tuple[Params, ...] = (
    {"learning_rate": 0.03, "max_iter": 200, "max_leaf_nodes": 4, "min_samples_leaf": 100, "max_features": 0.8},
    {"learning_rate": 0.05, "max_iter": 1_000, "max_leaf_nodes": 8, "min_samples_leaf": 5, "max_features": 0.6},
    {"learning_rate": 0.04, "max_iter": 1_000, "max_leaf_nodes": 15, "min_samples_leaf": 10, "max_features": 0.7,
     "l2_regularization": 1.0},
)


def _knn_space(trial: optuna.Trial, task: Task, n_rows: int) -> Params:
    return {
        "n_neighbors": trial.suggest_int("n_neighbors", 1, _upper(n_rows, 0.2, 100, 1), log=True),
        "weights": trial.suggest_categorical("weights", ["uniform", "distance"]),
        "p": trial.suggest_categorical("p", [1, 2]),
    }


def _knn_grid(task: Task, n_rows: int | None) -> dict[str, list[Any]]:
    neighbours = [k for k in (5, 10, 20, 40) if n_rows is None or k <= max(1, n_rows // 5)] or [1]
    return {"n_neighbors": neighbours, "weights": ["uniform", "distance"]}


def _mlp_space(trial: optuna.Trial, task: Task, n_rows: int) -> Params:
    # Optuna categoricals cannot hold tuples: search depth and width, return the layer tuple.
    layers = trial.suggest_int("n_layers", 1, 2)
    width = trial.suggest_int("width", 16, 256, log=True)
    return {
        "hidden_layer_sizes": (width,) * layers,
        "alpha": trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
        "learning_rate_init": trial.suggest_float("learning_rate_init", 1e-4, 1e-2, log=True),
    }


def _constant(params: Params) -> Callable[[Task], Params]:
    return lambda task: dict(params)


def _grid(points: dict[str, list[Any]]) -> Callable[[Task, int | None], dict[str, list[Any]]]:
    return lambda task, n_rows: {k: list(v) for k, v in points.items()}


def _seeded(seed: int) -> Params:
    return {"random_state": seed}


_SPECS = (
    ModelSpec(
        name="logistic_regression", title="Logistic regression", tasks=_CLASSIFICATION,
        supports_class_weight=True, kind="linear", classifier=LogisticRegression, fixed=_seeded,
        default_params=_constant({"C": 1.0, "max_iter": 2_000}), space=_logistic_space,
        grid_points=_grid({"C": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]}),
    ),
    ModelSpec(
        name="ridge", title="Ridge regression", tasks=_REGRESSION, supports_class_weight=False, kind="linear",
        regressor=Ridge, fixed=_seeded, default_params=_constant({"alpha": 1.0}),
        space=_alpha_space(1e3, l1_ratio=False),
        grid_points=_grid({"alpha": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]}),
    ),
    ModelSpec(
        name="lasso", title="Lasso regression", tasks=_REGRESSION, supports_class_weight=False, kind="linear",
        regressor=Lasso, fixed=_seeded, default_params=_constant({"alpha": 0.1, "max_iter": 5_000}),
        space=_alpha_space(10.0, l1_ratio=False),
        grid_points=_grid({"alpha": [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]}),
    ),
    ModelSpec(
        name="elastic_net", title="Elastic net", tasks=_REGRESSION, supports_class_weight=False, kind="linear",
        regressor=ElasticNet, fixed=_seeded,
        default_params=_constant({"alpha": 0.1, "l1_ratio": 0.5, "max_iter": 5_000}),
        space=_alpha_space(10.0, l1_ratio=True),
        grid_points=_grid({"alpha": [0.001, 0.01, 0.1, 1.0], "l1_ratio": [0.2, 0.5, 0.8]}),
    ),
    ModelSpec(
        name="random_forest", title="Random forest", tasks=_ALL, supports_class_weight=True, kind="forest",
        classifier=RandomForestClassifier, regressor=RandomForestRegressor, fixed=_seeded,
        default_params=_forest_defaults, space=_forest_space, grid_points=_forest_grid,
    ),
    ModelSpec(
        name="extra_trees", title="Extra trees", tasks=_ALL, supports_class_weight=True, kind="forest",
        classifier=ExtraTreesClassifier, regressor=ExtraTreesRegressor, fixed=_seeded,
        default_params=_forest_defaults, space=_forest_space, grid_points=_forest_grid,
    ),
    ModelSpec(
        name="hist_gradient_boosting", title="Histogram gradient boosting", tasks=_ALL,
        supports_class_weight=True, kind="boosting", classifier=HistGradientBoostingClassifier,
        regressor=HistGradientBoostingRegressor, fixed=_seeded,
        default_params=_constant({"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31,
                                  "min_samples_leaf": 20}),
        space=_hgb_space, portfolio_points=_HGB_PORTFOLIO,
        grid_points=_grid({"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15, 31, 63],
                           "min_samples_leaf": [10, 20]}),
    ),
    ModelSpec(
        name="lightgbm", title="LightGBM", tasks=_ALL, supports_class_weight=True, kind="boosting",
        classifier=LGBMClassifier, regressor=LGBMRegressor, fixed=_lightgbm_fixed,
        default_params=_constant({"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31,
                                  "min_child_samples": 20, "n_jobs": 1}),
        space=_lightgbm_space, portfolio_points=_LIGHTGBM_PORTFOLIO,
        grid_points=_grid({"n_estimators": [100, 300], "learning_rate": [0.05, 0.1],
                           "num_leaves": [15, 31, 63]}),
    ),
    ModelSpec(
        name="knn", title="k-nearest neighbours", tasks=_ALL, supports_class_weight=False, kind="neighbours",
        classifier=KNeighborsClassifier, regressor=KNeighborsRegressor,
        default_params=_constant({"n_neighbors": 10, "weights": "distance", "n_jobs": 1}),
        space=_knn_space, grid_points=_knn_grid,
    ),
    ModelSpec(
        name="mlp", title="Neural network (MLP)", tasks=_ALL, supports_class_weight=False, kind="neural",
        classifier=LossStoppedMLPClassifier, regressor=MLPRegressor,
        # Early stopping holds out 10 % of the training rows, split with the same seed; the classifier
        # stops on their log loss (core.modeling.neural), the regressor on their R².
        fixed=lambda seed: {"random_state": seed, "early_stopping": True},
        default_params=_constant({"hidden_layer_sizes": (64,), "alpha": 1e-4,
                                  "learning_rate_init": 1e-3, "max_iter": 300}),
        space=_mlp_space,
        grid_points=_grid({"hidden_layer_sizes": [(64,), (128,), (64, 64)], "alpha": [1e-4, 1e-2],
                           "learning_rate_init": [1e-3, 1e-2]}),
    ),
)

SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def specs_for(task: Task) -> tuple[ModelSpec, ...]:
    """The model families that apply to ``task``, in display order.

    Args:
        task: The learning task.

    Returns:
        The specs.
    """
    return tuple(spec for spec in SPECS.values() if Task(task) in spec.tasks)


def family_title(name: str) -> str:
    """A family's name as people read it: "Random forest" for ``random_forest``. A name that is
    no family's (an old version's, say) is given back as it is."""
    spec = SPECS.get(name)
    return spec.title if spec is not None else name


def get_spec(name: str, task: Task) -> ModelSpec:
    """The spec called ``name``, checked against ``task``.

    Args:
        name: A family name from :data:`SPECS`.
        task: The learning task it will be trained for.

    Returns:
        The spec.

    Raises:
        BadInput: The name is unknown, or the family does not fit the task.
    """
    spec = SPECS.get(name)
    if spec is None:
        names = ", ".join(s.name for s in specs_for(task))
        raise BadInput(f"Unknown model {name!r}; use one of: {names}.")
    spec._check_task(task)
    return spec


def baseline(task: Task, *, seed: int) -> BaseEstimator:
    """The model every candidate must beat: class priors, or the mean target.

    Args:
        task: The learning task.
        seed: The random seed (unused by these strategies, kept for a uniform call).

    Returns:
        ``DummyClassifier(strategy="prior")`` or ``DummyRegressor(strategy="mean")``.
    """
    if Task(task) is Task.REGRESSION:
        return DummyRegressor(strategy="mean")
    return DummyClassifier(strategy="prior", random_state=seed)
