"""Tuning across model families: config checks, the three searches, budget, cancel, pruning, failures."""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import socket
import threading
import time
from functools import cache

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier

from core.config import SAMPLES_DIR
from core.data.profile import Task
from core.errors import BadInput
from core.modeling import tuning
from core.modeling.evaluation import cross_validate
from core.modeling.metrics import signed
from core.modeling.specs import baseline, get_spec
from core.modeling.splits import CVScheme
from core.modeling.tuning import TuningConfig, TuningResult, tune
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table
from core.prep.steps import Recipe
from tests.core.timing import warm_fit_seconds

optuna.logging.set_verbosity(optuna.logging.WARNING)

PENGUINS = ("penguins.csv", "species", Task.MULTICLASS)
CONCRETE = ("concrete.csv", "compressive_strength", Task.REGRESSION)


@cache
def _table(name: str, target: str) -> tuple[pd.DataFrame, pd.Series]:
    return prepare_training_table(pd.read_csv(SAMPLES_DIR / name), Recipe(), target=target)


def _scheme(task: Task, n_folds: int = 3) -> CVScheme:
    return CVScheme(kind="kfold" if task is Task.REGRESSION else "stratified", n_folds=n_folds, seed=0)


def _tune(data: tuple[str, str, Task], n_folds: int = 3, **kwargs) -> TuningResult:
    name, target, task = data
    X, y = _table(name, target)
    options = {k: kwargs.pop(k) for k in ("on_trial", "should_stop", "finish_folds_reused") if k in kwargs}
    return tune(X, y, task=task, recipe=Recipe(), plan=FeaturePlan(), target=target,
                scheme=_scheme(task, n_folds), config=TuningConfig(**kwargs), **options)


def _baseline_score(data: tuple[str, str, Task], metric: str) -> float:
    name, target, task = data
    X, y = _table(name, target)
    cv = cross_validate(lambda: baseline(task, seed=0), X, y, task=task, scheme=_scheme(task), metric=metric)
    return float(pd.Series(cv.fold_scores[metric]).mean())


# --- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TuningConfig(budget_s=0), "budget must be positive"),
        (TuningConfig(budget_s=-5), "budget must be positive"),
        (TuningConfig(budget_s=None, max_trials=-1), "trials must be positive"),
        (TuningConfig(max_trials=0), "trials must be positive"),
        (TuningConfig(budget_s=None, max_trials=None), "budget, a trial count"),
        (TuningConfig(per_model_s=0), "time per model"),
        (TuningConfig(models=("no_such_model",)), "Unknown model"),
        (TuningConfig(models=("ridge",)), "does not apply to multiclass"),
        (TuningConfig(metric="rmse"), "does not apply to multiclass"),
        (TuningConfig(metric="nope"), "Unknown metric"),
        (TuningConfig(search="annealing"), "Unknown search"),  # type: ignore[arg-type]
    ],
)
def test_validate_rejects_bad_configs(config: TuningConfig, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        config.validate(Task.MULTICLASS)


def test_validate_accepts_a_good_config_and_round_trips() -> None:
    config = TuningConfig(models=("knn", "lightgbm"), search="grid", budget_s=None, max_trials=3, metric="f1")
    config.validate(Task.BINARY)
    assert TuningConfig.from_dict(config.to_dict()) == config
    families = TuningConfig().families(Task.REGRESSION)
    assert families[:4] == ("lightgbm", "hist_gradient_boosting", "ridge", "lasso")  # strong ones first
    assert config.families(Task.BINARY) == ("knn", "lightgbm")  # a chosen order is kept


# --- the three searches -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "search", "models", "trials"),
    [
        (PENGUINS, "bayes", ("logistic_regression", "knn", "lightgbm"), 8),
        (CONCRETE, "random", ("ridge", "knn", "lightgbm"), 8),
    ],
)
def test_search_finds_a_model_better_than_the_baseline(data, search, models, trials) -> None:
    seen = []
    result = _tune(data, models=models, search=search, budget_s=None, max_trials=trials, on_trial=seen.append)
    assert result.stopped == "trials" and len(result.trials) == trials == len(seen)
    assert set(result.leaderboard["model"]) == set(models)
    assert list(result.leaderboard.columns) == ["model", "score", "score_std", "params", "trials", "duration_s"]
    # The first trial of each family runs its defaults, and every family runs early.
    assert [t.model for t in result.trials[:3]] == list(models)
    for first in result.trials[:3]:
        assert first.params == tuning._plain(get_spec(first.model, data[2]).defaults(task=data[2]))
    metric = TuningConfig().metric_for(data[2])
    keys = [signed(metric, s) for s in result.leaderboard["score"]]
    assert keys == sorted(keys, reverse=True) and result.best.score == result.leaderboard["score"][0]
    assert signed(metric, result.best.score) > signed(metric, _baseline_score(data, metric)) + 0.1
    assert len(result.best.fold_scores) == 3 and result.best.score_std >= 0


