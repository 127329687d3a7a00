"""Retraining: a worse challenger stays challenger, a better one is promoted, rollbacks are recorded.

Everything here trains real models (logistic regression, one trial, three folds) on synthetic
tables where the truth is known: 3 informative columns among 30, so a model fit on a few dozen
rows overfits and one fit on thousands does not.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

from core import registry
from core.data.ingest import read_bytes
from core.data.storage import dataset_path
from core.datasets import get_preparation, import_table
from core.errors import BadInput
from core.modeling.metrics import score
from core.modeling.tuning import TuningConfig
from core.monitoring import retrain as rt
from core.monitoring.policy import PromotionPolicy, Scored, decide, paired_bootstrap
from core.prep.plan import FeaturePlan
from core.prep.steps import Recipe
from core.store.db import session_scope
from core.store.models import Dataset, RetrainRun
from core.training import TrainRequest, train_model

MODEL = "churn model"
FEATURES = [f"x{i}" for i in range(30)]
FAST = PromotionPolicy(n_bootstrap=300)


def make_frame(n: int, seed: int, *, labels: str = "true") -> pd.DataFrame:
    """``labels``: ``true`` (from the features), ``flipped`` (the opposite) or ``noise`` (coin flips)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    positive = 1.6 * X[:, 0] - 1.3 * X[:, 1] + 1.0 * X[:, 2] + rng.logistic(size=n) * 0.6 > 0
    if labels == "flipped":
        positive = ~positive
    elif labels == "noise":
        positive = rng.random(n) < 0.5
    frame = pd.DataFrame(X.round(4), columns=FEATURES)
    frame["churned"] = np.where(positive, "yes", "no")
    return frame


def train_champion(engine, settings, frame: pd.DataFrame, *, name: str = MODEL, alias: bool = True):
    """Import ``frame`` as a dataset of project "shop" and train version 1 on it, like the CLI does."""
    loaded = read_bytes("history.csv", frame.to_csv(index=False).encode(), settings=settings)
    import_table(engine, loaded, project="shop", name="history.csv", settings=settings)
    config = TuningConfig(models=("logistic_regression",), max_trials=1, budget_s=30, seed=settings.random_seed)
    request = TrainRequest(model_name=name, target="churned", config=config, n_folds=3)
    outcome = train_model(loaded.frame, dataset_hash=loaded.content_hash, recipe=Recipe(), plan=FeaturePlan(),
                          request=request, engine=engine, settings=settings)
    if alias:
        registry.set_alias(engine, name=name, alias="champion", version=outcome.version.version)
    return outcome.version


def _runs(engine) -> list[RetrainRun]:
    with session_scope(engine) as session:
        return list(session.exec(select(RetrainRun).order_by(RetrainRun.id)))


# --------------------------------------------------------------------------- the bootstrap


