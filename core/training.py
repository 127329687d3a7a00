"""Training, start to finish: checks, holdout, tuning, evaluation, registration.

The CLI's ``train`` command and the background training job both call :func:`train_model`,
so a model trained headless and one trained in the browser go through the same steps.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits
from sqlalchemy.engine import Engine

from core.config import Settings
from core.data.profile import Task, infer_task
from core.errors import BadInput
from core.modeling.evaluation import EvaluationReport, evaluate, per_class_table
from core.modeling.metrics import default_metric, positive_class
from core.modeling.specs import get_spec, specs_for
from core.modeling.splits import CVScheme, choose_scheme, holdout_split, tuning_sample
from core.modeling.tuning import TrialRecord, TuningConfig, TuningResult, tune
from core.prep.pipeline import build_pipeline, transformed_sample
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table, recipe_to_json
from core.prep.steps import Recipe
from core.registry import VersionMeta, register_version
from core.store.models import ModelVersion
from core.wording import plural


# Kept back from the budget for what follows the winner's fits: the baseline, scoring, saving.
# The fits themselves are reserved by the search from the leader's fold time (finish_folds).
REGISTRATION_RESERVE_S = 1.5
# Tables with fewer tuning rows than this are tuned with SMALL_TABLE_FOLDS folds (see tuning_scheme).
SMALL_TABLE_ROWS = 2_000
SMALL_TABLE_FOLDS = 10
# Fewer rows than this get a warning: a test fold of 16 rows or fewer moves by whole rows.
FEW_ROWS = 100


class TrainingCancelled(Exception):
    """Tuning was cancelled: nothing is evaluated or registered; the trials so far are kept."""

    def __init__(self, tuning: TuningResult) -> None:
        super().__init__("training was cancelled")
        self.tuning = tuning


@dataclass(frozen=True)
class TrainRequest:
    """What the analyst asked for."""

    model_name: str
    target: str
    config: TuningConfig = field(default_factory=lambda: TuningConfig(models=()))
    task: Task | None = None  # None: inferred from the target
    cv_kind: str | None = None  # None: chosen from the task and the time/group columns
    n_folds: int = 5
    time_column: str | None = None
    group_column: str | None = None
    allow_shuffled_time: bool = False
    holdout_share: float = 0.2
    description: str = ""


@dataclass(frozen=True)
class PreparedData:
    """The checked training table and how it will be validated."""

    X: pd.DataFrame
    y: pd.Series
    task: Task
    scheme: CVScheme
    config: TuningConfig
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class TrainOutcome:
    version: ModelVersion
    tuning: TuningResult
    report: EvaluationReport
    task: Task
    warnings: tuple[str, ...]


def prepare(frame: pd.DataFrame, recipe: Recipe, plan: FeaturePlan, request: TrainRequest, *, seed: int) -> PreparedData:
    """Every check that can fail on the user's input, before any training starts.

    Raises:
        BadInput: Missing target, a target with one class, a text target for regression, a
            class with fewer rows than folds, no usable feature, or a bad tuning config (a
            positive class the target lacks, or one given for a task that is not binary).
    """
    if request.target not in frame.columns:
        raise BadInput(f"the target column {request.target!r} is not in the table")
    X, y = prepare_training_table(frame, recipe, target=request.target)
    if y.nunique() < 2:
        raise BadInput(f"the target {request.target!r} has only one value ({y.iloc[0]!r}); there is nothing to predict")
    task = request.task or infer_task(y)
    if task == Task.REGRESSION and not pd.api.types.is_numeric_dtype(y):
        raise BadInput(f"the target {request.target!r} holds text, so it cannot be predicted by regression; choose classification")
    if task == Task.BINARY and y.nunique() != 2:
        raise BadInput(f"a binary task needs exactly two classes; {request.target!r} has {y.nunique()}")
    config = request.config
    if not config.metric:
        config = dataclasses.replace(config, metric=default_metric(task))
    if task == Task.BINARY:  # recorded in the config, so every trial, worker and retrain uses the same
        config = dataclasses.replace(config, positive_class=positive_class(y, config.positive_class))
    elif config.positive_class is not None:
        raise BadInput(f"a positive class applies to a binary target; this task is {task.value}")
    config.validate(task)
    if config.log_target and (low := float(y.min())) < 0:
        raise BadInput(f"learning the log of the target needs values of 0 or more; {request.target!r} has "
                       f"{plural(int((y < 0).sum()), 'value')} below 0 (the lowest is {low:g})")
    frame_xy = X.assign(**{request.target: y.to_numpy()})
    scheme, warnings = choose_scheme(
        frame_xy, task=task, y=y, n_folds=request.n_folds, seed=seed, time_column=request.time_column,
        group_column=request.group_column, kind=request.cv_kind, allow_shuffled_time=request.allow_shuffled_time,
    )
    if len(y) < FEW_ROWS:
        warnings = (*warnings, f"Only {plural(len(y), 'row')} to learn from: on so few rows the scores change a lot "
                               "from fold to fold (see the ± of each) and the holdout's score rests on a handful of "
                               "rows. More rows would help the model more than a longer search.")
    sample = transformed_sample(frame_xy.head(2_000), recipe, plan, target=request.target, n=1, seed=seed)
    if sample.n_features == 0:
        raise BadInput("no usable feature columns are left after cleaning and feature selection")
    if all(X[column].nunique(dropna=False) <= 1 for column in X.columns):  # stops at the first that varies
        raise BadInput("every feature column holds the same value in every row: there is nothing to learn from")
    return PreparedData(X=X, y=y, task=task, scheme=scheme, config=config, warnings=warnings)


def _per_class(report: EvaluationReport) -> list[dict[str, Any]]:
    """:func:`per_class_table` at the report's threshold, as JSON-ready records (NaN as null)."""
    table = per_class_table(report, report.threshold if report.threshold is not None else 0.5)
    return json.loads(table.to_json(orient="records"))  # NaN (a class never predicted) becomes null