def test_grid_search_runs_every_point_of_every_family() -> None:
    models = ("ridge", "lasso", "knn")
    result = _tune(CONCRETE, models=models, search="grid", budget_s=None, max_trials=100)
    assert result.stopped == "finished"
    X, _ = _table(*CONCRETE[:2])
    for model in models:
        spec = get_spec(model, Task.REGRESSION)
        points = tuning._grid_points(spec, Task.REGRESSION, len(X))
        ran = [t.params for t in result.trials if t.model == model]
        assert ran[0] == tuning._plain(spec.defaults(task=Task.REGRESSION))
        assert ran[1:] == list(points)  # each point once, in the grid's order
    assert all(t.state == "complete" for t in result.trials)  # a grid is never median-pruned
    # Families are interleaved, so a budget cut leaves every family partly searched.
    assert {t.model for t in result.trials[3:6]} == set(models)
    assert set(result.leaderboard["model"]) == set(models)
    assert result.best.score > _baseline_score(CONCRETE, "r2") + 0.3


def test_the_same_seed_and_trial_count_give_the_same_search() -> None:
    def run():
        result = _tune(PENGUINS, models=("logistic_regression", "knn"), budget_s=None, max_trials=6, seed=3)
        return [(t.model, t.params, t.state, t.score) for t in result.trials], result.best.params

    assert run() == run()


# --- budget, cancel, pruning, failures --------------------------------------------------------------------


def test_the_budget_holds_and_every_family_gets_on_the_leaderboard() -> None:
    models = ("logistic_regression", "knn", "lightgbm", "extra_trees")
    started = time.perf_counter()
    result = _tune(PENGUINS, models=models, budget_s=8.0)
    elapsed = time.perf_counter() - started
    assert result.stopped == "budget"
    assert elapsed <= 8.8 + 0.5, elapsed  # 10 % over the budget, plus the test's own overhead
    assert result.elapsed_s <= 8.8
    assert set(result.leaderboard["model"]) == set(models)
    assert len(result.trials) > len(models)


def test_a_family_time_limit_stops_its_trials() -> None:
    result = _tune(PENGUINS, models=("knn", "lightgbm"), budget_s=None, max_trials=12, per_model_s=1.0)
    spent = {m: sum(t.duration_s for t in result.trials if t.model == m) for m in ("knn", "lightgbm")}
    # A family may start a trial while under its limit and is stopped between folds after it.
    assert all(s <= 1.0 + 0.6 for s in spent.values()), spent
    assert result.stopped in ("model limits", "trials")


def test_a_search_whose_families_all_used_their_time_says_so() -> None:
    result = _tune(PENGUINS, models=("logistic_regression", "knn"), budget_s=60.0, per_model_s=0.5)
    assert result.stopped == "model limits" and result.elapsed_s < 30


def test_cancel_between_trials_returns_the_partial_result() -> None:
    seen = []
    result = _tune(PENGUINS, models=("logistic_regression", "knn", "lightgbm"), budget_s=60.0,
                   on_trial=seen.append, should_stop=lambda: len(seen) >= 2)
    assert result.stopped == "cancelled" and len(result.trials) == 2
    assert set(result.leaderboard["model"]) == {"logistic_regression", "knn"}
    assert result.elapsed_s < 30


