"""When a retrained challenger replaces the champion: a paired bootstrap and a promotion policy.

Both models are scored on the same rows, so the comparison is paired: every bootstrap resample
draws row positions once and scores *both* models on them, and the interval is taken over the
per-resample differences. What both models find hard cancels out, which makes the interval far
narrower than comparing two separate intervals.

Differences are in the "higher is better" direction (``signed``): for RMSE or log loss a
positive difference means the challenger's error is lower.

The resampling, so a reader can redo it by hand: ``rng = numpy.random.default_rng(seed)``; for
each of ``n_bootstrap`` resamples ``idx = rng.integers(0, n, size=n)``; the difference is the
challenger's score on ``idx`` minus the champion's; resamples where the metric is undefined
(e.g. ROC AUC on a resample with one class) are skipped; the interval is the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (numpy's default, linear) of the
rest.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from core.errors import BadInput
from core.modeling.metrics import METRICS, score, signed

__all__ = ["Comparison", "PromotionPolicy", "Scored", "decide", "paired_bootstrap"]

_MIN_VALID_SHARE = 0.5  # fewer defined resamples than this share: no interval (too few rows)


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger may replace the champion.

    It is promoted only when, on the shared holdout and on the labelled window when one is
    given, it is better by at least ``margin`` *and* the lower bound of the ``confidence``
    interval of the difference is above 0.

    Attributes:
        metric: The metric compared; None means the one the models were tuned on.
        margin: The smallest improvement worth a change, in the metric's units (>= 0).
        confidence: Two-sided confidence of the bootstrap interval, in (0.5, 1).
        n_bootstrap: Bootstrap resamples (at least 100).
        require_window: Never promote without a labelled recent window.
        max_rows: Larger evaluation sets are compared on a random sample of this many rows.
        seed: Seed of the resampling; None means the settings' seed.
    """

    metric: str | None = None
    margin: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 1000
    require_window: bool = False
    max_rows: int = 50_000
    seed: int | None = None

    def validate(self) -> None:
        """Raise BadInput when a setting is out of range."""
        if not (isinstance(self.margin, (int, float)) and math.isfinite(self.margin) and self.margin >= 0):
            raise BadInput(f"the promotion margin must be a number >= 0, not {self.margin!r}")
        if not 0.5 < self.confidence < 1:
            raise BadInput(f"the confidence must be between 0.5 and 1, not {self.confidence!r}")
        if not 100 <= self.n_bootstrap <= 100_000:
            raise BadInput(f"the number of bootstrap resamples must be 100 to 100,000, not {self.n_bootstrap!r}")
        if self.max_rows < 100:
            raise BadInput("the comparison needs at least 100 rows of room (max_rows)")
        if self.metric is not None and self.metric not in METRICS:
            raise BadInput(f"unknown metric {self.metric!r}; use one of: {', '.join(METRICS)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Scored:
    """One model's predictions on the evaluation rows.

    Attributes:
        pred: Predicted labels (classification) or values (regression), one per row.
        proba: Probabilities, one column per entry of the shared ``classes``; None for
            regression or models without probabilities.
    """

    pred: np.ndarray
    proba: np.ndarray | None = None


@dataclass(frozen=True)
class Comparison:
    """Champion against challenger on one set of rows.

    Attributes:
        name: ``"holdout"`` or ``"window"``.
        rows: Rows compared.
        metric: The metric's name.
        champion_score: The champion's score on all the rows (as the metric reads).
        challenger_score: The challenger's score on the same rows.
        diff: Challenger minus champion in the "higher is better" direction.
        ci_low: Lower bound of the paired bootstrap interval of ``diff`` (nan if undefined).
        ci_high: Upper bound.
        confidence: The interval's confidence.
        n_bootstrap: Resamples the interval is made of (the defined ones).
    """

    name: str
    rows: int
    metric: str
    champion_score: float
    challenger_score: float
    diff: float
    ci_low: float
    ci_high: float
    confidence: float
    n_bootstrap: int

    def passes(self, margin: float) -> bool:
        """Better by at least ``margin`` with the interval's lower bound above 0."""
        return bool(math.isfinite(self.diff) and math.isfinite(self.ci_low)
                    and self.diff >= margin and self.ci_low > 0)


def paired_bootstrap(
    y_true: Sequence,
    champion: Scored,
    challenger: Scored,
    *,
    metric: str,
    classes: Sequence = (),
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
    name: str = "holdout",
) -> Comparison:
    """Score both models on the same rows and bootstrap the difference (see the module docstring).

    Args:
        y_true: True targets, one per row.
        champion: The champion's predictions on those rows.
        challenger: The challenger's predictions on the same rows.
        metric: A metric name from ``core.modeling.metrics.METRICS``.
        classes: The class labels the probability columns follow (empty for regression).
        n_bootstrap: Resamples.
        confidence: Two-sided confidence of the interval.
        seed: Seed of the resampling.
        name: What the rows are, for the result.

    Returns:
        The comparison; its interval is nan when fewer than half the resamples define the metric.

    Raises:
        BadInput: No rows, or the predictions do not match the rows.
    """
    y = np.asarray(y_true)
    n = len(y)
    if n == 0:
        raise BadInput(f"no rows to compare the models on ({name})")
    for side in (champion, challenger):
        if len(side.pred) != n or (side.proba is not None and len(side.proba) != n):
            raise BadInput("the predictions do not match the rows compared")

    def value(rows: np.ndarray | slice, side: Scored) -> float:
        proba = None if side.proba is None else side.proba[rows]
        return score(metric, y[rows], side.pred[rows], proba, classes)

    base, new = value(slice(None), champion), value(slice(None), challenger)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        idx = rng.integers(0, n, size=n)
        diffs[b] = signed(metric, value(idx, challenger)) - signed(metric, value(idx, champion))
    valid = diffs[np.isfinite(diffs)]
    low = high = float("nan")
    if len(valid) >= _MIN_VALID_SHARE * n_bootstrap:
        alpha = 1 - confidence
        low, high = (float(q) for q in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
    return Comparison(
        name=name, rows=n, metric=metric, champion_score=float(base), challenger_score=float(new),
        diff=signed(metric, new) - signed(metric, base), ci_low=low, ci_high=high, confidence=confidence,
        n_bootstrap=int(len(valid)),
    )


def decide(policy: PromotionPolicy, holdout: Comparison, window: Comparison | None) -> tuple[bool, str]:
    """Apply the policy; returns whether to promote and one sentence saying why.

    Args:
        policy: The policy.
        holdout: The comparison on the shared holdout.
        window: The comparison on the labelled recent window, if one was given.
    """
    label = METRICS[holdout.metric].label
    checks = [holdout] + ([window] if window is not None else [])
    for check in checks:
        if not check.passes(policy.margin):
            if not (math.isfinite(check.ci_low) and math.isfinite(check.diff)):
                return False, f"the {check.name} comparison is undefined ({label} cannot be computed on its rows)"
            if check.diff < policy.margin:
                return False, (f"on the {check.name} the challenger is {_signed_text(check.diff)} in {label}, "
                               f"short of the margin {policy.margin:g}")
            return False, (f"on the {check.name} the improvement {_signed_text(check.diff)} is not certain: "
                           f"its {check.confidence:.0%} interval reaches {_signed_text(check.ci_low)}")
    if window is None and policy.require_window:
        return False, "the policy requires a labelled recent window, and none was given"
    where = " and ".join(c.name for c in checks)
    return True, (f"better on the {where} by at least {policy.margin:g} in {label}, "
                  f"with the {holdout.confidence:.0%} interval above 0")


def _signed_text(value: float) -> str:
    return f"{value:+.4f}"
