"""Plotly figures for the evaluation pages: curves, confusion, residuals, importance, trials.

Everything is drawn from the out-of-fold predictions of an :class:`EvaluationReport`, so every
point on a chart is a prediction for a row the model did not train on. Figures carry aggregates
or samples (curves thinned to a few hundred points, scatters to 2,000 rows), so a page stays light
for a million-row table. Class names, column names and model names are user data: plotly reads a
subset of HTML in every text it draws, so each one goes through :func:`_safe` first (as in
``core.data.charts``); hover templates are fixed strings that only reference data fields.

A chart that does not apply (a ROC curve for a regression, a curve for a model without
probabilities) comes back as an empty figure that says why, so pages need no special cases.
"""
from __future__ import annotations

import calendar
import html
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from pandas.api import types as ptypes
from sklearn.base import BaseEstimator
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from core.data.profile import Task
from core.errors import BadInput
from core.modeling.evaluation import EvaluationReport, aligned_proba, oof_labels
from core.modeling.metrics import METRICS, POSITIVE_CLASS_METRICS, in_display_order, same_positive, signed
from core.modeling.specs import SPECS, family_title, log_target_skew
from core.prep.selection import ImportancePreview
from core.wording import plural

if TYPE_CHECKING:
    from core.learning_curve import LearningCurve

__all__ = [
    "calibration_chart",
    "compare_folds_chart",
    "compare_runs_table",
    "compare_scores",
    "compare_versions_table",
    "confusion_chart",
    "importance_chart",
    "leaderboard_chart",
    "learning_curve_chart",
    "lift_chart",
    "over_time_chart",
    "partial_dependence_chart",
    "pr_chart",
    "predicted_vs_actual_chart",
    "residuals_chart",
    "roc_chart",
]

_MAX_CURVE_POINTS = 400
_MAX_SCATTER = 2_000
_MAX_CURVE_CLASSES = 10  # one-vs-rest curves for the most frequent classes only
_MAX_MATRIX_CLASSES = 20  # confusion matrix: rarer classes share one "other" row and column
_MAX_IMPORTANCE_BARS = 20
_PD_ROWS = 1_000
_PD_GRID = 20
_PD_CATEGORIES = 10
_OTHER = "(other classes)"
_SEED = 0  # charts are views: a fixed sample keeps them stable across reruns
_COLOR = "#4C78A8"
_GREY = "#9E9E9E"
_FAMILY_COLOURS = plotly.colors.qualitative.Plotly  # the template's own ten, one per family
_UNKNOWN_FAMILY = "#616161"  # an old version's family this code no longer has
_MOST_HIDDEN_ON_LOG = 0.01  # a log-scale chart may leave out this share of its points (values <= 0)
_MAX_PREVIEW_BARS = 30
_DIAGONAL = {"dash": "dash", "color": _GREY}
_POINTS = {"color": _COLOR, "opacity": 0.5, "size": 5}


# --- classification ------------------------------------------------------------------------------


def roc_chart(report: EvaluationReport) -> go.Figure:
    """ROC curve of the out-of-fold probabilities (one-vs-rest per class for multiclass).

    Args:
        report: An evaluation report of a classification model.

    Returns:
        The figure, with the AUC of each curve in its legend.
    """
    scored = _classification(report)
    if isinstance(scored, go.Figure):
        return scored
    figure = go.Figure()
    for label, positive, score in _one_vs_rest(*scored):
        fpr, tpr, _ = roc_curve(positive, score)
        fpr, tpr = _thin(fpr, tpr)
        auc = roc_auc_score(positive, score)
        figure.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{label} (AUC {auc:.3f})",
                                    hovertemplate="false positive rate %{x:.3f}<br>"
                                                  "true positive rate %{y:.3f}<extra></extra>"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=_DIAGONAL, name="chance", hoverinfo="skip"))
    figure.update_layout(title="ROC curve (out-of-fold)", xaxis_title="false positive rate",
                         yaxis_title="true positive rate")
    return _style(figure)