def test_paired_bootstrap_matches_a_hand_computation() -> None:
    y = np.array(["a", "b", "a", "b", "a"])
    champion = Scored(pred=np.array(["a", "a", "a", "a", "b"]))  # right on rows 0 and 2
    challenger = Scored(pred=np.array(["a", "b", "b", "a", "a"]))  # right on rows 0, 1 and 4
    result = paired_bootstrap(y, champion, challenger, metric="accuracy", classes=("a", "b"), n_bootstrap=200,
                              confidence=0.9, seed=7)
    assert result.champion_score == pytest.approx(2 / 5) and result.challenger_score == pytest.approx(3 / 5)
    assert result.diff == pytest.approx(0.2)
    # By hand: the documented resampling, accuracy counted row by row.
    right_a = [yt == p for yt, p in zip(y, champion.pred)]
    right_b = [yt == p for yt, p in zip(y, challenger.pred)]
    rng = np.random.default_rng(7)
    diffs = []
    for _ in range(200):
        idx = rng.integers(0, 5, size=5)
        diffs.append(sum(right_b[i] for i in idx) / 5 - sum(right_a[i] for i in idx) / 5)
    low, high = np.quantile(diffs, [0.05, 0.95])
    assert (result.ci_low, result.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert result.n_bootstrap == 200 and result.ci_low < 0 < result.ci_high  # 5 rows prove nothing


def test_bootstrap_interval_edges_and_direction() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    same = Scored(pred=y + 0.5)
    equal = paired_bootstrap(y, same, same, metric="rmse", n_bootstrap=100)
    assert (equal.diff, equal.ci_low, equal.ci_high) == (0, 0, 0)
    # Lower RMSE is better: a challenger with half the error has a positive difference.
    better = paired_bootstrap(y, Scored(pred=y + 1.0), Scored(pred=y + 0.5), metric="rmse", n_bootstrap=100)
    assert better.diff == pytest.approx(0.5) and better.ci_low == pytest.approx(0.5)
    # Against the normal approximation for a mean of paired differences on 2,000 rows.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=2000)
    a = np.where(rng.random(2000) < 0.75, labels, 1 - labels)
    b = np.where(rng.random(2000) < 0.80, labels, 1 - labels)
    cmp = paired_bootstrap(labels, Scored(pred=a), Scored(pred=b), metric="accuracy", n_bootstrap=1000, seed=1)
    d = (b == labels).astype(float) - (a == labels).astype(float)
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    assert cmp.diff == pytest.approx(d.mean())
    assert cmp.ci_low == pytest.approx(d.mean() - half, abs=0.008) and cmp.ci_high == pytest.approx(d.mean() + half, abs=0.008)


def test_undefined_resamples_are_skipped_and_the_policy_reads_the_interval() -> None:
    # Row 9's label is one the models never saw, so log loss is undefined on every resample that
    # draws it (about 65 % of them): too few defined resamples leave no interval.
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2])
    proba = np.column_stack([1 - np.linspace(0, 1, 10), np.linspace(0, 1, 10)])
    cmp = paired_bootstrap(y, Scored(pred=y, proba=proba), Scored(pred=y, proba=proba), metric="log_loss",
                           classes=(0, 1), n_bootstrap=200)
    assert cmp.n_bootstrap < 200 and np.isnan(cmp.ci_low)
    ok, why = decide(PromotionPolicy(), cmp, None)
    assert not ok and "undefined" in why
    with pytest.raises(BadInput, match="confidence"):
        PromotionPolicy(confidence=1.5).validate()
    with pytest.raises(BadInput, match="margin"):
        PromotionPolicy(margin=-0.1).validate()


# --------------------------------------------------------------------------- retraining


def test_models_are_compared_on_the_labels_their_services_give(engine, settings) -> None:
    version = train_champion(engine, settings, make_frame(300, seed=1), alias=False)
    model = registry.load_pipeline(version, settings=settings)
    X = make_frame(200, seed=5).drop(columns="churned")
    threshold = json.loads(version.metrics_json)["decision_threshold"]
    served = rt._scored(model, X, ("no", "yes"), threshold)
    assert (served.pred == np.where(served.proba[:, 1] >= threshold, "yes", "no")).all()
    assert (rt._scored(model, X, ("no", "yes"), 0.0).pred == "yes").all()
    assert (rt._scored(model, X, ("no", "yes")).pred == model.predict(X)).all()  # no threshold recorded


