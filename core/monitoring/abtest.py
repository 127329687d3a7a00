"""A/B test statistics from the prediction log: per-variant performance on feedback, a verdict
with a confidence interval, and the sample size still needed.

Data: ``serving_requests`` (one row per predicted row, with its ``variant``: champion,
challenger or shadow) joined to ``serving_feedback`` by request id and row, or by key (the latest
prediction of that key per variant). Every local deployment of every model writes the same log,
and it keeps the rows of earlier tests, so a verdict is scoped to one test (:class:`ABScope`,
built by :func:`scope_of` from the running test): the champion's rows of the champion's model
version, the challenger's (or shadow's) rows of the challenger's version, logged since the test
started; feedback received before then is left out too.

Methods (``alpha`` two-sided, default 0.05):

* split, classification: error rates per variant with Wilson intervals; the difference
  (challenger - champion) with Newcombe's hybrid score interval and a pooled two-proportion
  z-test;
* split, regression: absolute errors per variant (MAE, RMSE); Welch's t-test and interval on
  the difference of mean absolute errors;
* shadow (both models scored the same rows): the paired difference per row (of the error
  indicator or of the absolute error), a t interval on its mean.

Sample size per variant to detect a difference ``mde`` with power ``power``:
``n = (z_{1-alpha/2} + z_{power})^2 * (var_a + var_b) / mde^2`` (for proportions
``var = p(1-p)``; paired: ``var_d / mde^2``). A smaller error is better; "challenger better"
means the interval of (challenger error - champion error) lies below zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import sqlalchemy as sa
from scipy import stats
from sqlalchemy.engine import Engine

from core.serving.predlog import FEEDBACK, REQUESTS, decode_columns, read_rows, upgrade

CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class ABScope:
    """Which logged predictions belong to one A/B test.

    Attributes:
        champion_name, champion_version: The model version answering as champion (its rows are
            logged with variant ``champion``, or none in logs from before A/B tests).
        challenger_name, challenger_version: The version answering as challenger or scoring in
            shadow mode.
        since: Rows (and feedback) logged before this time are not part of the test (None: all).
    """

    champion_name: str
    champion_version: int
    challenger_name: str
    challenger_version: int
    since: datetime | None = None


@dataclass(frozen=True)
class VariantPerformance:
    """One variant's performance on labelled predictions."""

    variant: str
    model_version: int | None
    n: int  # labelled predictions
    metric: str  # error_rate (classification) or mae (regression)
    value: float | None  # error rate or MAE
    ci_low: float | None
    ci_high: float | None
    accuracy: float | None = None  # classification
    rmse: float | None = None  # regression


@dataclass(frozen=True)
class ABVerdict:
    """The comparison of challenger and champion, with a plain-language verdict."""

    task: str  # classification or regression
    design: str  # split (independent groups) or paired (shadow mode)
    metric: str
    champion: VariantPerformance
    challenger: VariantPerformance
    difference: float | None  # challenger - champion (negative: the challenger errs less)
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    alpha: float
    power: float
    mde: float
    needed_per_variant: int | None  # labelled predictions per variant for the mde at this power
    more_needed: int  # more labelled requests (all variants) before the test can decide
    winner: str | None  # challenger, champion or None
    verdict: str


@dataclass(frozen=True)
class VariantTraffic:
    """One variant's traffic from the log: volume, latency and prediction distribution."""

    variant: str
    model_version: int | None
    requests: int
    rows: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    class_shares: dict[str, float] | None  # classification: share of rows per predicted class
    value_quantiles: dict[str, float] | None  # regression: p5, p25, p50, p75, p95, mean


# ---------------------------------------------------------------------- formulas


