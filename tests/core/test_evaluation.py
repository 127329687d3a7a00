"""Validation schemes, cross-validation, the evaluation report, thresholds and importance."""
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

from core.config import SAMPLES_DIR
from core.data.profile import Task
from core.errors import BadInput
from core.modeling.evaluation import (
    CVScheme,
    baseline_notes,
    best_threshold,
    choose_scheme,
    cross_validate,
    date_columns,
    evaluate,
    fold_indices,
    holdout_split,
    permutation_importance_table,
    threshold_note,
    time_ordered_column,
    tuning_sample,
)
from core.modeling.metrics import metrics_for
from core.prep.pipeline import build_pipeline
from core.prep.plan import ColumnTransform, FeaturePlan
from core.prep.recipe import prepare_training_table
from core.prep.steps import Recipe


def _table(name: str, target: str, **read) -> tuple[pd.DataFrame, pd.Series]:
    return prepare_training_table(pd.read_csv(SAMPLES_DIR / name, **read), Recipe(), target=target)


def _maker(target: str, estimator_factory, plan: FeaturePlan | None = None):
    return lambda: build_pipeline(Recipe(), plan or FeaturePlan(), target=target, estimator=estimator_factory())


def _small_lgbm() -> LGBMClassifier:
    return LGBMClassifier(n_estimators=60, num_leaves=15, learning_rate=0.1, n_jobs=1, verbose=-1, random_state=0)


@pytest.fixture(scope="module")
def chicago() -> tuple[pd.DataFrame, pd.Series]:
    return _table("chicago.csv", "ridership", parse_dates=["date"])


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, pd.Series]:
    return _table("mlc_churn.csv", "churn")


# --- schemes ------------------------------------------------------------------------------------


def test_scheme_describe_and_round_trip() -> None:
    scheme = CVScheme(kind="stratified")
    assert scheme.describe() == "5-fold stratified, shuffled (seed 42)"
    assert CVScheme(**scheme.to_dict()) == scheme
    assert "'date'" in CVScheme(kind="time", time_column="date").describe()
    with pytest.raises(BadInput):
        CVScheme(kind="time")  # no time column
    with pytest.raises(BadInput):
        CVScheme(kind="kfold", n_folds=1)


def test_choose_scheme_defaults(churn, chicago) -> None:
    X, y = churn
    assert choose_scheme(X, task=Task.BINARY, y=y)[0].kind == "stratified"
    assert choose_scheme(X, task=Task.BINARY, group_column="state")[0].group_column == "state"
    Xc, _ = chicago
    assert choose_scheme(Xc, task=Task.REGRESSION, kind="kfold", n_folds=3)[0].kind == "kfold"
    time_scheme, notes = choose_scheme(Xc, task=Task.REGRESSION, time_column="date")
    assert (time_scheme.kind, time_scheme.time_column, notes) == ("time", "date", ())


def test_choose_scheme_errors(churn) -> None:
    X, y = churn
    rare = y.copy()
    rare.iloc[:3] = "maybe"
    with pytest.raises(BadInput, match=r"5 folds: 'maybe' has 3 rows\. Merge or drop rare classes, or use fewer folds\.$"):
        choose_scheme(X, task=Task.MULTICLASS, y=rare)
    ratings = pd.Series(np.r_[np.arange(100) % 5, [9]])  # a scale of whole numbers reads as classes
    with pytest.raises(BadInput, match=r"'9' has 1 row\. .* if the numbers are a scale, choose the regression task"):
        choose_scheme(pd.DataFrame({"x": range(101)}), task=Task.MULTICLASS, y=ratings)
    with pytest.raises(BadInput, match="'when'"):
        choose_scheme(X, task=Task.BINARY, time_column="when")
    with pytest.raises(BadInput, match="'team'"):
        choose_scheme(X, task=Task.BINARY, group_column="team")
    with pytest.raises(BadInput, match="2 groups"):
        choose_scheme(X, task=Task.BINARY, group_column="international_plan")
    with pytest.raises(BadInput, match="regression"):
        choose_scheme(X, task=Task.REGRESSION, kind="stratified")


def test_shuffled_folds_on_time_data_need_an_override(chicago) -> None:
    X, _ = chicago
    with pytest.raises(BadInput, match="train on the future"):
        choose_scheme(X, task=Task.REGRESSION, time_column="date", kind="kfold")
    scheme, notes = choose_scheme(X, task=Task.REGRESSION, time_column="date", kind="kfold", allow_shuffled_time=True)
    assert scheme.kind == "kfold" and scheme.time_column is None
    assert len(notes) == 1 and "optimistic" in notes[0]


def test_time_ordered_rows_are_noticed() -> None:
    # Dates left as ISO text, as ingest stores them: still recognised.
    raw = pd.read_csv(SAMPLES_DIR / "chicago.csv")
    X, _ = prepare_training_table(raw, Recipe(), target="ridership")
    _, notes = choose_scheme(X, task=Task.REGRESSION)
    assert notes == ("Rows look time-ordered by 'date'; consider a time-series split.",)
    _, notes = choose_scheme(X.sample(frac=1, random_state=0), task=Task.REGRESSION)
    assert notes == ()
    assert date_columns(X) == ["date"] and time_ordered_column(X) == "date"
    assert time_ordered_column(X.sample(frac=1, random_state=0)) is None
    assert date_columns(X.assign(date=pd.to_datetime(X["date"]), when=X["date"] + "x")) == ["date"]