def test_a_better_challenger_is_promoted_and_the_old_champion_can_come_back(engine, settings) -> None:
    first = train_champion(engine, settings, make_frame(60, seed=1))
    old_file = dataset_path(first.dataset_hash, settings=settings)
    old_bytes = hashlib.sha256(old_file.read_bytes()).hexdigest()
    out = rt.retrain(engine, model_name=MODEL, new_data=make_frame(1500, seed=2), settings=settings, reason="cli",
                     policy=PromotionPolicy(margin=0.02, n_bootstrap=300), max_trials=1, new_data_name="march.csv")
    assert out.promoted and out.decision == "promoted", out.message
    assert (out.champion_version, out.challenger_version, out.new_rows) == (1, 2, 1500)
    assert out.metric == "roc_auc" and out.holdout.rows == round(0.2 * 1560)
    assert out.holdout.diff >= 0.02 and out.holdout.ci_low > 0 and out.holdout.ci_high >= out.holdout.diff
    assert out.holdout.challenger_score > out.holdout.champion_score
    assert registry.aliases(engine, name=MODEL) == {"champion": 2, "previous": 1}
    # The old data is untouched; the combined rows are a new dataset of the same project, prepared alike.
    assert hashlib.sha256(old_file.read_bytes()).hexdigest() == old_bytes
    with session_scope(engine) as session:
        rows = list(session.exec(select(Dataset).order_by(Dataset.id)))
    assert len(rows) == 2 and rows[0].project_id == rows[1].project_id
    assert rows[1].rows == 1560 and rows[1].content_hash == out.dataset_hash and "march.csv" in rows[1].name
    assert get_preparation(engine, rows[1].id).target == "churned"
    challenger = registry.get_version(engine, name=MODEL, version=2)
    assert challenger.dataset_hash == out.dataset_hash
    assert json.loads(challenger.cv_json)["tuning"]["models"] == ["logistic_regression"]  # same search space
    run = _runs(engine)[-1]
    assert (run.kind, run.trigger, run.status, run.decision) == ("retrain", "cli", "DONE", "promoted")
    assert (run.champion_version, run.challenger_version, run.metric) == (1, 2, "roc_auc")
    assert run.ci_low == pytest.approx(out.holdout.ci_low) and run.diff == pytest.approx(out.holdout.diff)
    assert run.finished_at is not None and run.new_rows == 1500
    # One click back: the champion alias moves, the rollback is recorded and can itself be undone.
    back = rt.rollback(engine, model_name=MODEL, to_version=1, settings=settings)
    assert (back.from_version, back.to_version) == (2, 1)
    assert registry.aliases(engine, name=MODEL) == {"champion": 1, "previous": 2}
    run = _runs(engine)[-1]
    assert (run.kind, run.decision, run.champion_version, run.challenger_version) == ("rollback", "rolled_back", 2, 1)
    with pytest.raises(BadInput, match="earlier"):
        rt.rollback(engine, model_name=MODEL, to_version=2, settings=settings)
    again = rt.promote(engine, model_name=MODEL, version=2, settings=settings)
    assert again.to_version == 2 and registry.aliases(engine, name=MODEL)["champion"] == 2


def test_harmful_new_labels_are_not_promoted_and_stay_challenger(engine, settings) -> None:
    train_champion(engine, settings, make_frame(600, seed=1))
    window = make_frame(400, seed=9)  # the recent truth, e.g. joined from feedback
    out = rt.retrain(engine, model_name=MODEL, new_data=make_frame(900, seed=2, labels="flipped"),
                     settings=settings, reason="new_data", policy=FAST, max_trials=1, window=window)
    assert not out.promoted and out.decision == "kept_as_challenger", out.message
    assert out.window is not None and out.window.rows == 400
    assert out.window.diff < -0.1 and out.window.ci_high < 0  # clearly worse on the labelled window
    # The window was scored by the shipped models, so its scores can be redone from them.
    champion = registry.load_pipeline(registry.get_version(engine, name=MODEL, version=1), settings=settings)
    proba = champion.predict_proba(window[FEATURES])
    assert out.window.champion_score == pytest.approx(
        score("roc_auc", window["churned"].to_numpy(), None, proba, tuple(champion.classes_)))
    assert registry.aliases(engine, name=MODEL) == {"challenger": 2, "champion": 1}
    run = _runs(engine)[-1]
    assert (run.decision, run.trigger, run.window_rows) == ("kept_as_challenger", "new_data", 400)
    assert run.window_diff == pytest.approx(out.window.diff) and "challenger" in run.message