def wilson_interval(successes: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    z = stats.norm.ppf(1 - alpha / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(x_a: int, n_a: int, x_b: int, n_b: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval of p_b - p_a (method 10 of Newcombe 1998)."""
    p_a, p_b = x_a / n_a, x_b / n_b
    l_a, u_a = wilson_interval(x_a, n_a, alpha=alpha)
    l_b, u_b = wilson_interval(x_b, n_b, alpha=alpha)
    d = p_b - p_a
    low = d - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)
    high = d + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)
    return (low, high)


def two_proportion_z(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[float, float]:
    """Pooled two-proportion z statistic of p_b - p_a and its two-sided p-value."""
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return (0.0, 1.0)
    z = (x_b / n_b - x_a / n_a) / se
    return (z, float(2 * stats.norm.sf(abs(z))))


def sample_size_per_group(var_a: float, var_b: float, mde: float, *, alpha: float = 0.05,
                          power: float = 0.8) -> int:
    """Observations per group to detect a difference of means ``mde`` (normal approximation).

    For proportions pass ``var = p(1-p)``; e.g. p 0.65 vs 0.85, alpha 0.05, power 0.8 -> 70
    (Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, section 4.2).
    """
    if mde <= 0:
        raise ValueError("the minimum detectable effect must be positive")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return int(math.ceil(z * z * (var_a + var_b) / (mde * mde) - 1e-9))


def welch(a: np.ndarray, b: np.ndarray, *, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """Welch's test of mean(b) - mean(a): (difference, ci_low, ci_high, p_value)."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    d = float(b.mean() - a.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return (d, d, d, 1.0 if d == 0 else 0.0)
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    t = stats.t.ppf(1 - alpha / 2, df)
    p = float(2 * stats.t.sf(abs(d / se), df))
    return (d, d - t * se, d + t * se, p)


def paired(d: np.ndarray, *, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """A t interval and test on the mean of paired differences: (mean, ci_low, ci_high, p_value)."""
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    if se == 0:
        return (mean, mean, mean, 1.0 if mean == 0 else 0.0)
    t = stats.t.ppf(1 - alpha / 2, len(d) - 1)
    return (mean, mean - t * se, mean + t * se, float(2 * stats.t.sf(abs(mean / se), len(d) - 1)))


# ---------------------------------------------------------------------- from the log


def scope_of(state, deployment=None) -> ABScope:
    """The scope of the A/B test a deployment runs now.

    Args:
        state: A ``core.deploy.abtest.ABState`` with a challenger (split or shadow mode); its
            ``started_at`` (written by ``start_ab``) is when the test began.
        deployment: The deployment: without a recorded start, no row logged before the
            deployment existed (``created_at``) is the test's.

    Raises:
        ValueError: The state has no challenger.
    """
    if state.challenger is None:
        raise ValueError("no A/B test is running: the state has no challenger")
    since = getattr(state, "started_at", None)
    if since is None and deployment is not None and deployment.created_at is not None:
        since = deployment.created_at
    return ABScope(champion_name=state.champion.name, champion_version=int(state.champion.version),
                   challenger_name=state.challenger.name, challenger_version=int(state.challenger.version),
                   since=_aware(since) if since is not None else None)


def _aware(value: datetime) -> datetime:
    """A stored time as UTC-aware (SQLite gives naive UTC back)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def read_scoped(engine: Engine, scope: ABScope | None = None) -> list[dict]:
    """The logged predictions of one A/B test, one dict per predicted row, oldest first.

    The dicts are those of ``core.serving.predlog.read_rows`` without ``inputs`` (not needed
    here). The scope is applied in SQL, so other models' and earlier tests' rows are never
    decoded. Without a scope: every row of the log.
    """
    if scope is None:
        return read_rows(engine)
    import msgspec

    upgrade(engine)
    t = REQUESTS
    champion = sa.and_(t.c.model_name == scope.champion_name, t.c.model_version == scope.champion_version,
                       sa.or_(t.c.variant.is_(None), t.c.variant == CHAMPION))
    challenger = sa.and_(t.c.model_name == scope.challenger_name, t.c.model_version == scope.challenger_version,
                         t.c.variant.in_([CHALLENGER, SHADOW]))
    query = (sa.select(t.c.request_id, t.c.key, t.c["keys"], t.c.created_at, t.c.model_name, t.c.model_version,
                       t.c.variant, t.c.latency_ms, t.c.predictions, t.c.probabilities)
             .where(sa.or_(champion, challenger)).order_by(t.c.id))
    if scope.since is not None:
        query = query.where(t.c.created_at >= scope.since)
    decode = msgspec.json.decode
    out = []
    with engine.connect() as conn:
        for record in conn.execute(query).mappings():
            proba = decode_columns(record["probabilities"]) if record["probabilities"] is not None else None
            keys = decode(record["keys"]) if record["keys"] is not None else None
            for i, prediction in enumerate(decode(record["predictions"])):
                out.append({
                    "request_id": record["request_id"], "row_index": i,
                    "key": keys[i] if keys is not None else record["key"], "created_at": record["created_at"],
                    "model_name": record["model_name"], "model_version": record["model_version"],
                    "variant": record["variant"], "latency_ms": record["latency_ms"], "prediction": prediction,
                    "probabilities": {c: p[i] for c, p in proba.items()} if proba is not None else None,
                })
    return out


def labelled_predictions(engine: Engine, *, scope: ABScope | None = None) -> list[dict]:
    """Logged predictions that have a label: the prediction rows with ``label`` added.

    Feedback by request id matches that request's row (row 0 when no row was given) in every
    variant (in shadow mode, the champion's and the shadow's); feedback by key matches the
    latest prediction of that key (and row, if given) per variant. Later feedback for the same
    prediction replaces earlier feedback. With a ``scope``, only that test's predictions, and
    only feedback received since it started (a key's older label belongs to an older prediction).
    """
    import msgspec

    upgrade(engine)
    rows = read_scoped(engine, scope)
    by_request: dict[tuple[str, int], list[dict]] = {}
    by_key: dict[str, dict[str, dict]] = {}  # key -> variant -> latest row
    for r in rows:
        by_request.setdefault((r["request_id"], r["row_index"]), []).append(r)
        if r["key"] is not None:
            by_key.setdefault(r["key"], {})[r.get("variant") or CHAMPION] = r
    labelled: dict[tuple[str, int, str], dict] = {}
    query = sa.select(FEEDBACK).order_by(FEEDBACK.c.id)
    if scope is not None and scope.since is not None:
        query = query.where(FEEDBACK.c.created_at >= scope.since)
    with engine.connect() as conn:
        feedback = conn.execute(query).mappings().all()
    for fb in feedback:
        label = msgspec.json.decode(fb["label"])
        if fb["request_id"] is not None:
            matches = by_request.get((fb["request_id"], fb["row_index"] or 0), [])
        else:
            matches = [r for r in by_key.get(fb["key"], {}).values()
                       if fb["row_index"] is None or r["row_index"] == fb["row_index"]]
        for r in matches:
            labelled[(r["request_id"], r["row_index"], r.get("variant") or CHAMPION)] = {**r, "label": label}
    return list(labelled.values())


def compare_variants(engine: Engine, *, scope: ABScope | None = None, task: str | None = None,
                     alpha: float = 0.05, power: float = 0.8, mde: float | None = None) -> ABVerdict:
    """The A/B verdict from a prediction log (see :func:`compare`), of one test with a ``scope``."""
    return compare(labelled_predictions(engine, scope=scope), task=task, alpha=alpha, power=power, mde=mde)


def compare(labelled: list[dict], *, task: str | None = None, alpha: float = 0.05, power: float = 0.8,
            mde: float | None = None) -> ABVerdict:
    """Compare the challenger (or shadow) with the champion on labelled predictions.

    Args:
        labelled: Rows with ``variant``, ``model_version``, ``request_id``, ``row_index``,
            ``prediction`` and ``label`` (as :func:`labelled_predictions` gives them).
        task: ``classification`` or ``regression`` (default: guessed from the labels: numbers
            that are not all integers mean regression).
        alpha: Two-sided significance level (the interval is 1 - alpha).
        power: Power for the sample size.
        mde: The smallest difference worth detecting: in error rate (default 0.02) or in MAE
            (default 5 % of the champion's MAE).
    """
    task = task or _guess_task(labelled)
    if task not in ("classification", "regression"):
        raise ValueError("task is classification or regression")
    design = "paired" if any(r.get("variant") == SHADOW for r in labelled) else "split"
    other = SHADOW if design == "paired" else CHALLENGER
    groups = {CHAMPION: [r for r in labelled if (r.get("variant") or CHAMPION) == CHAMPION],
              other: [r for r in labelled if r.get("variant") == other]}
    errors = {v: _errors(rows, task) for v, rows in groups.items()}
    perf_a, perf_b = (_performance(v, groups[v], errors[v], task, alpha) for v in (CHAMPION, other))
    metric = perf_a.metric
    if mde is None:
        mde = 0.02 if task == "classification" else max(0.05 * (perf_a.value or 0.0), 1e-9)
    e_a, e_b = errors[CHAMPION], errors[other]
    diff = low = high = p = None
    needed = None
    if design == "paired":
        a_by = {(r["request_id"], r["row_index"]): e for r, e in zip(groups[CHAMPION], e_a)}
        d = np.array([e - a_by[(r["request_id"], r["row_index"])] for r, e in zip(groups[other], e_b)
                      if (r["request_id"], r["row_index"]) in a_by], dtype=float)
        n_pairs = len(d)
        if n_pairs >= 2:
            diff, low, high, p = paired(d, alpha=alpha)
            var_d = float(d.var(ddof=1)) or 0.25  # no disagreement yet: assume the worst case
            z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
            needed = int(math.ceil(z * z * var_d / (mde * mde)))
        more = max(0, (needed if needed is not None else 2) - n_pairs)
    else:
        n_a, n_b = len(e_a), len(e_b)
        if n_a >= 2 and n_b >= 2:
            if task == "classification":
                x_a, x_b = int(e_a.sum()), int(e_b.sum())
                diff = x_b / n_b - x_a / n_a
                low, high = newcombe_interval(x_a, n_a, x_b, n_b, alpha=alpha)
                p = two_proportion_z(x_a, n_a, x_b, n_b)[1]
                p_a = x_a / n_a
                p_b = min(max(p_a + mde, 0.0), 1.0)  # the alternative: the challenger errs mde more/less
                needed = sample_size_per_group(p_a * (1 - p_a), p_b * (1 - p_b), mde, alpha=alpha, power=power)
            else:
                diff, low, high, p = welch(e_a, e_b, alpha=alpha)
                needed = sample_size_per_group(float(e_a.var(ddof=1)), float(e_b.var(ddof=1)), mde,
                                               alpha=alpha, power=power)
        more = _more_requests(n_a, n_b, needed if needed is not None else 2)
    winner, verdict = _verdict(diff, low, high, more, mde, metric, design, perf_a, perf_b)
    return ABVerdict(task=task, design=design, metric=metric, champion=perf_a, challenger=perf_b,
                     difference=diff, ci_low=low, ci_high=high, p_value=p, alpha=alpha, power=power, mde=mde,
                     needed_per_variant=needed, more_needed=more, winner=winner, verdict=verdict)


def variant_traffic(engine: Engine, *, scope: ABScope | None = None) -> list[VariantTraffic]:
    """Per-variant requests, rows, latency percentiles and prediction distribution from the log
    (of one test with a ``scope``)."""
    rows = read_scoped(engine, scope)
    out = []
    for variant in (CHAMPION, CHALLENGER, SHADOW):
        mine = [r for r in rows if (r.get("variant") or CHAMPION) == variant]
        if not mine:
            continue
        latency = {r["request_id"]: r["latency_ms"] for r in mine}  # one latency per request
        lat = np.array(list(latency.values()), dtype=float)
        values = [r["prediction"] for r in mine]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and \
            all(r["probabilities"] is None for r in mine)
        shares = quantiles = None
        if numeric:
            arr = np.array(values, dtype=float)
            quantiles = {**{f"p{q}": float(np.percentile(arr, q)) for q in (5, 25, 50, 75, 95)},
                         "mean": float(arr.mean())}
        else:
            labels, counts = np.unique(np.array([str(v) for v in values]), return_counts=True)
            shares = {str(k): float(c / len(values)) for k, c in zip(labels, counts)}
        versions = {r["model_version"] for r in mine}
        out.append(VariantTraffic(
            variant=variant, model_version=versions.pop() if len(versions) == 1 else None,
            requests=len(latency), rows=len(mine),
            latency_p50_ms=float(np.percentile(lat, 50)), latency_p95_ms=float(np.percentile(lat, 95)),
            latency_p99_ms=float(np.percentile(lat, 99)), class_shares=shares, value_quantiles=quantiles))
    return out


# ---------------------------------------------------------------------- helpers


def _guess_task(labelled: list[dict]) -> str:
    labels = [r["label"] for r in labelled]
    if labels and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels) and \
            any(isinstance(v, float) and not float(v).is_integer() for v in labels):
        return "regression"
    return "classification"


def _errors(rows: list[dict], task: str) -> np.ndarray:
    """Per row: 1/0 for a wrong/right class, or the absolute error of a value."""
    if task == "classification":
        return np.array([float(str(r["prediction"]) != str(r["label"])) for r in rows], dtype=float)
    return np.array([abs(float(r["prediction"]) - float(r["label"])) for r in rows], dtype=float)


def _performance(variant: str, rows: list[dict], errors: np.ndarray, task: str, alpha: float) -> VariantPerformance:
    versions = {r["model_version"] for r in rows}
    version = versions.pop() if len(versions) == 1 else None
    n = len(errors)
    if task == "classification":
        if n == 0:
            return VariantPerformance(variant, version, 0, "error_rate", None, None, None)
        x = int(errors.sum())
        low, high = wilson_interval(x, n, alpha=alpha)
        return VariantPerformance(variant, version, n, "error_rate", x / n, low, high, accuracy=1 - x / n)
    if n == 0:
        return VariantPerformance(variant, version, 0, "mae", None, None, None)
    mae = float(errors.mean())
    half = float(stats.t.ppf(1 - alpha / 2, n - 1) * errors.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return VariantPerformance(variant, version, n, "mae", mae, mae - half, mae + half,
                              rmse=float(math.sqrt((errors ** 2).mean())))


def _more_requests(n_a: int, n_b: int, needed: int) -> int:
    """More labelled requests (both variants together) until each has ``needed``, at the
    observed traffic shares."""
    total = n_a + n_b
    if total == 0:
        return 2 * needed
    more = 0.0
    for n in (n_a, n_b):
        share = n / total
        if n < needed:
            more = max(more, (needed - n) / share if share > 0 else math.inf)
    return int(math.ceil(more)) if math.isfinite(more) else 2 * needed


def _verdict(diff, low, high, more, mde, metric, design, a: VariantPerformance, b: VariantPerformance
             ) -> tuple[str | None, str]:
    name = "error rate" if metric == "error_rate" else "mean absolute error"
    if diff is None:
        return None, f"not enough labelled predictions yet — {more} more labelled requests needed"
    if high < 0:
        return CHALLENGER, (f"challenger better: its {name} is lower by {-diff:.4g} "
                            f"(interval {-high:.4g} to {-low:.4g})")
    if low > 0:
        return CHAMPION, (f"challenger worse: its {name} is higher by {diff:.4g} "
                          f"(interval {low:.4g} to {high:.4g})")
    if more > 0:
        return None, f"no difference yet — {more} more labelled requests needed to detect {mde:.4g}"
    return None, (f"no difference: the {name}s differ by less than {mde:.4g} "
                  f"(interval {low:.4g} to {high:.4g})")


def as_dict(value: Any) -> Any:
    """A result as plain JSON-ready data (for the CLI and the page)."""
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) else [asdict(v) for v in value]
