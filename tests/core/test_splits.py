"""How rows are split: validation schemes, folds, the holdout and a large table's tuning sample."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.profile import Task
from core.errors import BadInput
from core.modeling.splits import (
    CVScheme,
    choose_scheme,
    date_columns,
    fold_indices,
    holdout_split,
    time_ordered_column,
    tuning_sample,
)
from tests.core.frames import sample_table


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
    X, _ = sample_table("chicago.csv", "ridership")
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
