"""Hyperparameter search across model families within one time budget (Optuna underneath).

One Optuna study per :func:`tune` call; the same trial loop (:func:`run_trials`) runs in ``tune``
and in every distributed worker (``core.modeling.worker``), and all of its state lives in the
study, so processes on other machines share it.

How the search goes:

* **Families.** First one trial per family with its default parameters (never median-pruned),
  so even a short budget gives every family a row on the leaderboard (in automatic mode LightGBM
  and histogram gradient boosting go first, and any other family's default trial may use at most
  a tenth of the budget: a forest of 200 full-depth trees on a mid-sized table would otherwise
  eat half of a minute). A forest's default trial grows only as many of its trees as fit its
  time limit, timed by two small fits (``_sized_forest``), so it still gets its row where all
  of them would not fit. Then only the three leading families keep being tuned (not all three
  of one kind, such as ridge, lasso and elastic net: see ``_leaders``), round-robin:
  the one with the fewest trials goes next, ties to the better best score. A family's first
  tuned trials are its ``portfolio`` configurations, if it has any (bayes and random only).
  A family whose last ``_GIVE_UP_AFTER`` trials were all stopped by the median pruner is not
  tuned further, unless it leads: the pruner compares with every family's trials, so a family
  far behind the leaders has each trial pruned, and its cheap turns would fill the end of the
  budget (107 pruned ridge trials in the last 8 s on ``deliveries``) or take turns from the
  families that can still improve.
* **Parameters.** ``bayes``: TPE (seeded) over the family's search space; ``random``: random
  sampling; both with a MedianPruner fed the running mean after each fold (folds are the same
  for every trial, so the comparison is paired). Optuna parameter names are prefixed with the
  family (``random_forest:max_depth``) so families never share observations.
  ``grid``: each family's ``grid()`` points in ``itertools.product`` order over sorted keys (the
  default point skipped, it ran first), one point per trial, families interleaved round-robin;
  no median pruning. A family whose grid is done leaves the rotation; when all are done the
  search has ``finished``. (Chosen over enqueued trials or a GridSampler so the family order and
  the time limits work the same way in every mode.)
* **Time.** A trial may use its family's fair share of the time left (split max-min fairly by
  the families' trial times: what a cheap family does not need goes to the others; in the
  defaults round, the time left divided by the families still waiting for theirs), or
  all of it when no family fits its share, so unused time flows to the others; with
  ``per_model_s`` the family's total time is capped too. A family is started only when its
  mean trial time fits; a running trial stops between folds (pruned) when the next fold would
  overrun, and a fold still running when the trial's time is up is interrupted (SIGALRM, in
  the main thread; elsewhere the budget holds only to within about one fold).
  When the winner is evaluated and refitted inside the same budget (``finish_folds``), the time
  that would take for the leading trial is kept back from the deadline, and a trial that could
  not be finished in time if it won is not started, or is stopped between folds. A trial run by
  ``tune``'s own process keeps its cross-validation for the evaluation to reuse (when the report
  uses the same folds), so its finish is shorter (``finish_folds_reused``).
* **Repeats.** A sampled configuration that a finished trial of the family already ran (with
  an outcome that does not depend on time: complete, failed, or stopped by the median pruner)
  is not run again: TPE and random sampling repeat themselves on small discrete spaces (a
  third of a minute's k-nearest-neighbours trials on ``penguins`` were repeats). The repeat is
  told to the study as pruned, with ``repeat_of`` in its result, which steers TPE away from it,
  and is left out of every result. A family whose last ``_USED_UP_AFTER`` sampled
  configurations were all repeats has used up its space and is not tuned further.
* **Flat families.** A family whose last ``_FLAT_AFTER`` tuned trials that ran all their folds
  scored as its best did, within a tenth of the best's spread over folds (``_is_flat``), is not
  tuned further either: its parameters barely matter on this table, and its turns go to the
  others. Trials stopped by the median pruner neither count nor break the run. Grids run every
  point regardless.
* **Trial cap.** ``max_trials`` counts every trial of the study except repeats, workers'
  included. Optuna numbers trials densely under a lock, so a trial whose number leaves no room
  under the cap (two processes racing for the last slot) is closed at once as failed with the
  user attribute ``over_cap`` and left out of every result.

Every trial keeps the user attributes ``model``, ``worker_pid``, ``runner`` (host and pid: the
process that ran it, unique across machines), ``params`` (what the spec's
``build`` takes) and ``result`` (scores, duration, state details), from which
:class:`TrialRecord` is rebuilt in any process.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import signal
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

from core.data.profile import Task
from core.errors import BadInput, StorageError
from core.modeling.evaluation import CVResult, cross_validate
from core.modeling.metrics import check_metric, default_metric, signed
from core.modeling.specs import ModelSpec, get_spec, learn_log_target, specs_for
from core.modeling.splits import CVScheme, fold_indices
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.recipe import recipe_from_json, recipe_to_json
from core.prep.steps import Recipe

Search = Literal["grid", "random", "bayes"]
Stopped = Literal["budget", "model limits", "trials", "cancelled", "finished"]
TrialStateName = Literal["complete", "pruned", "failed"]

STUDY_ATTR = "shipml"  # the study user attribute holding everything a worker needs
CANCELLED_ATTR = "shipml_cancelled"  # set when tune() is cancelled, so workers stop too
_STATES: dict[TrialState, TrialStateName] = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}
_MAX_ERROR = 300


SEARCH_TITLES: dict[str, str] = {"bayes": "Bayesian (TPE)", "random": "Random", "grid": "Grid"}


@dataclass(frozen=True)
class TuningConfig:
    """What to search, how, and for how long.

    Attributes:
        models: Spec names; empty means every family for the task (automatic mode).
        search: ``grid``, ``random`` or ``bayes`` (TPE).
        budget_s: Total wall-clock budget in seconds, or None.
        max_trials: Total trial cap (all workers together), or None. At least one of
            ``budget_s`` and ``max_trials`` must be set.
        per_model_s: Time cap per family (the sum of its trials); None shares the budget fairly.
        metric: The metric to optimise; empty means ``default_metric(task)``.
        class_weight: Weight classes ``"balanced"`` in classifiers that support it.
        seed: Seed of the samplers and the estimators.
        positive_class: Binary: the class precision, recall, F1 and PR AUC describe, as text;
            None takes the second in sorted order (training fills in its own default first).
        log_target: Regression: every model learns ``log(1 + y)`` and predicts in the
            target's units (see :func:`core.modeling.specs.learn_log_target`).
    """

    models: tuple[str, ...] = ()
    search: Search = "bayes"
    budget_s: float | None = 60.0
    max_trials: int | None = None
    per_model_s: float | None = None
    metric: str = ""
    class_weight: bool = False
    seed: int = 42
    positive_class: str | None = None
    log_target: bool = False

    def validate(self, task: Task) -> None:
        """Check the config against the task.

        Args:
            task: The learning task.

        Raises:
            BadInput: A budget, cap or per-model limit that is not positive, neither budget nor
                cap, an unknown search, a model unknown or unfit for the task, or a metric that
                does not apply to the task.
        """
        if self.search not in get_args(Search):
            raise BadInput(f"Unknown search {self.search!r}; use one of: {', '.join(get_args(Search))}.")
        if self.budget_s is None and self.max_trials is None:
            raise BadInput("Set a time budget, a trial count, or both.")
        if self.budget_s is not None and not self.budget_s > 0:
            raise BadInput(f"The time budget must be positive, not {self.budget_s}.")
        if self.max_trials is not None and self.max_trials <= 0:
            raise BadInput(f"The number of trials must be positive, not {self.max_trials}.")
        if self.per_model_s is not None and not self.per_model_s > 0:
            raise BadInput(f"The time per model must be positive, not {self.per_model_s}.")
        for name in self.models:
            get_spec(name, task)
        if not self.families(task):
            raise BadInput(f"No model family applies to {Task(task).value}.")
        if self.metric:
            check_metric(self.metric, task)
        if self.log_target and Task(task) is not Task.REGRESSION:
            raise BadInput(f"Learning the log of the target applies to a regression, not to {Task(task).value}.")

    def families(self, task: Task) -> tuple[str, ...]:
        """The family names to search, in order, without repeats.

        In automatic mode the families that usually win on tables (gradient boosting) run their
        default trial first, so a short budget is not spent on slow forests before them.
        """
        if self.models:
            return tuple(dict.fromkeys(self.models))
        names = [spec.name for spec in specs_for(task)]
        return tuple(sorted(names, key=lambda n: (n not in _STRONG_FIRST, _STRONG_FIRST.index(n) if n in _STRONG_FIRST else 0)))

    def class_weight_for(self, spec: ModelSpec, task: Task) -> str | None:
        """``"balanced"`` when class weights were asked for and ``spec`` can use them on ``task``;
        None otherwise (tuning and the final fit build estimators alike)."""
        usable = self.class_weight and spec.supports_class_weight and Task(task) is not Task.REGRESSION
        return "balanced" if usable else None

    def build(self, spec: ModelSpec, params: dict[str, Any] | None, task: Task, *, seed: int) -> Any:
        """``spec``'s estimator with ``params`` as every trial and the final fit build it: with
        class weights where asked and usable, learning the log of the target where asked."""
        estimator = spec.build(params, task=task, seed=seed, class_weight=self.class_weight_for(spec, task))
        return learn_log_target(estimator) if self.log_target and Task(task) is Task.REGRESSION else estimator

    def metric_for(self, task: Task) -> str:
        """The metric to optimise: ``metric``, or the task's default."""
        return self.metric or default_metric(task)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; :meth:`from_dict` rebuilds the config."""
        return {**asdict(self), "models": list(self.models)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuningConfig:
        """The config :meth:`to_dict` wrote."""
        return cls(**{**data, "models": tuple(data.get("models", ()))})


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial.

    Attributes:
        number: The Optuna trial number (unique in the study).
        model: The family name.
        params: The parameters the spec's ``build`` took (JSON values: tuples come back as lists).
        score: Mean of the primary metric over the folds (as the metric reads, not signed);
            for a pruned trial, over the folds it ran; None when nothing was scored.
        score_std: Standard deviation over the folds (ddof=1), or None.
        fold_scores: The primary metric per fold (complete trials; empty otherwise).
        duration_s: Wall time of the trial.
        state: ``complete``, ``pruned`` (median pruner, time limit or cancel) or ``failed``.
        error: For a failed trial, a one-line reason.
        stop: For a pruned trial, why: ``median pruner``, ``time limit`` or ``cancelled``.
        folds: The folds it scored.
    """

    number: int
    model: str
    params: dict[str, Any]
    score: float | None
    score_std: float | None
    fold_scores: tuple[float, ...]
    duration_s: float
    state: TrialStateName
    error: str = ""
    stop: str = ""
    folds: int = 0


