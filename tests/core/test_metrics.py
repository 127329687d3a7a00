"""Metrics against hand computations on tiny arrays."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.data.profile import Task
from core.errors import BadInput
from core.modeling.metrics import (
    METRICS,
    Metric,
    check_metric,
    default_metric,
    format_score,
    metrics_for,
    oriented,
    positive_class,
    score,
    score_all,
    signed,
)


def pair_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """AUC by counting: the share of (positive, negative) pairs ranked right, ties count half."""
    pos, neg = scores[positive], scores[~positive]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


# binary: positive class "yes" = classes[1]
B_CLASSES = ["no", "yes"]
B_TRUE = np.array(["no", "yes", "yes", "no", "yes", "no"])
B_PRED = np.array(["no", "yes", "no", "yes", "yes", "no"])
B_P_YES = np.array([0.1, 0.8, 0.4, 0.6, 0.9, 0.3])
B_PROBA = np.column_stack([1 - B_P_YES, B_P_YES])


def test_binary_label_metrics() -> None:
    # tp = 2 (rows 1, 4), fp = 1 (row 3), fn = 1 (row 2), tn = 2 (rows 0, 5)
    assert score("accuracy", B_TRUE, B_PRED, None, B_CLASSES) == pytest.approx(4 / 6)
    assert score("precision", B_TRUE, B_PRED, None, B_CLASSES) == pytest.approx(2 / 3)
    assert score("recall", B_TRUE, B_PRED, None, B_CLASSES) == pytest.approx(2 / 3)
    assert score("f1", B_TRUE, B_PRED, None, B_CLASSES) == pytest.approx(2 / 3)
    assert score("balanced_accuracy", B_TRUE, B_PRED, None, B_CLASSES) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_binary_positive_class_is_classes_1() -> None:
    # Everything predicted "yes": precision of "yes" is 3/6, recall 1; for "no" both would be 0.
    all_yes = np.array(["yes"] * 6)
    assert score("precision", B_TRUE, all_yes, None, B_CLASSES) == pytest.approx(0.5)
    assert score("recall", B_TRUE, all_yes, None, B_CLASSES) == pytest.approx(1.0)
    # Integer labels: positive is 1, and a fold without predicted positives scores 0, not a crash.
    assert score("precision", [0, 1, 1], [0, 0, 0], None, [0, 1]) == 0.0


def test_the_positive_class_is_the_rarer_one_unless_chosen() -> None:
    assert positive_class(["good"] * 8 + ["bad"] * 2) == "bad"
    assert positive_class(["a", "b", "b", "a"]) == "b"  # a tie: the second in sorted order, as before
    assert positive_class([0, 1, 1, 1]) == "0"  # as text, the way users and services name classes
    assert positive_class([0, 1, 1, 1], requested="1") == "1"
    assert positive_class([True, False, True], requested=True) == "True"
    with pytest.raises(BadInput, match=r"'maybe' is not a class of the target; its classes are 'bad', 'good'"):
        positive_class(["good", "bad"], requested="maybe")
    assert oriented(["no", "yes"], "no") == ("yes", "no")
    assert oriented(["no", "yes"], "yes") == oriented(["no", "yes"]) == ("no", "yes")
    assert oriented([0, 1], "0") == (1, 0)
    assert oriented(["a", "b", "c"], "a") == ("a", "b", "c")  # multiclass has no positive class


def test_metrics_describe_the_positive_class_wherever_it_sorts() -> None:
    # "no" positive: the classes and the probability columns both put it last.
    classes, proba = oriented(B_CLASSES, "no"), B_PROBA[:, ::-1]
    # Of the three true "no" rows (0, 3, 5), rows 0 and 5 are predicted "no"; of the three "no"
    # predictions (0, 2, 5), rows 0 and 5 are right.
    assert score("recall", B_TRUE, B_PRED, None, classes) == pytest.approx(2 / 3)
    assert score("precision", B_TRUE, np.array(["no"] * 6), None, classes) == pytest.approx(0.5)
    assert score("recall", B_TRUE, np.array(["no"] * 6), None, classes) == pytest.approx(1.0)
    positive = B_TRUE == "no"
    # Ranked by P(no): 0.9 (pos), 0.7 (pos), 0.6 (neg), 0.4 (pos), 0.2 and 0.1 (neg).
    assert score("pr_auc", B_TRUE, None, proba, classes) == pytest.approx((1 + 1 + 3 / 4) / 3)
    assert score("roc_auc", B_TRUE, None, proba, classes) == pytest.approx(pair_auc(positive, 1 - B_P_YES))
    assert score("roc_auc", B_TRUE, None, proba, classes) == pytest.approx(8 / 9)  # AUC does not depend on it
    assert score("log_loss", B_TRUE, None, proba, classes) == pytest.approx(
        score("log_loss", B_TRUE, None, B_PROBA, B_CLASSES))


def test_binary_probability_metrics() -> None:
    positive = B_TRUE == "yes"
    # scores of positives 0.8, 0.4, 0.9 vs negatives 0.1, 0.6, 0.3: 8 of 9 pairs right.
    assert score("roc_auc", B_TRUE, B_PRED, B_PROBA, B_CLASSES) == pytest.approx(8 / 9)
    assert pair_auc(positive, B_P_YES) == pytest.approx(8 / 9)
    # Ranked by score: 0.9 (pos), 0.8 (pos), 0.6 (neg), 0.4 (pos): AP = (1 + 1 + 3/4) / 3.
    assert score("pr_auc", B_TRUE, B_PRED, B_PROBA, B_CLASSES) == pytest.approx((1 + 1 + 0.75) / 3)
    p_true = np.where(positive, B_P_YES, 1 - B_P_YES)
    assert score("log_loss", B_TRUE, B_PRED, B_PROBA, B_CLASSES) == pytest.approx(-np.log(p_true).mean())


# multiclass
M_CLASSES = ["a", "b", "c"]
M_TRUE = np.array(["a", "a", "b", "b", "c", "c"])
M_PRED = np.array(["a", "b", "b", "b", "c", "a"])
M_PROBA = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.4, 0.5, 0.1],
        [0.1, 0.8, 0.1],
        [0.2, 0.6, 0.2],
        [0.1, 0.1, 0.8],
        [0.5, 0.2, 0.3],
    ]
)


def test_multiclass_label_metrics() -> None:
    # precision a = 1/2, b = 2/3, c = 1/1; recall a = 1/2, b = 2/2, c = 1/2
    precision = (1 / 2 + 2 / 3 + 1) / 3
    recall = (1 / 2 + 1 + 1 / 2) / 3
    f1 = (2 * 0.5 * 0.5 / 1.0 + 2 * (2 / 3) * 1 / (2 / 3 + 1) + 2 * 1 * 0.5 / 1.5) / 3
    assert score("accuracy", M_TRUE, M_PRED, None, M_CLASSES) == pytest.approx(4 / 6)
    assert score("precision", M_TRUE, M_PRED, None, M_CLASSES) == pytest.approx(precision)
    assert score("recall", M_TRUE, M_PRED, None, M_CLASSES) == pytest.approx(recall)
    assert score("f1", M_TRUE, M_PRED, None, M_CLASSES) == pytest.approx(f1)
    assert score("balanced_accuracy", M_TRUE, M_PRED, None, M_CLASSES) == pytest.approx(recall)


def test_multiclass_probability_metrics() -> None:
    onehot = M_TRUE[:, None] == np.array(M_CLASSES)[None, :]
    auc = np.mean([pair_auc(onehot[:, k], M_PROBA[:, k]) for k in range(3)])
    assert score("roc_auc", M_TRUE, M_PRED, M_PROBA, M_CLASSES) == pytest.approx(auc)
    # AP per class by hand. a: ranked 0.7 (a), 0.5 (c), 0.4 (a) -> (1 + 2/3) / 2.
    # b: 0.8 (b), 0.6 (b) -> 1. c: 0.8 (c), 0.3 (c) -> 1.
    assert score("pr_auc", M_TRUE, M_PRED, M_PROBA, M_CLASSES) == pytest.approx(((1 + 2 / 3) / 2 + 1 + 1) / 3)
    p_true = M_PROBA[onehot]
    assert score("log_loss", M_TRUE, M_PRED, M_PROBA, M_CLASSES) == pytest.approx(-np.log(p_true).mean())


def test_fold_missing_a_class() -> None:
    # Rows 0-3 only: class "c" is absent from this validation fold.
    y_true, y_pred, proba = M_TRUE[:4], M_PRED[:4], M_PROBA[:4]
    assert math.isnan(score("roc_auc", y_true, y_pred, proba, M_CLASSES))
    assert math.isnan(score("pr_auc", y_true, y_pred, proba, M_CLASSES))
    # log loss still defined, with labels=classes: p(a)=0.7, 0.4; p(b)=0.8, 0.6.
    expected = -np.log([0.7, 0.4, 0.8, 0.6]).mean()
    assert score("log_loss", y_true, y_pred, proba, M_CLASSES) == pytest.approx(expected)
    # macro averages skip "c" (absent from truth and predictions): precision a = 1, b = 2/3.
    assert score("precision", y_true, y_pred, None, M_CLASSES) == pytest.approx((1 + 2 / 3) / 2)
    assert score("recall", y_true, y_pred, None, M_CLASSES) == pytest.approx((0.5 + 1) / 2)
    # A binary fold with one class: AUC undefined, the rest fine.
    results = score_all(Task.BINARY, ["no", "no"], ["no", "yes"], np.array([[0.9, 0.1], [0.4, 0.6]]), B_CLASSES)
    assert math.isnan(results["roc_auc"]) and math.isnan(results["pr_auc"])
    assert results["accuracy"] == 0.5 and math.isfinite(results["log_loss"])


def test_label_the_model_never_saw() -> None:
    y_true = ["a", "b", "z"]
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    assert math.isnan(score("roc_auc", y_true, ["a", "b", "a"], proba, ["a", "b"]))
    assert math.isnan(score("log_loss", y_true, ["a", "b", "a"], proba, ["a", "b"]))


def test_log_loss_clips_probabilities() -> None:
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    value = score("log_loss", ["yes", "yes"], ["no", "yes"], proba, B_CLASSES)
    assert math.isfinite(value)
    assert value == pytest.approx(-np.log(1e-15) / 2, rel=1e-6)


def test_regression_metrics() -> None:
    y_true = np.array([3.0, -1.0, 2.0, 0.0])
    y_pred = np.array([2.5, 0.0, 2.0, 1.0])
    errors = y_pred - y_true  # -0.5, 1, 0, 1
    ss_res = float((errors**2).sum())  # 2.25
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())  # mean 1: 4 + 4 + 1 + 1 = 10
    assert score("rmse", y_true, y_pred, None, ()) == pytest.approx(math.sqrt(2.25 / 4))
    assert score("mae", y_true, y_pred, None, ()) == pytest.approx(2.5 / 4)
    assert score("r2", y_true, y_pred, None, ()) == pytest.approx(1 - ss_res / ss_tot)
    # MAPE skips the row with y_true == 0: (0.5/3 + 1/1 + 0/2) / 3.
    assert score("mape", y_true, y_pred, None, ()) == pytest.approx((0.5 / 3 + 1 + 0) / 3)
    assert math.isnan(score("mape", [0.0, 0.0], [1.0, 2.0], None, ()))


def test_score_all() -> None:
    results = score_all(Task.MULTICLASS, M_TRUE, M_PRED, M_PROBA, M_CLASSES)
    assert tuple(results) == metrics_for(Task.MULTICLASS)
    without_proba = score_all(Task.BINARY, B_TRUE, B_PRED, None, B_CLASSES)
    assert set(without_proba) == {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}
    regression = score_all(Task.REGRESSION, [1.0, 2.0, 4.0], [1.0, 2.0, 3.0], None, ())
    assert set(regression) == {"rmse", "mae", "r2", "mape"}
    assert all(isinstance(v, float) for v in regression.values())


def test_registry_and_defaults() -> None:
    assert set(METRICS) == {
        "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss",
        "rmse", "mae", "r2", "mape",
    }
    assert default_metric(Task.BINARY) == "roc_auc"
    assert default_metric(Task.MULTICLASS) == "balanced_accuracy"
    assert default_metric(Task.REGRESSION) == "r2"
    assert metrics_for(Task.REGRESSION) == ("rmse", "mae", "r2", "mape")
    assert metrics_for(Task.BINARY) == metrics_for(Task.MULTICLASS)
    for task in Task:
        assert default_metric(task) in metrics_for(task)
    assert not METRICS["log_loss"].greater_is_better and METRICS["log_loss"].needs_proba
    assert METRICS["r2"].greater_is_better and not METRICS["r2"].needs_proba


def test_signed() -> None:
    assert signed("roc_auc", 0.8) == 0.8
    assert signed("rmse", 2.0) == -2.0
    assert signed("log_loss", 0.3) == -0.3


def test_check_metric() -> None:
    metric = check_metric("roc_auc", Task.BINARY)
    assert isinstance(metric, Metric) and metric.label == "ROC AUC"
    assert check_metric("r2", "regression").name == "r2"  # plain strings work too
    with pytest.raises(BadInput, match=r"roc_auc does not apply to regression; use one of: rmse, mae, r2, mape"):
        check_metric("roc_auc", Task.REGRESSION)
    with pytest.raises(BadInput, match=r"rmse does not apply to binary; use one of: accuracy, .*log_loss"):
        check_metric("rmse", Task.BINARY)
    with pytest.raises(BadInput, match=r"Unknown metric 'auc'; use one of: accuracy, balanced_accuracy"):
        check_metric("auc", Task.MULTICLASS)


def test_score_errors() -> None:
    with pytest.raises(BadInput, match="needs predicted probabilities"):
        score("roc_auc", B_TRUE, B_PRED, None, B_CLASSES)
    with pytest.raises(BadInput, match="Unknown metric"):
        score("nope", B_TRUE, B_PRED, None, B_CLASSES)


def test_metrics_in_display_order_with_the_optimised_one_first() -> None:
    from core.modeling.metrics import in_display_order

    assert in_display_order(["mape", "rmse", "r2", "mae"]) == ["rmse", "mae", "r2", "mape"]
    assert in_display_order(["mape", "rmse", "r2"], first="r2") == ["r2", "rmse", "mape"]
    assert in_display_order(["decision_threshold", "roc_auc", "roc_auc"]) == ["roc_auc", "decision_threshold"]


def test_task_label_names_the_class_or_the_average() -> None:
    from core.modeling.metrics import task_label

    assert task_label("f1", "binary", "yes") == "F1 of 'yes'" and task_label("f1", "binary") == "F1"
    assert task_label("accuracy", "binary", "yes") == "Accuracy"
    assert task_label("recall", "multiclass") == "Recall, macro average"
    assert task_label("roc_auc", "multiclass") == "ROC AUC, one-vs-rest macro average"
    assert task_label("roc_auc", "binary", "yes") == "ROC AUC" and task_label("r2", "regression") == "R²"


@pytest.mark.parametrize(("value", "like", "written"), [
    (0.35189, None, "0.3519"),          # a ratio keeps four decimals
    (-0.0006, None, "-0.0006"),
    (5.23094, None, "5.2309"),          # an error below 10 too
    (123.456, None, "123.46"),          # one fewer per further digit
    (42970.59, None, "42,971"),         # none from ten thousand up, thousands separated
    (3567.46, 42970.59, "3,567"),       # a spread with its mean's decimals
    (0.0123, 42970.59, "0"),
    (None, None, "–"),
    (math.nan, None, "nan"),
])
def test_scores_are_written_to_their_scale(value, like, written) -> None:
    assert format_score(value, like=like) == written
