"""`core.training.tuning_scheme`: small tables are tuned with more folds, everything else as asked."""
from __future__ import annotations

import pandas as pd
import pytest

from core.data.profile import Task
from core.modeling.evaluation import CVScheme
from core.training import SMALL_TABLE_FOLDS, SMALL_TABLE_ROWS, tuning_scheme


def _target(n: int, *, rare: int = 0) -> pd.Series:
    """A binary target of ``n`` rows, ``rare`` of them (or half) in class "b"."""
    rare = rare or n // 2
    return pd.Series(["a"] * (n - rare) + ["b"] * rare)


def test_small_table_gets_more_folds() -> None:
    scheme = CVScheme(kind="kfold", n_folds=5, seed=3)
    tuned = tuning_scheme(scheme, pd.Series(range(600), dtype=float), Task.REGRESSION)
    assert tuned == CVScheme(kind="kfold", n_folds=SMALL_TABLE_FOLDS, seed=3)


def test_large_table_keeps_its_scheme() -> None:
    scheme = CVScheme(kind="stratified", n_folds=5)
    assert tuning_scheme(scheme, _target(SMALL_TABLE_ROWS), Task.BINARY) is scheme


@pytest.mark.parametrize("scheme", [CVScheme(kind="group", group_column="g"), CVScheme(kind="time", time_column="t")])
def test_grouped_and_time_splits_keep_their_folds(scheme: CVScheme) -> None:
    assert tuning_scheme(scheme, pd.Series(range(300), dtype=float), Task.REGRESSION) is scheme


def test_rare_class_caps_the_folds_but_never_below_the_request() -> None:
    scheme = CVScheme(kind="stratified", n_folds=5)
    assert tuning_scheme(scheme, _target(300, rare=7), Task.BINARY).n_folds == 7
    assert tuning_scheme(scheme, _target(300, rare=5), Task.BINARY).n_folds == 5
    assert tuning_scheme(CVScheme(kind="stratified", n_folds=12), _target(300), Task.BINARY).n_folds == 12
