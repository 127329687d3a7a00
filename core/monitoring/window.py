"""Drift of one deployment's recent window: its logged inputs against its version's reference sample.

What the Monitor page shows under "Data drift" (the CLI's ``monitor`` computes the same numbers):
feature drift (:func:`core.monitoring.drift.detect_drift`), prediction drift (the served model's
predictions on the reference sample against the logged predictions) and the features ranked by
drift and how much the model leans on each column (:func:`_reliance`: how far its output moves when
the column is shuffled on the reference sample, which needs no labels).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from core import registry
from core.config import Settings
from core.errors import BadInput
from core.monitoring.drift import ColumnDrift, DriftResult, RankedFeature, detect_drift, prediction_drift, \
    rank_by_drift_and_importance
from core.monitoring.health import logged_predictions
from core.serving_io import labelling_of, predict_frame
from core.store.models import Deployment

MIN_BUCKET_ROWS = 30  # a drift test on fewer rows says little
IMPORTANCE_ROWS = 1000  # the reliance on each column, from a sample: a ranking, not a publication


@dataclass(frozen=True)
class WindowDrift:
    """Drift of one window: per-feature verdicts, prediction drift and the review ranking."""

    result: DriftResult
    prediction: ColumnDrift | None  # None when it could not be computed (see ``notes``)
    ranked: tuple[RankedFeature, ...]
    reference: pd.DataFrame  # the compared columns of both sides (for the HTML report)
    current: pd.DataFrame
    notes: tuple[str, ...] = ()
    weighted: bool = False  # whether ``ranked`` weighs drift by importance (else drift alone)

    def table(self) -> pd.DataFrame:
        """One row per compared feature, most urgent first (drift x importance): its verdict, its
        severity (the score against its own threshold: 1 at the threshold, above 1 drifted, capped
        at 10, comparable across methods) and its importance (a share of the total; empty when it
        was not computed)."""
        order = {r.column: i for i, r in enumerate(self.ranked)}
        severity = {r.column: r.severity for r in self.ranked}
        importance = {r.column: r.importance for r in self.ranked} if self.weighted else {}
        rows = [{"column": c.column, "method": c.method, "score": c.score, "threshold": c.threshold,
                 "drifted": c.drifted, "severity": severity.get(c.column), "importance": importance.get(c.column),
                 "note": c.note}
                for c in self.result.columns]
        return pd.DataFrame(rows, columns=["column", "method", "score", "threshold", "drifted", "severity",
                                           "importance", "note"]).sort_values(
            "column", key=lambda s: s.map(order)).reset_index(drop=True)


def reference_sample(engine: Engine, deployment: Deployment, settings: Settings) -> pd.DataFrame:
    """The training reference sample stored with the deployment's version.

    Raises:
        BadInput: Neither the model folder nor the registry has it.
    """
    path = Path(deployment.model_dir) / "reference.parquet" if deployment.model_dir else None
    if path is None or not path.is_file():
        version = registry.get_version(engine, name=deployment.model_name, version=deployment.version)
        if not version.reference_file:
            raise BadInput("this model version has no reference sample")
        path = settings.models_dir / version.reference_file
    try:
        return pd.read_parquet(path)
    except OSError:
        raise BadInput("the reference sample of this model version is missing") from None


def window_drift(engine: Engine, deployment: Deployment, settings: Settings, log_engine: Engine, *,
                 since: datetime | None = None, until: datetime | None = None,
                 importance: bool = True) -> WindowDrift:
    """Drift of the deployment's logged inputs in ``[since, until)`` against its reference sample.

    Raises:
        BadInput: No reference sample, no logged predictions in the window, or no shared column.
    """
    reference, logged, columns = _compared(engine, deployment, settings, log_engine, since=since, until=until)
    target = _target(deployment)
    current = logged[columns].infer_objects()
    result = detect_drift(reference[columns], current)
    notes: list[str] = []
    prediction = None
    weights: dict[str, float] = {}
    pipeline, info = None, {}
    try:
        pipeline, info = registry.load_exported(Path(deployment.model_dir)) if deployment.model_dir else (None, {})
    except BadInput as exc:
        notes.append(f"prediction drift and importance need the model: {exc}")
    if pipeline is not None:
        features = [c for c in reference.columns if c != target]
        labelling = labelling_of(info.get("metrics"))
        try:
            # Labelled as the service labels them: a binary version at its decision threshold, not at 0.5.
            expected = predict_frame(pipeline, reference[features], threshold=labelling.threshold,
                                     positive=labelling.positive)["prediction"]
            prediction = prediction_drift(expected.reset_index(drop=True), logged["prediction"])
        except (BadInput, ValueError, KeyError) as exc:
            notes.append(f"prediction drift not computed: {str(exc)[:120]}")
        if importance:
            weights = _reliance(pipeline, reference[features], _task(deployment))
            if not weights:
                notes.append("importance not computed: the features are ranked by drift alone")
    return WindowDrift(result=result, prediction=prediction, ranked=rank_by_drift_and_importance(result, weights),
                       reference=reference[columns], current=current, notes=tuple(notes), weighted=bool(weights))


def drift_over_time(engine: Engine, deployment: Deployment, settings: Settings, log_engine: Engine, *,
                    since: datetime | None = None, until: datetime | None = None, freq: str = "1h") -> pd.DataFrame:
    """The window's drift bucket by bucket: when the inputs started to move, and which.

    Each bucket of ``freq`` with at least ``MIN_BUCKET_ROWS`` logged rows is compared with the
    reference sample as :func:`window_drift` compares the whole window (a bucket with fewer rows
    would drift or not by chance, so it is left out).

    Returns:
        One row per bucket, oldest first: ``time``, ``rows``, ``share_drifted``, ``drift_share``
        (the dataset's threshold), ``dataset_drifted`` and ``drifted`` (the drifted columns,
        comma-separated).

    Raises:
        BadInput: As :func:`window_drift`.
    """
    reference, logged, columns = _compared(engine, deployment, settings, log_engine, since=since, until=until)
    rows = []
    for time, part in logged.groupby(logged["created_at"].dt.floor(freq), sort=True):
        if len(part) < MIN_BUCKET_ROWS:
            continue
        result = detect_drift(reference[columns], part[columns].infer_objects())
        rows.append({"time": time, "rows": len(part), "share_drifted": result.share_drifted,
                     "drift_share": result.drift_share, "dataset_drifted": result.dataset_drifted,
                     "drifted": ", ".join(result.drifted_columns)})
    return pd.DataFrame(rows, columns=["time", "rows", "share_drifted", "drift_share", "dataset_drifted", "drifted"])


def _compared(engine: Engine, deployment: Deployment, settings: Settings, log_engine: Engine, *,
              since: datetime | None, until: datetime | None) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The reference sample, the window's logged rows with their inputs, and the columns both hold
    (the target left out)."""
    reference = reference_sample(engine, deployment, settings)
    logged = logged_predictions(log_engine, model_name=deployment.model_name, version=deployment.version,
                                since=since, until=until, inputs=True)
    if logged.empty:
        raise BadInput("no logged predictions in this window yet")
    target = _target(deployment)
    columns = [c for c in reference.columns if c in logged.columns and c != target]
    if not columns:
        raise BadInput("the logged requests share no column with the reference sample")
    return reference, logged, columns


