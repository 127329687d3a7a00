"""The words of messages: counts with their nouns, decimals without a minus zero."""
from __future__ import annotations

import pytest

from core.wording import decimal, plural


def test_plural() -> None:
    assert [plural(n, "step") for n in (0, 1, 2, 1200)] == ["0 steps", "1 step", "2 steps", "1,200 steps"]


@pytest.mark.parametrize(("value", "text"), [
    (-0.0001, "0.000"), (-0.0, "0.000"), (0.0, "0.000"), (0.9104, "0.910"), (-0.0005, "-0.001"), (-1.0, "-1.000"),
])
def test_decimal_never_shows_a_minus_zero(value, text) -> None:
    assert decimal(value) == text