def learnt_log_target(version: ModelVersion) -> bool:
    """Whether the version's model learned the log of its target (a regression trained with
    ``TuningConfig.log_target``); its predictions are in the target's units all the same."""
    return bool(json.loads(version.cv_json or "{}").get("tuning", {}).get("log_target"))


def tuning_folds(version: ModelVersion) -> int:
    """How many folds the search scored the version's trials with: more than its report's on a
    small table (see :func:`tuning_scheme`), the same otherwise."""
    cv = json.loads(version.cv_json or "{}")
    return int(cv.get("tuning_n_folds", cv.get("n_folds", 0)))


def tuning_rows(version: ModelVersion) -> int | None:
    """How many training rows a large table's search and cross-validation ran on, or None when
    they ran on all of them."""
    rows = json.loads(version.cv_json or "{}").get("tuning_rows")
    return None if rows is None else int(rows)


def class_weighted(version: ModelVersion) -> bool:
    """Whether the version's model learned with balanced class weights: they were asked for and
    its family can use them (a k-nearest-neighbours winner learns from the rows as they are)."""
    tuning = json.loads(version.cv_json or "{}").get("tuning")
    if not tuning:
        return False
    task = Task(version.task)
    return TuningConfig.from_dict(tuning).class_weight_for(get_spec(version.model_family, task), task) is not None