def _meta(deployment: Deployment) -> dict:
    import json

    try:
        return json.loads((Path(deployment.model_dir) / "model.json").read_text()) if deployment.model_dir else {}
    except (OSError, ValueError):
        return {}


def _target(deployment: Deployment) -> str | None:
    return _meta(deployment).get("target")


def _task(deployment: Deployment) -> str | None:
    return _meta(deployment).get("task")


def _reliance(pipeline, X: pd.DataFrame, task: str | None) -> dict[str, float]:
    """How much the model leans on each column of ``X`` (its reference sample): how far its output
    moves when the column is shuffled, on at most ``IMPORTANCE_ROWS`` rows, two shuffles each. For
    a classifier the mean total-variation distance between its class probabilities before and
    after (a label flip would miss a move that stays on one side of the threshold); for a
    regression the mean absolute change over the predictions' standard deviation. It compares the
    model with itself, so it needs no labels (the reference sample has none). Empty when it cannot
    be computed."""
    if task is None or X.empty:
        return {}
    rng = np.random.default_rng(0)
    sample = X.sample(min(len(X), IMPORTANCE_ROWS), random_state=0).reset_index(drop=True)
    classifier = task != "regression"

    def output(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(pipeline.predict_proba(frame) if classifier else pipeline.predict(frame), dtype=float)

    try:
        base = output(sample)
        scale = 1.0 if classifier else float(np.std(base)) or 1.0
        moves = {}
        for column in sample.columns:
            change = 0.0
            for _ in range(2):
                shuffled = sample.copy()  # not assign(**...): a column name need not be a string
                shuffled[column] = rng.permutation(sample[column].to_numpy())
                delta = np.abs(output(shuffled) - base)
                change += float((0.5 * delta.sum(axis=1) if classifier else delta / scale).mean()) / 2
            moves[str(column)] = change
    except (AttributeError, ValueError, TypeError):  # no predict_proba, or rows the model cannot take
        return {}
    return moves
