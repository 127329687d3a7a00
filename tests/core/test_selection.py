"""Importance preview (in-fold only, with noise floors) and the automatic plan clean-up."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import BadInput
from core.prep.plan import ColumnTransform, FeaturePlan
from core.prep.selection import auto_plan, importance_preview
from core.prep.steps import DropColumns, Recipe


def _noise(seed: int = 0, rows: int = 2_000, columns: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    frame["y"] = rng.integers(0, 2, rows)
    return frame


def test_leakage_canary_pure_noise_shows_no_signal() -> None:
    """If anything were fitted on the whole table, noise would look predictive here."""
    preview = importance_preview(_noise(), Recipe(), FeaturePlan(), target="y", task="binary")
    assert preview.has_signal is False
    assert sum(row.signal for row in preview.rows) <= 1
    assert abs(preview.score - 0.5) < 0.03 and preview.baseline_score == pytest.approx(0.5)
    assert len(preview.rows) == 50 and preview.folds == 3 and preview.metric == "ROC AUC"
    assert all(row.mutual_info >= 0 and row.mi_baseline >= 0 for row in preview.rows)


def test_planted_signal_is_ranked_first() -> None:
    frame = _noise(seed=1)
    rng = np.random.default_rng(7)
    frame["planted"] = frame["y"] * 1.0 + rng.normal(scale=0.8, size=len(frame))
    preview = importance_preview(frame, Recipe(), FeaturePlan(), target="y", task="binary")
    assert preview.has_signal is True and preview.score > 0.7
    top = preview.rows[0]
    assert top.column == "planted" and top.signal is True
    assert top.mutual_info == max(row.mutual_info for row in preview.rows) and top.mutual_info > 0.05
    assert sum(row.signal for row in preview.rows[1:]) <= 1
    model_importances = [row.model_importance for row in preview.rows]
    assert model_importances == sorted(model_importances, reverse=True)


def test_preview_regression_and_multiclass() -> None:
    rng = np.random.default_rng(3)
    n = 1_500
    frame = pd.DataFrame({
        "signal": rng.normal(size=n),
        "noise": rng.normal(size=n),
        "group": rng.choice(["a", "b", "c"], n),
        "drop_me": rng.normal(size=n),
    })
    frame["amount"] = 3 * frame["signal"] + (frame["group"] == "a") * 2 + rng.normal(size=n)
    recipe = Recipe(steps=(DropColumns(columns=["drop_me"]),))
    preview = importance_preview(frame, recipe, FeaturePlan(), target="amount", task="regression", folds=4)
    assert preview.has_signal and preview.folds == 4 and preview.metric == "R²"
    assert [r.column for r in preview.rows[:2]] == ["signal", "group"] and preview.rows[1].signal
    assert "drop_me" not in {r.column for r in preview.rows}
    assert not {r.column: r for r in preview.rows}["noise"].signal

    frame["kind"] = np.select([frame["signal"] < -0.5, frame["signal"] > 0.5], ["low", "high"], "mid")
    plan = FeaturePlan(exclude=("amount",), transforms={"group": ColumnTransform(encoding="target")})
    preview = importance_preview(frame, Recipe(), plan, target="kind", task="multiclass")
    assert preview.has_signal and preview.rows[0].column == "signal"
    assert preview.baseline_score == pytest.approx(1 / 3)


def test_preview_bad_input() -> None:
    frame = _noise(rows=200, columns=3)
    with pytest.raises(BadInput, match="Unknown task"):
        importance_preview(frame, Recipe(), FeaturePlan(), target="y", task="ranking")  # type: ignore[arg-type]
    frame["y3"] = np.arange(200) % 3
    with pytest.raises(BadInput, match="exactly 2"):
        importance_preview(frame.drop(columns="y"), Recipe(), FeaturePlan(), target="y3", task="binary")
    frame["text_target"] = "a"
    with pytest.raises(BadInput, match="numeric target"):
        importance_preview(frame, Recipe(), FeaturePlan(), target="text_target", task="regression")


def test_auto_plan_drops_constant_and_duplicates() -> None:
    rng = np.random.default_rng(0)
    n = 500
    frame = pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.normal(size=n),
        "constant": np.r_[np.ones(n - 2), [2.0, 3.0]],  # 99.6% the same value
        "mostly_empty": np.r_[np.full(n - 1, np.nan), [1.0]],
        "label": rng.choice(["x", "y"], n),
        "y": rng.integers(0, 2, n),
    })
    frame["a_copy"] = frame["a"] * 2 + 1  # Pearson 1
    frame["b_rank"] = np.exp(frame["b"] * 3)  # monotone: Spearman 1, Pearson well below
    frame["c"] = rng.normal(size=n)
    plan, reasons = auto_plan(frame, Recipe(), FeaturePlan(exclude=("label",)), target="y")
    assert plan.exclude == ("label", "constant", "mostly_empty", "a_copy", "b_rank")
    assert len(reasons) == 4
    assert reasons[0].startswith("constant: near-constant")
    assert "mostly_empty" in reasons[1] and "missing" in reasons[1]
    assert reasons[2] == "a_copy: near-duplicate of a (|Pearson| = 1.000)"
    assert reasons[3].startswith("b_rank: near-duplicate of b (|Spearman|")

    again, none = auto_plan(frame, Recipe(), plan, target="y")
    assert again == plan and none == ()
    loose, _ = auto_plan(frame, Recipe(), FeaturePlan(), target="y", near_constant_share=1.0, corr_threshold=1.01)
    assert loose.exclude == ()
