"""Live model performance: ground-truth labels joined to logged predictions, scored per window.

Labels arrive through the service's ``/feedback`` (table ``serving_feedback`` of the prediction
log) or as an uploaded file (:func:`labels_from_frame`). A label finds its prediction

- by ``request_id`` and row (row 0 when the row is not given), or
- by ``key`` (the request's ``X-Request-Key`` or a per-row key) and, if given, row; when the same
  key was predicted more than once, the label belongs to its latest prediction.

When several labels name the same prediction the last one counts (a correction). Windows are by
*prediction* time, so a late label improves the window it belongs to. Each window is scored with
the task's metrics from ``core.modeling.metrics`` (the same code that scored cross-validation) and
shown next to the version's training CV mean.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.data.profile import Task, has_target_value
from core.errors import BadInput
from core.modeling import metrics as mm
from core.monitoring.health import logged_predictions
from core.serving import predlog
from core.serving_io import labelling_of
from core.store.models import Deployment

MAX_LABEL_ROWS = 5_000_000
LABEL_COLUMNS = ("request_id", "row_index", "key", "label", "created_at")


@dataclass(frozen=True)
class ModelInfo:
    """What scoring needs to know about the served version."""

    name: str
    version: int
    task: str  # binary | multiclass | regression
    primary_metric: str  # the metric the version was tuned for
    training: dict[str, float]  # metric -> training CV mean
    positive_class: str | None = None  # binary: the class precision, recall and F1 describe


@dataclass(frozen=True)
class PerformanceReport:
    """The task's metrics per window of prediction time, next to the training CV scores.

    ``windows`` has columns ``window_start``, ``window_end``, ``labelled_rows`` and one column
    per metric (in ``metrics`` order); empty windows are left out.
    """

    model: ModelInfo
    metrics: tuple[str, ...]
    windows: pd.DataFrame
    labelled_rows: int  # predictions with a label, in the range
    unmatched_labels: int  # labels that found no prediction in the range

    @property
    def latest(self) -> dict | None:
        """The newest window as a dict, or None without labelled rows."""
        return None if self.windows.empty else self.windows.iloc[-1].to_dict()

    def comparison(self) -> pd.DataFrame:
        """One row per metric: training CV mean, latest window, and the change (live - training)."""
        latest = self.latest or {}
        rows = []
        for name in self.metrics:
            live, train = latest.get(name), self.model.training.get(name)
            rows.append({"metric": name, "label": mm.METRICS[name].label, "training_cv": train, "latest": live,
                         "change": (live - train) if live is not None and train is not None else None,
                         "greater_is_better": mm.METRICS[name].greater_is_better})
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------- model info


def model_info_from_metadata(meta: dict) -> ModelInfo:
    """From an exported model's ``model.json`` (or the same fields of a registry row)."""
    task = str(meta["task"])
    primary = mm.tuned_metric(meta.get("cv"), Task(task))
    metrics = meta.get("metrics") or {}
    training = {name: float(v["mean"]) for name, v in metrics.items()
                if isinstance(v, dict) and "mean" in v and v["mean"] is not None}
    return ModelInfo(name=str(meta["name"]), version=int(meta["version"]), task=task, primary_metric=primary,
                     training=training, positive_class=labelling_of(metrics).positive)


def model_info(store: Engine, *, model_name: str, version: int, model_dir: Path | None = None) -> ModelInfo:
    """The version's task and training scores: from ``model_dir/model.json`` if given, else the registry."""
    if model_dir is not None and (Path(model_dir) / "model.json").is_file():
        return model_info_from_metadata(json.loads((Path(model_dir) / "model.json").read_text()))
    from core import registry

    row = registry.get_version(store, name=model_name, version=version)
    return model_info_from_metadata({"name": row.model_name, "version": row.version, "task": row.task,
                                     "metrics": json.loads(row.metrics_json), "cv": json.loads(row.cv_json)})


# --------------------------------------------------------------------------- labels


def read_feedback(log_engine: Engine, *, model_name: str, version: int | None = None) -> pd.DataFrame:
    """Labels received through ``/feedback``, oldest first (columns :data:`LABEL_COLUMNS`)."""
    t = predlog.FEEDBACK
    query = sa.select(t.c.request_id, t.c.row_index, t.c.key, t.c.label, t.c.created_at).where(
        t.c.model_name == model_name)
    if version is not None:
        query = query.where(t.c.model_version == int(version))
    with log_engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.id)).mappings().all()
    frame = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    frame["label"] = [msgspec.json.decode(v) for v in frame["label"]]
    return frame