# --- folds --------------------------------------------------------------------------------------


def test_time_folds_never_train_on_the_future(chicago) -> None:
    X, y = chicago
    X = X.sample(frac=1, random_state=1)  # row order must not matter, only the date
    scheme, _ = choose_scheme(X, task=Task.REGRESSION, time_column="date")
    folds = fold_indices(X, y, scheme)
    assert len(folds) == 5
    dates = X["date"].to_numpy()
    for train, valid in folds:
        assert dates[train].max() < dates[valid].min()
    validated = np.concatenate([valid for _, valid in folds])
    assert len(np.unique(validated)) == len(validated) < len(X)  # the first block is only trained on


def test_time_folds_keep_shared_times_together() -> None:
    days = np.repeat(pd.date_range("2024-01-01", periods=30).astype(str), 7)  # 7 stores a day, as text
    X = pd.DataFrame({"day": days, "x": np.arange(len(days))})
    y = pd.Series(np.arange(len(days), dtype=float))
    scheme = CVScheme(kind="time", time_column="day", n_folds=4)
    for train, valid in fold_indices(X, y, scheme):
        assert X["day"].iloc[train].max() < X["day"].iloc[valid].min()
    X_train, X_hold, _, _ = holdout_split(X, y, task=Task.REGRESSION, scheme=scheme, share=0.2)
    assert X_train["day"].max() < X_hold["day"].min() and len(X_hold) % 7 == 0


def test_stratified_folds_keep_class_shares(churn) -> None:
    X, y = churn
    folds = fold_indices(X, y, CVScheme(kind="stratified"))
    share = (y == "yes").mean()
    for train, valid in folds:
        assert abs((y.iloc[valid] == "yes").mean() - share) < 0.005
        assert len(np.intersect1d(train, valid)) == 0
    assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(len(X)))


def test_group_folds_never_share_a_group() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"store": rng.integers(0, 40, 800).astype(str), "x": rng.normal(size=800)})
    X.index = np.zeros(800, dtype=int)  # duplicate labels: folds are positions
    y = pd.Series(rng.normal(size=800), index=X.index)
    scheme, _ = choose_scheme(X, task=Task.REGRESSION, group_column="store")
    for train, valid in fold_indices(X, y, scheme):
        assert set(X["store"].iloc[train]).isdisjoint(X["store"].iloc[valid])
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.REGRESSION, scheme=scheme)
    assert set(X_train["store"]).isdisjoint(X_hold["store"]) and len(X_train) == len(y_train)


def test_stratified_holdout(churn) -> None:
    X, y = churn
    X_train, X_hold, y_train, y_hold = holdout_split(X, y, task=Task.BINARY, scheme=CVScheme(kind="stratified"))
    assert len(X_hold) == 1000 and len(X_train) == 4000
    assert abs((y_hold == "yes").mean() - (y_train == "yes").mean()) < 0.005
    rare = y.copy()
    rare.iloc[:5] = "maybe"  # enough for 5 folds, not once a holdout takes its share
    with pytest.raises(BadInput, match="'maybe'"):
        holdout_split(X, rare, task=Task.MULTICLASS, scheme=CVScheme(kind="stratified"))


def test_a_tuning_sample_keeps_class_shares_rare_classes_the_latest_rows_or_whole_groups() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    X = pd.DataFrame({"x": rng.normal(size=n), "when": np.arange(n)[::-1], "team": rng.integers(0, 400, n)})
    y = pd.Series(np.where(np.arange(n) < 30, "rare", rng.choice(["a", "b"], n, p=[0.7, 0.3])))
    assert tuning_sample(X, y, task=Task.BINARY, scheme=CVScheme(kind="stratified"), max_rows=n) is None

    rows = tuning_sample(X, y, task=Task.MULTICLASS, scheme=CVScheme(kind="stratified"), max_rows=5_000)
    assert (np.diff(rows) > 0).all()  # sorted, no row twice
    sampled = y.iloc[rows].value_counts()
    assert sampled["rare"] == 30  # all its rows: a class of 30 would get 8 by its share, too few for the folds
    assert abs(sampled["a"] / (sampled["a"] + sampled["b"]) - 0.7) < 0.01 and 4_990 <= len(rows) <= 5_030

    regression = tuning_sample(X, X["x"], task=Task.REGRESSION, scheme=CVScheme(kind="kfold"), max_rows=5_000)
    assert len(regression) == 5_000
    latest = tuning_sample(X, y, task=Task.BINARY, scheme=CVScheme(kind="time", time_column="when"), max_rows=5_000)
    assert sorted(X["when"].iloc[latest]) == list(range(n - 5_000, n))  # the latest rows, next to the holdout
    grouped = tuning_sample(X, y, task=Task.BINARY, scheme=CVScheme(kind="group", group_column="team"), max_rows=5_000)
    teams = set(X["team"].iloc[grouped])
    assert X["team"].isin(teams).sum() == len(grouped)  # whole groups only
    assert 5_000 <= len(grouped) < 5_000 + X["team"].value_counts().max()


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
    X, y = _table("default.csv", "default")  # 3 % 'Yes'
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
    X, y = _table("default.csv", "default")  # 3 % 'Yes'
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
    X, y = _table("default.csv", "default")  # 'No' sorts first and is 97 % of the rows
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
    X, y = _table("penguins.csv", "species")
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
    X, y = _table("default.csv", "default")  # 3 % defaults
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
