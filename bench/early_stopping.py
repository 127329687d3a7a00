"""Would early stopping make LightGBM's search find better models per second? (checked, not adopted)

One random search over ShipML's LightGBM space (``core.modeling.specs``), run twice on the same
sampled points: once as the search fits them, once with ``n_estimators`` raised to 3,000 and
stopped after 50 rounds without gain on 10 % of each fold's training rows (the way AutoGluon sets a
boosting model's rounds). Each point is cross-validated with 5 folds on the 80 % training split of
``bench.automl`` (same seed); the best point is refit on all of it and scored on the 20 % test
split. Prints, for each variant, the best cross-validated score, its test score, the wall time and
the best score so far every fifth trial, one thread::

    OMP_NUM_THREADS=1 python -m bench.early_stopping --datasets concrete,mlc_churn,deliveries --trials 30
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import optuna
import pandas as pd
from lightgbm import LGBMClassifier, LGBMRegressor, early_stopping
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from bench.automl import DATASETS, SAMPLES, _metric
from core.data.profile import Task
from core.modeling.specs import _lightgbm_space


def _fit(model_class, params: dict, X, y, *, stop_early: bool, stratify: bool):
    """The model fitted as the search fits it, or with its rounds set by early stopping."""
    if not stop_early:
        return model_class(**params, random_state=0, n_jobs=1, verbose=-1).fit(X, y)
    X_fit, X_stop, y_fit, y_stop = train_test_split(X, y, test_size=0.1, random_state=0,
                                                    stratify=y if stratify else None)
    return model_class(**{**params, "n_estimators": 3_000}, random_state=0, n_jobs=1, verbose=-1).fit(
        X_fit, y_fit, eval_set=[(X_stop, y_stop)], callbacks=[early_stopping(50, verbose=False)])


def run(name: str, seed: int, trials: int) -> None:
    dataset = DATASETS[name]
    frame = pd.read_csv(SAMPLES / dataset.file).dropna(subset=[dataset.target])
    y = frame.pop(dataset.target)
    X = frame.astype({c: "category" for c in frame.columns if frame[c].dtype == object})
    regression = dataset.task == "regression"
    model_class = LGBMRegressor if regression else LGBMClassifier
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=seed,
                                                        stratify=None if regression else y)
    folds = list((KFold if regression else StratifiedKFold)(5, shuffle=True, random_state=42).split(X_train, y_train))

    for stop_early in (False, True):
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
        start, best, trace = time.perf_counter(), (-np.inf, None), []
        for i in range(trials):
            trial = study.ask()
            params = _lightgbm_space(trial, Task(dataset.task), len(X_train))
            cv = float(np.mean([
                _score(dataset.task, _fit(model_class, params, X_train.iloc[fit], y_train.iloc[fit],
                                          stop_early=stop_early, stratify=not regression),
                       X_train.iloc[valid], y_train.iloc[valid])
                for fit, valid in folds]))
            study.tell(trial, cv)
            best = max(best, (cv, params), key=lambda b: b[0])
            if i % 5 == 4:
                trace.append(f"{time.perf_counter() - start:.0f}s:{best[0]:.4f}")
        seconds = time.perf_counter() - start
        final = _fit(model_class, best[1], X_train, y_train, stop_early=stop_early, stratify=not regression)
        test = _score(dataset.task, final, X_test, y_test)
        print(f"{name} seed {seed} {'early stopping' if stop_early else 'as searched'}: best CV {best[0]:.4f}, "
              f"test {test:.4f}, {seconds:.0f} s; best so far {' '.join(trace)}", flush=True)


def _score(task: str, model, X, y) -> float:
    """The benchmark's metric; for ROC AUC the positive class is the second of the sorted classes."""
    if task == "binary":
        return _metric(task, y == model.classes_[1], model.predict_proba(X)[:, 1])
    return _metric(task, y, model.predict(X))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="concrete,mlc_churn,deliveries")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in args.datasets.split(","):
        run(name, args.seed, args.trials)


if __name__ == "__main__":
    main()