def test_noise_without_a_window_is_not_promoted_and_pins_an_unaliased_champion(engine, settings) -> None:
    train_champion(engine, settings, make_frame(300, seed=1), alias=False)  # "latest READY" is the champion
    out = rt.retrain(engine, model_name=MODEL, new_data=make_frame(300, seed=2, labels="noise"), settings=settings,
                     reason="schedule", policy=PromotionPolicy(margin=0.01, n_bootstrap=300), max_trials=1)
    assert not out.promoted and (out.holdout.diff < 0.01 or out.holdout.ci_low <= 0), out.message
    # The challenger is now the latest version, so the champion is pinned by alias rather than left implicit.
    assert registry.aliases(engine, name=MODEL) == {"challenger": 2, "champion": 1}
    assert rt.champion_of(engine, model_name=MODEL).version == 1


def test_the_holdout_is_the_champions_own_when_no_rows_are_added(engine, settings) -> None:
    first = train_champion(engine, settings, make_frame(300, seed=1))
    out = rt.retrain(engine, model_name=MODEL, new_data=None, settings=settings, reason="button", policy=FAST,
                     max_trials=1)
    # Same rows, seed and search: the champion's side reproduces the holdout score it recorded, and
    # the retrained model is the same model, so nothing is promoted.
    recorded = json.loads(first.metrics_json)["holdout"]["roc_auc"]
    assert out.holdout.champion_score == pytest.approx(recorded)
    assert out.holdout.diff == pytest.approx(0) and not out.promoted and out.new_rows == 0
    assert out.dataset_hash == first.dataset_hash


def test_bad_input_is_refused_before_training_and_recorded(engine, settings) -> None:
    train_champion(engine, settings, make_frame(200, seed=1))
    with pytest.raises(BadInput, match="'x3'"):
        rt.retrain(engine, model_name=MODEL, new_data=make_frame(50, seed=2).drop(columns=["x3"]),
                   settings=settings, reason="cli", policy=FAST, max_trials=1)
    bad = make_frame(50, seed=2).astype({"x0": object})
    bad.loc[0, "x0"] = "lots"
    with pytest.raises(BadInput, match="'x0'"):
        rt.retrain(engine, model_name=MODEL, new_data=bad, settings=settings, reason="cli", policy=FAST, max_trials=1)
    with pytest.raises(BadInput, match="reason"):
        rt.retrain(engine, model_name=MODEL, new_data=None, settings=settings, reason="whim")
    with pytest.raises(BadInput, match="target"):
        rt.retrain(engine, model_name=MODEL, new_data=None, settings=settings, reason="cli", policy=FAST,
                   max_trials=1, window=make_frame(20, seed=3).drop(columns=["churned"]))
    runs = _runs(engine)
    assert [r.decision for r in runs] == ["failed"] * 3 and all(r.status == "FAILED" for r in runs)
    assert "'x3'" in runs[0].message
    assert registry.aliases(engine, name=MODEL) == {"champion": 1}
    assert len(registry.list_versions(engine, name=MODEL)) == 1  # nothing was trained
    with session_scope(engine) as session:
        assert len(list(session.exec(select(Dataset)))) == 1  # and nothing stored


# --------------------------------------------------------------------------- store, processes


def test_once_per_content_and_alias_moves_on_each_backend(store_url, settings) -> None:
    from core.store.db import make_engine

    engine = make_engine(store_url)
    try:
        train_champion(engine, settings, make_frame(150, seed=1))
        train_champion(engine, settings, make_frame(150, seed=2), alias=False)  # version 2, not champion
        unusable = make_frame(20, seed=3).drop(columns=["x5"])
        for _ in range(2):  # without a source hash, runs never collide
            with pytest.raises(BadInput, match="'x5'"):
                rt.retrain(engine, model_name=MODEL, new_data=unusable, settings=settings, reason="cli", policy=FAST)
        with pytest.raises(BadInput):
            rt.retrain(engine, model_name=MODEL, new_data=unusable, settings=settings, reason="new_data",
                       policy=FAST, source_hash="ab" * 32)
        with pytest.raises(rt.AlreadyRetrained):  # the same content, even after a failure: once
            rt.retrain(engine, model_name=MODEL, new_data=make_frame(20, seed=4), settings=settings,
                       reason="new_data", policy=FAST, source_hash="ab" * 32)
        assert len(_runs(engine)) == 3
        assert rt.promote(engine, model_name=MODEL, version=2, settings=settings).from_version == 1
        assert rt.rollback(engine, model_name=MODEL, to_version=1, settings=settings).from_version == 2
        assert registry.aliases(engine, name=MODEL) == {"champion": 1, "previous": 2}
        assert [r.kind for r in rt.list_runs(engine, model_name=MODEL)][:2] == ["rollback", "promote"]
    finally:
        engine.dispose()


