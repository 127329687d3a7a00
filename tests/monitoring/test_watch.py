"""The watched folder: complete new files retrain once per content; partial and hidden files never."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from sqlmodel import select

from core import registry
from core.errors import BadInput
from core.monitoring.policy import PromotionPolicy
from core.monitoring.watch import SeenStore, is_candidate, scan_watched_folder
from core.store.db import session_scope
from core.store.models import RetrainRun
from tests.monitoring.test_retrain import MODEL, make_frame, train_champion

POLICY = PromotionPolicy(n_bootstrap=200)


def _age(path, seconds: float = 60) -> None:
    """Make a file look untouched for ``seconds`` (as a finished copy would)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def _runs(engine) -> list[RetrainRun]:
    with session_scope(engine) as session:
        return list(session.exec(select(RetrainRun).order_by(RetrainRun.id)))


@pytest.mark.parametrize("name, expected", [
    ("march.csv", True), ("march.PARQUET", True), ("march.csv.part", False), ("march.part.csv", False),
    (".march.csv", False), ("~march.csv", False), ("march.csv.tmp", False), ("march.tmp.parquet", False),
    ("march.crdownload", False), ("march.txt", False), ("march.xlsx", False),
])
def test_only_finished_csv_and_parquet_names_are_candidates(name, expected) -> None:
    assert is_candidate(name) is expected


def test_each_complete_new_file_retrains_exactly_once(engine, settings, tmp_path) -> None:
    train_champion(engine, settings, make_frame(200, seed=1))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_frame(150, seed=2).to_csv(inbox / "week1.csv", index=False)
    _age(inbox / "week1.csv")
    make_frame(150, seed=3).to_csv(inbox / "week2.csv.part", index=False)  # still uploading
    _age(inbox / "week2.csv.part")
    make_frame(150, seed=4).to_csv(inbox / ".week3.csv", index=False)  # hidden temporary name
    _age(inbox / ".week3.csv")
    make_frame(150, seed=5).to_parquet(inbox / "week4.parquet", index=False)  # just written
    (inbox / "notes.txt").write_text("not data")
    os.symlink(inbox / "week1.csv", inbox / "link.csv")
    store = SeenStore(tmp_path / "seen.json")
    scan = lambda: scan_watched_folder(engine, inbox, model_name=MODEL, settings=settings, seen_store=store,  # noqa: E731
                                       policy=POLICY, max_trials=1, settle_s=10)

    first = {r.file: r for r in scan()}
    assert set(first) == {"week1.csv", "week4.parquet"}
    assert first["week1.csv"].status == "retrained" and first["week4.parquet"].status == "waiting"
    runs = _runs(engine)
    assert len(runs) == 1 and runs[0].trigger == "new_data" and runs[0].source_hash == first["week1.csv"].sha256
    assert runs[0].note == "watched file week1.csv" and runs[0].new_rows == 150
    assert runs[0].decision == first["week1.csv"].decision

    # Nothing changed: nothing happens; the finished upload is renamed into place and the parquet
    # file has settled: each retrains once.
    assert [(r.file, r.status) for r in scan()] == [("week4.parquet", "waiting")]
    (inbox / "week2.csv.part").rename(inbox / "week2.csv")
    _age(inbox / "week4.parquet")
    second = {r.file: r.status for r in scan()}
    assert second == {"week2.csv": "retrained", "week4.parquet": "retrained"}
    assert len(_runs(engine)) == 3

    # The same content under another name, or a lost state file, never retrains again.
    shutil.copy(inbox / "week1.csv", inbox / "week1-copy.csv")
    _age(inbox / "week1-copy.csv")
    assert [(r.file, r.status) for r in scan()] == [("week1-copy.csv", "already_seen")]
    fresh = scan_watched_folder(engine, inbox, model_name=MODEL, settings=settings,
                                seen_store=SeenStore(tmp_path / "other.json"), policy=POLICY, max_trials=1,
                                settle_s=10)
    assert {r.status for r in fresh} == {"already_seen"} and len(fresh) == 4
    assert len(_runs(engine)) == 3
    assert len(registry.list_versions(engine, name=MODEL)) == 4  # version 1 and one per new file


def test_a_file_that_changes_or_cannot_be_used_is_reported_not_retried(engine, settings, tmp_path) -> None:
    train_champion(engine, settings, make_frame(200, seed=1))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_frame(100, seed=2).drop(columns=["churned"]).to_csv(inbox / "unlabelled.csv", index=False)
    _age(inbox / "unlabelled.csv")
    (inbox / "broken.csv").write_bytes(b"\x00\x01\x02 not a table")
    _age(inbox / "broken.csv")
    store = SeenStore(tmp_path / "seen.json")
    results = {r.file: r for r in scan_watched_folder(engine, inbox, model_name=MODEL, settings=settings,
                                                       seen_store=store, policy=POLICY, max_trials=1, settle_s=10)}
    assert {f: r.status for f, r in results.items()} == {"unlabelled.csv": "failed", "broken.csv": "failed"}
    assert "'churned'" in results["unlabelled.csv"].message
    runs = _runs(engine)
    assert len(runs) == 1 and runs[0].decision == "failed"  # the refused retrain is on record
    assert scan_watched_folder(engine, inbox, model_name=MODEL, settings=settings, seen_store=store,
                               policy=POLICY, max_trials=1, settle_s=10) == []
    assert len(_runs(engine)) == 1
    with pytest.raises(BadInput, match="does not exist"):
        scan_watched_folder(engine, tmp_path / "nowhere", model_name=MODEL, settings=settings)
