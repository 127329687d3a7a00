"""Cross-validation, the evaluation report, thresholds and importance."""
from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from lightgbm import LGBMClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score, roc_auc_score
from sklearn.svm import LinearSVC

from core.data.profile import Task
from core.errors import BadInput
from core.modeling.evaluation import (
    baseline_notes,
    best_threshold,
    cross_validate,
    evaluate,
    permutation_importance_table,
    threshold_note,
)
from core.modeling.metrics import metrics_for
from core.modeling.splits import CVScheme, choose_scheme, fold_indices, holdout_split
from core.prep.pipeline import build_pipeline
from core.prep.plan import ColumnTransform, FeaturePlan
from core.prep.steps import Recipe
from tests.core.frames import sample_table


def _maker(target: str, estimator_factory, plan: FeaturePlan | None = None):
    return lambda: build_pipeline(Recipe(), plan or FeaturePlan(), target=target, estimator=estimator_factory())


def _small_lgbm() -> LGBMClassifier:
    return LGBMClassifier(n_estimators=60, num_leaves=15, learning_rate=0.1, n_jobs=1, verbose=-1, random_state=0)


# --- cross-validation and the report ------------------------------------------------------------


def test_cross_validate_time_series_oof_and_pruning_hook(chicago) -> None:
    X, y = chicago
    X = X[["date", "temp", "Clark_Lake", "Austin"]]
    scheme = CVScheme(kind="time", time_column="date", n_folds=3)
    seen: list[tuple[int, float]] = []
    result = cross_validate(_maker("ridership", Ridge), X, y, task=Task.REGRESSION, scheme=scheme, metric="r2",
                            after_fold=lambda fold, mean: seen.append((fold, mean)))
    assert [fold for fold, _ in seen] == [1, 2, 3]
    assert math.isclose(seen[-1][1], np.mean(result.fold_scores["r2"]))
    assert set(result.fold_scores) == set(metrics_for(Task.REGRESSION))
    first_block = X["date"] < X["date"].iloc[np.flatnonzero(result.oof_mask)].min()
    assert not result.oof_mask[first_block.to_numpy()].any() and result.oof_mask.sum() == len(X) - first_block.sum()
    assert np.isfinite(result.oof_pred[result.oof_mask]).all() and result.classes is None

    def prune(fold: int, mean: float) -> None:
        raise optuna.TrialPruned()

    with pytest.raises(optuna.TrialPruned):
        cross_validate(_maker("ridership", Ridge), X, y, task=Task.REGRESSION, scheme=scheme, metric="r2",
                       after_fold=prune)


def test_leakage_canary_noise_is_no_better_than_baseline() -> None:
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(1_000, 20)), columns=[f"noise_{i}" for i in range(20)])
    # A high-cardinality code, target-encoded: the classic leak if encoding saw validation rows.
    X["code"] = rng.integers(0, 300, 1_000).astype(str)
    y = pd.Series(rng.choice(["a", "b"], size=1_000))
    plan = FeaturePlan(transforms={"code": ColumnTransform(encoding="target")})
    scheme, _ = choose_scheme(X, task=Task.BINARY, y=y)
    for factory in (lambda: LogisticRegression(max_iter=1_000), _small_lgbm):
        report = evaluate(_maker("y", factory, plan), X, y, task=Task.BINARY, scheme=scheme, metric="roc_auc", seed=0)
        assert abs(report.metric("roc_auc").mean - 0.5) < 0.07
        assert report.no_better_than_baseline and not report.metric("roc_auc").better_than_baseline