@dataclass(frozen=True)
class TuningResult:
    """The outcome of a search.

    Attributes:
        trials: Every finished trial of the study (workers' included, repeats left out), by number.
        best: The complete trial with the best score (the earliest on a tie), or None.
        leaderboard: The best complete trial per family, best first, with columns ``model``,
            ``score``, ``score_std``, ``params``, ``trials`` (the family's trial count, all
            states) and ``duration_s`` (the family's total trial time).
        stopped: Why the search ended: ``budget``, ``model limits`` (every family used its
            ``per_model_s``), ``trials``, ``cancelled`` or ``finished``
            (grid done, or no family left to try).
        elapsed_s: Wall time of the call.
        study_name: The Optuna study's name (workers join it by this name).
        best_cv: The best trial's cross-validation (all metrics, out-of-fold predictions), when
            ``tune``'s own process ran it and was asked to keep it; None otherwise (a worker's
            trial). The evaluation reuses it instead of fitting the same folds again.
    """

    trials: tuple[TrialRecord, ...]
    best: TrialRecord | None
    leaderboard: pd.DataFrame
    stopped: Stopped
    elapsed_s: float
    study_name: str
    best_cv: CVResult | None = None


@dataclass(frozen=True)
class SearchContext:
    """Everything a trial needs; identical in ``tune`` and in every worker of the study."""

    X: pd.DataFrame
    y: pd.Series
    task: Task
    recipe: Recipe
    plan: FeaturePlan
    target: str
    scheme: CVScheme
    config: TuningConfig
    deadline: float | None  # Unix time shared by all processes; None without a budget
    finish_folds: float = 0.0  # the winner's fits after the search, in tuning folds (see tune)
    finish_folds_reused: float | None = None  # the same for a trial run by owner (see tune)
    owner: str = ""  # tune's process (runner_id()): the one whose trials' cross-validation is kept
    metric: str = field(init=False)
    families: tuple[str, ...] = field(init=False)
    grids: dict[str, tuple[dict[str, Any], ...]] = field(init=False)

    def finish_for(self, runner: str | None) -> float:
        """The winner's finish in tuning folds, for a trial run by process ``runner``."""
        if self.finish_folds_reused is not None and runner == self.owner:
            return self.finish_folds_reused
        return self.finish_folds

    def __post_init__(self) -> None:
        # Derived once, the same way in every process.
        object.__setattr__(self, "metric", self.config.metric_for(self.task))
        object.__setattr__(self, "families", self.config.families(self.task))
        grids = {}
        if self.config.search == "grid":
            grids = {f: _grid_points(get_spec(f, self.task), self.task, len(self.X)) for f in self.families}
        object.__setattr__(self, "grids", grids)