def tuning_scheme(scheme: CVScheme, y: pd.Series, task: Task) -> CVScheme:
    """The scheme tuning cross-validates with: on small tables, more folds than the report's.

    On a small table a trial is cheap, and with 5 folds every model learns from only 64 % of the
    rows (after the holdout) while the shipped one learns from all of them; configurations that
    need more rows (more boosting rounds) are then underrated, and the ranking of the leaders is
    mostly fold noise. With 10 folds the training folds are closer to the final fit. (On
    ``concrete``, two samples of 60 LightGBM configurations: the best of 40 by 10-fold CV scored
    R² 0.929/0.933 on average on the benchmark's test rows and 0.927/0.930 on the holdout, the
    best by 5-fold 0.921/0.928 and 0.924/0.929.) Shuffled k-fold and stratified schemes only;
    grouped and time splits keep theirs, and a class too rare for the extra folds caps them.
    The evaluation report keeps the requested folds.
    """
    if scheme.kind not in ("kfold", "stratified") or len(y) >= SMALL_TABLE_ROWS:
        return scheme
    folds = SMALL_TABLE_FOLDS
    if task is not Task.REGRESSION:
        folds = min(folds, int(y.value_counts().min()))
    return dataclasses.replace(scheme, n_folds=max(folds, scheme.n_folds))


def finish_folds(report: CVScheme, search: CVScheme, holdout_share: float, *, reuse_cv: bool = False,
                 sample_share: float = 1.0) -> float:
    """How many fits of the winner follow the search, counted in the search's fold fits.

    The evaluation cross-validates the winner with the report's ``k`` folds (each fit on
    (k-1)/k of the tuning rows), unless it reuses tuning's cross-validation (``reuse_cv``),
    and fits it on all tuning rows to score the holdout; the version then ships a fit on
    every row, holdout included (and, for a large table tuned on a sample, the ``sample_share``
    of the training rows, the rest too). A fit's time grows about linearly with its rows, and a
    search fold fits (k'-1)/k' of the tuning rows. (On ``deliveries``, histogram gradient
    boosting's finish took 7.6 of its tuning folds' time; this gives 7.8, or 2.8 reusing the CV.)
    """
    rows = (0 if reuse_cv else report.n_folds - 1) + 1 + 1 / ((1 - holdout_share) * sample_share)
    return rows / ((search.n_folds - 1) / search.n_folds)