def test_evaluate_churn_beats_baseline_with_holdout(churn) -> None:
    X, y = churn
    scheme, _ = choose_scheme(X, task=Task.BINARY, y=y, n_folds=3)
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.BINARY, scheme=scheme)
    report = evaluate(_maker("churn", _small_lgbm), X_train, y_train, task=Task.BINARY, scheme=scheme,
                      metric="roc_auc", seed=0, X_holdout=X_hold, y_holdout=y_hold)
    assert not report.no_better_than_baseline
    assert [m.name for m in report.metrics][0] == "roc_auc"
    assert {m.name for m in report.metrics} == set(metrics_for(Task.BINARY))
    for summary in report.metrics:
        assert all(math.isfinite(v) for v in (summary.mean, summary.std, summary.baseline_mean, summary.baseline_std))
    auc = report.metric("roc_auc")
    assert auc.mean > 0.85 and auc.baseline_mean == pytest.approx(0.5) and auc.better_than_baseline
    assert not report.metric("log_loss").greater_is_better and report.metric("log_loss").better_than_baseline
    assert report.holdout is not None and set(report.holdout) == set(metrics_for(Task.BINARY))
    assert report.holdout["roc_auc"] > 0.85
    assert report.threshold is not None and 0 < report.threshold < 1
    assert report.cv.classes == ("no", "yes") and report.cv.oof_mask.all()
    assert report.cv.oof_proba.shape == (len(X_train), 2) and report.task == "binary"


def test_best_threshold_maximises_the_metric_it_is_given() -> None:
    rng = np.random.default_rng(5)
    y = rng.random(400) < 0.15  # imbalanced, with tied scores
    p = np.round(np.clip(0.2 + 0.25 * y + rng.normal(0, 0.15, 400), 0, 1), 2)
    chosen = {}
    for metric, scorer in (("accuracy", accuracy_score), ("balanced_accuracy", balanced_accuracy_score),
                           ("f1", f1_score)):
        chosen[metric] = cut = best_threshold(y, p, metric=metric)
        # No cut-off does better, and the chosen one falls between two scores, not on one.
        assert scorer(y, p >= cut) == pytest.approx(max(scorer(y, p >= c) for c in np.r_[np.unique(p), 1.1]))
        assert cut not in set(p)
    # On a rare positive class accuracy cuts high (few positives), balanced accuracy low.
    assert chosen["balanced_accuracy"] < chosen["f1"] <= chosen["accuracy"]
    assert balanced_accuracy_score(y, p >= chosen["balanced_accuracy"]) > balanced_accuracy_score(y, p >= 0.5)


def test_best_threshold_edges() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.55, 0.7, 0.8, 0.9])
    # Two cut-offs tie on balanced accuracy (below 0.55, below 0.7): the one nearer 0.5 wins.
    assert best_threshold(y, p) == pytest.approx((0.3 + 0.55) / 2)
    assert best_threshold(np.ones(4), np.full(4, 0.99)) == 0.5  # one class: nothing to choose
    assert best_threshold([0, 1], [0.0, 1.0]) == pytest.approx(0.5)
    assert best_threshold([0, 1, 1], [0.0, 1.0, 1.0], metric="accuracy") == pytest.approx(0.5)
    assert best_threshold([0, 1], [0.9995, 0.9999]) == pytest.approx(0.9997)  # a confident model's cut
    with pytest.raises(BadInput, match="not 'recall'"):
        best_threshold(y, p, metric="recall")


@pytest.mark.parametrize(("metric", "objective"), [("roc_auc", "balanced_accuracy"), ("f1", "f1")])
def test_label_metrics_are_at_the_decision_threshold(metric, objective) -> None:
    X, y = sample_table("default.csv", "default")  # 3 % 'Yes'
    scheme = CVScheme(kind="stratified", n_folds=4)
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.BINARY, scheme=scheme)
    make = _maker("default", lambda: LogisticRegression(max_iter=1_000))
    report = evaluate(make, X_train, y_train, task=Task.BINARY, scheme=scheme, metric=metric, seed=0,
                      X_holdout=X_hold, y_holdout=y_hold)
    cv = report.cv
    assert report.threshold_metric == objective
    positive, proba = cv.y_true == "Yes", cv.oof_proba[:, 1]
    assert report.threshold == best_threshold(positive, proba, metric=objective)
    # Each fold is scored at a threshold chosen on the other folds' predictions only.
    for number, (_, valid) in enumerate(fold_indices(X_train, y_train, scheme)):
        others = np.ones(len(positive), dtype=bool)
        others[valid] = False
        cut = best_threshold(positive[others], proba[others], metric=objective)
        expected = balanced_accuracy_score(positive[valid], proba[valid] >= cut)
        assert cv.fold_scores["balanced_accuracy"][number] == pytest.approx(expected)
    # At 0.5 the model misses most defaulters; at its threshold it finds more of them.
    assert report.metric("recall").mean > (proba[positive] >= 0.5).mean() + 0.1
    assert report.metric("balanced_accuracy").better_than_baseline
    # The holdout is scored with the labels the served model would give.
    final = make().fit(X_train, y_train)
    served = np.where(final.predict_proba(X_hold)[:, 1] >= report.threshold, "Yes", "No")
    assert report.holdout["f1"] == pytest.approx(f1_score(y_hold == "Yes", served == "Yes"))
    assert report.holdout["roc_auc"] > 0.9


