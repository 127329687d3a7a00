"""Small helpers for the words of messages and captions, shared by `core` and the pages."""
from __future__ import annotations


def plural(count: int, word: str, words: str | None = None) -> str:
    """``count`` and the word in the number it needs: "1 step", "3 steps", "1,200 rows".

    Args:
        count: How many.
        word: The singular.
        words: The plural when it is not ``word`` + "s" ("1 class", "2 classes").
    """
    return f"{count:,} {word if count == 1 else (words or word + 's')}"