def pr_chart(report: EvaluationReport) -> go.Figure:
    """Precision-recall curve of the out-of-fold probabilities, with each class's base rate.

    Args:
        report: An evaluation report of a classification model.

    Returns:
        The figure, with the average precision of each curve in its legend.
    """
    scored = _classification(report)
    if isinstance(scored, go.Figure):
        return scored
    figure = go.Figure()
    for label, positive, score in _one_vs_rest(*scored):
        precision, recall, _ = precision_recall_curve(positive, score)
        recall, precision = _thin(recall, precision)
        ap = average_precision_score(positive, score)
        figure.add_trace(go.Scatter(x=recall, y=precision, mode="lines", name=f"{label} (AP {ap:.3f})",
                                    hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}<extra></extra>"))
        rate = float(positive.mean())  # a model that ranks at random has this precision everywhere
        figure.add_trace(go.Scatter(x=[0, 1], y=[rate, rate], mode="lines", line=_DIAGONAL,
                                    name=f"{label} base rate", hoverinfo="skip"))
    figure.update_layout(title="Precision-recall curve (out-of-fold)", xaxis_title="recall", yaxis_title="precision",
                         yaxis_range=[0, 1.02])
    return _style(figure)


def confusion_chart(report: EvaluationReport, threshold: float = 0.5) -> go.Figure:
    """Confusion matrix of the out-of-fold predictions.

    Args:
        report: An evaluation report of a classification model.
        threshold: Binary: predict the positive class (``report.cv.classes[1]``) from this
            probability up. Multiclass predictions take the most probable class.

    Returns:
        A heatmap, actual classes as rows, each cell showing its count (``customdata``) and its
        share of the row (``z``, the colour: coloured by count, a lopsided target's common class
        would be the one dark row, and how well the rare class is found would not show).
    """
    if report.task == Task.REGRESSION or report.cv.classes is None:
        return _message("A confusion matrix applies to classification")
    cv = report.cv
    classes = list(cv.classes)
    actual, predicted = oof_labels(report, threshold)
    # The classes in their order (a binary target's positive class last); with too many, the most
    # frequent, and the rest lumped. Rows and columns are placed by the same list that labels them.
    lump = len(classes) > _MAX_MATRIX_CLASSES
    order = _frequent(actual, _MAX_MATRIX_CLASSES) if lump else classes
    labels = [*order, _OTHER] if lump else order
    index = {c: i for i, c in enumerate(order)}
    other = len(order)
    rows = np.array([index.get(c, other) for c in actual])
    cols = np.array([index.get(c, other) for c in predicted])
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(counts, (rows, cols), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = [_safe(c) for c in labels]
    text = [[f"{count:,}<br>{share:.1%}" for count, share in zip(*row)] for row in zip(counts, shares)]
    figure = go.Figure(go.Heatmap(z=shares, zmin=0, zmax=1, x=names, y=names, text=text, texttemplate="%{text}",
                                  customdata=counts, colorscale="Blues", showscale=False,
                                  hovertemplate="actual %{y}, predicted %{x}: %{customdata:,} rows "
                                                "(%{z:.1%} of actual)<extra></extra>"))
    note = f" at threshold {threshold:.2f}" if len(classes) == 2 and cv.oof_proba is not None else ""
    figure.update_layout(title=f"Confusion matrix (out-of-fold){note}", xaxis_title="predicted", yaxis_title="actual",
                         yaxis_autorange="reversed")
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category")
    return _style(figure)


def calibration_chart(report: EvaluationReport) -> go.Figure:
    """Predicted probability against the observed share of positives, in ten quantile bins.

    Args:
        report: An evaluation report of a classification model.

    Returns:
        The figure; a well-calibrated model follows the diagonal. Both axes end a little above the
        largest bin: a rare class's bins all lie near 0 and would crowd one corner of the unit
        square (the title says so when the axes stop short of 1).
    """
    scored = _classification(report)
    if isinstance(scored, go.Figure):
        return scored
    figure = go.Figure()
    largest = 0.0
    for label, positive, score in _one_vs_rest(*scored):
        observed, predicted = calibration_curve(positive, score, n_bins=10, strategy="quantile")
        largest = max(largest, predicted.max(initial=0), observed.max(initial=0))
        figure.add_trace(go.Scatter(x=predicted, y=observed, mode="lines+markers", name=label,
                                    hovertemplate="predicted %{x:.3f}<br>observed %{y:.3f}<extra></extra>"))
    top = min(1.0, max(0.05, np.ceil(largest * 1.1 * 20) / 20))  # the next 0.05 above the largest bin
    figure.add_trace(go.Scatter(x=[0, top], y=[0, top], mode="lines", line=_DIAGONAL, name="perfectly calibrated",
                                hoverinfo="skip"))
    note = f" · axes up to {top:.2f}, above the largest bin" if top < 1 else ""
    figure.update_layout(title=f"Calibration (out-of-fold){note}", xaxis_title="mean predicted probability",
                         yaxis_title="observed share of the class", xaxis_range=[0, top], yaxis_range=[0, top])
    return _style(figure)


def lift_chart(report: EvaluationReport) -> go.Figure:
    """Cumulative gain: the share of a class captured by the top-scored share of rows.

    Args:
        report: An evaluation report of a classification model.

    Returns:
        The figure, with the random-ordering diagonal for reference.
    """
    scored = _classification(report)
    if isinstance(scored, go.Figure):
        return scored
    figure = go.Figure()
    for label, positive, score in _one_vs_rest(*scored):
        order = np.argsort(-score, kind="stable")
        captured = np.concatenate([[0.0], np.cumsum(positive[order]) / max(positive.sum(), 1)])
        targeted = np.linspace(0, 1, len(captured))
        targeted, captured = _thin(targeted, captured)
        figure.add_trace(go.Scatter(x=targeted, y=captured, mode="lines", name=label,
                                    hovertemplate="top %{x:.1%} of rows: %{y:.1%} of the class<extra></extra>"))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=_DIAGONAL, name="random", hoverinfo="skip"))
    figure.update_layout(title="Cumulative gain (out-of-fold)", xaxis_title="share of rows, highest scores first",
                         yaxis_title="share of the class captured", xaxis_tickformat=".0%", yaxis_tickformat=".0%")
    return _style(figure)


# --- regression -----------------------------------------------------------------------------------


