"""Scoring a table with a registered version, from the browser: what `core predict` does with an
exported model folder, for analysts who never leave the app, and whether the version's service
would take the same rows."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from core import registry
from core.config import Settings
from core.serving.model import request_schema
from core.serving.schema import FieldError, SchemaError
from core.serving_io import Labelling, UnreadableValues, predict_frame, required_columns
from core.store.models import ModelVersion

INPUT_SUFFIX = " (in the file)"  # for a column of the file named like a prediction column


@dataclass(frozen=True)
class ScoredFile:
    """A file's rows scored by a version.

    Attributes:
        table: ``prediction`` and, for a classifier, ``proba_<class>`` per class, then the file's
            own columns.
        refused: What the version's prediction service, with its default settings, would refuse
            in the model's columns of these rows, one line per column and problem; empty when it
            would take every row. The Pipeline scores more leniently than the service checks: an
            unseen category, for one, is scored here as the encoders treat any unknown value.
    """

    table: pd.DataFrame
    refused: tuple[str, ...]
    against_target: TargetScores | None = None


@dataclass(frozen=True)
class TargetScores:
    """How a version's predictions for a file compare with the target the file holds.

    Attributes:
        target: The target column.
        rows: The rows with a target value, which the scores cover.
        scores: Every metric of the version's task, as the Evaluate page names them.
        trained_on: The file is the very data the version was trained on (its hash matches), so
            the scores flatter the model: it learnt these rows.
    """

    target: str
    rows: int
    scores: dict[str, float]
    trained_on: bool = False


def target_scores(predictions: pd.DataFrame, frame: pd.DataFrame, *, target: str, task: str,
                  positive: str | None = None, trained_on: bool = False) -> TargetScores | None:
    """The metrics of ``predictions`` (as :func:`core.serving_io.predict_frame` gives them for
    ``frame``'s rows) against ``frame[target]``, as the Monitor page scores labelled predictions;
    None when the file has no such column or no row has a value in it.

    A class the model never saw counts as a miss; a regression target that is not a number is
    left out with the missing ones.
    """
    from core.monitoring.performance import score_rows  # late: only a file with its target needs it

    if target not in frame.columns:
        return None
    labels = frame[target].reset_index(drop=True)
    joined = predictions.assign(label=labels)[labels.notna()]
    if task == "regression":
        joined = joined[pd.to_numeric(joined["label"], errors="coerce").notna()]
    if joined.empty:
        return None
    with warnings.catch_warnings():  # a metric undefined on these rows is nan, and shown as such
        warnings.simplefilter("ignore")
        scores = score_rows(joined, task=task, positive=positive)
    return TargetScores(target=target, rows=len(joined), scores=scores, trained_on=trained_on)


def score_table(version: ModelVersion, frame: pd.DataFrame, *, settings: Settings,
                content_hash: str | None = None) -> ScoredFile:
    """The version's predictions for the file's rows, each next to the row's own columns, and
    what its service would refuse in them.

    The first columns are ``prediction`` and, for a classifier, ``proba_<class>`` per class, as
    the service and `core predict` give them: a binary version labels rows at its decision
    threshold on its positive class's probability. The file's columns follow, those the model
    does not use included, so a file that holds the true target can be checked by eye; and the
    version's metrics against that target are computed.

    Args:
        version: A READY version.
        frame: The rows to score, as read from the file.
        settings: Where the model files live.
        content_hash: The file's hash, to tell whether it is the data the version learnt from.

    Raises:
        BadInput: The model file fails its hash check, or the table lacks columns the model
            needs (they are named).
    """
    pipeline = registry.load_pipeline(version, settings=settings)
    labelling = registry.labelling(version)
    predictions, refused = predict_with_refusals(pipeline, settings.models_dir / version.reference_file, frame,
                                                 labelling)
    table = predictions.join(frame.reset_index(drop=True), rsuffix=INPUT_SUFFIX)
    return ScoredFile(table=table, refused=refused,
                      against_target=target_scores(predictions, frame, target=version.target, task=version.task,
                                                   positive=labelling.positive,
                                                   trained_on=content_hash == version.dataset_hash))


def predict_with_refusals(pipeline, reference_file: Path, frame: pd.DataFrame,
                          labelling: Labelling) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """:func:`core.serving_io.predict_frame`'s predictions, and :func:`service_refusals`'s lines.

    Raises:
        BadInput: As ``predict_frame``; when the model cannot read a value, the message names the
            columns it learnt as numbers that hold other text, and the file's rows where they do.
    """
    try:
        predictions = predict_frame(pipeline, frame, threshold=labelling.threshold, positive=labelling.positive)
    except UnreadableValues as exc:
        where = _text_among_numbers(_reference(reference_file), frame[list(required_columns(pipeline))])
        if not where:
            raise
        raise UnreadableValues(f"{exc}: {'; '.join(where[:3])}") from None
    return predictions, service_refusals(pipeline, reference_file, frame)


def _text_among_numbers(reference: pd.DataFrame | None, frame: pd.DataFrame) -> tuple[str, ...]:
    """The model's columns it learnt as numbers that hold text which is no number, with the file's rows
    (a reader has turned the column's numbers into text too, so only these rows are to blame)."""
    if reference is None:
        return ()
    lines = []
    for column in frame.columns:
        if column not in reference.columns or not ptypes.is_numeric_dtype(reference[column]) \
                or ptypes.is_numeric_dtype(frame[column]):
            continue
        values = frame[column]
        text = (values.notna() & pd.to_numeric(values, errors="coerce").isna()).to_numpy()
        if text.any():
            rows = tuple(int(i) for i in np.flatnonzero(text)[:5])
            lines.append(_refusal(FieldError(column, "number", "text that is not a number", rows)))
    return tuple(lines)


def _reference(reference_file: Path) -> pd.DataFrame | None:
    try:
        return pd.read_parquet(reference_file)
    except OSError:  # the service then types every column as text; so do the checks
        return None


def service_refusals(pipeline, reference_file: Path, frame: pd.DataFrame) -> tuple[str, ...]:
    """What the model's prediction service, with its default settings, would refuse in ``frame``,
    one line per column and problem: its schema check on the model's columns, the rows sent as a
    client's JSON would send them (missing values as null, dates as ISO text).

    Args:
        pipeline: The model's Pipeline.
        reference_file: Its reference sample of training rows (``reference.parquet``).
        frame: The rows to check.
    """
    schema = request_schema(pipeline, _reference(reference_file))
    present = [c for c in schema.names if c in frame.columns]  # a missing one is the check's to report
    rows = json.loads(frame[present].to_json(orient="records", date_format="iso", date_unit="s"))
    try:
        schema.check_records(rows)
    except SchemaError as exc:
        return tuple(_refusal(error) for error in exc.errors)
    return ()


def _refusal(error: FieldError) -> str:
    where = f"'{error.column}'" if error.column is not None else "the rows"
    # The check names at most five rows, counted from 0; a person counts a file's rows from 1.
    rows = ", ".join(str(i + 1) for i in error.rows) + (", …" if len(error.rows) == 5 else "")
    at = f" ({'row' if len(error.rows) == 1 else 'rows'} {rows} of the file)" if error.rows else ""
    return f"{where}: expected {error.expected}, got {error.got}{at}"