def tune(
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: Task,
    recipe: Recipe,
    plan: FeaturePlan,
    target: str,
    scheme: CVScheme,
    config: TuningConfig,
    storage_url: str | None = None,
    study_name: str | None = None,
    work_dir: Path | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    finish_folds: float = 0.0,
    finish_folds_reused: float | None = None,
) -> TuningResult:
    """Search model families and their parameters by cross-validation within the budget.

    Args:
        X: Raw features from ``prepare_training_table`` (the holdout already removed).
        y: The target.
        task: The learning task.
        recipe: The cleaning recipe (its column steps run inside each fold).
        plan: The feature plan.
        target: The target column's name.
        scheme: The cross-validation scheme.
        config: What to search and for how long.
        storage_url: An Optuna RDB URL (``sqlite:///…/optuna.db`` or PostgreSQL) for a study that
            survives the process and that workers can join; None keeps it in memory. Give Optuna
            its own database, never the app's store.
        study_name: The study's name; default ``shipml-<random>``. Must be new in the storage.
        work_dir: Where the Parquet copy of ``X`` + ``y`` for workers is written; required with
            ``storage_url``.
        on_trial: Called after each trial this process runs (live progress).
        should_stop: Polled between folds and trials; True cancels the search (workers too),
            which returns what it has with ``stopped="cancelled"``.
        finish_folds: How many fits of the winner follow the search inside the same budget
            (evaluating and refitting it), counted in tuning folds. The search keeps that many of
            the leading trial's fold times free before the deadline, and stops a trial that could
            not be finished in time if it won. 0 spends the whole budget on the search.
        finish_folds_reused: When set, this process keeps the cross-validation of its best trial
            (``TuningResult.best_cv``) for the evaluation to reuse, and this is the finish of a
            trial it ran; ``finish_folds`` stays that of a worker's trial.

    Returns:
        The trials, the best one and the leaderboard.

    Raises:
        BadInput: An invalid config, an unusable storage or study name, or every trial failed
            (with the first error).
        StorageError: The table copy for workers could not be written.
    """
    started = time.perf_counter()
    task = Task(task)
    config.validate(task)
    if storage_url is not None and work_dir is None:
        raise ValueError("work_dir is required with storage_url: workers read the training table from it.")
    deadline = time.time() + config.budget_s if config.budget_s is not None else None
    context = SearchContext(X=X, y=y, task=task, recipe=recipe, plan=plan, target=target, scheme=scheme,
                            config=config, deadline=deadline, finish_folds=finish_folds,
                            finish_folds_reused=finish_folds_reused, owner=runner_id())
    kept = _BestCV(context.metric) if finish_folds_reused is not None else None
    name = study_name or f"shipml-{uuid.uuid4().hex[:12]}"
    storage = open_storage(storage_url)
    try:
        try:
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                        sampler=_sampler(config, seed=config.seed), pruner=_pruner(config))
        except optuna.exceptions.DuplicatedStudyError:
            raise BadInput(f"A tuning study named {name!r} already exists in that storage.") from None
        attrs = _context_attrs(context)
        if storage_url is not None:
            assert work_dir is not None
            attrs |= _share_table(X, y, target=target, work_dir=work_dir)
        study.set_user_attr(STUDY_ATTR, attrs)
        _, stopped = run_trials(study, context, deadline=deadline, should_stop=should_stop, on_trial=on_trial,
                                keep_cv=kept.offer if kept else None)
        if stopped == "cancelled":
            study.set_user_attr(CANCELLED_ATTR, True)
        result = _result(study, context.metric, stopped, time.perf_counter() - started)
        if kept and result.best is not None and kept.number == result.best.number:
            result = replace(result, best_cv=kept.cv)
    finally:
        close_storage(storage)
    if result.trials and all(t.state == "failed" for t in result.trials):
        first = min(result.trials, key=lambda t: t.number)
        raise BadInput(f"Every trial failed; the first ({first.model}): {first.error}")
    return result


