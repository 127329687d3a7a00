"""A deliberately slow model: a real fitted Pipeline behind a fixed delay per call.

It lives in an importable module (not a test file) so that a real uvicorn process can unpickle it.
"""
from __future__ import annotations

import time
from typing import Any


class SlowModel:
    """Delegates to ``pipeline`` after sleeping ``delay_s`` seconds in every predict call."""

    def __init__(self, pipeline: Any, delay_s: float) -> None:
        self.pipeline = pipeline
        self.delay_s = delay_s
        self.feature_names_in_ = pipeline.feature_names_in_
        self.classes_ = pipeline.classes_

    def predict(self, X):
        time.sleep(self.delay_s)
        return self.pipeline.predict(X)

    def predict_proba(self, X):
        time.sleep(self.delay_s)
        return self.pipeline.predict_proba(X)


class BrokenModel(SlowModel):
    """Fails in every predict call with a message full of things an error body must not show."""

    def __init__(self, pipeline: Any) -> None:
        super().__init__(pipeline, delay_s=0.0)

    def predict(self, X):
        raise ValueError("SELECT * FROM secrets WHERE path='/srv/shipml/model.joblib'")

    predict_proba = predict
