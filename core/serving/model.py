"""The served model: loaded once, hash-verified, with its request schema and its predict function.

Predictions follow ``core.serving_io.predict_frame`` exactly: classifiers give the label and
one probability per class, and a binary classifier applies the version's tuned
``decision_threshold`` (from ``model.json``) to its ``positive_class``'s probability.

Requests go through the fast path (``core.serving.fastpath``) when it can compile the Pipeline,
and through the Pipeline itself otherwise (or when ``serve_fastpath_max_rows`` is 0). The fast
path is vectorised, so large requests use it too, in slices of at most ``fast_max_rows`` rows:
that bounds the memory of one call (a dense float matrix of rows x features) and is as fast as
one call on everything (measured: 10,000 churn rows in slices of 512 or at once, the same time).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.registry import load_exported
from core.prep.transformers import FixTypeTransformer
from core.serving.schema import InputSchema, TextParse, infer_schema, make_frame
from core.serving_io import binary_labels, labelling_of, required_columns

log = logging.getLogger("shipml.serving")


@dataclass(frozen=True)
class Predictions:
    """Model output for a batch: labels or values, and per-class probabilities for classifiers."""

    values: list[Any]  # plain Python values, JSON-ready
    proba: np.ndarray | None
    classes: tuple[str, ...] | None  # class labels as text (the JSON keys of the probabilities)
    raw_classes: tuple[Any, ...] | None = None  # the labels as the model holds them


@dataclass(frozen=True)
class LoadedModel:
    """Everything the service needs from a model directory, loaded once at start-up."""

    pipeline: Any
    info: dict
    schema: InputSchema
    fast: Any | None  # a FastPredictor, or None when the fast path does not cover this Pipeline
    fast_max_rows: int  # rows per fast-path call; 0 turns the fast path off

    @property
    def name(self) -> str:
        return str(self.info.get("name", ""))

    @property
    def version(self) -> int:
        return int(self.info.get("version") or 0)

    @property
    def task(self) -> str:
        return str(self.info.get("task", ""))

    @property
    def sha256(self) -> str:
        return str(self.info.get("sha256", ""))

    @property
    def is_classifier(self) -> bool:
        return hasattr(self.pipeline, "predict_proba")

    @property
    def threshold(self) -> float | None:
        return labelling_of(self.info.get("metrics")).threshold

    @property
    def positive_class(self) -> str | None:
        return labelling_of(self.info.get("metrics")).positive

    @property
    def classes(self) -> tuple[Any, ...]:
        return tuple(getattr(self.pipeline, "classes_", ()))

    @property
    def predictor(self) -> dict[str, str]:
        """What answers requests: the fast path or the Pipeline, and for LightGBM the trees'
        state (``booster``, ``compiling``, ``compiled`` or why not)."""
        path = "fast path" if self.fast is not None and self.fast_max_rows > 0 else "pipeline"
        trees = getattr(self.fast, "trees", None)
        out = {"path": path}
        if trees is not None and path == "fast path":
            out["trees"] = trees.path
            out["trees_state"] = trees.state
        return out

    def accelerate(self, cache_dir: Path) -> None:
        """Start compiling a LightGBM model's trees (no-op otherwise); see ``core.serving.accel``."""
        if self.fast is not None and self.fast_max_rows > 0 and hasattr(self.fast, "accelerate"):
            self.fast.accelerate(cache_dir)

    def stop_accelerating(self) -> None:
        """Stop compiling trees (shutdown): a compiler child must not outlive the service."""
        trees = getattr(self.fast, "trees", None)
        if trees is not None:
            trees.close()

    def predict_columns(self, columns: dict[str, np.ndarray], n_rows: int) -> Predictions:
        """Predict rows given as checked column arrays (see ``InputSchema.columns_from_records``).

        Building a DataFrame costs more than predicting a row on the fast path, so a fast path
        that takes the arrays directly (``predict_columns``) gets them; otherwise a frame is made.
        """
        direct = getattr(self.fast, "predict_columns", None) if self.fast_max_rows > 0 and n_rows else None
        if direct is None:
            return self.predict(make_frame(columns, self.schema.names, n_rows))
        step = self.fast_max_rows
        parts = [direct(columns if n_rows <= step else {k: v[i:i + step] for k, v in columns.items()},
                        min(step, n_rows - i)) for i in range(0, n_rows, step)]
        return self._finish(*_joined(parts))

    def predict(self, frame: pd.DataFrame) -> Predictions:
        """Predict every row of an already schema-checked frame."""
        step = self.fast_max_rows
        if self.fast is not None and step > 0 and len(frame):
            values, proba, classes = _joined([self.fast.predict(frame if len(frame) <= step else frame.iloc[i:i + step])
                                              for i in range(0, len(frame), step)])
        elif self.is_classifier:
            proba = self.pipeline.predict_proba(frame)
            classes = self.classes
            # With a tuned threshold the label follows from the probabilities alone.
            thresholded = self.threshold is not None and len(classes) == 2
            values = None if thresholded else self.pipeline.predict(frame)
        else:
            values, proba, classes = self.pipeline.predict(frame), None, None
        return self._finish(values, proba, classes)

    def _finish(self, values: Any, proba: Any, classes: tuple | None) -> Predictions:
        """Apply the binary decision threshold and make the values JSON-ready."""
        if proba is not None and classes:
            threshold = self.threshold
            if threshold is not None and len(classes) == 2:
                values = binary_labels(proba, classes, threshold, self.positive_class)
            return Predictions(_plain(values), np.asarray(proba, dtype=float),
                               tuple(str(c) for c in classes), tuple(classes))
        return Predictions(_plain(values), None, None)