def run_trials(
    study: optuna.Study,
    context: SearchContext,
    *,
    deadline: float | None,
    max_own_trials: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_trial: Callable[[TrialRecord], None] | None = None,
    keep_cv: Callable[[TrialRecord, CVResult], None] | None = None,
) -> tuple[list[TrialRecord], Stopped]:
    """Run trials of ``study`` until its cap, the deadline, a cancel, or nothing is left to try.

    Args:
        study: The study (direction maximise).
        context: The data and config, as in every process of the study.
        deadline: Unix time after which no trial runs (a worker may pass an earlier one).
        max_own_trials: Stop after this many trials of this process.
        should_stop: Polled between folds and trials; True cancels.
        on_trial: Called after each trial this process runs.
        keep_cv: Called with each complete trial of this process and its cross-validation.

    Returns:
        This process's trials and why it stopped.
    """
    ran: list[TrialRecord] = []
    cap = context.config.max_trials
    while True:
        if should_stop is not None and should_stop():
            return ran, "cancelled"
        if max_own_trials is not None and len(ran) >= max_own_trials:
            return ran, "trials"
        trials = study.get_trials(deepcopy=False)
        counted = sum(1 for t in trials if not _is_repeat(t))
        if cap is not None and counted >= cap:
            return ran, "trials"
        pick = _pick(trials, context, deadline)
        if isinstance(pick, str):
            return ran, pick  # type: ignore[return-value]
        trial = study.ask()
        # Trials are numbered densely: the ones numbered since the list was read are other processes'.
        if cap is not None and counted + trial.number - len(trials) >= cap:  # they took the last slot
            trial.set_user_attr("over_cap", True)
            study.tell(trial, state=TrialState.FAIL)
            return ran, "trials"
        record, cancelled, cv = _run_trial(study, trial, context, pick, should_stop, trials)
        if record is None:
            continue  # a repeat: nothing ran
        if keep_cv is not None and cv is not None:
            keep_cv(record, cv)
        ran.append(record)
        if on_trial is not None:
            on_trial(record)
        if cancelled:
            return ran, "cancelled"


def open_storage(url: str | None) -> optuna.storages.RDBStorage | None:
    """An Optuna RDB storage for ``url`` (None: in memory, returned as None).

    SQLite files get WAL and a long busy timeout, so worker processes can share one.

    Raises:
        BadInput: The storage cannot be opened (the message leaves the URL out: it may hold a password).
    """
    if url is None:
        return None
    is_sqlite = url.startswith("sqlite")
    engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if is_sqlite else {"pool_pre_ping": True}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        if is_sqlite:
            with storage.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    except Exception as exc:  # driver, network or schema errors; all mean "cannot use it"
        raise BadInput(f"Cannot open the tuning storage: {type(exc).__name__}.") from None
    return storage


def close_storage(storage: optuna.storages.RDBStorage | None) -> None:
    """Release the storage's database connections."""
    if storage is not None:
        storage.remove_session()
        storage.engine.dispose()


def context_from_attrs(attrs: dict[str, Any]) -> SearchContext:
    """Rebuild a study's :class:`SearchContext` from its ``shipml`` user attribute (workers).

    Raises:
        BadInput: The study has no shared table, or it cannot be read.
    """
    if attrs.get("data_error") or not attrs.get("data_path"):
        reason = attrs.get("data_error") or "no copy was written"
        raise BadInput(f"This study's training table is not shared: {reason}.")
    try:
        frame = pd.read_parquet(attrs["data_path"])
    except (OSError, ValueError) as exc:
        raise BadInput(f"Cannot read the study's training table: {type(exc).__name__}.") from None
    target = attrs["target"]
    return SearchContext(
        X=frame.drop(columns=[target]),
        y=frame[target],
        task=Task(attrs["task"]),
        recipe=recipe_from_json(attrs["recipe"]),
        plan=FeaturePlan.model_validate_json(attrs["plan"]),
        target=target,
        scheme=CVScheme(**attrs["scheme"]),
        config=TuningConfig.from_dict(attrs["config"]),
        deadline=attrs["deadline"],
        finish_folds=attrs.get("finish_folds", 0.0),
        finish_folds_reused=attrs.get("finish_folds_reused"),
        owner=attrs.get("owner", ""),
    )


def make_sampler_and_pruner(
    config: TuningConfig, *, seed: int
) -> tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]:
    """The sampler and pruner for ``config`` (workers pass their own seed so they differ)."""
    return _sampler(config, seed=seed), _pruner(config)


