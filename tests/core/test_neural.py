"""The MLP classifier stops early on validation log loss, so a lopsided target still trains."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor

from core.config import SAMPLES_DIR
from core.data.profile import Task
from core.modeling.metrics import score
from core.modeling.neural import LossStoppedMLPClassifier
from core.modeling.specs import SPECS
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.recipe import prepare_training_table
from core.prep.steps import Recipe


def _split(name: str, target: str):
    frame = pd.read_csv(SAMPLES_DIR / name)
    X, y = prepare_training_table(frame, Recipe(), target=target)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def _fit(estimator, X, y, target: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return build_pipeline(Recipe(), FeaturePlan(), target=target, estimator=estimator).fit(X, y)


def test_the_spec_builds_the_loss_stopped_classifier_and_keeps_sklearns_regressor() -> None:
    spec = SPECS["mlp"]
    assert type(spec.build(None, task=Task.BINARY, seed=0)) is LossStoppedMLPClassifier
    assert type(spec.build(None, task=Task.MULTICLASS, seed=0)) is LossStoppedMLPClassifier
    assert type(spec.build(None, task=Task.REGRESSION, seed=0).regressor) is MLPRegressor


def test_a_lopsided_target_trains_past_the_first_epoch() -> None:
    """taxi's tip: 8 % of rows are 'no'. Accuracy stopping keeps the first epoch's weights (the
    common class is as accurate as it gets); log loss keeps improving for many epochs."""
    X_train, X_test, y_train, y_test = _split("taxi.csv", "tip")
    params = SPECS["mlp"].default_params(Task.BINARY) | {"random_state": 0, "early_stopping": True}
    ours = _fit(LossStoppedMLPClassifier(**params), X_train, y_train, "tip")
    plain = _fit(MLPClassifier(**params), X_train, y_train, "tip")

    network = ours.named_steps["model"]
    assert all(s <= 0 for s in network.validation_scores_)  # negative log losses, not accuracies
    assert network.best_validation_score_ == max(network.validation_scores_)
    assert network.n_iter_ > plain.named_steps["model"].n_iter_

    def auc(model) -> float:
        return score("roc_auc", y_test, model.predict(X_test), model.predict_proba(X_test), list(model.classes_))

    assert auc(ours) > 0.55
    assert auc(ours) > auc(plain) + 0.05


@pytest.mark.parametrize("sample, target, task", [("penguins.csv", "species", Task.MULTICLASS),
                                                  ("mlc_churn.csv", "churn", Task.BINARY)])
def test_held_out_log_loss_beats_accuracy_stopping(sample: str, target: str, task: Task) -> None:
    """penguins (three classes, 258 training rows): accuracy is perfect within a few epochs and
    stops training with probabilities still vague (log loss 0.56 against 0.04)."""
    X_train, X_test, y_train, y_test = _split(sample, target)
    params = SPECS["mlp"].default_params(task) | {"random_state": 0, "early_stopping": True}
    ours = _fit(LossStoppedMLPClassifier(**params), X_train, y_train, target)
    plain = _fit(MLPClassifier(**params), X_train, y_train, target)

    def loss(model) -> float:
        return score("log_loss", y_test, model.predict(X_test), model.predict_proba(X_test), list(model.classes_))

    assert loss(ours) < loss(plain)