def _joined(parts: list[tuple]) -> tuple[Any, Any, tuple | None]:
    """Fast-path results of consecutive slices as one ``(values, proba, classes)``."""
    values, proba, classes = parts[0]
    if len(parts) > 1:
        values = np.concatenate([p[0] for p in parts])
        proba = np.concatenate([p[1] for p in parts]) if proba is not None else None
    return values, proba, tuple(classes) if classes is not None else None


def _plain(values: Any) -> list[Any]:
    """numpy values as plain JSON values (NaN becomes None)."""
    out = np.asarray(values).tolist()
    return [None if isinstance(v, float) and v != v else v for v in out]


def load_model(model_dir: Path, *, extra_columns: str, unseen_categories: str, fast_max_rows: int) -> LoadedModel:
    """Load and verify a model directory written by ``core.registry.export_version``.

    Raises:
        BadInput: ``model.json`` is missing or the model file does not match its sha256.
    """
    pipeline, info = load_exported(model_dir)
    reference = None
    try:
        reference = pd.read_parquet(Path(model_dir) / "reference.parquet")
    except Exception:  # noqa: BLE001 - no sample: every column is typed as text
        log.warning("reference.parquet is missing or unreadable; the schema has no types")
    schema = request_schema(pipeline, reference, extra_columns=extra_columns, unseen_categories=unseen_categories)
    return LoadedModel(pipeline=pipeline, info=info, schema=schema, fast=_compile(pipeline),
                       fast_max_rows=fast_max_rows)


def request_schema(pipeline: Any, reference: pd.DataFrame | None, *, extra_columns: str = "reject",
                   unseen_categories: str = "reject") -> InputSchema:
    """The request schema the service enforces for this Pipeline (see
    :func:`core.serving.schema.infer_schema`); the policies default to the service's defaults.

    Args:
        pipeline: The model's fitted Pipeline.
        reference: The version's reference sample of raw training rows, or None.
        extra_columns: The service's policy for columns not in the schema.
        unseen_categories: Its policy for categories not seen in training.
    """
    names = required_columns(pipeline) or tuple(str(c) for c in (reference.columns if reference is not None else ()))
    return infer_schema(names, reference, kinds=_column_kinds(pipeline), parses=_text_parses(pipeline),
                        extra_columns=extra_columns, unseen_categories=unseen_categories)


def _text_parses(pipeline: Any) -> dict[str, TextParse]:
    """The raw columns a ShipML Pipeline's cleaning converts from text (a recipe's type fix), and
    how; only where the conversion is the first step to touch the column, so that the raw value
    the request holds is what it parses."""
    steps = getattr(pipeline, "named_steps", None)
    clean = steps.get("clean") if steps is not None else None
    parses: dict[str, TextParse] = {}
    touched: set[str] = set()
    for _, step in getattr(clean, "steps", ()):
        columns = [str(c) for c in getattr(step, "columns_", ())]
        if isinstance(step, FixTypeTransformer) and columns and columns[0] not in touched:
            parses[columns[0]] = TextParse(step.to, step.date_format, step.dayfirst)
        touched.update(columns)
    return parses


def _column_kinds(pipeline: Any) -> dict[str, str] | None:
    """What a ShipML Pipeline's feature step decided each column is, or None for other models."""
    steps = getattr(pipeline, "named_steps", None)
    kinds = getattr(steps.get("features"), "kinds_", None) if steps is not None else None
    return {str(k): str(v) for k, v in kinds.items()} if isinstance(kinds, dict) else None


def _compile(pipeline: Any) -> Any | None:
    """The fast path for this Pipeline, or None (no fast path module yet, or it does not cover it)."""
    try:
        from core.serving.fastpath import compile_pipeline

        return compile_pipeline(pipeline)
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - the Pipeline itself is always a correct fallback
        log.warning("the fast path could not compile this model; serving through the Pipeline")
        return None