def runner_id() -> str:
    """This process, unique across the machines sharing a study: host name and pid (a worker on
    another machine may have the owner's pid)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- scheduling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pick:
    model: str
    kind: Literal["default", "portfolio", "grid", "search"]
    grid_index: int  # grid and portfolio trials: which point
    limit_s: float  # this trial's time limit
    deadline: float | None  # when the search ends (a trial that won must be finished by then)
    prunable: bool


@dataclass
class _Family:
    trials: int = 0  # running ones included, so concurrent processes spread out
    finished: int = 0
    failed: int = 0
    spent_s: float = 0.0
    fold_s: list[float] = field(default_factory=list)  # mean fold time of each trial that ran folds
    best: float = -math.inf  # signed
    best_fold_s: float = 0.0  # mean fold time of the best complete trial
    best_runner: str | None = None  # the process that ran it
    median_pruned_run: int = 0  # trials in a row, up to the latest, stopped by the median pruner
    repeat_run: int = 0  # sampled configurations in a row, up to the latest, that were repeats
    best_std: float = 0.0  # standard deviation over folds of the best complete trial
    flat_run: int = 0  # tuned trials in a row, up to the latest, that scored as the best did (``_is_flat``)


_STRONG_FIRST = ("lightgbm", "hist_gradient_boosting")
_KEEP_SEARCHING = 3  # families that keep being tuned once every family has had its default trial
_GIVE_UP_AFTER = 5  # median-pruned trials in a row after which a family that does not lead stops
_USED_UP_AFTER = 10  # repeats in a row after which a family's search space counts as used up
_FLAT_AFTER = 8  # tuned trials in a row scoring as the best did, after which a family counts as flat
_FLAT_SHARE = 0.1  # of the best trial's fold standard deviation: scores closer than this are the same
_OTHER_DEFAULT_SHARE = 0.1  # automatic mode: the most of the budget a non-boosting default trial may use
_FORESTS = ("random_forest", "extra_trees")  # default trials sized to their time limit (_sized_forest)
_PROBE_TREES = 10  # the smaller of _sized_forest's two timing fits; the other has four times as many
_SIZING_MARGIN = 0.8  # of the time left that a forest default's folds are planned to take


def _pick(trials: Sequence[FrozenTrial], context: SearchContext, deadline: float | None) -> _Pick | Stopped:
    """The next family to try and its time limit, or why nothing should start."""
    stats, default_s = _family_stats(trials, context.families)
    config = context.config
    out_of_time = False
    active = []
    for name, family in stats.items():
        if family.finished and family.failed == family.finished:
            continue  # its defaults (and anything since) failed: its other trials most likely will too
        if context.grids and family.trials - 1 >= len(context.grids[name]):
            continue  # grid done
        if family.repeat_run >= _USED_UP_AFTER:
            continue  # the sampler keeps proposing what already ran: little is left to find
        if family.flat_run >= _FLAT_AFTER:
            continue  # whatever its parameters, it scores the same: more trials would only repeat that
        if config.per_model_s is not None and family.spent_s >= config.per_model_s:
            out_of_time = True
            continue
        active.append(name)
    if not active:
        return "model limits" if out_of_time else "finished"
    if not context.grids and all(stats[f].trials for f in active) and len(active) > _KEEP_SEARCHING:
        # After the defaults round, spend the rest of the budget on the leading families only:
        # an even split over every family starves the ones that can still improve.
        active = _leaders(active, stats, context.task)
    leading = max(active, key=lambda f: stats[f].best)
    active = [f for f in active if f == leading or stats[f].median_pruned_run < _GIVE_UP_AFTER]
    # Keep back the time that evaluating and refitting the leader would take if the search ended now.
    leader = max(stats.values(), key=lambda f: f.best)
    reserve = context.finish_for(leader.best_runner) * leader.best_fold_s
    remaining = math.inf if deadline is None else deadline - time.time() - reserve
    if remaining <= 0:
        return "budget"
    order = sorted(active, key=lambda f: (stats[f].trials, -stats[f].best, context.families.index(f)))
    # Each family's mean fold time. Pruned trials count too: a family too slow for its share is
    # only ever pruned. Unknown (no trial yet): 0, so its default trial starts and the fold
    # checks stop it.
    fold_s = {f: float(np.mean(stats[f].fold_s)) if stats[f].fold_s else 0.0 for f in active}
    cost = {f: fold_s[f] * context.scheme.n_folds for f in active}
    # First the fair share of the time left; if nothing fits, whatever is left.
    share = _fair_share(remaining, list(cost.values()))
    waiting = sum(1 for f in active if stats[f].trials == 0)
    if waiting:
        # Defaults round: keep for each family still waiting what a typical default trial took
        # and give the rest to this one, so a slow family's defaults still reach the board.
        share = remaining / waiting
        if default_s:
            share = max(share, remaining - (waiting - 1) * float(np.median(default_s)))
    for base in dict.fromkeys((share, remaining)):
        for name in order:
            family = stats[name]
            limit = base
            if config.per_model_s is not None:
                limit = min(limit, config.per_model_s - family.spent_s)
            if family.trials == 0 and not config.models and name not in _STRONG_FIRST and config.budget_s:
                limit = min(limit, _OTHER_DEFAULT_SHARE * config.budget_s)
            if cost[name] <= limit and not _unfinishable(context.scheme.n_folds, fold_s[name], context, deadline):
                return _Pick(model=name, kind=_kind(name, family.trials, context), grid_index=family.trials - 1,
                             limit_s=limit, deadline=deadline, prunable=family.trials > 0 and not context.grids)
    if config.per_model_s is not None and all(
            config.per_model_s - stats[f].spent_s < min(cost[f], remaining) for f in order):
        return "model limits"  # the budget has time left, but no family's own limit has room for a trial
    return "budget"


def _leaders(active: Sequence[str], stats: dict[str, _Family], task: Task) -> list[str]:
    """The ``_KEEP_SEARCHING`` families with the best scores, not all of one kind.

    If the leaders are all of one kind, the last of them gives its place to the best family of
    another kind. On ``chicago`` lasso, elastic net and ridge led after the defaults and took the
    rest of a minute between them, tuning a penalty to the fourth decimal (lasso: 0.771 R² in
    cross-validation, 0.746 on the holdout). Tuned in ridge's place, extra trees reached 0.785
    (holdout 0.771).
    """
    ranked = sorted(active, key=lambda f: -stats[f].best)
    kept = ranked[:_KEEP_SEARCHING]
    kinds = {get_spec(f, task).kind for f in kept}
    other = next((f for f in ranked[_KEEP_SEARCHING:] if get_spec(f, task).kind not in kinds), None)
    if len(kinds) == 1 and other is not None:
        kept[-1] = other
    return kept


def _fair_share(remaining: float, costs: Sequence[float]) -> float:
    """A max-min fair share of the time left between families whose trials cost ``costs``.

    A family whose trials need less than an even split takes only what they need, and the rest
    is split evenly between the others. (With a plain even split, a family of cheap, quickly
    pruned trials kept winning the turn while the strong, slower ones no longer fitted their
    split: 160 pruned ridge trials filled the last 10 s of a minute on ``deliveries``.)
    """
    left, n = remaining, len(costs)
    for cost in sorted(costs):
        if cost * n > left:
            return left / n
        left -= cost
        n -= 1
    return max(remaining / len(costs), max(costs))  # every family fits: any of them may take its cost


def _unfinishable(folds_left: int, fold_s: float, context: SearchContext, deadline: float | None) -> bool:
    """Whether a trial of this process with ``folds_left`` folds of ``fold_s`` to go could not be
    finished by the deadline if it won: its own folds, then evaluating and refitting it."""
    finish = context.finish_for(runner_id())
    if deadline is None or not finish:
        return False
    return time.time() + fold_s * (folds_left + finish) > deadline


def _kind(name: str, trials: int, context: SearchContext) -> Literal["default", "portfolio", "grid", "search"]:
    """What the family's next trial is, given how many it has had."""
    if trials == 0:
        return "default"
    if context.grids:
        return "grid"
    if trials - 1 < len(get_spec(name, context.task).portfolio(task=context.task)):
        return "portfolio"
    return "search"