def test_cancel_between_folds_stops_the_running_trial() -> None:
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) >= 3  # before the trial, after fold 1, after fold 2: cancel

    result = _tune(PENGUINS, n_folds=5, models=("knn",), budget_s=60.0, should_stop=should_stop)
    assert result.stopped == "cancelled"
    (trial,) = result.trials
    assert trial.state == "pruned" and trial.score is not None and result.best is None
    assert (trial.stop, trial.folds) == ("cancelled", 2)
    assert result.leaderboard.empty


def test_bayes_prunes_poor_trials_between_folds() -> None:
    result = _tune(CONCRETE, n_folds=5, models=("ridge", "knn", "lasso"), budget_s=None, max_trials=24)
    states = [t.state for t in result.trials]
    assert states.count("pruned") >= 2, states
    assert states[:3] == ["complete"] * 3  # default-params trials are never pruned
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert all(t.score is not None and t.fold_scores == () for t in pruned)
    assert {t.stop for t in pruned} == {"median pruner"} and all(1 <= t.folds < 5 for t in pruned)
    assert {(t.stop, t.folds) for t in result.trials if t.state == "complete"} == {("", 5)}


class _Broken(KNeighborsClassifier):
    def fit(self, X, y):
        raise ValueError("boom\nwith a second line")


def _break(monkeypatch, *broken: str) -> None:
    real = tuning.get_spec

    def get_spec_(name: str, task: Task):
        spec = real(name, task)
        return dataclasses.replace(spec, classifier=_Broken) if name in broken else spec

    monkeypatch.setattr(tuning, "get_spec", get_spec_)


def test_a_failing_family_is_recorded_and_the_search_goes_on(monkeypatch) -> None:
    _break(monkeypatch, "knn")
    result = _tune(PENGUINS, models=("knn", "logistic_regression"), budget_s=None, max_trials=4)
    failed = [t for t in result.trials if t.state == "failed"]
    assert [t.model for t in failed] == ["knn"]  # its defaults failed, so it was not tried again
    assert failed[0].error == "ValueError: boom with a second line" and failed[0].score is None
    assert list(result.leaderboard["model"]) == ["logistic_regression"]
    assert result.stopped == "trials"


def test_every_trial_failing_is_bad_input(monkeypatch) -> None:
    _break(monkeypatch, "knn", "logistic_regression")
    with pytest.raises(BadInput, match="Every trial failed.*boom"):
        _tune(PENGUINS, models=("knn", "logistic_regression"), budget_s=30.0)


def test_parameter_names_are_namespaced_per_family() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    params = get_spec("random_forest", Task.REGRESSION).suggest(
        tuning._PrefixedTrial(trial, "random_forest"), task=Task.REGRESSION, n_rows=500
    )
    assert set(trial.params) == {f"random_forest:{k}" for k in params}
    assert not any(math.isnan(v) for v in trial.params.values() if isinstance(v, float))


def test_only_the_leading_families_keep_being_tuned() -> None:
    X, y = _table("penguins.csv", "species")
    scheme = CVScheme(kind="stratified", n_folds=3, seed=0)
    config = TuningConfig(models=("logistic_regression", "knn", "random_forest", "extra_trees", "lightgbm"),
                          search="random", budget_s=None, max_trials=15, metric="balanced_accuracy", seed=0)
    result = tune(X, y, task=Task.MULTICLASS, recipe=Recipe(), plan=FeaturePlan(), target="species",
                  scheme=scheme, config=config)
    after_defaults = result.trials[5:]
    assert len({t.model for t in result.trials[:5]}) == 5  # every family got its default trial
    assert len({t.model for t in after_defaults}) <= 3


def test_portfolio_configurations_follow_the_defaults() -> None:
    result = _tune(PENGUINS, models=("lightgbm",), search="random", budget_s=None, max_trials=6, seed=0)
    portfolio = get_spec("lightgbm", Task.MULTICLASS).portfolio(task=Task.MULTICLASS)
    params = [t.params for t in result.trials]
    assert params[0] == get_spec("lightgbm", Task.MULTICLASS).defaults(task=Task.MULTICLASS)
    assert params[1:1 + len(portfolio)] == [tuning._plain(p) for p in portfolio]
    assert params[1 + len(portfolio)] not in params[:1 + len(portfolio)]  # then the sampler


