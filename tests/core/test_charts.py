"""Profile charts: the right chart per kind, small figures, and user text made inert."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.config import SAMPLES_DIR
from core.data.charts import column_chart, correlation_chart, target_chart
from core.data.profile import Task, profile_table

EVIL = "<script>alert(1)</script>"


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 5_000
    words = np.array(["late", "parcel", "great", "service", "broken", "box", "refund", "fast"])
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 1, rows),
            "visits": rng.poisson(3, rows),
            "plan": rng.choice(["basic", "pro", "team"], rows),
            "member": rng.random(rows) < 0.3,
            "joined": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D"),
            "review": [" ".join(rng.choice(words, 5)) + f" {i}" for i in range(rows)],
            "churn": rng.choice(["no", "yes"], rows, p=[0.8, 0.2]),
        }
    )


def test_numeric_column_is_a_histogram_of_every_value(frame: pd.DataFrame) -> None:
    profile = profile_table(frame)
    figure = column_chart(frame, profile.column("income"))
    (bars,) = figure.data
    assert isinstance(bars, go.Bar)
    assert len(bars.x) == 40 and sum(bars.y) == len(frame)
    assert "income" in figure.layout.title.text


def test_small_whole_numbers_get_one_bar_each(frame: pd.DataFrame) -> None:
    figure = column_chart(frame, profile_table(frame).column("visits"))
    (bars,) = figure.data
    assert list(bars.x) == sorted(frame["visits"].unique())
    assert sum(bars.y) == len(frame)


@pytest.mark.parametrize("name", ["plan", "member", "churn"])
def test_categories_and_booleans_are_bars_of_top_values(frame: pd.DataFrame, name: str) -> None:
    column = profile_table(frame).column(name)
    (bars,) = column_chart(frame, column).data
    assert list(bars.y) == [value for value, _ in column.top_values]
    assert list(bars.x) == [count for _, count in column.top_values]


def test_many_categories_say_how_many_are_shown() -> None:
    frame = pd.DataFrame({"city": [f"c{i % 40}" for i in range(400)], "n": range(400)})
    figure = column_chart(frame, profile_table(frame).column("city"))
    assert "top 10 of 40" in figure.layout.title.text


def test_dates_are_counted_over_time(frame: pd.DataFrame) -> None:
    figure = column_chart(frame, profile_table(frame).column("joined"))
    (bars,) = figure.data
    assert "month" in figure.layout.title.text  # 900 days: monthly bars
    assert sum(bars.y) == len(frame)
    assert 28 <= len(bars.x) <= 31


def test_timezone_aware_dates_over_a_few_days() -> None:
    stamps = pd.date_range("2024-03-01", periods=500, freq="h", tz="Europe/Paris")
    frame = pd.DataFrame({"at": stamps, "n": range(500)})
    figure = column_chart(frame, profile_table(frame).column("at"))
    assert "day" in figure.layout.title.text
    assert sum(figure.data[0].y) == 500


def test_free_text_is_a_histogram_of_lengths(frame: pd.DataFrame) -> None:
    figure = column_chart(frame, profile_table(frame).column("review"))
    assert "Length" in figure.layout.title.text
    assert sum(figure.data[0].y) == len(frame)


def test_empty_numeric_column_says_so() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "y": [1, 2]})
    figure = column_chart(frame, profile_table(frame).column("x"))
    assert figure.data == ()
    assert "No values" in figure.layout.annotations[0].text


def test_correlation_heatmap(frame: pd.DataFrame) -> None:
    frame["double_income"] = frame["income"] * 2
    profile = profile_table(frame, target="income")
    figure = correlation_chart(frame, profile)
    (heatmap,) = figure.data
    assert isinstance(heatmap, go.Heatmap)
    assert list(heatmap.x) == ["income", "visits", "double_income"]
    z = np.array(heatmap.z)
    assert np.allclose(np.diag(z), 1) and z[0, 2] == pytest.approx(1)
    assert (heatmap.zmin, heatmap.zmax) == (-1, 1)


def test_correlation_is_capped_and_sampled() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(120_000, 35)), columns=[f"x{i}" for i in range(35)])
    figure = correlation_chart(frame, profile_table(frame))
    assert len(figure.data[0].x) == 30
    assert "100,000-row sample" in figure.layout.title.text


def test_correlation_needs_two_numeric_columns() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.5, 3.1], "b": ["x", "y", "z"]})
    figure = correlation_chart(frame, profile_table(frame))
    assert figure.data == () and "two numeric" in figure.layout.annotations[0].text


def test_target_chart_classes_and_regression(frame: pd.DataFrame) -> None:
    (bars,) = target_chart(frame, "churn", Task.BINARY).data
    assert list(bars.x) == ["no", "yes"]
    assert list(bars.y) == frame["churn"].value_counts().tolist()
    histogram = target_chart(frame, "income", Task.REGRESSION)
    assert sum(histogram.data[0].y) == len(frame)


def test_target_chart_caps_many_classes() -> None:
    frame = pd.DataFrame({"y": [f"class_{i % 45}" for i in range(900)], "x": range(900)})
    figure = target_chart(frame, "y", Task.MULTICLASS)
    assert len(figure.data[0].y) == 30 and "top 30 of 45" in figure.layout.title.text


def test_user_text_is_escaped_everywhere() -> None:
    frame = pd.DataFrame(
        {
            EVIL: ["<b>bold</b>", "<a href='javascript:alert(1)'>x</a>", "plain"] * 10,
            "<img src=x onerror=alert(1)>": np.arange(30.0),
            "n": np.arange(30) % 4,
        }
    )
    profile = profile_table(frame, target=EVIL)
    figures = [column_chart(frame, column) for column in profile.column_profiles]
    figures += [correlation_chart(frame, profile), target_chart(frame, EVIL, Task.MULTICLASS)]
    for figure in figures:
        text = figure.to_json()
        assert "<script" not in text and "<b>" not in text and "<a " not in text and "<img" not in text
    assert "&lt;script&gt;" in figures[0].layout.title.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in list(figures[0].data[0].y)


def test_hover_templates_hold_no_user_text() -> None:
    frame = pd.DataFrame({"%{x}<br>": ["a", "b"] * 10, "v": np.arange(20.0)})
    profile = profile_table(frame)
    for column in profile.column_profiles:
        for trace in column_chart(frame, column).data:
            assert "%{x}<br>" not in (trace.hovertemplate or "").replace("%{x}: ", "")


def test_figures_stay_small_on_real_data() -> None:
    frame = pd.read_csv(SAMPLES_DIR / "lending_club.csv")
    profile = profile_table(frame, target="Class")
    for column in profile.column_profiles:
        assert len(column_chart(frame, column).to_json()) < 30_000
    assert len(correlation_chart(frame, profile).to_json()) < 60_000