def _family_stats(
    trials: Sequence[FrozenTrial], families: Sequence[str]
) -> tuple[dict[str, _Family], list[float]]:
    """Per family counts, times and best score, and the durations of finished default trials."""
    stats = {f: _Family() for f in families}
    default_s = []
    for t in trials:
        family = stats.get(t.user_attrs.get("model", ""))
        if family is None:
            continue
        if _is_repeat(t):
            family.repeat_run += 1
            continue
        family.trials += 1
        if t.state not in _STATES:
            continue
        result = t.user_attrs.get("result", {})
        family.finished += 1
        family.repeat_run = 0
        family.spent_s += float(result.get("duration_s", 0.0))
        if result.get("folds"):
            family.fold_s.append(float(result["duration_s"]) / result["folds"])
        elif result.get("stop") == "time limit":  # stopped inside its first fold: at least that long
            family.fold_s.append(float(result["duration_s"]))
        if result.get("kind") == "default":
            default_s.append(float(result.get("duration_s", 0.0)))
        if t.state is TrialState.PRUNED and result.get("stop") == "median pruner":
            # flat_run stays as it is: on a flat landscape the pruner still stops about half of
            # the trials, on differences in the fourth decimal.
            family.median_pruned_run += 1
        elif t.state is TrialState.COMPLETE:
            family.median_pruned_run = 0
            if result.get("kind") in ("portfolio", "search"):
                family.flat_run = family.flat_run + 1 if _is_flat(float(t.value), family) else 0
        if t.state is TrialState.FAIL:
            family.failed += 1
        elif t.state is TrialState.COMPLETE and t.value is not None and float(t.value) > family.best:
            family.best = float(t.value)
            family.best_std = float(result.get("score_std") or 0.0)
            family.best_fold_s = float(result["duration_s"]) / max(1, result.get("folds", 0))
            family.best_runner = t.user_attrs.get("runner")
    return stats, default_s


def _is_flat(value: float, family: _Family) -> bool:
    """Whether a trial's (signed) score is the family's best so far, give or take a tenth of the
    best's spread over folds: a difference that cross-validation cannot tell from noise.

    On the ``default`` sample logistic regression scored 0.9492 ROC AUC (± 0.021 over folds) with
    every C from 0.04 to 866; twenty such trials told nothing the first few had not.
    """
    return math.isfinite(family.best) and abs(value - family.best) <= _FLAT_SHARE * family.best_std


# --- one trial ----------------------------------------------------------------------------------


def _run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    context: SearchContext,
    pick: _Pick,
    should_stop: Callable[[], bool] | None,
    earlier: Sequence[FrozenTrial],
) -> tuple[TrialRecord | None, bool, CVResult | None]:
    """Cross-validate one candidate and tell the study; ``earlier`` are the study's trials before it.

    Returns the record (None for a repeat, which does not run), whether it was cancelled, and
    the cross-validation of a complete trial.
    """
    started = time.perf_counter()
    spec = get_spec(pick.model, context.task)
    trial.set_user_attr("model", pick.model)
    trial.set_user_attr("worker_pid", os.getpid())
    trial.set_user_attr("runner", runner_id())
    n_folds = context.scheme.n_folds
    stop = ""  # why the trial was stopped early, if it was
    running = [math.nan, 0]  # the last running mean, folds done
    folds_started = [started]  # when the folds began: after a forest's timing fits, which no fold repeats

    reporting = threading.Event()  # set while after_fold writes to the study: not interrupted then

    def after_fold(fold: int, mean: float) -> None:
        reporting.set()
        try:
            check_fold(fold, mean)
        finally:
            reporting.clear()

    def check_fold(fold: int, mean: float) -> None:
        nonlocal stop
        running[:] = [mean, fold]
        if math.isfinite(mean):
            trial.report(signed(context.metric, mean), fold)
        if fold >= n_folds:
            return  # done: nothing left to save
        now = time.perf_counter()
        per_fold = (now - folds_started[0]) / fold
        if should_stop is not None and should_stop():
            stop = "cancelled"
        elif now - started + per_fold > pick.limit_s:
            stop = "time limit"
        elif _unfinishable(n_folds - fold, per_fold, context, pick.deadline):
            stop = "time limit"  # it could not be evaluated and refitted in time if it won
        elif pick.prunable and trial.should_prune():
            stop = "median pruner"
        if stop:
            raise optuna.TrialPruned(stop)

    params: dict[str, Any] = {}
    folds: tuple[float, ...] = ()
    cv: CVResult | None = None
    error = ""
    try:
        # Convergence and feature-name warnings of hundreds of candidates are noise to a user.
        # One thread per trial (parallelism comes from workers): OpenMP models such as histogram
        # boosting run 10-50x slower on a busy machine when their threads oversubscribe the
        # cores, which would wreck the time budget.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")
            params = _plain(_params(spec, trial, context, pick))
            if pick.kind == "search" and (same := _same_run(earlier, pick.model, params)) is not None:
                trial.set_user_attr("params", params)
                trial.set_user_attr("result", {"kind": pick.kind, "repeat_of": same, "folds": 0,
                                               "duration_s": time.perf_counter() - started})
                study.tell(trial, state=TrialState.PRUNED)  # pruned, not complete: TPE then looks elsewhere
                return None, False, None
            def make(chosen: dict[str, Any]):
                estimator = context.config.build(spec, chosen, context.task, seed=context.config.seed)
                return build_pipeline(context.recipe, context.plan, target=context.target, estimator=estimator,
                                      seed=context.config.seed)

            def time_left() -> float:
                return pick.limit_s - (time.perf_counter() - started)

            if pick.kind == "default" and pick.model in _FORESTS and math.isfinite(pick.limit_s):
                with _time_limit(time_left(), reporting):
                    params = _sized_forest(params, context, make, time_left())
            trial.set_user_attr("params", params)
            folds_started[0] = time.perf_counter()
            with _time_limit(time_left(), reporting):
                cv = cross_validate(lambda: make(params), context.X, context.y, task=context.task,
                                    scheme=context.scheme, metric=context.metric, after_fold=after_fold,
                                    positive=context.config.positive_class)
        folds = tuple(float(v) for v in cv.fold_scores[context.metric])
        if not any(math.isfinite(v) for v in folds):
            raise BadInput(f"{context.metric} is undefined on every fold.")
        state = TrialState.COMPLETE
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except _OverTime:
        state, stop = TrialState.PRUNED, "time limit"
    except Exception as exc:  # an estimator's error fails this trial, not the search
        state, cv = TrialState.FAIL, None  # its scores may exist, but the trial did not count
        error = _one_line(exc)
    score: float | None = None
    std: float | None = None
    if state is TrialState.COMPLETE:
        score, std = _summary(folds)
    elif state is TrialState.PRUNED and math.isfinite(running[0]):
        score = running[0]  # the mean over the folds it ran
    result = {
        "kind": pick.kind, "score": score, "score_std": std, "fold_scores": list(folds),
        "duration_s": time.perf_counter() - started, "folds": running[1], "stop": stop, "error": error,
    }
    trial.set_user_attr("result", result)
    study.tell(trial, signed(context.metric, score) if state is TrialState.COMPLETE else None, state=state)
    record = TrialRecord(number=trial.number, model=pick.model, params=params, score=score, score_std=std,
                         fold_scores=folds, duration_s=result["duration_s"], state=_STATES[state], error=error,
                         stop=stop, folds=running[1])
    return record, stop == "cancelled", cv


