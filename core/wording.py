"""Small helpers for the words of messages and captions, shared by `core` and the pages."""
from __future__ import annotations


def plural(count: int, word: str) -> str:
    """``count`` and the word in the number it needs: "1 step", "3 steps", "1,200 rows"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def decimal(value: float, places: int = 3) -> str:
    """``value`` to ``places`` decimals, without the minus of a value that rounds to zero: a
    dummy model's R² of -0.0001 reads "0.000", not "-0.000"."""
    text = f"{value:.{places}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text