def test_rollback_refuses_a_damaged_version(engine, settings) -> None:
    train_champion(engine, settings, make_frame(150, seed=1))
    second = train_champion(engine, settings, make_frame(150, seed=2))
    first = registry.get_version(engine, name=MODEL, version=1)
    path = settings.models_dir / first.artifact_file
    path.chmod(0o644)
    path.write_bytes(b"not the model")
    with pytest.raises(BadInput, match="hash"):
        rt.rollback(engine, model_name=MODEL, to_version=1, settings=settings)
    assert registry.aliases(engine, name=MODEL)["champion"] == second.version


def test_stale_running_runs_are_marked_failed(engine) -> None:
    from datetime import timedelta

    from core.store.models import utcnow

    with session_scope(engine) as session:
        session.add(RetrainRun(model_name=MODEL, trigger="cli", started_at=utcnow() - timedelta(hours=7)))
        session.add(RetrainRun(model_name=MODEL, trigger="cli"))
    assert rt.mark_stale_runs(engine, older_than_s=6 * 3600) == 1
    old, new = _runs(engine)
    assert (old.status, old.decision, new.status) == ("FAILED", "failed", "RUNNING")
    assert "interrupted" in old.message


def test_changes_made_elsewhere_join_the_history(engine) -> None:
    change = rt.record_change(engine, model_name=MODEL, kind="promote", from_version=1, to_version=2,
                              note="A/B test on deployment 3")
    assert change.message == "Promoted to version 2."
    run = rt.list_runs(engine, model_name=MODEL)[0]
    assert (run.kind, run.decision, run.trigger, run.champion_version, run.challenger_version, run.note) == (
        "promote", "promoted", "button", 1, 2, "A/B test on deployment 3")
    with pytest.raises(BadInput, match="promote or a rollback"):
        rt.record_change(engine, model_name=MODEL, kind="retrain", from_version=1, to_version=2)


def test_submit_retrain_runs_in_its_own_process_and_records_the_run(engine, settings) -> None:
    import time

    train_champion(engine, settings, make_frame(150, seed=1))
    with pytest.raises(BadInput, match="reason"):
        rt.submit_retrain(model_name=MODEL, new_data=None, settings=settings, reason="whim")
    job = rt.submit_retrain(model_name=MODEL, new_data=make_frame(150, seed=2), settings=settings, reason="button",
                            policy=PromotionPolicy(n_bootstrap=200, margin=0.5), max_trials=1,
                            window=make_frame(100, seed=9))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = [r for r in rt.list_runs(engine, model_name=MODEL) if r.pid == job.pid]
        if runs and runs[0].status != "RUNNING":
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the retrain process did not finish: {(job.folder / 'log.txt').read_text()[-2000:]}")
    run = runs[0]
    assert (run.status, run.trigger, run.new_rows, run.window_rows) == ("DONE", "button", 150, 100), run.message
    assert run.decision == "kept_as_challenger"  # a margin of 0.5 AUC is out of reach
    printed = json.loads((job.folder / "log.txt").read_text()[(job.folder / "log.txt").read_text().index("{"):])
    assert printed["run_id"] == run.id and printed["decision"] == run.decision