def _is_repeat(trial: FrozenTrial) -> bool:
    return "repeat_of" in trial.user_attrs.get("result", {})


def _same_run(trials: Sequence[FrozenTrial], model: str, params: dict[str, Any]) -> int | None:
    """The number of a finished trial of ``model`` that ran ``params`` with an outcome that does
    not depend on its time limit (complete, failed, or median-pruned), or None."""
    for t in trials:
        result = t.user_attrs.get("result", {})
        settled = t.state in (TrialState.COMPLETE, TrialState.FAIL) or result.get("stop") == "median pruner"
        if settled and t.user_attrs.get("model") == model and t.user_attrs.get("params") == params:
            return t.number
    return None


def _sized_forest(params: dict[str, Any], context: SearchContext, make: Callable[[dict[str, Any]], Any],
                  seconds: float) -> dict[str, Any]:
    """A forest's default parameters with only as many trees as fit its trial's time limit.

    Two hundred full-depth trees take about 3 s a fold on ``deliveries`` (8,000 rows), so in a
    minute's search the forests' default trials were stopped after one fold and the families got
    no row on the leaderboard. A forest's time is a fixed cost (features, set-up) plus a cost
    per tree, so two small fits on the largest fold, of ``_PROBE_TREES`` trees and of four times
    as many, give both, and from them how many trees fit every fold in ``_SIZING_MARGIN`` of the
    time left (the rest is slack for a machine that slows down after the timing fits). Fewer
    trees make a forest a little noisier, not a different model.
    """
    train, valid = max(fold_indices(context.X, context.y, context.scheme), key=lambda fold: len(fold[0]))
    started = time.perf_counter()
    times = []
    for trees in (_PROBE_TREES, 4 * _PROBE_TREES):
        begun = time.perf_counter()
        make({**params, "n_estimators": trees}).fit(context.X.iloc[train], context.y.iloc[train]).predict(
            context.X.iloc[valid])
        times.append(time.perf_counter() - begun)
    per_tree = max((times[1] - times[0]) / (3 * _PROBE_TREES), 1e-9)
    fixed = max(times[0] - _PROBE_TREES * per_tree, 0.0)
    per_fold = (seconds - (time.perf_counter() - started)) * _SIZING_MARGIN / context.scheme.n_folds
    if fixed + params["n_estimators"] * per_tree <= per_fold:
        return params
    fit = int((per_fold - fixed) / per_tree) // 10 * 10
    return {**params, "n_estimators": max(_PROBE_TREES, fit)}  # if even that is too many, the limit stops it


class _OverTime(BaseException):
    """A trial ran past its time limit inside a fold (a BaseException, like KeyboardInterrupt,
    so that no estimator's ``except Exception`` swallows it)."""


@contextmanager
def _time_limit(seconds: float, reporting: threading.Event) -> Iterator[None]:
    """Raise :class:`_OverTime` inside the block once ``seconds`` have passed.

    The checks between folds cannot stop a fold that runs long: one sampled histogram-boosting
    configuration spent 22 s in its first fold with about 13 s of the minute left, and the
    minute became 71 s. A SIGALRM handler interrupts the fit at the next Python
    statement instead (every family's fit loops in Python: boosting rounds, trees, epochs). Not
    while ``reporting`` is set (the trial is writing to the study; the fold checks then stop it),
    and only in the main thread of a POSIX process, where signals are delivered; elsewhere the
    fold checks alone apply.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or not math.isfinite(seconds):
        yield
        return

    def expire(signum: int, frame: object) -> None:
        if not reporting.is_set():
            raise _OverTime

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:  # restored even if the alarm fired just before it was cancelled
            signal.signal(signal.SIGALRM, previous)


def _params(spec: ModelSpec, trial: optuna.Trial, context: SearchContext, pick: _Pick) -> dict[str, Any]:
    if pick.kind == "default":
        return spec.defaults(task=context.task)
    if pick.kind == "grid":
        return context.grids[pick.model][pick.grid_index]
    if pick.kind == "portfolio":
        return spec.portfolio(task=context.task)[pick.grid_index]
    return spec.suggest(_PrefixedTrial(trial, pick.model), task=context.task, n_rows=len(context.X))


class _PrefixedTrial:
    """A trial whose parameter names carry the family, so families never share observations or
    clash on a name with different ranges (``C`` of two linear models, say)."""

    def __init__(self, trial: optuna.Trial, family: str) -> None:
        self._trial, self._prefix = trial, f"{family}:"

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        return self._trial.suggest_float(self._prefix + name, *args, **kwargs)

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        return self._trial.suggest_int(self._prefix + name, *args, **kwargs)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._trial.suggest_categorical(self._prefix + name, choices)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


def _grid_points(spec: ModelSpec, task: Task, n_rows: int) -> tuple[dict[str, Any], ...]:
    """Every grid point of a family in a fixed order, without the defaults (their trial ran first)."""
    grid = spec.grid(task=task, n_rows=n_rows)
    keys = sorted(grid)
    # The default point: the spec's defaults over the estimator's own (max_depth=None, say).
    built = spec.build(None, task=task, seed=0).get_params()
    defaults = _plain({k: v for k, v in {**built, **spec.defaults(task=task)}.items() if k in grid})
    points = (_plain(dict(zip(keys, values))) for values in itertools.product(*(grid[k] for k in keys)))
    return tuple(p for p in points if p != defaults)


# --- results ------------------------------------------------------------------------------------


class _BestCV:
    """The cross-validation of the best complete trial offered so far (ranked as ``_result`` ranks)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.key: tuple[float, int] | None = None
        self.number: int | None = None
        self.cv: CVResult | None = None

    def offer(self, record: TrialRecord, cv: CVResult) -> None:
        if record.score is None:
            return
        key = (signed(self.metric, record.score), -record.number)
        if self.key is None or key > self.key:
            self.key, self.number, self.cv = key, record.number, cv