def labels_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Check an uploaded labels table and bring it to the feedback form (:data:`LABEL_COLUMNS`).

    The table needs a ``label`` column and ``request_id`` or ``key`` (or both; each row needs
    one of them); ``row`` or ``row_index`` is optional. Row order is kept: a later row for the
    same prediction wins.

    Raises:
        BadInput: Missing columns, too many rows, or rows naming no prediction.
    """
    names = {str(c).strip().lower(): c for c in frame.columns}
    if "label" not in names:
        raise BadInput("the labels file needs a 'label' column")
    if "request_id" not in names and "key" not in names:
        raise BadInput("the labels file needs a 'request_id' or a 'key' column")
    if len(frame) > MAX_LABEL_ROWS:
        raise BadInput(f"the labels file has more than {MAX_LABEL_ROWS:,} rows")
    out = pd.DataFrame(index=range(len(frame)))
    for column in ("request_id", "key"):
        values = frame[names[column]].reset_index(drop=True) if column in names else pd.Series([None] * len(frame))
        out[column] = [None if _missing(v) else str(v) for v in values]
    row_name = names.get("row_index", names.get("row"))
    if row_name is not None:
        rows = pd.to_numeric(frame[row_name], errors="coerce").reset_index(drop=True)
        if ((rows < 0) | (rows % 1 != 0)).any():
            raise BadInput("row numbers must be whole numbers from 0")
        out["row_index"] = rows.astype("Int64")
    else:
        out["row_index"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    out["label"] = frame[names["label"]].reset_index(drop=True)
    out["created_at"] = pd.NaT
    unnamed = out["request_id"].isna() & out["key"].isna()
    if unnamed.any():
        raise BadInput(f"{int(unnamed.sum())} label row(s) have neither a request_id nor a key")
    if without := int((~has_target_value(out["label"])).sum()):
        raise BadInput(f"{without} label row(s) have no label, or an infinite number as one")
    return out[list(LABEL_COLUMNS)]


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Attach each label to its prediction (rules in the module docstring).

    Args:
        predictions: From ``health.logged_predictions`` (request_id, row_index, key, created_at, ...).
        labels: Columns :data:`LABEL_COLUMNS`, oldest first.

    Returns:
        The labelled predictions (the prediction columns plus ``label``), and how many labels
        found no prediction.
    """
    if predictions.empty or labels.empty:
        return predictions.iloc[0:0].assign(label=pd.Series(dtype=object)), len(labels)
    preds = predictions.reset_index(drop=True)
    position = pd.Series(np.arange(len(preds)))
    by_request = dict(zip(zip(preds["request_id"], preds["row_index"].astype(int)), position))
    # Latest prediction per key, and per (key, row): later rows of the log overwrite earlier ones.
    order = preds.sort_values("created_at", kind="stable").index
    by_key, by_key_row = {}, {}
    for i in order:
        key = preds.at[i, "key"]
        if key is not None and not _missing(key):
            by_key[key] = i
            by_key_row[(key, int(preds.at[i, "row_index"]))] = i
    matched: dict[int, object] = {}
    unmatched = 0
    for request_id, row, key, label in zip(labels["request_id"], labels["row_index"], labels["key"], labels["label"]):
        row = None if _missing(row) else int(row)
        if request_id is not None and not _missing(request_id):
            found = by_request.get((request_id, row or 0))
        elif row is not None:
            found = by_key_row.get((key, row))
        else:
            found = by_key.get(key)
        if found is None:
            unmatched += 1
        else:
            matched[int(found)] = label  # a later label for the same prediction replaces the earlier one
    joined = preds.loc[sorted(matched)].copy()
    joined["label"] = [matched[i] for i in sorted(matched)]
    return joined.reset_index(drop=True), unmatched


# --------------------------------------------------------------------------- scoring


def score_windows(joined: pd.DataFrame, *, model: ModelInfo, freq: str = "1D") -> PerformanceReport:
    """The task's metrics per window of prediction time over labelled predictions.

    Args:
        joined: From :func:`join_labels`: ``created_at``, ``prediction``, ``proba_<class>`` columns
            (classifiers) and ``label``.
        model: Task and training scores.
        freq: Window length, a pandas frequency (``1h``, ``1D``, ``7D``).

    Returns:
        The report; ``windows`` empty when nothing is labelled.
    """
    task = Task(model.task)
    proba_cols = [c for c in joined.columns if str(c).startswith("proba_")]
    names = tuple(n for n in mm.metrics_for(task) if proba_cols or not mm.METRICS[n].needs_proba)
    columns = ["window_start", "window_end", "labelled_rows", *names]
    if joined.empty:
        return PerformanceReport(model=model, metrics=names, windows=pd.DataFrame(columns=columns),
                                 labelled_rows=0, unmatched_labels=0)
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise BadInput("a window is a pandas frequency such as 1h, 1D or 7D") from None
    frame = joined.copy()
    frame["window_start"] = frame["created_at"].dt.floor(freq) if _fixed(offset) else \
        frame["created_at"].dt.to_period(freq).dt.start_time.dt.tz_localize("UTC")
    rows = []
    for start, part in frame.groupby("window_start", sort=True):
        rows.append({"window_start": start, "window_end": start + offset, "labelled_rows": len(part),
                     **score_rows(part, task=task, positive=model.positive_class)})
    windows = pd.DataFrame(rows, columns=columns)
    return PerformanceReport(model=model, metrics=names, windows=windows, labelled_rows=len(frame),
                             unmatched_labels=0)


