"""Plotly figures for the profile page: one column, correlations, the target.

Figures carry aggregates, never raw rows: a histogram of a million values is forty bars, so
the page stays light however big the table is. Column names and values are user data, and
plotly reads a subset of HTML (``<b>``, ``<a href>``, ``<br>``) in every text it draws, so
every user string goes through :func:`html.escape` before it reaches a figure; hover
templates are fixed strings that only reference data fields.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from pandas.api import types as ptypes

from core.data.kinds import ColumnKind
from core.data.profile import ColumnProfile, TableProfile, Task

__all__ = ["column_chart", "correlation_chart", "target_chart"]

_MAX_BINS = 40
_MAX_BARS = 30  # classes or distinct small numbers drawn one bar each
_MAX_CORR_COLUMNS = 30
_CORR_SAMPLE = 100_000
_TEXT_SAMPLE = 100_000
_SEED = 0  # charts are views: a fixed sample keeps them stable across reruns
_COLOR = "#4C78A8"


def column_chart(frame: pd.DataFrame, profile: ColumnProfile) -> go.Figure:
    """The distribution of one column.

    Numbers get a histogram, categories and booleans a bar chart of their most frequent
    values, dates a count per day/week/month/year, and free text a histogram of lengths.

    Args:
        frame: The table holding the column.
        profile: The column's profile (kind, top values).

    Returns:
        The figure.
    """
    series = frame[profile.name]
    name = _safe(profile.name)
    if profile.unique == 0:
        return _message(f"No values in '{profile.name}'")
    if profile.kind is ColumnKind.DATETIME and ptypes.is_datetime64_any_dtype(series):
        return _over_time(series, name)
    if profile.kind is ColumnKind.TEXT:
        lengths = _sample(series.dropna(), _TEXT_SAMPLE).astype(str).str.len()
        return _histogram(lengths, f"Length of '{name}' (characters)", "characters")
    if profile.kind in (ColumnKind.NUMERIC, ColumnKind.IDENTIFIER) and ptypes.is_numeric_dtype(series):
        return _histogram(series, f"Distribution of '{name}'", name)
    labels = [_safe(value) for value, _ in profile.top_values]
    counts = [count for _, count in profile.top_values]
    shown = "" if profile.unique <= len(labels) else f" (top {len(labels)} of {profile.unique:,})"
    return _bars(labels, counts, f"Most frequent values of '{name}'{shown}", horizontal=True)


def correlation_chart(frame: pd.DataFrame, profile: TableProfile) -> go.Figure:
    """Spearman rank correlations between numeric columns, as a heatmap.

    Spearman rather than Pearson: it sees any monotonic relation and is not thrown by
    outliers or skew. At most 30 columns (the target first, then table order) on a sample
    of at most 100,000 rows.

    Args:
        frame: The table.
        profile: Its profile, which says which columns are numeric.

    Returns:
        The heatmap, or an empty figure that says why there is none.
    """
    names = profile.names(ColumnKind.NUMERIC)
    if profile.target in names:
        names = [profile.target] + [n for n in names if n != profile.target]
    names = names[:_MAX_CORR_COLUMNS]
    if len(names) < 2:
        return _message("Correlations need at least two numeric columns")
    data = _sample(frame[names], _CORR_SAMPLE).astype(float)
    corr = data.corr(method="spearman").to_numpy()
    labels = [_safe(n) for n in names]
    figure = go.Figure(
        go.Heatmap(
            z=corr,
            x=labels,
            y=labels,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            reversescale=True,  # red for positive: the usual reading of a correlation map
            text=np.round(corr, 2) if len(names) <= 12 else None,
            texttemplate="%{text}" if len(names) <= 12 else None,
            hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>",
        )
    )
    note = f" ({len(data):,}-row sample)" if len(data) < len(frame) else ""
    figure.update_layout(title=f"Rank correlation (Spearman){note}", yaxis_autorange="reversed")
    return _style(figure)


def target_chart(frame: pd.DataFrame, target: str, task: Task) -> go.Figure:
    """How the target is distributed: class counts, or a histogram for regression.

    Args:
        frame: The table.
        target: The target column.
        task: The task, which decides between bars and a histogram.

    Returns:
        The figure.
    """
    series = frame[target]
    name = _safe(target)
    if task is Task.REGRESSION:
        return _histogram(series, f"Distribution of the target '{name}'", name)
    counts = series.value_counts()
    shown = counts.iloc[:_MAX_BARS]
    more = f" (top {_MAX_BARS} of {len(counts):,})" if len(counts) > _MAX_BARS else ""
    return _bars(
        [_safe(v) for v in shown.index],
        shown.tolist(),
        f"Classes of the target '{name}'{more}",
        horizontal=len(shown) > 8,
        total=int(counts.sum()),
    )


# --- building blocks ----------------------------------------------------------------------------


def _histogram(series: pd.Series, title: str, axis: str) -> go.Figure:
    """Bars of pre-computed bins: small whole-number sets get one bar per value."""
    values = series.to_numpy(dtype=float, na_value=np.nan)
    values = values[np.isfinite(values)]
    if not len(values):
        return _message("No values to show")
    distinct = pd.unique(values)
    if len(distinct) <= _MAX_BARS and np.all(np.mod(distinct, 1) == 0):
        counts = pd.Series(values).value_counts().sort_index()
        figure = go.Figure(go.Bar(x=counts.index, y=counts.to_numpy(), marker_color=_COLOR,
                                  hovertemplate="%{x}: %{y:,} rows<extra></extra>"))
    else:
        counts, edges = np.histogram(values, bins=_MAX_BINS)
        centers = (edges[:-1] + edges[1:]) / 2
        figure = go.Figure(
            go.Bar(
                x=centers,
                y=counts,
                width=np.diff(edges),
                customdata=np.column_stack([edges[:-1], edges[1:]]),
                marker_color=_COLOR,
                hovertemplate="%{customdata[0]:.4g} to %{customdata[1]:.4g}: %{y:,} rows<extra></extra>",
            )
        )
    figure.update_layout(title=title, xaxis_title=axis, yaxis_title="rows", bargap=0.02)
    return _style(figure)


def _over_time(series: pd.Series, name: str) -> go.Figure:
    dates = series.dropna()
    if dates.empty:
        return _message("No dates to show")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    span = dates.max() - dates.min()
    freq, unit = next((f, u) for limit, f, u in _PERIODS if span <= limit)
    counts = dates.dt.to_period(freq).value_counts().sort_index()
    figure = go.Figure(
        go.Bar(
            x=counts.index.to_timestamp(),
            y=counts.to_numpy(),
            marker_color=_COLOR,
            hovertemplate="%{x}: %{y:,} rows<extra></extra>",
        )
    )
    figure.update_layout(title=f"Rows per {unit} of '{name}'", yaxis_title="rows")
    return _style(figure)


# The longest span each period suits: about 100 bars or fewer.
_PERIODS = (
    (pd.Timedelta(days=100), "D", "day"),
    (pd.Timedelta(weeks=100), "W", "week"),
    (pd.Timedelta(days=365 * 10), "M", "month"),
    (pd.Timedelta.max, "Y", "year"),
)


def _bars(labels: list[str], counts: list[int], title: str, *, horizontal: bool, total: int | None = None) -> go.Figure:
    total = total or sum(counts) or 1
    shares = [c / total for c in counts]
    if horizontal:  # long labels read better on the side, the most frequent on top
        bar = go.Bar(x=counts, y=labels, orientation="h", customdata=shares,
                     hovertemplate="%{y}: %{x:,} rows (%{customdata:.1%})<extra></extra>")
    else:
        bar = go.Bar(x=labels, y=counts, customdata=shares,
                     hovertemplate="%{x}: %{y:,} rows (%{customdata:.1%})<extra></extra>")
    bar.marker.color = _COLOR
    figure = go.Figure(bar)
    figure.update_layout(title=title)
    if horizontal:
        figure.update_yaxes(autorange="reversed", type="category")
    else:
        figure.update_xaxes(type="category")
    return _style(figure)


def _message(text: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=html.escape(text, quote=False), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return _style(figure)


def _style(figure: go.Figure) -> go.Figure:
    figure.update_layout(template="plotly_white", margin={"l": 10, "r": 10, "t": 50, "b": 10}, height=360)
    return figure


def _sample(data, rows: int):
    return data.sample(n=rows, random_state=_SEED) if len(data) > rows else data


def _safe(value: object) -> str:
    """User text made inert for plotly's HTML-like labels, and kept short."""
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return html.escape(text, quote=False)  # no tag can form without "<"; plotly shows &quot; literally