def _finished(model: str, duration_s: float, value: float, kind: str = "default", runner: str = "",
              std: float = 0.0) -> optuna.trial.FrozenTrial:
    result = {"kind": kind, "duration_s": duration_s, "folds": 3, "score_std": std}
    return optuna.trial.create_trial(value=value, user_attrs={"model": model, "runner": runner, "result": result})


def test_in_automatic_mode_a_slow_family_default_gets_a_tenth_of_the_budget() -> None:
    X, y = _table(*CONCRETE[:2])

    def pick(models: tuple[str, ...]):
        config = TuningConfig(models=models, budget_s=50.0)
        context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                       target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                       deadline=time.time() + 40.0)
        done = [_finished("lightgbm", 2.0, 0.9), _finished("hist_gradient_boosting", 3.0, 0.9)]
        return tuning._pick(done, context, context.deadline)

    automatic = pick(())
    assert automatic.kind == "default" and automatic.model == "ridge"
    assert automatic.limit_s <= 5.0  # a tenth of 50 s, though about 40 s are left
    chosen = pick(("lightgbm", "hist_gradient_boosting", "random_forest"))
    assert chosen.model == "random_forest" and chosen.limit_s > 30.0  # the user asked for it: no cap


def test_the_time_to_finish_the_leader_and_any_slower_winner_is_kept_back() -> None:
    X, y = _table(*CONCRETE[:2])

    def pick(finish_folds: float, seconds_left: float):
        config = TuningConfig(models=("lightgbm", "hist_gradient_boosting"), budget_s=60.0)
        context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                       target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                       deadline=time.time() + seconds_left, finish_folds=finish_folds)
        # The leader takes 0.5 s a fold, histogram boosting 2 s and has had fewer trials (its turn).
        done = [_finished("lightgbm", 1.5, 0.9), _finished("lightgbm", 1.5, 0.85, kind="portfolio"),
                _finished("hist_gradient_boosting", 6.0, 0.8)]
        return tuning._pick(done, context, context.deadline)

    without = pick(0.0, 30.0)
    assert without.model == "hist_gradient_boosting" and without.limit_s == pytest.approx(30.0 / 2, abs=0.1)
    kept = pick(8.0, 30.0)  # eight of the leader's 0.5 s folds are kept back
    assert kept.limit_s == pytest.approx((30.0 - 4.0) / 2, abs=0.1)
    # 13 s left: histogram boosting's trial (6 s) fits its share, but finishing it as the winner
    # (16 s, 12 more than the leader's) would not, so only LightGBM may run.
    assert pick(0.0, 13.0).model == "hist_gradient_boosting"
    assert pick(8.0, 13.0).model == "lightgbm"
    assert pick(8.0, 4.0) == "budget"  # not even the leader's finish fits any more


def test_a_leader_whose_cross_validation_is_kept_needs_less_time_kept_back() -> None:
    X, y = _table(*CONCRETE[:2])
    done = [_finished("lightgbm", 1.5, 0.9, runner=tuning.runner_id()), _finished("hist_gradient_boosting", 6.0, 0.8)]

    def pick(owner: str):
        config = TuningConfig(models=("lightgbm", "hist_gradient_boosting"), budget_s=60.0)
        context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                       target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                       deadline=time.time() + 30.0, finish_folds=8.0, finish_folds_reused=3.0,
                                       owner=owner)
        return tuning._pick(done, context, context.deadline)

    # The leader (0.5 s folds) ran in the owner process: 3 of its folds kept back, not 8.
    assert pick(tuning.runner_id()).limit_s == pytest.approx((30.0 - 1.5) / 2, abs=0.1)
    # A worker's leader, on this machine or on another with the same pid: 8 folds kept back.
    for worker in (f"{socket.gethostname()}:{os.getpid() + 1}", f"another-host:{os.getpid()}"):
        assert pick(worker).limit_s == pytest.approx((30.0 - 4.0) / 2, abs=0.1)


def test_the_best_trials_cross_validation_is_kept_only_when_asked() -> None:
    kwargs = dict(models=("logistic_regression", "knn"), search="random", budget_s=None, max_trials=4,
                  metric="accuracy", seed=0)
    kept = _tune(PENGUINS, finish_folds_reused=2.0, **kwargs)
    assert kept.best is not None and kept.best_cv is not None
    assert kept.best_cv.fold_scores["accuracy"] == kept.best.fold_scores
    assert _tune(PENGUINS, **kwargs).best_cv is None


