"""Turning a fitted Pipeline's output into a table: shared by `predict` and, later, the service."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from core.errors import BadInput


def required_columns(pipeline: Pipeline) -> tuple[str, ...]:
    """The raw columns the Pipeline was trained on (extra columns are ignored)."""
    return tuple(str(c) for c in getattr(pipeline, "feature_names_in_", ()))


def predict_frame(pipeline: Pipeline, frame: pd.DataFrame, *, threshold: float | None = None) -> pd.DataFrame:
    """Predictions for every row: ``prediction`` and, for classifiers, ``proba_<class>``.

    For a binary classifier, ``threshold`` (the tuned decision threshold recorded with the
    version) decides the label: the second class when its probability reaches it.

    Raises:
        BadInput: The table lacks columns the model needs (they are named).
    """
    needed = required_columns(pipeline)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise BadInput(f"the table is missing {len(missing)} column(s) the model needs: {shown}")
    X = frame[list(needed)] if needed else frame
    out = pd.DataFrame({"prediction": pipeline.predict(X)}, index=frame.index)
    if hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(X)
        classes = list(pipeline.classes_)
        if threshold is not None and len(classes) == 2:
            out["prediction"] = np.where(proba[:, 1] >= threshold, classes[1], classes[0])
        for i, cls in enumerate(classes):
            out[f"proba_{cls}"] = proba[:, i]
    return out.reset_index(drop=True)