def residuals_chart(report: EvaluationReport) -> go.Figure:
    """Out-of-fold residuals (actual minus predicted) against the prediction.

    Args:
        report: An evaluation report of a regression model.

    Returns:
        A scatter of at most 2,000 sampled rows, with the zero line.
    """
    scored = _regression(report)
    if isinstance(scored, go.Figure):
        return scored
    actual, predicted = scored
    residual = actual - predicted
    logged = _log_scale_note(actual, hidden=predicted <= 0)
    figure = go.Figure(go.Scatter(x=predicted, y=residual, mode="markers", marker=_POINTS, name="rows",
                                  hovertemplate="predicted %{x:.4g}<br>residual %{y:.4g}<extra></extra>"))
    figure.add_hline(y=0, line=_DIAGONAL)
    figure.update_layout(title=f"Residuals (out-of-fold{_sample_note(report, len(actual))}"
                               f"{', predictions on a log scale' + logged if logged is not None else ''})",
                         xaxis_title="predicted", yaxis_title="actual - predicted", showlegend=False,
                         xaxis_type="log" if logged is not None else None)
    return _style(figure)


def predicted_vs_actual_chart(report: EvaluationReport) -> go.Figure:
    """Out-of-fold predictions against the actual values.

    Args:
        report: An evaluation report of a regression model.

    Returns:
        A scatter of at most 2,000 sampled rows, with the perfect-prediction diagonal.
    """
    scored = _regression(report)
    if isinstance(scored, go.Figure):
        return scored
    actual, predicted = scored
    low = float(min(actual.min(), predicted.min()))
    high = float(max(actual.max(), predicted.max()))
    figure = go.Figure(go.Scatter(x=actual, y=predicted, mode="markers", marker=_POINTS, name="rows",
                                  hovertemplate="actual %{x:.4g}<br>predicted %{y:.4g}<extra></extra>"))
    figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", line=_DIAGONAL, name="perfect",
                                hoverinfo="skip"))
    logged = _log_scale_note(actual, hidden=(actual <= 0) | (predicted <= 0))
    axis = "log" if logged is not None else None
    figure.update_layout(title=f"Predicted vs actual (out-of-fold{_sample_note(report, len(actual))}"
                               f"{', log scales' + logged if logged is not None else ''})",
                         xaxis_title="actual", yaxis_title="predicted", showlegend=False,
                         xaxis_type=axis, yaxis_type=axis)
    return _style(figure)


def _log_scale_note(actual: np.ndarray, *, hidden: np.ndarray) -> str | None:
    """None when a regression is drawn on linear scales; else the words to add to the title
    (empty when every point shows). A long-tailed target (see
    :func:`core.modeling.specs.log_target_skew`) puts most rows in one corner of linear axes. A
    log axis leaves out a value at or below 0 (``hidden``: an income of 0, a prediction below
    0), so log scales are used only while such points are rare, and the title counts them."""
    if log_target_skew(pd.Series(actual)) is None or hidden.mean() > _MOST_HIDDEN_ON_LOG:
        return None
    count = int(hidden.sum())
    return f"; {plural(count, 'point')} at or below 0 not drawn" if count else ""


