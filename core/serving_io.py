"""Turning a fitted Pipeline's output into a table: shared by `predict` and, later, the service."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from core.errors import BadInput
from core.wording import plural


class UnreadableValues(BadInput):
    """The Pipeline could not read a value of the table (text in a column of numbers, say)."""


def required_columns(pipeline: Pipeline) -> tuple[str, ...]:
    """The raw columns the Pipeline was trained on (extra columns are ignored)."""
    return tuple(str(c) for c in getattr(pipeline, "feature_names_in_", ()))


@dataclass(frozen=True)
class Labelling:
    """How a binary version turns probabilities into labels: the decision threshold tuned on its
    positive class's probability. Both None for other tasks; ``positive`` also for versions
    trained before it was recorded, whose positive class is the second in sorted order."""

    threshold: float | None = None
    positive: str | None = None


def labelling_of(metrics: object) -> Labelling:
    """The labelling a version's metrics record (the registry row's, or ``model.json``'s
    ``metrics``); a missing or malformed entry reads as absent, as for a version without one."""
    if not isinstance(metrics, dict):
        return Labelling()
    threshold, positive = metrics.get("decision_threshold"), metrics.get("positive_class")
    number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
    return Labelling(float(threshold) if number else None, None if positive is None else str(positive))


def binary_labels(proba: np.ndarray, classes: Sequence, threshold: float, positive: str | None = None) -> np.ndarray:
    """A binary classifier's labels at its decision threshold: the positive class where its
    probability reaches ``threshold``, the other class elsewhere.

    Args:
        proba: Probabilities, one column per entry of ``classes``.
        classes: The model's two classes, sorted (its ``classes_``).
        threshold: The version's decision threshold.
        positive: The version's positive class, as text; None (versions trained before it was
            recorded) means the second class.
    """
    at = 0 if positive is not None and str(classes[0]) == str(positive) else 1
    return np.where(np.asarray(proba)[:, at] >= threshold, classes[at], classes[1 - at])


def predict_frame(pipeline: Pipeline, frame: pd.DataFrame, *, threshold: float | None = None,
                  positive: str | None = None) -> pd.DataFrame:
    """Predictions for every row: ``prediction`` and, for classifiers, ``proba_<class>``.

    For a binary classifier, ``threshold`` and ``positive`` (the tuned decision threshold and
    the positive class recorded with the version) decide the label, as :func:`binary_labels`.

    Raises:
        BadInput: The table lacks columns the model needs (they are named), or holds values the
            model cannot read (text in a column of numbers, say).
    """
    needed = required_columns(pipeline)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise BadInput(f"the table is missing {plural(len(missing), 'column')} the model needs: {shown}")
    X = frame[list(needed)] if needed else frame
    try:
        out = pd.DataFrame({"prediction": pipeline.predict(X)}, index=frame.index)
        proba = pipeline.predict_proba(X) if hasattr(pipeline, "predict_proba") else None
    except (ValueError, TypeError) as exc:  # the Pipeline's own message, which names the value
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UnreadableValues(f"the model cannot read the table's values ({reason}); each column must hold the "
                               "kind of values it held in training") from None
    if proba is not None:
        classes = list(pipeline.classes_)
        if threshold is not None and len(classes) == 2:
            out["prediction"] = binary_labels(proba, classes, threshold, positive)
        for i, cls in enumerate(classes):
            out[f"proba_{cls}"] = proba[:, i]
    return out.reset_index(drop=True)
