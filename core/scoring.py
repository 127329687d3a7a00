"""Scoring a table with a registered version, from the browser: what `core predict` does with an
exported model folder, for analysts who never leave the app."""
from __future__ import annotations

import pandas as pd

from core import registry
from core.config import Settings
from core.serving_io import predict_frame
from core.store.models import ModelVersion

INPUT_SUFFIX = " (in the file)"  # for a column of the file named like a prediction column


def score_table(version: ModelVersion, frame: pd.DataFrame, *, settings: Settings) -> pd.DataFrame:
    """The version's predictions for the file's rows, each next to the row's own columns.

    The first columns are ``prediction`` and, for a classifier, ``proba_<class>`` per class, as
    the service and `core predict` give them: a binary version labels rows at its decision
    threshold on its positive class's probability. The file's columns follow, those the model
    does not use included, so a file that holds the true target can be checked by eye.

    Args:
        version: A READY version.
        frame: The rows to score, as read from the file.
        settings: Where the model files live.

    Raises:
        BadInput: The model file fails its hash check, or the table lacks columns the model
            needs (they are named).
    """
    pipeline = registry.load_pipeline(version, settings=settings)
    predictions = predict_frame(pipeline, frame, threshold=registry.decision_threshold(version),
                                positive=registry.positive_class(version))
    return predictions.join(frame.reset_index(drop=True), rsuffix=INPUT_SUFFIX)
