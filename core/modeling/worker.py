"""A tuning worker: another process (or machine) joining a running tuning study.

``tune(..., storage_url=URL, work_dir=DIR)`` records in the study everything a worker needs: a
Parquet copy of the training table, the target, task, recipe, feature plan, validation scheme,
tuning config and the shared deadline. A worker loads all of that and runs the same trial loop
as ``tune``, coordinating only through the study: the trial cap counts every process's trials,
the deadline is shared, and the round-robin over families reads the study's trials.

The storage URL is the Optuna database given to ``tune`` (``sqlite:////abs/path/optuna.db`` for
processes on one machine; ``postgresql+psycopg://user:password@host/db`` across machines, where
the Parquet path must also be reachable, e.g. a shared volume). The CLI passes it as
``python -m core worker --study NAME --storage URL``.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import optuna

from core.errors import BadInput
from core.modeling.tuning import (
    CANCELLED_ATTR,
    STUDY_ATTR,
    close_storage,
    context_from_attrs,
    make_sampler_and_pruner,
    open_storage,
    run_trials,
)


def run_worker(
    study_name: str,
    storage_url: str,
    *,
    max_trials: int | None = None,
    budget_s: float | None = None,
) -> int:
    """Join the study ``study_name`` and run trials until it is done.

    The worker stops at the study's trial cap or deadline, when its grid is done, when ``tune``
    was cancelled (checked about once a second, between folds), or earlier at its own limits.

    Args:
        study_name: The study's name (``TuningResult.study_name``, shown by the job).
        storage_url: The study's Optuna storage URL.
        max_trials: Run at most this many trials in this worker.
        budget_s: Stop starting trials after this many seconds.

    Returns:
        The number of trials this worker ran.

    Raises:
        BadInput: Bad limits, an unreachable storage, no such study, a study not made by
            ``tune``, or one whose training table cannot be read here.
    """
    if max_trials is not None and max_trials <= 0:
        raise BadInput(f"The number of trials must be positive, not {max_trials}.")
    if budget_s is not None and not budget_s > 0:
        raise BadInput(f"The time budget must be positive, not {budget_s}.")
    started = time.time()
    storage = open_storage(storage_url)
    try:
        try:
            study_id = storage.get_study_id_from_name(study_name)
        except KeyError:
            raise BadInput(f"No tuning study named {study_name!r} in that storage.") from None
        attrs = storage.get_study_user_attrs(study_id).get(STUDY_ATTR)
        if attrs is None:
            raise BadInput(f"The study {study_name!r} was not started by ShipML tuning.")
        context = context_from_attrs(attrs)
        # Each worker samples with its own seed: the same seed everywhere would repeat trials.
        sampler, pruner = make_sampler_and_pruner(context.config, seed=context.config.seed + os.getpid())
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        deadline = min(context.deadline or math.inf, started + budget_s if budget_s else math.inf)
        ran, _ = run_trials(study, context, deadline=None if math.isinf(deadline) else deadline,
                            max_own_trials=max_trials, should_stop=_cancel_flag(storage, study_id))
        return len(ran)
    finally:
        close_storage(storage)


def _cancel_flag(storage: optuna.storages.RDBStorage, study_id: int, every_s: float = 1.0) -> Callable[[], bool]:
    """Whether ``tune`` was cancelled, read from the study at most every ``every_s`` seconds."""
    last = [-math.inf, False]  # when read, what was read

    def cancelled() -> bool:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[:] = [now, bool(storage.get_study_user_attrs(study_id).get(CANCELLED_ATTR))]
        return bool(last[1])

    return cancelled

