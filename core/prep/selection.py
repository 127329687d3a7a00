"""Feature selection help: a leakage-safe importance preview and an automatic plan clean-up.

``importance_preview`` answers "which columns carry signal?" without fooling the user: every
number comes from cross-validation folds where cleaning, features and a fast model were fitted on
the training part only and judged on the held-out part, and each number is set against a noise
floor (a dummy model's score, mutual information with a shuffled target).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier, LGBMRegressor
from pandas.api import types as ptypes
from scipy import sparse
from scipy.stats import rankdata
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.parallel import Parallel, delayed

from core.errors import BadInput
from core.prep.features import FeatureBuilder
from core.prep.pipeline import build_pipeline
from core.prep.plan import FeaturePlan
from core.prep.recipe import build_cleaning_pipeline, prepare_training_table
from core.prep.steps import Recipe
from core.prep.transformers import MISSING_SUFFIX

Task = Literal["binary", "multiclass", "regression"]
_TASKS = ("binary", "multiclass", "regression")
_METRICS = {"binary": "ROC AUC", "multiclass": "balanced accuracy", "regression": "R²"}

# A column has signal when shuffling it costs more than the metric's chance fluctuation on the
# scored rows (see _noise_scale), and never less than this (in the task's metric).
SIGNAL_TOLERANCE = 0.002
# The table has signal when the model beats the dummy by SCORE_Z chance fluctuations, and at
# least by SCORE_TOLERANCE. With 50 noise columns a lucky split still reaches ~2 fluctuations.
SCORE_Z = 2.5
SCORE_TOLERANCE = 0.01
_REPEATS = 3  # permutations per column and fold
_PERMUTATION_ROWS = 4_000  # held-out rows scored per fold
_BATCH_ROWS = 200_000  # permuted copies transformed in one go (memory bound)
_MI_CELLS = 200_000  # rows x features for mutual information, per fold
_MI_MAX_ROWS = 2_000
_DISCRETE_MAX_UNIQUE = 10  # transformed features with few values are scored as discrete in MI
_MIN_ROWS = 30
_THREADS = 2


@dataclass(frozen=True)
class FeatureImportance:
    """One source column's importance, measured on held-out folds, with its noise floor.

    ``model_importance`` is the mean drop of the held-out score when the column is shuffled;
    ``mutual_info`` is mutual information above ``mi_baseline`` (the same measure against a
    shuffled target), floored at 0.
    """

    column: str
    mutual_info: float
    model_importance: float
    mi_baseline: float
    signal: bool


@dataclass(frozen=True)
class ImportancePreview:
    """Per-column importances plus the fast model's held-out score against a dummy's."""

    rows: tuple[FeatureImportance, ...]
    folds: int
    task: str
    score: float
    baseline_score: float
    has_signal: bool

    @property
    def metric(self) -> str:
        """The name of the metric ``score`` and ``model_importance`` are measured in."""
        return _METRICS[self.task]


@dataclass
class _Fold:
    score: float
    baseline: float
    importance: dict[str, np.ndarray]  # column -> one score drop per repeat
    scored: np.ndarray  # the held-out targets the permutations were scored on
    mi: dict[str, float]
    mi_baseline: dict[str, float]


def importance_preview(
    frame: pd.DataFrame,
    recipe: Recipe,
    plan: FeaturePlan,
    *,
    target: str,
    task: Task,
    folds: int = 3,
    max_rows: int = 20_000,
    seed: int = 42,
) -> ImportancePreview:
    """Cross-validated importance of each source column, set against noise.

    In each fold the cleaning + features Pipeline and a small LightGBM are fitted on the training
    part only. Model importance is permutation importance on the held-out part, permuting the raw
    column before the Pipeline (so it is per source column, interactions included). Mutual
    information is computed on the training part's transformed features, aggregated per source
    column (max over its features), minus the same quantity for a shuffled target.

    Args:
        frame: The raw table, target included; it is not modified.
        recipe: The cleaning recipe.
        plan: The feature plan.
        target: The target column.
        task: "binary" (ROC AUC), "multiclass" (balanced accuracy) or "regression" (R²).
        folds: Number of cross-validation folds.
        max_rows: Use a random sample of at most this many rows, for speed.
        seed: Seed for sampling, folds, permutations and the model.

    Returns:
        The preview; rows sorted by model importance, highest first.

    Raises:
        BadInput: Unknown task, a target unfit for the task, too few rows, or a bad plan.
    """
    if task not in _TASKS:
        raise BadInput(f"Unknown task {task!r}: use one of {', '.join(_TASKS)}.")
    if not 2 <= folds <= 20:
        raise BadInput("Use between 2 and 20 folds.")
    X, y = prepare_training_table(frame, recipe, target=target)
    if len(X) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
        X, y = X.iloc[rows], y.iloc[rows]
    X, y = X.reset_index(drop=True), y.reset_index(drop=True)
    _check_target(y, task, folds)

    splitter = (
        KFold(folds, shuffle=True, random_state=seed)
        if task == "regression"
        else StratifiedKFold(folds, shuffle=True, random_state=seed)
    )
    # One generator per fold, so results do not depend on the order folds finish in.
    generators = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(folds)]
    # Threads: LightGBM, the neighbour searches of mutual information and most numpy work
    # release the GIL, so two folds at a time use two cores without copying the table.
    results = Parallel(n_jobs=min(folds, _THREADS), backend="threading")(
        delayed(_run_fold)(X, y, train, test, recipe=recipe, plan=plan, target=target, task=task, seed=seed, rng=rng)
        for (train, test), rng in zip(splitter.split(X, y), generators)
    )

    columns = [c for c in X.columns if any(c in r.importance for r in results)]
    floor = max(SIGNAL_TOLERANCE, _noise_scale(task, np.concatenate([r.scored for r in results])))
    rows = [_summarise(column, results, floor) for column in columns]
    rows.sort(key=lambda r: (-r.model_importance, -r.mutual_info, r.column))
    gains = np.array([r.score - r.baseline for r in results])
    bar = max(SCORE_TOLERANCE, SCORE_Z * _noise_scale(task, y.to_numpy()))
    return ImportancePreview(
        rows=tuple(rows),
        folds=folds,
        task=task,
        score=float(np.mean([r.score for r in results])),
        baseline_score=float(np.mean([r.baseline for r in results])),
        has_signal=bool(gains.mean() > bar and gains.mean() - gains.std() > 0),
    )


def _check_target(y: pd.Series, task: str, folds: int) -> None:
    if len(y) < _MIN_ROWS:
        raise BadInput(f"At least {_MIN_ROWS} rows with a target are needed; found {len(y)}.")
    if task == "regression":
        if not ptypes.is_numeric_dtype(y) or ptypes.is_bool_dtype(y):
            raise BadInput("Regression needs a numeric target; fix its type in cleaning first.")
        return
    counts = y.value_counts()
    if task == "binary" and len(counts) != 2:
        raise BadInput(f"A binary task needs exactly 2 target classes; found {len(counts)}.")
    if len(counts) < 2:
        raise BadInput("The target has a single class: there is nothing to predict.")
    if counts.min() < folds:
        raise BadInput(
            f"Target class {counts.idxmin()!r} has {counts.min()} rows; each class needs at least {folds}."
        )


def _run_fold(X, y, train, test, *, recipe, plan, target, task, seed, rng) -> _Fold:
    X_train, y_train, X_test, y_test = X.iloc[train], y.iloc[train], X.iloc[test], y.iloc[test]
    prep = build_pipeline(recipe, plan, target=target, seed=seed)
    # fit_transform, as the real Pipeline does: target encoding cross-fits the training rows.
    train_features = prep.fit_transform(X_train, y_train)
    model = _fast_model(task, seed).fit(_matrix(train_features), y_train.to_numpy())
    dummy = (DummyRegressor() if task == "regression" else DummyClassifier(strategy="prior"))
    dummy.fit(np.zeros((len(y_train), 1)), y_train.to_numpy())

    y_true = y_test.to_numpy()
    score = _score(task, model, y_true, _predict(task, model, _matrix(prep.transform(X_test))))
    baseline = _score(task, dummy, y_true, _predict(task, dummy, np.zeros((len(y_true), 1))))

    builder: FeatureBuilder = prep.named_steps["features"]
    sources = [_raw_sources(s, X.columns) for s in builder.feature_sources_]
    used = [c for c in X.columns if any(c in s for s in sources)]
    importance, scored = _permutation_importance(prep, model, task, X_test, y_test, used, rng)
    mi, mi_base = _mutual_information(train_features, y_train, sources, used, task, seed, rng)
    return _Fold(score, baseline, importance, scored, mi, mi_base)


def _fast_model(task: str, seed: int):
    # Small and single-threaded: n_jobs=1 is the fastest on tables this size.
    params = dict(n_estimators=100, learning_rate=0.1, num_leaves=15, n_jobs=1, random_state=seed, verbose=-1)
    return LGBMRegressor(**params) if task == "regression" else LGBMClassifier(**params)


def _matrix(features):
    """Plain model input: the fast model needs no names, and arrays skip pandas conversions."""
    return features if sparse.issparse(features) else np.asarray(features, dtype=np.float64)


def _predict(task: str, model, X) -> np.ndarray:
    return model.predict(X) if task == "regression" else model.predict_proba(X)


def _score(task: str, model, y_true: np.ndarray, predicted: np.ndarray) -> float:
    """ROC AUC, balanced accuracy or R², in plain numpy: sklearn's input checks would dominate
    the run time of the hundreds of small scorings a preview makes."""
    if task == "regression":
        total = np.sum((y_true - y_true.mean()) ** 2)
        return float(1.0 - np.sum((y_true - predicted) ** 2) / total) if total > 0 else 0.0
    if task == "binary":
        positive = y_true == model.classes_[1]
        n_pos, n_neg = positive.sum(), (~positive).sum()
        ranks = rankdata(predicted[:, 1])
        return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    hits = y_true == model.classes_[predicted.argmax(axis=1)]
    return float(np.mean([hits[y_true == label].mean() for label in np.unique(y_true)]))


def _noise_scale(task: str, y_true: np.ndarray) -> float:
    """Standard error of the metric for predictions unrelated to the target, on ``y_true``.

    It sets the bar for "clearly above noise", so the bar falls as the table grows.
    """
    n = len(y_true)
    if task == "regression":
        return 1.0 / np.sqrt(n)  # a loose bound for R²'s chance fluctuations
    counts = np.unique(y_true, return_counts=True)[1].astype(float)
    if task == "binary":
        return float(np.sqrt((n + 1) / (12 * counts[0] * counts[1])))  # Mann-Whitney under the null
    # Balanced accuracy: mean of per-class recalls, each a proportion over its class.
    return float(np.sqrt(np.sum(1 / (4 * counts))) / len(counts))


def _permutation_importance(prep, model, task, X_test, y_test, columns, rng) -> tuple[dict, np.ndarray]:
    """Score drop per repeat when one raw column is shuffled before the whole Pipeline.

    All shuffled copies are stacked and pushed through the Pipeline in large batches: every step
    works row by row at predict time, so this equals one call per copy, at a fraction of the cost.
    """
    if len(X_test) > _PERMUTATION_ROWS:
        keep = np.sort(rng.choice(len(X_test), size=_PERMUTATION_ROWS, replace=False))
        X_test, y_test = X_test.iloc[keep], y_test.iloc[keep]
    base = X_test.reset_index(drop=True)
    y_true = y_test.to_numpy()
    n = len(base)
    reference = _score(task, model, y_true, _predict(task, model, _matrix(prep.transform(base))))
    jobs = [(column, r) for column in columns for r in range(_REPEATS)]
    per_batch = max(1, _BATCH_ROWS // n)
    drops: dict[str, list[float]] = {c: [] for c in columns}
    for start in range(0, len(jobs), per_batch):
        batch = jobs[start : start + per_batch]
        stacked = _stacked_copies(base, [column for column, _ in batch], rng)
        predicted = _predict(task, model, _matrix(prep.transform(stacked)))
        for i, (column, _) in enumerate(batch):
            drops[column].append(reference - _score(task, model, y_true, predicted[i * n : (i + 1) * n]))
    return {c: np.asarray(v) for c, v in drops.items()}, y_true


def _stacked_copies(base: pd.DataFrame, permuted: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """``len(permuted)`` copies of ``base`` stacked; in copy ``i`` column ``permuted[i]`` is shuffled."""
    n, copies = len(base), len(permuted)
    shuffles: dict[str, list[tuple[int, np.ndarray]]] = {}
    for i, column in enumerate(permuted):
        shuffles.setdefault(column, []).append((i, rng.permutation(n)))
    data = {}
    for column in base.columns:
        series = base[column]
        # numpy columns as arrays (fast to assemble); others as ExtensionArrays, whose take keeps
        # the dtype (categories, nullable integers, time zones).
        values = series.to_numpy() if isinstance(series.dtype, np.dtype) else series.array
        if column not in shuffles:
            data[column] = values.take(np.tile(np.arange(n), copies))
            continue
        rows = np.tile(np.arange(n), copies)
        for i, order in shuffles[column]:
            rows[i * n : (i + 1) * n] = order
        data[column] = values.take(rows)
    return pd.DataFrame(data)


def _mutual_information(features, y_train, sources, columns, task, seed, rng) -> tuple[dict, dict]:
    """Per source column: max MI over its transformed features, for the real and a shuffled target."""
    n_features = features.shape[1]
    n_rows = min(len(y_train), _MI_MAX_ROWS, max(200, _MI_CELLS // max(1, n_features)))
    rows = np.sort(rng.choice(len(y_train), size=n_rows, replace=False))
    matrix = features[rows].toarray() if sparse.issparse(features) else np.asarray(features, dtype=float)[rows]
    target = y_train.to_numpy()[rows]
    discrete = np.zeros(n_features, dtype=bool)
    for j in range(n_features):
        levels, codes = np.unique(matrix[:, j], return_inverse=True)
        if len(levels) <= _DISCRETE_MAX_UNIQUE:
            # MI of a discrete feature depends only on its levels; integer codes say "discrete".
            discrete[j] = True
            matrix[:, j] = codes
    measure = mutual_info_regression if task == "regression" else mutual_info_classif
    real = measure(matrix, target, discrete_features=discrete, random_state=seed)
    shuffled = measure(matrix, rng.permutation(target), discrete_features=discrete, random_state=seed)

    def per_column(values: np.ndarray) -> dict[str, float]:
        return {c: float(max((v for v, s in zip(values, sources) if c in s), default=0.0)) for c in columns}

    return per_column(real), per_column(shuffled)


def _raw_sources(sources: tuple[str, ...], raw_columns: pd.Index) -> tuple[str, ...]:
    """Map cleaned column names back to raw ones (``age__missing`` comes from ``age``)."""
    out = []
    for name in sources:
        if name not in raw_columns and str(name).endswith(MISSING_SUFFIX):
            name = str(name)[: -len(MISSING_SUFFIX)]
        out.append(name)
    return tuple(out)


def _summarise(column: str, results: list[_Fold], floor: float) -> FeatureImportance:
    drops = np.concatenate([r.importance.get(column, np.zeros(_REPEATS)) for r in results])
    fold_means = np.array([r.importance.get(column, np.zeros(_REPEATS)).mean() for r in results])
    mi = float(np.mean([r.mi.get(column, 0.0) for r in results]))
    mi_base = float(np.mean([r.mi_baseline.get(column, 0.0) for r in results]))
    mean = float(fold_means.mean())
    # Clearly positive: above the metric's noise scale, above its own spread across folds and
    # repeats, and positive in every fold (noise columns wobble around zero).
    signal = mean > floor and mean - drops.std() > 0 and (fold_means > 0).all()
    return FeatureImportance(
        column=str(column),
        mutual_info=max(0.0, mi - mi_base),
        model_importance=mean,
        mi_baseline=mi_base,
        signal=bool(signal),
    )


# --- automatic plan clean-up ---------------------------------------------------------------------

_PLAN_MAX_ROWS = 50_000  # rows read for near-constant shares
_CORR_MAX_ROWS = 20_000  # rows used for correlations


def auto_plan(
    frame: pd.DataFrame,
    recipe: Recipe,
    plan: FeaturePlan,
    *,
    target: str,
    near_constant_share: float = 0.99,
    corr_threshold: float = 0.95,
) -> tuple[FeaturePlan, tuple[str, ...]]:
    """Exclude near-constant columns and near-duplicate numeric columns from the plan.

    Works on the cleaned training table (recipe applied). A numeric column is a near-duplicate
    when its |Pearson| or |Spearman| correlation with an earlier kept numeric column reaches
    ``corr_threshold``; the earlier column (in table order) is kept.

    Args:
        frame: The raw table, target included; it is not modified.
        recipe: The cleaning recipe.
        plan: The current feature plan; already excluded columns are left alone.
        target: The target column (never excluded, never compared).
        near_constant_share: A column whose most common value (missing counts as a value)
            covers at least this share of rows is near-constant.
        corr_threshold: Absolute correlation at which two numeric columns count as duplicates.

    Returns:
        The new plan (old exclusions plus new ones) and one reason per newly excluded column.
    """
    X, _ = prepare_training_table(frame, recipe, target=target)
    if len(X) > _PLAN_MAX_ROWS:
        X = X.sample(n=_PLAN_MAX_ROWS, random_state=0)  # random rows, so .iloc[:k] is random too
    cleaned = build_cleaning_pipeline(recipe, target=target).fit_transform(X)
    candidates = [
        c for c in (plan.include or cleaned.columns) if c in cleaned.columns and c not in plan.exclude
    ]
    excluded: dict[str, str] = {}
    for column in candidates:
        share = cleaned[column].value_counts(dropna=False, normalize=True)
        if len(share) and share.iloc[0] >= near_constant_share:
            excluded[column] = (
                f"{column}: near-constant ({share.iloc[0]:.1%} of rows are {_show(share.index[0])})"
            )

    numeric = [
        c for c in candidates
        if c not in excluded and ptypes.is_numeric_dtype(cleaned[c]) and not ptypes.is_bool_dtype(cleaned[c])
    ]
    if len(numeric) > 1:
        values = cleaned[numeric].iloc[:_CORR_MAX_ROWS].astype(float)
        correlations = {"Pearson": _abs_corr(values), "Spearman": _abs_corr(values.rank())}
        kept: list[str] = []
        for column in numeric:
            match = _first_duplicate(column, kept, correlations, corr_threshold)
            if match is None:
                kept.append(column)
            else:
                other, method, value = match
                excluded[column] = f"{column}: near-duplicate of {other} (|{method}| = {value:.3f})"

    new = [c for c in candidates if c in excluded]
    return plan.model_copy(update={"exclude": (*plan.exclude, *new)}), tuple(excluded[c] for c in new)


def _abs_corr(values: pd.DataFrame) -> pd.DataFrame:
    """|correlation| of every column pair, with missing values set to the column mean.

    One matrix product instead of pandas' pairwise loop, so thousands of columns stay fast;
    two copies of a column with gaps in the same rows still correlate exactly.
    """
    filled = values.fillna(values.mean()).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        matrix = np.abs(np.corrcoef(filled, rowvar=False))
    return pd.DataFrame(matrix, index=values.columns, columns=values.columns)


def _first_duplicate(column, kept, correlations, threshold):
    for other in kept:
        for method, matrix in correlations.items():
            value = matrix.at[column, other]
            if np.isfinite(value) and value >= threshold:
                return other, method, float(value)
    return None


def _show(value) -> str:
    return "missing" if pd.isna(value) else repr(value)[:40]
