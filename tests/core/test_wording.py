"""The words of messages: counts with their nouns, decimals without a minus zero."""
from __future__ import annotations

import pytest

from core.wording import decimal, plural, trial_state


def test_plural() -> None:
    assert [plural(n, "step") for n in (0, 1, 2, 1200)] == ["0 steps", "1 step", "2 steps", "1,200 steps"]


@pytest.mark.parametrize(("value", "text"), [
    (-0.0001, "0.000"), (-0.0, "0.000"), (0.0, "0.000"), (0.9104, "0.910"), (-0.0005, "-0.001"), (-1.0, "-1.000"),
])
def test_decimal_never_shows_a_minus_zero(value, text) -> None:
    assert decimal(value) == text


def test_a_trial_stopped_early_says_why_and_after_how_many_folds() -> None:
    assert trial_state("pruned", "time limit", 2) == "stopped early (time limit, 2 folds)"
    assert trial_state("pruned", "median pruner", 1) == "stopped early (median pruner, 1 fold)"
    assert trial_state("pruned") == "stopped early"  # recorded before the reason was kept
    assert trial_state("complete", None, 5) == "complete" and trial_state("failed") == "failed"