def train_model(
    frame: pd.DataFrame,
    *,
    dataset_hash: str,
    recipe: Recipe,
    plan: FeaturePlan,
    request: TrainRequest,
    engine: Engine,
    settings: Settings,
    on_trial: Callable[[TrialRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> TrainOutcome:
    """Check, tune within the budget, evaluate the best model and register it as a version.

    The holdout share of rows is split off first and kept out of tuning and cross-validation;
    it is scored once, by the winner fit on the training rows, and the version registered is the
    winner refit on all rows. Small tables are tuned with more folds (:func:`tuning_scheme`);
    otherwise the winner's tuning cross-validation is the report's and is not fitted again.
    """
    stage = on_stage or (lambda _: None)
    started = time.monotonic()
    data = prepare(frame, recipe, plan, request, seed=settings.random_seed)
    X_train, X_hold, y_train, y_hold = holdout_split(
        data.X, data.y, task=data.task, scheme=data.scheme, share=request.holdout_share
    )
    warnings, sample_share = data.warnings, 1.0
    sample = tuning_sample(X_train, y_train, task=data.task, scheme=data.scheme, max_rows=settings.tuning_max_rows)
    if sample is not None:
        sample_share = len(sample) / len(X_train)
        warnings = (*warnings, f"Tuned and cross-validated on a sample of {len(sample):,} of the {len(X_train):,} "
                               f"training rows, so that the search runs more than a few trials in its budget; the "
                               f"holdout's {len(X_hold):,} rows were scored once, and the registered model learnt "
                               f"from all {len(data.X):,} rows.")
        X_train, y_train = X_train.iloc[sample], y_train.iloc[sample]
    stage("tuning")
    config = data.config
    if config.budget_s is not None:
        # The budget covers the whole training: the search keeps back the time its winner's
        # evaluation and refit will take (finish_folds), this the rest of registering it.
        left = config.budget_s - (time.monotonic() - started) - REGISTRATION_RESERVE_S
        config = dataclasses.replace(config, budget_s=max(1.0, left))
    search_scheme = tuning_scheme(data.scheme, y_train, data.task)
    # When tuning fits the very models the report would (same folds, same seed), the winner's
    # tuning cross-validation is the report's: it is kept, not fitted again.
    reuse = search_scheme == data.scheme and config.seed == settings.random_seed
    tuning = tune(
        X_train, y_train, task=data.task, recipe=recipe, plan=plan, target=request.target, scheme=search_scheme,
        config=config, on_trial=on_trial, should_stop=should_stop,
        finish_folds=finish_folds(data.scheme, search_scheme, request.holdout_share, sample_share=sample_share),
        finish_folds_reused=finish_folds(data.scheme, search_scheme, request.holdout_share, reuse_cv=True,
                                         sample_share=sample_share) if reuse else None,
    )
    if tuning.stopped == "cancelled":
        raise TrainingCancelled(tuning)
    if tuning.best is None:
        raise BadInput("no trial finished within the budget; give training more time")
    best = tuning.best
    spec = get_spec(best.model, data.task)

    def make_pipeline():
        estimator = data.config.build(spec, best.params, data.task, seed=settings.random_seed)
        return build_pipeline(recipe, plan, target=request.target, estimator=estimator, seed=settings.random_seed)

    stage("evaluating")
    with threadpool_limits(1):  # see tuning: competing OpenMP pools are far slower on small machines
        report = evaluate(
            make_pipeline, X_train, y_train, task=data.task, scheme=data.scheme, metric=data.config.metric,
            seed=settings.random_seed, X_holdout=X_hold, y_holdout=y_hold, cv=tuning.best_cv,
            positive=data.config.positive_class,
        )
        stage("registering")
        # The holdout has been scored once; the model that ships learns from every row, as the
        # peers' final models do (a fifth more data is worth more than a held-back check now).
        final = make_pipeline().fit(data.X, data.y)
    meta = VersionMeta(
        dataset_hash=dataset_hash, target=request.target, task=data.task.value, recipe_json=recipe_to_json(recipe),
        plan_json=plan.model_dump_json(), model_family=best.model, params=dict(best.params),
        metrics={m.name: {"mean": m.mean, "std": m.std, "baseline": m.baseline_mean} for m in report.metrics}
        | {"holdout": report.holdout or {}}
        # The service labels rows with these two (core.serving_io.binary_labels).
        | ({"decision_threshold": report.threshold, "positive_class": data.config.positive_class}
           if report.threshold is not None else {})
        # Each class's scores (out-of-fold, at the threshold): the model card's disaggregated view.
        | ({"per_class": _per_class(report)} if data.task is not Task.REGRESSION else {}),
        # The tuning config is kept so a retrain can search the same space (core.monitoring.retrain).
        cv=data.scheme.to_dict() | {"holdout_share": request.holdout_share, "final_fit": "all rows (training + holdout)",
                                    "tuning": data.config.to_dict(), "tuning_n_folds": search_scheme.n_folds}
        | ({"tuning_rows": len(X_train)} if sample is not None else {})
        | ({"decision_threshold_maximises": report.threshold_metric} if report.threshold_metric else {}),
        training_seconds=time.monotonic() - started, description=request.description,
    )
    version = register_version(engine, name=request.model_name, pipeline=final, meta=meta, reference=data.X, settings=settings)
    if data.config.class_weight and data.task is not Task.REGRESSION and not spec.supports_class_weight:
        able = ", ".join(s.title for s in specs_for(data.task) if s.supports_class_weight)
        warnings += (f"Class weights were asked for, but the winner, {spec.title}, cannot weight classes, so it "
                     f"learned from the rows as they are. Choose models that can ({able}) if the weights matter.",)
    return TrainOutcome(version=version, tuning=tuning, report=report, task=data.task, warnings=warnings)
