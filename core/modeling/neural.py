"""The MLP classifier ShipML trains: scikit-learn's, early-stopped on validation log loss.

scikit-learn's ``MLPClassifier(early_stopping=True)`` stops on validation *accuracy* and keeps the
weights of the epoch that scored best. On a lopsided target that is the first epoch: predicting
the common class is already as accurate as any later epoch gets, so accuracy never improves and
the network is returned barely trained (on the taxi sample, 8 % of rows in the rare class, its
cross-validated ROC AUC was 0.470, worse than chance). Log loss keeps improving while the
probabilities do, so stopping on it trains as long as the held-out rows say it helps (0.589
there; the README has more).

scikit-learn has no parameter for the early-stopping score (scikit-learn issue #24411 asks for
one), so this overrides ``_score``, the private hook ``fit`` calls on the held-out rows after each
epoch. ``tests/core/test_neural.py`` fails if a new scikit-learn stops calling it.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier


class LossStoppedMLPClassifier(MLPClassifier):
    """``MLPClassifier`` whose early stopping scores the held-out rows by negative log loss
    (higher is better, as ``fit`` expects) instead of accuracy. Identical otherwise."""

    def _score(self, X, y, sample_weight=None) -> float:
        proba = self._forward_pass_fast(X, check_input=False)  # ``fit`` has validated X already
        if not np.isfinite(proba).all():  # diverged weights: scored as scikit-learn scores them
            return np.nan
        if proba.shape[1] == 1:  # binary: the network outputs the second class's probability
            proba = np.hstack([1 - proba, proba])
        return -log_loss(y, proba, labels=self.classes_, sample_weight=sample_weight)