def _pruned(model: str, stop: str) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        user_attrs={"model": model, "result": {"kind": "search", "duration_s": 0.1, "folds": 1, "stop": stop}},
    )


@pytest.mark.parametrize(
    ("ridge_score", "pruned", "stop", "expected"),
    [
        (0.7, 4, "median pruner", "ridge"),  # four in a row: ridge still has the turn (fewer trials)
        (0.7, 5, "median pruner", "lightgbm"),  # five: ridge is not tuned further
        (0.7, 5, "time limit", "ridge"),  # stopped for time, which says nothing of its scores
        (0.95, 5, "median pruner", "ridge"),  # the leading family is never given up
    ],
)
def test_a_family_the_median_pruner_keeps_stopping_is_given_up(ridge_score, pruned, stop, expected) -> None:
    X, y = _table(*CONCRETE[:2])
    config = TuningConfig(models=("lightgbm", "ridge"), budget_s=60.0)
    context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                   target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                   deadline=time.time() + 50.0)
    done = [_finished("lightgbm", 1.5, 0.9), _finished("ridge", 0.3, ridge_score)]
    done += [_finished("lightgbm", 1.5, 0.85, kind="portfolio") for _ in range(6)]
    done += [_pruned("ridge", stop) for _ in range(pruned)]
    assert tuning._pick(done, context, context.deadline).model == expected


@pytest.mark.parametrize(("lightgbm_score", "expected"), [
    (0.757, {"lasso", "elastic_net", "lightgbm"}),  # chicago after the defaults: one linear model gives way
    (0.769, {"lasso", "elastic_net", "lightgbm"}),  # among the leaders anyway: nothing to change
])
def test_the_families_kept_being_tuned_are_not_all_of_one_kind(lightgbm_score, expected) -> None:
    X, y = _table(*CONCRETE[:2])
    config = TuningConfig(models=("ridge", "lasso", "elastic_net", "lightgbm", "knn"), budget_s=600.0)
    context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                   target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                   deadline=time.time() + 500.0)
    scores = {"lasso": 0.771, "elastic_net": 0.770, "ridge": 0.768, "lightgbm": lightgbm_score, "knn": 0.745}
    done = [_finished(model, 0.3, score) for model, score in scores.items()]
    tuned = set()
    for _ in range(9):  # three rounds of the round-robin
        pick = tuning._pick(done, context, context.deadline)
        tuned.add(pick.model)
        done.append(_finished(pick.model, 0.3, 0.5, kind="search"))
    assert tuned == expected


@pytest.mark.parametrize(("scores", "expected"), [
    ([0.9502] * 7, "ridge"),  # seven trials scoring as the best did: ridge still has the turn
    ([0.9502] * 8, "lightgbm"),  # eight: whatever its parameters, ridge scores the same
    ([0.9502] * 7 + [0.8], "ridge"),  # the latest scored well below: its parameters do matter
    ([0.9502] * 7 + [0.97], "ridge"),  # the latest improved beyond the noise: keep tuning it
    ([0.9502] * 3 + [0.7] + [0.9502] * 7, "ridge"),  # eight that tie, but not in a row
])
def test_a_family_that_scores_the_same_whatever_its_parameters_is_done(scores, expected) -> None:
    X, y = _table(*CONCRETE[:2])
    config = TuningConfig(models=("lightgbm", "ridge"), budget_s=60.0)
    context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                   target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                   deadline=time.time() + 50.0)
    done = [_finished("lightgbm", 1.5, 0.9, std=0.02), _finished("ridge", 0.3, 0.95, std=0.02)]
    done += [_finished("lightgbm", 1.5, 0.85, kind="portfolio", std=0.02) for _ in range(len(scores) + 1)]
    done += [_finished("ridge", 0.3, score, kind="search", std=0.02) for score in scores]
    assert tuning._pick(done, context, context.deadline).model == expected