def _record(trial: FrozenTrial) -> TrialRecord | None:
    """A finished trial as a record; None for a running, over-cap, repeated or foreign trial."""
    if (trial.state not in _STATES or "model" not in trial.user_attrs or trial.user_attrs.get("over_cap")
            or _is_repeat(trial)):
        return None
    result = trial.user_attrs.get("result", {})
    return TrialRecord(
        number=trial.number,
        model=trial.user_attrs["model"],
        params=trial.user_attrs.get("params", {}),
        score=result.get("score"),
        score_std=result.get("score_std"),
        fold_scores=tuple(result.get("fold_scores", ())),
        duration_s=float(result.get("duration_s", 0.0)),
        state=_STATES[trial.state],
        error=result.get("error", "" if trial.state is not TrialState.FAIL else "the trial stopped unexpectedly"),
        stop=result.get("stop", ""),
        folds=int(result.get("folds", 0)),
    )


def _result(study: optuna.Study, metric: str, stopped: Stopped, elapsed_s: float) -> TuningResult:
    records = tuple(r for t in study.get_trials(deepcopy=False) if (r := _record(t)) is not None)
    complete = [r for r in records if r.state == "complete" and r.score is not None]
    best = max(complete, key=lambda r: (signed(metric, r.score), -r.number), default=None)
    return TuningResult(trials=records, best=best, leaderboard=_leaderboard(records, metric),
                        stopped=stopped, elapsed_s=elapsed_s, study_name=study.study_name)


def _leaderboard(records: Sequence[TrialRecord], metric: str) -> pd.DataFrame:
    rows = []
    for model in dict.fromkeys(r.model for r in records):
        mine = [r for r in records if r.model == model]
        complete = [r for r in mine if r.state == "complete" and r.score is not None]
        if not complete:
            continue
        top = max(complete, key=lambda r: (signed(metric, r.score), -r.number))
        rows.append({"model": model, "score": top.score, "score_std": top.score_std, "params": top.params,
                     "trials": len(mine), "duration_s": sum(r.duration_s for r in mine),
                     "_key": signed(metric, top.score)})
    columns = ["model", "score", "score_std", "params", "trials", "duration_s"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows).sort_values("_key", ascending=False, kind="stable", ignore_index=True)
    return table[columns]


# --- helpers ------------------------------------------------------------------------------------


def _sampler(config: TuningConfig, *, seed: int) -> optuna.samplers.BaseSampler:
    if config.search == "bayes":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)  # grid trials sample nothing


def _pruner(config: TuningConfig) -> optuna.pruners.BasePruner:
    if config.search == "grid":
        return optuna.pruners.NopPruner()  # a grid is evaluated in full
    return optuna.pruners.MedianPruner(n_startup_trials=5)


def _context_attrs(context: SearchContext) -> dict[str, Any]:
    return {
        "target": context.target,
        "task": context.task.value,
        "recipe": recipe_to_json(context.recipe),
        "plan": context.plan.model_dump_json(),
        "scheme": context.scheme.to_dict(),
        "config": context.config.to_dict(),
        "deadline": context.deadline,
        "finish_folds": context.finish_folds,
        "finish_folds_reused": context.finish_folds_reused,
        "owner": context.owner,
        "n_rows": len(context.X),
    }


def _share_table(X: pd.DataFrame, y: pd.Series, *, target: str, work_dir: Path) -> dict[str, Any]:
    """Write ``X`` + ``y`` to a Parquet file for workers, atomically (temp file, then rename).

    A table Parquet cannot hold (mixed types in a column) does not stop local tuning: the
    study then records why workers cannot join.
    """
    if target in X.columns:
        raise ValueError(f"X already has a column named like the target {target!r}.")
    frame = X.copy()
    frame[target] = y.to_numpy()
    path = Path(work_dir) / f"tuning-{uuid.uuid4().hex}.parquet"
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(temp)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise StorageError(f"Cannot write the training table for tuning workers: {exc.strerror or exc}.") from None
    except Exception as exc:  # pyarrow's type errors: the table is fine for pandas, not for Parquet
        temp.unlink(missing_ok=True)
        return {"data_path": None, "data_error": _one_line(exc)}
    return {"data_path": str(path.resolve()), "data_error": ""}


def _summary(folds: Sequence[float]) -> tuple[float, float]:
    finite = np.asarray([v for v in folds if math.isfinite(v)], dtype=float)
    return float(finite.mean()), float(finite.std(ddof=1)) if len(finite) > 1 else 0.0


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Params as JSON gives them back (tuples become lists, NumPy scalars Python ones), so a trial
    runs with exactly what any storage, and a later refit, will see."""
    return json.loads(json.dumps(params, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, BadInput):
        text = f"{type(exc).__name__}: {text}"
    return text[:_MAX_ERROR]