def score_rows(joined: pd.DataFrame, *, task: str, positive: str | None = None) -> dict[str, float]:
    """Every metric of ``task`` over labelled predictions (one window), as ``score_all`` gives them;
    a binary model's precision, recall and F1 of ``positive`` (None: the second class)."""
    task = Task(task)
    classes = mm.oriented(sorted(c[len("proba_"):] for c in joined.columns if str(c).startswith("proba_")), positive)
    proba_cols = [f"proba_{c}" for c in classes]
    if task == Task.REGRESSION:
        y_true = pd.to_numeric(joined["label"], errors="coerce").to_numpy(float)
        y_pred = pd.to_numeric(joined["prediction"], errors="coerce").to_numpy(float)
        keep = np.isfinite(y_true) & np.isfinite(y_pred)
        with warnings.catch_warnings():  # R² of a one-row window is nan; the row count is shown with it
            warnings.simplefilter("ignore")
            return mm.score_all(task, y_true[keep], y_pred[keep], None, [])
    y_true = joined["label"].map(_class_text).to_numpy(object)
    y_pred = joined["prediction"].map(_class_text).to_numpy(object)
    proba = joined[proba_cols].to_numpy(float) if proba_cols else None
    return mm.score_all(task, y_true, y_pred, proba,
                        classes if proba_cols else mm.oriented(sorted(set(y_true) | set(y_pred)), positive))


def labelled_predictions(log_engine: Engine, model: ModelInfo, *, since: datetime | None = None,
                         until: datetime | None = None, labels: pd.DataFrame | None = None,
                         use_feedback: bool = True) -> tuple[pd.DataFrame, int]:
    """The logged predictions in the range that have a label, and how many labels found none."""
    predictions = logged_predictions(log_engine, model_name=model.name, version=model.version, since=since,
                                     until=until)
    parts = []
    if use_feedback:
        parts.append(read_feedback(log_engine, model_name=model.name, version=model.version))
    if labels is not None:
        parts.append(labels[list(LABEL_COLUMNS)])
    parts = [p for p in parts if not p.empty]
    all_labels = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(LABEL_COLUMNS))
    return join_labels(predictions, all_labels)


def performance(log_engine: Engine, model: ModelInfo, *, since: datetime | None = None,
                until: datetime | None = None, freq: str = "1D", labels: pd.DataFrame | None = None,
                use_feedback: bool = True) -> PerformanceReport:
    """Live performance of one model version from its prediction log.

    Args:
        log_engine: The prediction log (``health.log_engine_for(settings)``).
        model: The version (:func:`model_info`).
        since: Predictions from this time.
        until: Predictions before this time.
        freq: Window length.
        labels: Extra labels, e.g. ``labels_from_frame(uploaded)``; they follow the feedback, so
            they win where both name the same prediction.
        use_feedback: Include the labels received through ``/feedback``.

    Returns:
        The report (``unmatched_labels`` counts labels without a prediction in the range).
    """
    joined, unmatched = labelled_predictions(log_engine, model, since=since, until=until, labels=labels,
                                             use_feedback=use_feedback)
    report = score_windows(joined, model=model, freq=freq)
    return PerformanceReport(model=report.model, metrics=report.metrics, windows=report.windows,
                             labelled_rows=report.labelled_rows, unmatched_labels=unmatched)


def deployment_performance(store: Engine, log_engine: Engine, deployment: Deployment, **kwargs) -> PerformanceReport:
    """:func:`performance` for a deployment's version (keyword arguments as there)."""
    info = model_info(store, model_name=deployment.model_name, version=deployment.version,
                      model_dir=Path(deployment.model_dir) if deployment.model_dir else None)
    return performance(log_engine, info, **kwargs)


def _fixed(offset) -> bool:
    try:
        offset.nanos  # noqa: B018 - raises for calendar frequencies (months, weeks anchored to a day)
    except ValueError:
        return False
    return True


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT


def _class_text(value) -> str:
    """Class labels compared as text: the service names classes by ``str(class)``."""
    return str(value)
