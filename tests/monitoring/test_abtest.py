"""A/B statistics checked against hand computations, scipy and textbook values, and end to end on
a real prediction log with feedback."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from core.monitoring import abtest
from core.serving.predlog import FEEDBACK, LoggedRequest, PredictionLog


def test_sample_size_matches_textbook_values() -> None:
    # Chow, Shao & Wang 4.2: p 0.65 vs 0.85, alpha 0.05 two-sided, power 0.8 -> 70 per group
    assert abtest.sample_size_per_group(0.65 * 0.35, 0.85 * 0.15, 0.20) == 70
    # means, sigma 1, difference 0.5 (effect size 0.5): 2 * (1.96 + 0.8416)^2 / 0.25 = 62.8 -> 63
    assert abtest.sample_size_per_group(1.0, 1.0, 0.5) == 63


def test_wilson_and_newcombe_match_newcombe_1998() -> None:
    low, high = abtest.wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = abtest.newcombe_interval(48, 80, 56, 70)  # 56/70 - 48/80
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)  # Newcombe (1998) table II, method 10


def test_z_test_and_welch_agree_with_scipy() -> None:
    z, p = abtest.two_proportion_z(120, 1000, 95, 1000)
    chi2, p_chi, _, _ = stats.chi2_contingency([[120, 880], [95, 905]], correction=False)
    assert z * z == pytest.approx(chi2) and p == pytest.approx(p_chi)
    rng = np.random.default_rng(1)
    a, b = rng.exponential(1.0, 300), rng.exponential(1.2, 200)
    d, low, high, p = abtest.welch(a, b)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert d == pytest.approx(b.mean() - a.mean())
    assert p == pytest.approx(ref.pvalue) and (low, high) == pytest.approx((ci.low, ci.high))
    diffs = rng.normal(0.1, 1, 50)
    m, low, high, p = abtest.paired(diffs)
    ref = stats.ttest_1samp(diffs, 0)
    assert p == pytest.approx(ref.pvalue)
    assert (low, high) == pytest.approx(tuple(ref.confidence_interval(0.95)))


def _log(tmp_path, items, *, model: str = "m", log: PredictionLog | None = None, at: datetime | None = None):
    """A real prediction log: each item (request_id, key, variant, version, prediction), logged by
    ``model`` at ``at`` (now), appended to ``log`` when given (one log shared by several models)."""
    log = log or PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", model_name=model, model_version=1)
    for request_id, key, variant, version, prediction in items:
        log.submit(LoggedRequest(request_id=request_id, created_at=at or datetime.now(timezone.utc), latency_ms=2.0,
                                 key=key, keys=None, inputs={"x": [1]}, predictions=[prediction], proba=None,
                                 classes=None, model_name=model, model_version=version, variant=variant))
    log.flush()
    return log


def test_split_classification_from_the_log_matches_a_hand_computation(tmp_path) -> None:
    rng = np.random.default_rng(7)
    items, labels = [], []
    for i in range(3000):
        variant, version = ("challenger", 2) if i % 10 == 0 else ("champion", 1)
        truth = "yes" if rng.random() < 0.5 else "no"
        wrong = rng.random() < (0.10 if variant == "challenger" else 0.20)
        prediction = ("no" if truth == "yes" else "yes") if wrong else truth
        items.append((f"r{i}", f"k{i}", variant, version, prediction))
        labels.append((i, truth))
    log = _log(tmp_path, items)
    # half the labels by request id, half by key
    log.add_feedback([{"request_id": f"r{i}", "row_index": 0, "label": t} if i % 2 else
                      {"key": f"k{i}", "label": t} for i, t in labels])
    result = abtest.compare_variants(log.engine)
    wrong = {"champion": [0, 0], "challenger": [0, 0]}
    for (_, _, variant, _, prediction), (_, truth) in zip(items, labels):
        wrong[variant][0] += prediction != truth
        wrong[variant][1] += 1
    (x_a, n_a), (x_b, n_b) = wrong["champion"], wrong["challenger"]
    assert result.design == "split" and result.task == "classification"
    assert (result.champion.n, result.challenger.n) == (n_a, n_b)
    assert result.champion.value == pytest.approx(x_a / n_a) and result.challenger.accuracy == pytest.approx(1 - x_b / n_b)
    assert (result.champion.model_version, result.challenger.model_version) == (1, 2)
    assert result.difference == pytest.approx(x_b / n_b - x_a / n_a)
    assert (result.ci_low, result.ci_high) == pytest.approx(abtest.newcombe_interval(x_a, n_a, x_b, n_b))
    assert result.winner == "challenger" and result.verdict.startswith("challenger better")
    traffic = {t.variant: t for t in abtest.variant_traffic(log.engine)}
    assert (traffic["champion"].requests, traffic["challenger"].requests) == (2700, 300)
    assert traffic["champion"].latency_p99_ms == 2.0 and sum(traffic["challenger"].class_shares.values()) == pytest.approx(1)
    log.close()


def test_too_few_labels_say_how_many_more_are_needed(tmp_path) -> None:
    items = [(f"r{i}", None, "challenger" if i % 2 else "champion", 2 if i % 2 else 1, "yes") for i in range(40)]
    log = _log(tmp_path, items)
    log.add_feedback([{"request_id": f"r{i}", "row_index": 0, "label": "yes" if i % 3 else "no"} for i in range(40)])
    result = abtest.compare_variants(log.engine, mde=0.05)
    assert result.winner is None
    p_a = result.champion.value
    needed = abtest.sample_size_per_group(p_a * (1 - p_a), (p_a + 0.05) * (1 - p_a - 0.05), 0.05)
    assert result.needed_per_variant == needed
    assert result.more_needed == 2 * (needed - 20)  # equal shares: both variants need needed - 20 more
    assert result.verdict == f"no difference yet — {result.more_needed} more labelled requests needed to detect 0.05"
    log.close()


def test_regression_split_and_shadow_pairs(tmp_path) -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(50, 10, 400)
    pred_a = truth + rng.normal(0, 3, 400)
    pred_b = truth + rng.normal(0, 3, 400)
    items = []
    for i in range(400):  # shadow: both variants scored every request
        items.append((f"r{i}", None, "champion", 1, float(pred_a[i])))
        items.append((f"r{i}", None, "shadow", 2, float(pred_b[i])))
    log = _log(tmp_path, items)
    log.add_feedback([{"request_id": f"r{i}", "row_index": 0, "label": float(truth[i])} for i in range(400)])
    result = abtest.compare_variants(log.engine, task="regression")
    d = np.abs(pred_b - truth) - np.abs(pred_a - truth)
    ref = stats.ttest_1samp(d, 0)
    assert result.design == "paired" and result.metric == "mae"
    assert result.champion.value == pytest.approx(np.abs(pred_a - truth).mean())
    assert result.challenger.rmse == pytest.approx(math.sqrt(((pred_b - truth) ** 2).mean()))
    assert result.difference == pytest.approx(d.mean()) and result.p_value == pytest.approx(ref.pvalue)
    assert result.winner is None and "no difference" in result.verdict
    log.close()


# ---------------------------------------------------------------------- one test's rows only


def _split(prefix: str, n: int, *, wrong_champion: int, wrong_challenger: int) -> tuple[list, list]:
    """``n`` requests per variant (champion v1, challenger v2) with the first ``wrong_*`` wrong."""
    items, feedback = [], []
    for variant, version, wrong in (("champion", 1, wrong_champion), ("challenger", 2, wrong_challenger)):
        for i in range(n):
            request_id = f"{prefix}-{variant}-{i}"
            items.append((request_id, f"{prefix}-key-{variant}-{i}", variant, version, "no" if i < wrong else "yes"))
            feedback.append({"request_id": request_id, "row_index": 0, "label": "yes"})
    return items, feedback


def test_a_scoped_verdict_ignores_other_models_and_earlier_tests(tmp_path) -> None:
    # Model m: the challenger errs less (10 of 200 against 40 of 200).
    items, feedback = _split("m", 200, wrong_champion=40, wrong_challenger=10)
    log = _log(tmp_path, items, model="m")
    # Model other shares the log with the opposite result and far more traffic, same version numbers.
    other_items, other_feedback = _split("o", 2000, wrong_champion=0, wrong_challenger=1000)
    _log(tmp_path, other_items, model="other", log=log)
    # An earlier test of m, before this one started: the same versions, every prediction wrong.
    earlier = datetime.now(timezone.utc) - timedelta(days=2)
    old_items, old_feedback = _split("old", 300, wrong_champion=300, wrong_challenger=300)
    _log(tmp_path, old_items, model="m", log=log, at=earlier)
    log.add_feedback(feedback + other_feedback + old_feedback)
    started = earlier + timedelta(days=1)

    scope = abtest.ABScope("m", 1, "m", 2, since=started)
    result = abtest.compare_variants(log.engine, scope=scope)
    assert (result.champion.n, result.challenger.n) == (200, 200)
    assert result.champion.value == pytest.approx(40 / 200) and result.challenger.value == pytest.approx(10 / 200)
    assert (result.ci_low, result.ci_high) == pytest.approx(abtest.newcombe_interval(40, 200, 10, 200))
    assert result.winner == "challenger"
    traffic = {t.variant: t for t in abtest.variant_traffic(log.engine, scope=scope)}
    assert {v: t.requests for v, t in traffic.items()} == {"champion": 200, "challenger": 200}
    assert traffic["challenger"].class_shares == {"no": 10 / 200, "yes": 190 / 200}
    # The other model's scope sees only its own rows (and its own verdict).
    mine = abtest.compare_variants(log.engine, scope=abtest.ABScope("other", 1, "other", 2))
    assert (mine.champion.n, mine.challenger.n) == (2000, 2000) and mine.winner == "champion"
    # Unscoped, everything in the log is mixed together: what the page showed before.
    mixed = abtest.compare_variants(log.engine)
    assert mixed.champion.n == 200 + 2000 + 300 and mixed.winner == "champion"
    log.close()


def test_feedback_from_before_the_test_is_not_its_label(tmp_path) -> None:
    now = datetime.now(timezone.utc)
    items = [(f"r{i}", f"k{i}", "champion" if i % 2 else "challenger", 1 if i % 2 else 2, "yes") for i in range(20)]
    log = _log(tmp_path, items)
    log.add_feedback([{"key": f"k{i}", "label": "yes"} for i in range(20)])
    with log.engine.begin() as conn:  # a label for key k0 from a day before, for an older prediction
        conn.execute(FEEDBACK.insert(), [{"request_id": None, "row_index": None, "key": "k0", "label": json.dumps("no"),
                                          "created_at": now - timedelta(days=1), "model_name": "m",
                                          "model_version": 1}])
    scope = abtest.ABScope("m", 1, "m", 2, since=now - timedelta(hours=1))
    labelled = abtest.labelled_predictions(log.engine, scope=scope)
    assert len(labelled) == 20 and {r["label"] for r in labelled} == {"yes"}  # the later label, not the stale one
    log.close()


def test_scope_of_a_running_test() -> None:
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    started = created + timedelta(hours=1)

    def state(started_at):
        return SimpleNamespace(champion=SimpleNamespace(name="m", version=1, folder="a"),
                               challenger=SimpleNamespace(name="m", version=2, folder="b"), started_at=started_at)

    deployment = SimpleNamespace(created_at=created.replace(tzinfo=None))
    assert abtest.scope_of(state(started), deployment) == abtest.ABScope("m", 1, "m", 2, since=started)
    assert abtest.scope_of(state(None), deployment).since == created  # no recorded start: the deployment's
    assert abtest.scope_of(state(None)).since is None
    with pytest.raises(ValueError):
        abtest.scope_of(SimpleNamespace(champion=state(None).champion, challenger=None, started_at=None))