def test_time_ordered_folds_choose_their_cut_off_on_earlier_folds_only() -> None:
    X, y = sample_table("default.csv", "default")  # 3 % 'Yes'
    X = X.assign(day=np.arange(len(X)) // 10)  # ten rows a day, in file order
    scheme = CVScheme(kind="time", time_column="day", n_folds=4)
    make = _maker("default", lambda: LogisticRegression(max_iter=1_000))
    report = evaluate(make, X, y, task=Task.BINARY, scheme=scheme, metric="roc_auc", seed=0)
    cv = report.cv
    positive, proba = cv.y_true == "Yes", cv.oof_proba[:, 1]
    assert report.threshold == best_threshold(positive[cv.oof_mask], proba[cv.oof_mask])
    folds = fold_indices(X, y, scheme)
    earlier = np.zeros(len(positive), dtype=bool)
    earlier[folds[0][1]] = True
    differs = False
    for number, (_, valid) in enumerate(folds[1:], start=1):
        # Each fold's cut-off comes from the folds before it; later folds would tell it the future.
        cut = best_threshold(positive[earlier], proba[earlier])
        assert cv.fold_scores["balanced_accuracy"][number] == pytest.approx(
            balanced_accuracy_score(positive[valid], proba[valid] >= cut))
        others = cv.oof_mask.copy()
        others[valid] = False
        differs |= cut != best_threshold(positive[others], proba[others])
        earlier[valid] = True
    assert differs  # the rule for shuffled folds would score these folds otherwise
    # The first fold has nothing before it to choose a cut-off on: its label metrics are left out,
    # the baseline's too, so the means compare the same folds; ROC AUC needs no cut-off and keeps it.
    for name in ("balanced_accuracy", "recall", "f1"):
        assert np.isnan(cv.fold_scores[name][0]) and all(np.isfinite(cv.fold_scores[name][1:]))
        assert report.metric(name).mean == pytest.approx(np.mean(cv.fold_scores[name][1:]))
    assert np.isfinite(cv.fold_scores["roc_auc"][0])
    assert report.metric("balanced_accuracy").better_than_baseline
    majority = [(y.iloc[valid] == "No").mean() for _, valid in folds[1:]]  # the baseline predicts 'No'
    assert report.metric("accuracy").baseline_mean == pytest.approx(np.mean(majority))
    assert "chosen on the earlier folds" in threshold_note(report.threshold, report.threshold_metric, time_ordered=True)


def test_a_positive_class_that_sorts_first_is_the_one_scored_and_thresholded() -> None:
    X, y = sample_table("default.csv", "default")  # 'No' sorts first and is 97 % of the rows
    scheme = CVScheme(kind="stratified", n_folds=4)
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.BINARY, scheme=scheme)
    make = _maker("default", lambda: LogisticRegression(max_iter=1_000))
    report = evaluate(make, X_train, y_train, task=Task.BINARY, scheme=scheme, metric="f1", seed=0,
                      X_holdout=X_hold, y_holdout=y_hold, positive="No")
    cv = report.cv
    assert cv.classes == ("Yes", "No")  # the positive class last, its probability in the last column
    final = make().fit(X_train, y_train)
    p_no = final.predict_proba(X_hold)[:, list(final.classes_).index("No")]
    assert report.holdout["roc_auc"] == pytest.approx(roc_auc_score(y_hold == "No", p_no))
    # The threshold cuts P('No') to maximise F1 of 'No', and the holdout is labelled that way.
    assert report.threshold == best_threshold(cv.y_true == "No", cv.oof_proba[:, 1], metric="f1")
    served = np.where(p_no >= report.threshold, "No", "Yes")
    assert report.holdout["f1"] == pytest.approx(f1_score(y_hold == "No", served == "No"))
    assert report.holdout["recall"] == pytest.approx(recall_score(y_hold == "No", served == "No"))
    for number, (_, valid) in enumerate(fold_indices(X_train, y_train, scheme)):
        expected = recall_score(cv.y_true[valid] == "No", cv.oof_pred[valid] == "No")
        assert cv.fold_scores["recall"][number] == pytest.approx(expected)
    # Recall of the common class is near 1; recall of the rare one (the default) is far lower.
    assert report.metric("recall").mean > 0.9
    rare = evaluate(make, X_train, y_train, task=Task.BINARY, scheme=scheme, metric="f1", seed=0)
    assert rare.cv.classes == ("No", "Yes") and rare.metric("recall").mean < 0.8


