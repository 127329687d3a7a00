"""Small helpers for the words of messages and captions, shared by `core` and the pages."""
from __future__ import annotations


# Why a search ended (``TuningResult.stopped``; a DONE job's stage), in words.
STOP_REASONS = {"budget": "the time budget ran out", "model limits": "every model used its own time limit",
                "trials": "the trial cap was reached", "finished": "no model had anything left worth trying"}


def plural(count: int, word: str) -> str:
    """``count`` and the word in the number it needs: "1 step", "3 steps", "1,200 rows"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def decimal(value: float, places: int = 3) -> str:
    """``value`` to ``places`` decimals, without the minus of a value that rounds to zero: a
    dummy model's R² of -0.0001 reads "0.000", not "-0.000"."""
    text = f"{value:.{places}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def trial_state(state: str, stop: str | None = None, folds: int | None = None) -> str:
    """A tuning trial's state in words. A pruned trial is "stopped early" with why and after how
    many folds, since its score covers only those (one above the winner's is no contradiction);
    trials recorded before the reason was kept read just "stopped early"."""
    if state != "pruned":
        return state
    why = ", ".join(part for part in (stop, plural(folds, "fold") if folds is not None else None) if part)
    return f"stopped early ({why})" if why else "stopped early"