def test_a_flat_search_ends_before_its_trial_cap() -> None:
    """Logistic regression on ``default``: every C scores about the same ROC AUC, so the search
    stops once eight tuned trials in a row have tied with the best."""
    default = ("default.csv", "default", Task.BINARY)
    result = _tune(default, models=("logistic_regression",), budget_s=None, max_trials=40, seed=0)
    assert result.stopped == "finished"
    assert 1 + tuning._FLAT_AFTER <= len(result.trials) < 40


@pytest.mark.parametrize("search", ["bayes", "random"])
def test_a_configuration_that_already_ran_is_not_run_again(search) -> None:
    # k-nearest neighbours has a small discrete space: both samplers propose the same
    # configurations again well within 30 trials on penguins (10 of 60 TPE trials were one).
    result = _tune(PENGUINS, models=("knn",), search=search, budget_s=None, max_trials=30, metric="accuracy", seed=0)
    ran = [tuple(sorted(t.params.items())) for t in result.trials]
    assert len(ran) == 30 and result.stopped == "trials"  # the cap counts configurations that ran
    assert len(set(ran)) == len(ran)


def _repeat(model: str) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.PRUNED,
        user_attrs={"model": model, "result": {"kind": "search", "repeat_of": 1, "duration_s": 0.0, "folds": 0}},
    )


@pytest.mark.parametrize(("repeats", "ran_after", "expected"), [
    (9, False, "ridge"),  # nine repeats in a row: ridge still has the turn (fewer trials)
    (10, False, "lightgbm"),  # ten: its space is used up
    (10, True, "ridge"),  # a configuration that ran since then: not used up after all
])
def test_a_family_whose_sampler_only_repeats_itself_is_done(repeats, ran_after, expected) -> None:
    X, y = _table(*CONCRETE[:2])
    config = TuningConfig(models=("lightgbm", "ridge"), budget_s=60.0)
    context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                   target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                   deadline=time.time() + 50.0)
    done = [_finished("lightgbm", 1.5, 0.9), _finished("ridge", 0.3, 0.95)]
    done += [_finished("lightgbm", 1.5, 0.85, kind="portfolio") for _ in range(6)]
    done += [_repeat("ridge") for _ in range(repeats)]
    done += [_finished("ridge", 0.3, 0.9, kind="search")] if ran_after else []
    assert tuning._pick(done, context, context.deadline).model == expected
    assert not any(tuning._record(t) for t in done if tuning._is_repeat(t))  # on no board


def test_time_a_cheap_family_does_not_need_goes_to_the_others() -> None:
    assert tuning._fair_share(9.0, [0.3, 4.0, 7.0]) == pytest.approx(4.7)  # an even split would be 3 s
    assert tuning._fair_share(9.0, [5.0, 5.0, 5.0]) == pytest.approx(3.0)  # nobody fits: the even split
    assert tuning._fair_share(9.0, [1.0, 1.0, 5.0]) == pytest.approx(5.0)  # everybody fits
    assert tuning._fair_share(math.inf, [1.0, 2.0]) == math.inf

    X, y = _table(*CONCRETE[:2])
    config = TuningConfig(models=("ridge", "lightgbm"), budget_s=60.0)
    context = tuning.SearchContext(X=X, y=y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                                   target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config,
                                   deadline=time.time() + 8.0)
    # LightGBM's trials take 5.4 s, more than half of the 8 s left; ridge's take 0.3 s, and
    # ridge has had more trials, so LightGBM has the turn if it fits.
    done = [_finished("ridge", 0.3, 0.7, kind=k) for k in ("default", "search", "search")]
    done += [_finished("lightgbm", 5.4, 0.9), _finished("lightgbm", 5.4, 0.8, kind="portfolio")]
    assert tuning._pick(done, context, context.deadline).model == "lightgbm"


