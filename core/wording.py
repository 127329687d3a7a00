"""Small helpers for the words of messages and captions, shared by `core` and the pages."""
from __future__ import annotations


def plural(count: int, word: str) -> str:
    """``count`` and the word in the number it needs: "1 step", "3 steps", "1,200 rows"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"