def over_time_chart(report: EvaluationReport, target: str = "value") -> go.Figure:
    """What happened and what the model predicted, along a time-series split's time column.

    The cross-validated rows come out-of-fold: the model that predicted a stretch never saw it or
    anything after it. The holdout, the latest rows, follows in a shaded band, as the winner fit
    on all earlier rows scored it. Each point is the mean over rows in a stretch of time (one time
    value, or when there are more than ~400 of them, consecutive rows in equal numbers).

    Args:
        report: An evaluation report of a model split by time.
        target: The target's name, for a regression's axis.

    Returns:
        Two lines, actual and predicted (for a binary target the share of the positive class and
        the mean predicted probability of it; for more classes, one line: the accuracy), or a
        figure saying why the chart does not apply.
    """
    cv, held = report.cv, report.holdout_rows  # both None in reports saved before they were recorded
    if report.times is None:
        return _message("This chart applies to a time-series split")
    mask = cv.oof_mask
    if report.task == Task.REGRESSION:
        scored = pd.DataFrame({"time": report.times[mask], "actual": cv.y_true[mask].astype(float),
                               "predicted": cv.oof_pred[mask].astype(float)})
        later = None if held is None else held.assign(actual=held["actual"].astype(float),
                                                      predicted=held["predicted"].astype(float))
        title, axis = "Actual and predicted over time", f"mean {_safe(target)}"
    elif report.task == Task.BINARY and cv.oof_proba is not None:
        positive = cv.classes[1]
        scored = pd.DataFrame({"time": report.times[mask], "actual": (cv.y_true[mask] == positive).astype(float),
                               "predicted": cv.oof_proba[mask, 1]})
        later = None if held is None or "proba" not in held else pd.DataFrame(
            {"time": held["time"], "actual": (held["actual"] == positive).astype(float), "predicted": held["proba"]})
        title = f"Share of '{_safe(positive)}' and its predicted probability over time"
        axis = f"share / mean P({_safe(positive)})"
    else:  # many classes (or no probabilities): no one value to follow, but whether the label was right
        scored = pd.DataFrame({"time": report.times[mask], "accuracy": (cv.y_true[mask] == cv.oof_pred[mask])})
        later = None if held is None else pd.DataFrame(
            {"time": held["time"], "accuracy": held["actual"].to_numpy() == held["predicted"].to_numpy()})
        title, axis = "Accuracy over time", "accuracy"
    parts = [scored] + ([later] if later is not None and len(later) else [])
    total = sum(len(part) for part in parts)
    points = [_over_time_points(part, max(1, _MAX_CURVE_POINTS * len(part) // total)) for part in parts]
    drawn = pd.concat(points, ignore_index=True)
    hover = "%{x}<br>%{y:.4g}<br>mean of %{customdata} rows<extra></extra>"
    lines = (("accuracy", "accuracy", _COLOR),) if "accuracy" in drawn else (
        ("actual", "actual", _GREY), ("predicted", "predicted", _COLOR))
    figure = go.Figure([go.Scatter(x=drawn["time"], y=drawn[column], mode="lines", name=name, line={"color": color},
                                   customdata=drawn["rows"], hovertemplate=hover) for column, name, color in lines])
    rows = f"{len(scored):,} rows out-of-fold"
    if len(points) > 1:
        figure.add_vrect(x0=later["time"].min(), x1=later["time"].max(), fillcolor=_GREY, opacity=0.15,
                         line_width=0, annotation_text="holdout", annotation_position="top left")
        rows += f", then {len(later):,} holdout rows"
    figure.update_layout(title=f"{title} ({rows}, in {len(drawn):,} points)", xaxis_title="time", yaxis_title=axis,
                         legend={"orientation": "h", "y": -0.2})
    return _style(figure)


def _over_time_points(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The mean of each column but ``time`` per time value, or per stretch of consecutive rows in
    equal numbers (drawn at its middle row) when there are more than ``limit`` time values."""
    frame = frame.sort_values("time", kind="stable", ignore_index=True)
    means = {column: (column, "mean") for column in frame.columns if column != "time"}
    rows = ("time", "size")
    if frame["time"].nunique() > limit:
        stretch = np.arange(len(frame)) * limit // len(frame)
        return frame.groupby(stretch).agg(time=("time", lambda t: t.iloc[len(t) // 2]), **means, rows=rows)
    return frame.groupby("time", as_index=False).agg(**means, rows=rows)


# --- explanation ----------------------------------------------------------------------------------


def importance_chart(table: pd.DataFrame) -> go.Figure:
    """Permutation importance per source column, most important on top, with ± one std.

    Args:
        table: From :func:`core.modeling.evaluation.permutation_importance_table`.

    Returns:
        A horizontal bar chart of the 20 most important columns.
    """
    if table.empty:
        return _message("No importance to show")
    top = table.sort_values("importance_mean", ascending=False).head(_MAX_IMPORTANCE_BARS)
    figure = go.Figure(go.Bar(x=top["importance_mean"], y=[_safe(c) for c in top["column"]], orientation="h",
                              error_x={"type": "data", "array": top["importance_std"].to_numpy()}, marker_color=_COLOR,
                              hovertemplate="%{y}: score drops by %{x:.4g}<extra></extra>"))
    more = f" (top {_MAX_IMPORTANCE_BARS} of {len(table)})" if len(table) > _MAX_IMPORTANCE_BARS else ""
    figure.update_layout(title=f"Permutation importance{more}", xaxis_title="drop in score when the column is shuffled")
    figure.update_yaxes(autorange="reversed", type="category")
    # Tall enough for every label: plotly silently skips category ticks that do not fit.
    return _style(figure).update_layout(height=max(360, 80 + 22 * len(top)))


def importance_preview_chart(preview: ImportancePreview) -> go.Figure:
    """The Features page's preview: each column's held-out permutation importance (the 30 largest),
    coloured by whether it clears the noise floor.

    Args:
        preview: From :func:`core.prep.selection.importance_preview`.
    """
    rows = list(preview.rows)[:_MAX_PREVIEW_BARS]
    if not rows:
        return _message("No column to score")
    figure = go.Figure()
    for signal, name, color in ((True, "signal", _COLOR), (False, "no signal beyond chance", _GREY)):
        part = [r for r in rows if r.signal is signal]
        if part:
            figure.add_trace(go.Bar(x=[r.model_importance for r in part], y=[_safe(r.column) for r in part],
                                    orientation="h", name=name, marker_color=color,
                                    hovertemplate="%{y}: score drops by %{x:.4g}<extra></extra>"))
    figure.update_layout(xaxis_title=f"drop in held-out {preview.metric} when the column is shuffled")
    # Every column in the preview's order (largest first), tall enough for each label.
    figure.update_yaxes(autorange="reversed", type="category", categoryorder="array",
                        categoryarray=[_safe(r.column) for r in rows])
    return _style(figure).update_layout(height=max(250, 80 + 22 * len(rows)))


def partial_dependence_chart(
    pipeline: BaseEstimator,
    X: pd.DataFrame,
    column: str,
    *,
    task: Task,
    classes: tuple | None = None,
) -> go.Figure:
    """The model's average prediction as one raw column is set to each value of a grid.

    The grid is 20 quantiles of a numeric or date column, or its 10 most frequent values
    otherwise; a date column's are taken among its dates on their most common weekday and hour,
    so that the line shows the trend over time rather than weekdays against weekends. A text column the Pipeline's cleaning reads as dates or numbers (a recipe's type
    fix) counts as one: its quantiles are those of the values the model reads. Every sampled row
    (at most 1,000) is predicted once per grid value, all in one batch, through the whole
    Pipeline, so cleaning and features are applied as in serving.

    Args:
        pipeline: A fitted model Pipeline.
        X: Raw features to average over (a sample is taken).
        column: The raw column to vary.
        task: The learning task.
        classes: The model's classes, a binary task's positive class last (default:
            ``pipeline.classes_``, sorted).

    Returns:
        Lines for numbers and dates, bars for categories: the mean prediction (regression), the
        mean probability of the positive class (binary) or of each class (multiclass, the ten
        first classes).

    Raises:
        BadInput: ``column`` is not in ``X``.
    """
    if column not in X.columns:
        raise BadInput(f"There is no column {column!r} to show partial dependence for.")
    task = Task(task)
    X = X.reset_index(drop=True)  # grid points are looked up by row
    sample = X.sample(n=_PD_ROWS, random_state=_SEED) if len(X) > _PD_ROWS else X
    read = _as_the_model_reads(pipeline, X, column)
    ordered = _is_ordered(read.dropna())
    same_time = ""
    if ordered:  # quantiles of what the model reads; each is set as the raw value of a row holding it
        values = read.dropna()
        if ptypes.is_datetime64_any_dtype(values):
            values, same_time = _one_weekday_and_hour(values)
        points = _pd_points(values)
        grid, labels = X.loc[points.index, column].tolist(), points.tolist()
    else:
        grid = X[column].dropna().value_counts().index[:_PD_CATEGORIES].tolist()
        labels = [_safe(v) for v in grid]
    if len(grid) < 2:
        return _message(f"'{column}' has fewer than two values to vary")
    m = len(sample)
    batch = sample.iloc[np.tile(np.arange(m), len(grid))].reset_index(drop=True)
    batch[column] = pd.Series(np.repeat(np.asarray(grid, dtype=object), m)).astype(X[column].dtype)
    name = _safe(column)
    if task is Task.REGRESSION:
        means = {"prediction": np.asarray(pipeline.predict(batch), dtype=float).reshape(len(grid), m).mean(axis=1)}
        axis = "mean prediction"
    else:
        classes = tuple(classes if classes is not None else pipeline.classes_.tolist())
        proba = aligned_proba(pipeline, batch, classes).reshape(len(grid), m, -1).mean(axis=1)
        shown = [1] if len(classes) == 2 else range(min(len(classes), _MAX_CURVE_CLASSES))
        means = {f"P({_safe(classes[j])})": proba[:, j] for j in shown}
        axis = f"mean {next(iter(means))}" if len(means) == 1 else "mean probability"  # one line: no legend
    figure = go.Figure()
    for label, mean in means.items():
        if ordered:
            figure.add_trace(go.Scatter(x=labels, y=mean, mode="lines+markers", name=label,
                                        hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
        else:
            figure.add_trace(go.Bar(x=labels, y=mean, name=label, hovertemplate="%{x}: %{y:.4g}<extra></extra>"))
    # The column on a line of its own: three of these charts share a row, and a longer title was cut.
    figure.update_layout(title=f"{name}<br><sup>partial dependence over {m:,} rows{same_time}</sup>", xaxis_title=name,
                         yaxis_title=axis, showlegend=len(means) > 1)
    if not ordered:
        figure.update_xaxes(type="category")
    return _style(figure)


def learning_curve_chart(curve: LearningCurve) -> go.Figure:
    """The validation score (mean over folds, the folds' range as a band) and the training score
    by the number of rows the model learnt from.

    Args:
        curve: From :func:`core.learning_curve.learning_curve`.
    """
    label = _safe(METRICS[curve.metric].label)
    x = list(curve.rows)
    figure = go.Figure()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cut no fold could fit: NaN, left out
        validation = np.asarray(curve.validation, dtype=float)
        low, high = np.nanmin(validation, axis=1), np.nanmax(validation, axis=1)
        means = {"validation": np.nanmean(validation, axis=1),
                 "training rows": np.nanmean(np.asarray(curve.training, dtype=float), axis=1)}
    figure.add_trace(go.Scatter(x=x + x[::-1], y=np.concatenate([high, low[::-1]]), mode="lines", fill="toself",
                                fillcolor="rgba(76,120,168,0.15)", line={"width": 0}, hoverinfo="skip",
                                name="validation, range over folds"))
    for (name, mean), color, dash in zip(means.items(), (_COLOR, _GREY), ("solid", "dot")):
        figure.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=name, line={"color": color, "dash": dash},
                                    hovertemplate=f"%{{x:,}} rows: {name} {label} %{{y:.4g}}<extra></extra>"))
    figure.update_layout(title=f"Learning curve<br><sup>{label} by the rows the model learnt from, "
                               "mean over the cross-validation folds</sup>",
                         xaxis_title="training rows", yaxis_title=label)
    return _style(figure)


# --- runs and trials ------------------------------------------------------------------------------


def leaderboard_chart(trials: pd.DataFrame, *, greater_is_better: bool = True, score_label: str = "score") -> go.Figure:
    """Trial scores by trial number, one colour per model family, and the best score so far.

    Args:
        trials: Columns ``number``, ``model``, ``score``, ``state`` (Optuna's state names:
            ``COMPLETE``, ``PRUNED``, ``FAIL``...).
        greater_is_better: The score's direction, for the best-so-far line.
        score_label: What the score is, for its axis (the metric's label).

    Returns:
        The figure. The score axis holds complete trials only: a trial stopped early has a score
        over the folds it ran, which is not comparable (on a time-series split the first folds
        can all score above the best complete trial). Stopped trials are grey crosses along the
        bottom, their partial score in the hover text, as Optuna's history plot leaves them out
        of its axis. The axis spans every family's best trial and the best-so-far line; a
        trial scoring worse than that is drawn on the axis's edge as a triangle, its score in
        the hover text (one weak trial at 0.4 would flatten trials at 0.95 into one line).
    """
    missing = {"number", "model", "score", "state"} - set(trials.columns)
    if missing:
        raise BadInput(f"The trials table lacks column(s) {', '.join(sorted(missing))}.")
    scored = trials[trials["score"].notna()].sort_values("number")
    if scored.empty:
        return _message("No finished trials yet")
    done = scored[scored["state"].astype(str).str.upper() == "COMPLETE"]
    sign = 1.0 if greater_is_better else -1.0
    edge = _worst_shown(done, sign)

    def markers(rows: pd.DataFrame, family: str) -> go.Scatter:
        score = rows["score"].to_numpy(dtype=float)
        off = np.zeros(len(rows), dtype=bool) if edge is None else sign * score < sign * edge
        symbol = "triangle-down" if greater_is_better else "triangle-up"
        return go.Scatter(x=rows["number"], y=np.where(off, edge, score), customdata=score, mode="markers",
                          name=_safe(family_title(family)),
                          marker={"symbol": np.where(off, symbol, "circle"), "color": _family_colour(family)},
                          hovertemplate="trial %{x}: %{customdata:.4g}<extra></extra>")

    figure = go.Figure()
    families = done.groupby("model")
    for family in sorted(families.groups, key=lambda f: family_title(f).casefold()):  # "k-nearest" among the K's
        figure.add_trace(markers(families.get_group(family), family))
    stopped = scored[~scored.index.isin(done.index)]
    if not stopped.empty:
        # On an axis of their own (0 to 1, hidden), so that they sit along the bottom whatever
        # the scores' range.
        figure.add_trace(go.Scatter(
            x=stopped["number"], y=np.full(len(stopped), 0.03), yaxis="y2", customdata=stopped["score"],
            mode="markers", name="stopped early", marker={"symbol": "x", "color": _GREY, "size": 7},
            hovertemplate="trial %{x}, stopped early: %{customdata:.4g} over the folds it ran<extra></extra>"))
        figure.update_layout(yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True})
    if not done.empty:
        best = done["score"].cummax() if greater_is_better else done["score"].cummin()
        figure.add_trace(go.Scatter(x=done["number"], y=best, mode="lines", line={"shape": "hv", "color": "black"},
                                    name="best so far", hovertemplate="best after trial %{x}: %{y:.4g}<extra></extra>"))
    figure.update_layout(title="Trials", xaxis_title="trial", yaxis_title=_safe(score_label))
    if edge is not None:
        scores = done["score"].to_numpy(dtype=float)
        far = float(max(scores, key=lambda v: sign * v))  # the good end: nothing is cut there
        span = abs(far - edge)  # a little room past the edge, so its triangles show whole
        figure.update_layout(yaxis_range=sorted((edge - sign * 0.03 * span, far + sign * 0.05 * span)))
        worse = int((sign * scores < sign * edge).sum())
        where = "below {:.4g}: drawn at the bottom as ▼" if greater_is_better else "above {:.4g}: drawn at the top as ▲"
        figure.update_layout(title=f"Trials<br><sup>{plural(worse, 'trial')} scoring "
                                   f"{where.format(edge)}, the score in the hover text</sup>")
    if scored["number"].max() < 10:
        figure.update_xaxes(dtick=1)  # trial numbers are whole: no ticks at 0.2, 0.4... for a few trials
    return _style(figure)


def _worst_shown(done: pd.DataFrame, sign: float) -> float | None:
    """Where the score axis of :func:`leaderboard_chart` ends on the bad side: past the worst of
    every family's best complete trial and the best-so-far line's start by half their spread, and
    by at least 2 % of the best score (so that with one family, whose best is the whole spread, a
    trial a little worse is still drawn where it is); None when no score is worse than that (the
    axis is then plotly's own)."""
    if done.empty:
        return None
    scores = done["score"].to_numpy(dtype=float)
    bests = done.groupby("model")["score"].agg("max" if sign > 0 else "min")
    low = min([*bests, float(done["score"].iloc[0])], key=lambda v: sign * v)
    high = float(max(scores, key=lambda v: sign * v))
    edge = low - sign * max(0.5 * abs(high - low), 0.02 * max(abs(high), 0.1))
    return edge if (sign * scores < sign * edge).any() else None


def compare_runs_table(a: EvaluationReport, b: EvaluationReport) -> pd.DataFrame:
    """Two runs side by side, metric by metric (see :func:`compare_scores`). Binary runs with
    different positive classes leave out the metrics of the positive class, which then describe
    different classes.

    Args:
        a: The first run (e.g. the champion).
        b: The second run (e.g. the challenger).

    Raises:
        BadInput: The runs are for different tasks.
    """
    if a.task != b.task:
        raise BadInput(f"Cannot compare a {a.task} run with a {b.task} run.")
    left_out = _of_other_classes(a.task, a.cv.classes[1] if a.cv.classes else None,
                                 b.cv.classes[1] if b.cv.classes else None)
    return compare_scores({m.name: (m.mean, m.std) for m in a.metrics if m.name not in left_out},
                          {m.name: (m.mean, m.std) for m in b.metrics if m.name not in left_out},
                          holdout_a=a.holdout, holdout_b=b.holdout)


def compare_folds_chart(a: EvaluationReport, b: EvaluationReport) -> go.Figure:
    """A's optimised metric fold by fold, for A and for B: the spread the comparison table's
    "better" is judged against, to look at rather than read.

    Args:
        a: The first run; its primary metric is the one drawn.
        b: The second run.

    Returns:
        One line of markers per run, or a figure saying why the runs cannot be drawn together.
    """
    metric = a.primary_metric
    if a.task != b.task or metric not in b.cv.fold_scores:
        return _message(f"Run B has no {METRICS[metric].label} per fold to compare")
    positives = (a.cv.classes[1], b.cv.classes[1]) if a.task == Task.BINARY else (None, None)
    if metric in POSITIVE_CLASS_METRICS and not same_positive(*positives):
        return _message(f"A's and B's {METRICS[metric].label} describe different classes")
    figure = go.Figure()
    for name, report, color in (("A", a, _COLOR), ("B", b, _GREY)):
        scores = np.asarray(report.cv.fold_scores[metric], dtype=float)
        folds = np.arange(1, len(scores) + 1)
        figure.add_trace(go.Scatter(x=folds, y=scores, mode="lines+markers", line={"color": color},
                                    name=f"{name} (mean {np.nanmean(scores):.4g})",
                                    hovertemplate=f"{name}, fold %{{x}}: %{{y:.4g}}<extra></extra>"))
    same = a.scheme == b.scheme
    figure.update_layout(title=f"{METRICS[metric].label} per fold" + ("" if same else " (the runs' folds differ)"),
                         xaxis_title="fold", yaxis_title=METRICS[metric].label)
    figure.update_xaxes(dtick=1)
    return _style(figure)


def compare_versions_table(a_task: str, a_metrics: dict, b_task: str, b_metrics: dict, *,
                           first: str | None = None) -> pd.DataFrame:
    """Two registered versions side by side, from the metrics they recorded (see
    :func:`compare_scores`): ``{name: {"mean", "std", ...}, "holdout": {name: score}}``. Rows
    come in display order, ``first`` (the optimised metric) leading. As in
    :func:`compare_runs_table`, binary versions with different positive classes leave out the
    metrics of the positive class.

    Raises:
        BadInput: The versions are for different tasks.
    """
    if a_task != b_task:
        raise BadInput(f"Cannot compare a {a_task} version with a {b_task} version.")
    left_out = _of_other_classes(a_task, a_metrics.get("positive_class"), b_metrics.get("positive_class"))

    def cv(metrics: dict) -> dict[str, tuple[float, float]]:
        names = [n for n, m in metrics.items()
                 if n in METRICS and n not in left_out and isinstance(m, dict) and m.get("mean") is not None]
        return {n: (metrics[n]["mean"], metrics[n].get("std") or 0.0) for n in in_display_order(names, first=first)}

    return compare_scores(cv(a_metrics), cv(b_metrics), holdout_a=a_metrics.get("holdout") or None,
                          holdout_b=b_metrics.get("holdout") or None)


def _of_other_classes(task: str, positive_a: object, positive_b: object) -> frozenset[str]:
    """The metrics two models cannot be compared on: those of the positive class, when two binary
    models describe different ones."""
    return POSITIVE_CLASS_METRICS if task == "binary" and not same_positive(positive_a, positive_b) else frozenset()


def compare_scores(a: dict[str, tuple[float, float]], b: dict[str, tuple[float, float]], *,
                   holdout_a: dict[str, float] | None = None, holdout_b: dict[str, float] | None = None) -> pd.DataFrame:
    """Two models' cross-validated scores side by side.

    Args:
        a: Metric name to (mean, std) across folds, in the order rows should follow.
        b: The same for the second model.
        holdout_a: The first model's holdout scores, if it kept a holdout.
        holdout_b: The second's.

    Returns:
        One row per metric both have: ``metric`` (its label), ``A``, ``A std``, ``B``, ``B std``,
        ``B - A``, ``better`` (``"A"``, ``"B"`` or ``"no clear difference"`` when the gap is within
        the larger of the two fold stds), plus ``A holdout`` and ``B holdout`` when both kept one.
    """
    rows = []
    for name, (mean_a, std_a) in a.items():
        if name not in b:
            continue
        mean_b, std_b = b[name]
        gap = signed(name, mean_b) - signed(name, mean_a)
        better = "no clear difference" if not abs(gap) > max(std_a, std_b) else ("B" if gap > 0 else "A")
        row = {"metric": METRICS[name].label, "A": mean_a, "A std": std_a, "B": mean_b, "B std": std_b,
               "B - A": mean_b - mean_a, "better": better}
        if holdout_a is not None and holdout_b is not None:
            row["A holdout"] = holdout_a.get(name, np.nan)
            row["B holdout"] = holdout_b.get(name, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


# --- building blocks ------------------------------------------------------------------------------


def _classification(report: EvaluationReport) -> tuple[np.ndarray, np.ndarray, tuple] | go.Figure:
    """The scored rows' targets, probabilities and classes, or a figure saying why there are none."""
    cv = report.cv
    if report.task == Task.REGRESSION or cv.classes is None:
        return _message("This chart applies to classification")
    if cv.oof_proba is None:
        return _message("This model gives no probabilities")
    return cv.y_true[cv.oof_mask], cv.oof_proba[cv.oof_mask], cv.classes


def _one_vs_rest(actual: np.ndarray, proba: np.ndarray, classes: tuple):
    """``(label, is_class, score)`` per curve: the positive class for binary, else each of the
    most frequent classes (classes absent from the scored rows have no curve)."""
    if len(classes) == 2:
        yield _safe(classes[1]), actual == classes[1], proba[:, 1]
        return
    for label in _frequent(actual, _MAX_CURVE_CLASSES):
        positive = actual == label
        if positive.all():
            continue
        yield _safe(label), positive, proba[:, list(classes).index(label)]


def _regression(report: EvaluationReport) -> tuple[np.ndarray, np.ndarray] | go.Figure:
    """Sampled actual and predicted values of the scored rows, or a figure saying why not."""
    cv = report.cv
    if report.task != Task.REGRESSION:
        return _message("This chart applies to regression")
    actual = cv.y_true[cv.oof_mask].astype(float)
    predicted = cv.oof_pred[cv.oof_mask].astype(float)
    if len(actual) > _MAX_SCATTER:
        rows = np.sort(np.random.default_rng(_SEED).choice(len(actual), size=_MAX_SCATTER, replace=False))
        actual, predicted = actual[rows], predicted[rows]
    return actual, predicted


def _sample_note(report: EvaluationReport, shown: int) -> str:
    total = int(report.cv.oof_mask.sum())
    return f", {shown:,} of {total:,} rows" if shown < total else ""


def _frequent(values: np.ndarray, limit: int) -> list:
    """The most frequent values, at most ``limit``, most frequent first."""
    return pd.Series(values).value_counts().index[:limit].tolist()


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ~400 points of a curve, always keeping both ends."""
    if len(x) <= _MAX_CURVE_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, _MAX_CURVE_POINTS).round().astype(int))
    return x[keep], y[keep]


def _is_ordered(values: pd.Series) -> bool:
    """Numbers and dates get a line over a quantile grid; anything else bars per category."""
    numeric = ptypes.is_numeric_dtype(values) and not ptypes.is_bool_dtype(values)
    return numeric or ptypes.is_datetime64_any_dtype(values)


def _as_the_model_reads(pipeline: BaseEstimator, X: pd.DataFrame, column: str) -> pd.Series:
    """``X[column]`` after the Pipeline's cleaning step when that step makes dates or numbers of
    text (read as text, every date of a daily table is a category of its own, and the chart
    showed the first ten days as bars); otherwise the raw column."""
    raw = X[column]
    clean = getattr(pipeline, "named_steps", {}).get("clean")
    if clean is None or _is_ordered(raw.dropna()):
        return raw
    read = clean.transform(X)
    if column not in read.columns or len(read) != len(X):
        return raw  # renamed or dropped by the recipe: nothing to order it by
    read = read[column].set_axis(X.index)
    return read if _is_ordered(read.dropna()) else raw


def _one_weekday_and_hour(when: pd.Series) -> tuple[pd.Series, str]:
    """The dates of ``when`` on its most common weekday and hour, and words saying so ("" when
    every date already shares them). A model reads a date's weekday (and hour) as well as its
    year and month: quantile dates on mixed weekdays drew a zigzag between weekdays and weekends
    on the Chicago sample instead of the trend."""
    key = when.dt.dayofweek * 24 + when.dt.hour
    counts = key.value_counts().sort_index()  # ties go to the earliest weekday and hour
    common = int(counts.idxmax())
    if len(counts) == 1 or counts[common] < _PD_GRID:
        return when, ""
    day = calendar.day_name[common // 24]
    hour = f" at {common % 24:02d}:00" if (when.dt.hour != 0).any() else ""
    return when[key == common], f", each date a {day}{hour}"


def _pd_points(values: pd.Series) -> pd.Series:
    """Observed values only (quantiles by position, never interpolated), so every grid point is
    a value the column can hold, whatever its dtype; indexed by a row holding each."""
    if ptypes.is_float_dtype(values.dtype):
        values = values[np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))]  # the model reads inf as missing
    ranked = values.sort_values(kind="stable")
    if ranked.empty:
        return ranked
    positions = np.linspace(0.05, 0.95, _PD_GRID) * (len(ranked) - 1)
    return ranked.iloc[positions.round().astype(int)].drop_duplicates()


def _message(text: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=html.escape(text, quote=False), showarrow=False, xref="paper", yref="paper",
                          x=0.5, y=0.5)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _style(figure)


def _family_colour(name: str) -> str:
    """A model family's colour, the same on every chart and in every job: by its place among all
    families, not among those a run has tried so far, so LightGBM does not change colour when
    another family's first trial lands on a live chart."""
    families = list(SPECS)
    return _FAMILY_COLOURS[families.index(name) % len(_FAMILY_COLOURS)] if name in families else _UNKNOWN_FAMILY


def _style(figure: go.Figure) -> go.Figure:
    figure.update_layout(template="plotly_white", margin={"l": 10, "r": 10, "t": 50, "b": 10}, height=360)
    return figure


def _safe(value: object) -> str:
    """User text made inert for plotly's HTML-like labels, and kept short."""
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return html.escape(text, quote=False)