def test_permutation_importance_finds_the_signal() -> None:
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"signal": rng.normal(size=600), "noise": rng.normal(size=600),
                      "colour": rng.choice(["red", "blue"], size=600)})
    y = pd.Series(np.where(X["signal"] + 0.3 * rng.normal(size=600) > 0, "up", "down"))
    before = X.copy()
    model = _maker("y", lambda: LogisticRegression(max_iter=1_000))().fit(X, y)
    table = permutation_importance_table(model, X, y, task=Task.BINARY, metric="log_loss", seed=0, max_rows=400)
    assert list(table.columns) == ["column", "importance_mean", "importance_std"]
    assert table["column"].iloc[0] == "signal" and table["importance_mean"].iloc[0] > 0.3
    assert table.set_index("column").loc[["noise", "colour"], "importance_mean"].abs().max() < 0.05
    pd.testing.assert_frame_equal(X, before)  # columns are permuted on a copy


def test_models_without_probabilities() -> None:
    X, y = sample_table("penguins.csv", "species")
    make = _maker("species", LinearSVC)
    with pytest.raises(BadInput, match="needs predicted probabilities"):
        cross_validate(make, X, y, task=Task.MULTICLASS, scheme=CVScheme(kind="stratified"), metric="roc_auc")
    report = evaluate(make, X, y, task=Task.MULTICLASS, scheme=CVScheme(kind="stratified", n_folds=3),
                      metric="accuracy", seed=0)
    assert report.cv.oof_proba is None and report.threshold is None
    assert {m.name for m in report.metrics} == {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}
    assert not report.no_better_than_baseline


@pytest.mark.parametrize("weights", [None, "balanced"])
def test_a_metric_that_trails_the_baseline_for_a_known_reason_is_explained(weights) -> None:
    X, y = sample_table("default.csv", "default")  # 3 % defaults
    make = _maker("default", lambda: LogisticRegression(max_iter=1_000, class_weight=weights))
    report = evaluate(make, X, y, task=Task.BINARY, scheme=CVScheme(kind="stratified", n_folds=3), metric="roc_auc",
                      seed=0)
    trailing = {m.name for m in report.metrics if not m.better_than_baseline}
    notes = baseline_notes(report, class_weighted=weights is not None, positive="Yes")
    # The cut-off serves balanced accuracy, which costs accuracy against "always No", weighted or not.
    assert "accuracy" in trailing and notes[0].startswith("Accuracy trails the baseline's (0.96")
    if weights is None:  # probabilities as learnt: log loss beats the baseline's, nothing to explain
        assert "log_loss" not in trailing and len(notes) == 1
    else:  # weighted up, the defaults' probabilities run high, and log loss falls behind
        assert "log_loss" in trailing and "probabilities of 'Yes' run high" in notes[1]
        assert len(baseline_notes(report, class_weighted=False, positive="Yes")) == 1  # no other reason known