def _slow_fold_table() -> tuple[pd.DataFrame, pd.Series, float]:
    """A table on which one fold of the default histogram boosting takes a while, and that time."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=[f"x{i}" for i in range(20)])
    y = X.iloc[:, :5].sum(axis=1) + rng.normal(size=len(X))
    rows = int(len(X) * 2 / 3)  # a training fold of 3
    spec = get_spec("hist_gradient_boosting", Task.REGRESSION)
    fold_s = warm_fit_seconds(lambda: spec.build(None, task=Task.REGRESSION, seed=0), X.head(rows), y.head(rows))
    return X, y, fold_s


def _one_hgb_trial(X: pd.DataFrame, y: pd.Series, limit_s: float) -> TuningResult:
    config = TuningConfig(models=("hist_gradient_boosting",), budget_s=None, max_trials=1, per_model_s=limit_s)
    return tune(X, y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(), target="y",
                scheme=_scheme(Task.REGRESSION), config=config)


def test_a_fold_that_runs_past_the_trials_limit_is_interrupted() -> None:
    # The checks between folds cannot stop a long first fold (22 s with 13 s of a minute left).
    X, y, fold_s = _slow_fold_table()
    before = signal.getsignal(signal.SIGALRM)
    (trial,) = _one_hgb_trial(X, y, limit_s=fold_s / 4).trials
    assert trial.state == "pruned" and not trial.fold_scores and (trial.stop, trial.folds) == ("time limit", 0)
    assert trial.duration_s < fold_s / 2, (trial.duration_s, fold_s)
    assert signal.getsignal(signal.SIGALRM) is before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_forest_default_fits_as_many_trees_as_its_time_limit_allows(monkeypatch) -> None:
    # Its 200 trees on every fold would take more than the limit: the default trial used to be
    # stopped, and the family got no leaderboard row. The smaller margin leaves room for a busy
    # CI machine slowing down between the timing fits and the folds.
    monkeypatch.setattr(tuning, "_SIZING_MARGIN", 0.5)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(3_000, 8)), columns=[f"x{i}" for i in range(8)])
    y = X.iloc[:, :3].sum(axis=1) + rng.normal(size=len(X))
    spec = get_spec("random_forest", Task.REGRESSION)
    fold_s = warm_fit_seconds(lambda: spec.build(None, task=Task.REGRESSION, seed=0), X.head(2_000), y.head(2_000))
    config = TuningConfig(models=("random_forest",), budget_s=None, max_trials=1, per_model_s=2.5 * fold_s)
    (trial,) = tune(X, y, task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(), target="y",
                    scheme=_scheme(Task.REGRESSION), config=config).trials
    assert trial.state == "complete", trial
    assert tuning._PROBE_TREES <= trial.params["n_estimators"] < 200
    assert trial.duration_s <= 2.5 * fold_s


def test_the_checks_between_folds_project_with_the_folds_not_the_timing_fits(monkeypatch) -> None:
    # Timing fits that take most of the limit (a machine slowing down, held still here by a
    # sleep) must not count as a fold: the old projection, elapsed / folds done, read the first
    # fold as taking that long and stopped a forest whose folds fitted easily.
    sized = tuning._sized_forest

    def slow_timing_fits(*args, **kwargs):
        chosen = sized(*args, **kwargs)
        time.sleep(6.0)
        return chosen

    monkeypatch.setattr(tuning, "_sized_forest", slow_timing_fits)
    config = TuningConfig(models=("random_forest",), budget_s=None, max_trials=1, per_model_s=10.0)
    X, y = _table(*CONCRETE[:2])
    (trial,) = tune(X.head(300), y.head(300), task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                    target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config).trials
    assert trial.state == "complete", trial


def test_without_a_time_limit_a_forest_default_keeps_its_trees() -> None:
    config = TuningConfig(models=("extra_trees",), budget_s=None, max_trials=1)
    (trial,) = tune(*_table(*CONCRETE[:2]), task=Task.REGRESSION, recipe=Recipe(), plan=FeaturePlan(),
                    target=CONCRETE[1], scheme=_scheme(Task.REGRESSION), config=config).trials
    assert trial.params == get_spec("extra_trees", Task.REGRESSION).defaults(task=Task.REGRESSION)


def test_outside_the_main_thread_the_fold_runs_to_its_end() -> None:
    # Signals reach only the main thread, so there the checks between folds stop the trial.
    X, y, fold_s = _slow_fold_table()
    results: list[TuningResult] = []
    worker = threading.Thread(target=lambda: results.append(_one_hgb_trial(X, y, limit_s=fold_s / 4)))
    worker.start()
    worker.join()
    (trial,) = results[0].trials
    assert trial.state == "pruned" and trial.duration_s >= 0.8 * fold_s, (trial.duration_s, fold_s)
