"""Would more rows help? A version's model refit on growing shares of its cross-validation folds.

Each fold's training rows are cut to 10 %, 25 %, 50 %, 75 % and all of them; the version's
Pipeline (cleaning, features and estimator, with its tuned parameters) is fitted on each cut and
scored on the fold's validation rows, and on the rows it was fitted on. If the validation score is
still climbing at the right of the curve, more rows of the same kind would most likely improve
the model; if it has flattened, they would not, and the training score's distance above it says
how much the model fits noise. The rows are the version's training rows, its holdout split off as
training split it, and the folds its own cross-validation's. On a time-series split a cut keeps the
latest rows before the fold's validation rows; elsewhere it is a seeded random sample.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone

from core.config import Settings
from core.errors import BadInput
from core.explain import version_rows
from core.modeling.evaluation import model_score
from core.modeling.metrics import METRICS, signed
from core.modeling.splits import fold_indices, latest_rows
from core.store.models import ModelVersion

SHARES = (0.1, 0.25, 0.5, 0.75, 1.0)
_SCORED_TRAINING_ROWS = 5_000  # the training score is a sample's: it only shows the gap


@dataclass(frozen=True)
class LearningCurve:
    """Scores of a version's model by how many rows it learnt from.

    Attributes:
        metric: The metric: the one the version was tuned for.
        rows: For each share of the training folds, the mean number of rows fitted on.
        validation: For each share, one score per fold on the fold's validation rows (NaN where
            the cut could not be fitted: a class missing from a small cut, say).
        training: For each share, one score per fold on (a sample of) the rows fitted on.
    """

    metric: str
    rows: tuple[int, ...]
    validation: tuple[tuple[float, ...], ...]
    training: tuple[tuple[float, ...], ...]

    def reading(self) -> str:
        """One sentence on the curve's right end: whether the validation score still climbs from
        the second-largest cut to all rows. The folds are the same at both cuts, so the gains are
        paired, fold by fold (a hard fold is hard at both): climbing means a mean gain above two
        standard errors."""
        label = METRICS[self.metric].label
        gains = np.array([signed(self.metric, b) - signed(self.metric, a)
                          for a, b in zip(self.validation[-2], self.validation[-1])], dtype=float)
        gains = gains[np.isfinite(gains)]
        gain = float(gains.mean()) if len(gains) else float("nan")
        error = float(gains.std(ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else float("inf")
        step = (f"from {self.rows[-2]:,} to {self.rows[-1]:,} rows, {label} moved by {gain:+.4f} "
                f"(± {error:.4f} over the folds; + is better)")
        if gain > 2 * error:  # about 95 % sure, one-sided, that more rows helped here
            return f"Still climbing: {step}. More rows of the same kind would most likely improve the model."
        return (f"Flat at the right: {step}. More rows of the same kind would likely add little; new columns "
                "(features) or cleaner labels are where gains would come from.")


def learning_curve(
    version: ModelVersion,
    frame: pd.DataFrame,
    *,
    settings: Settings,
    shares: Sequence[float] = SHARES,
    on_fit: Callable[[int, int], None] | None = None,
) -> LearningCurve:
    """Fit the version's model on growing cuts of each fold's training rows and score it.

    Args:
        version: A READY version that recorded its cross-validation.
        frame: The dataset it was trained on, as uploaded.
        settings: Where the model files live, and the seed of the random cuts.
        shares: The cuts, as shares of a fold's training rows, smallest first.
        on_fit: Called after each fit with (fits done, fits in all), for a progress bar.

    Raises:
        BadInput: As :func:`core.explain.version_rows`, or the version recorded no
            cross-validation scheme.
    """
    data = version_rows(version, frame, settings=settings)
    if data.scheme is None:
        raise BadInput(f"version {version.version} recorded no cross-validation to draw a learning curve from")
    X, y = data.X, data.y
    if data.holdout_share:
        X, _, y, _ = data.split()
    folds = fold_indices(X, y, data.scheme)
    rng = np.random.default_rng(settings.random_seed)
    total, done = len(shares) * len(folds), 0
    rows, validation, training = [], [], []
    for share in shares:
        fitted, on_valid, on_train = [], [], []
        for train, valid in folds:
            n = max(2, round(share * len(train)))
            # Latest rows on a time split (the ones nearest what is predicted); a seeded sample elsewhere.
            cut = (latest_rows(X, train, data.scheme, n) if data.scheme.kind == "time"
                   else np.sort(rng.choice(train, size=n, replace=False)))
            seen = cut if len(cut) <= _SCORED_TRAINING_ROWS else rng.choice(cut, _SCORED_TRAINING_ROWS, replace=False)
            fitted.append(len(cut))
            try:
                model = clone(data.pipeline).fit(X.iloc[cut], y.iloc[cut])
                scores = [model_score(model, X.iloc[rows_], y.iloc[rows_].to_numpy(), metric=data.metric,
                                      classes=data.classes, threshold=data.threshold) for rows_ in (valid, seen)]
            except (ValueError, BadInput):  # too few rows or one class in a small cut: no point there
                scores = [float("nan")] * 2
            on_valid.append(float(scores[0]))
            on_train.append(float(scores[1]))
            done += 1
            if on_fit is not None:
                on_fit(done, total)
        rows.append(int(round(float(np.mean(fitted)))))
        validation.append(tuple(on_valid))
        training.append(tuple(on_train))
    return LearningCurve(metric=data.metric, rows=tuple(rows), validation=tuple(validation), training=tuple(training))
