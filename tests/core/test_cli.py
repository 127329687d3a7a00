"""`python -m core`, run as a user would: a real subprocess, exit codes and output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from core.cli import _print_trial
from core.modeling.tuning import TrialRecord
from core.prep.recipe import recipe_to_json
from core.prep.steps import DropDuplicates, FixType, Impute, Recipe

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, workspace: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIPML_WORKSPACE": str(workspace)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_profile_json_lists_columns_and_issues(tmp_path, sample_path) -> None:
    out = run("profile", "--data", str(sample_path("penguins.csv")), "--target", "species", "--json", workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["profile"]["rows"] == 344 and report["profile"]["task"] == "multiclass"
    names = [c["name"] for c in report["profile"]["column_profiles"]]
    assert names[:2] == ["species", "island"]
    assert any(i["code"] == "missing_values" for i in report["issues"])


def test_profile_text(tmp_path, sample_path) -> None:
    out = run("profile", "--data", str(sample_path("concrete.csv")), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1030 rows x 9 columns")


def test_bad_input_exits_2_with_one_line(tmp_path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    out = run("profile", "--data", str(empty), workspace=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "empty" in out.stderr and "Traceback" not in out.stderr
    out = run("profile", "--data", str(tmp_path / "missing.csv"), workspace=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    out = run("profile", "--data", str(ROOT / "data/samples/penguins.csv"), "--target", "nope", workspace=tmp_path)
    assert out.returncode == 2 and "nope" in out.stderr


def test_clean_applies_a_recipe(tmp_path) -> None:
    raw = tmp_path / "raw.csv"
    pd.DataFrame({"price": ["$1,200", "$5", None, "$5"], "n": [1, 2, 3, 2]}).to_csv(raw, index=False)
    recipe = Recipe(steps=(
        DropDuplicates(),
        FixType(column="price", to="number"),
        Impute(columns=["price"], strategy="median"),
    ))
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(recipe_to_json(recipe))
    out_file = tmp_path / "clean.csv"
    out = run("clean", "--data", str(raw), "--recipe", str(recipe_file), "--out", str(out_file), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    cleaned = pd.read_csv(out_file)
    assert cleaned["price"].tolist() == [1200.0, 5.0, 602.5]
    assert not list(tmp_path.glob(".*.tmp"))


def test_clean_with_a_broken_recipe_exits_2(tmp_path, sample_path) -> None:
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text('{"steps": [{"kind": "explode"}]}')
    out = run("clean", "--data", str(sample_path("penguins.csv")), "--recipe", str(recipe_file),
              "--out", str(tmp_path / "o.csv"), workspace=tmp_path)
    assert out.returncode == 2 and not (tmp_path / "o.csv").exists()


def test_clean_into_a_missing_folder_exits_2_with_one_line(tmp_path, sample_path) -> None:
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(recipe_to_json(Recipe()))
    out = run("clean", "--data", str(sample_path("penguins.csv")), "--recipe", str(recipe_file),
              "--out", str(tmp_path / "gone" / "o.csv"), workspace=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr == f"error: could not write {tmp_path / 'gone' / 'o.csv'}: No such file or directory\n"


def test_import_stores_once(tmp_path, sample_path) -> None:
    first = run("import", "--data", str(sample_path("penguins.csv")), "--project", "birds", workspace=tmp_path)
    second = run("import", "--data", str(sample_path("penguins.csv")), "--project", "birds", workspace=tmp_path)
    assert first.returncode == 0 and "stored in project 'birds'" in first.stdout
    assert "already stored" in second.stdout
    assert len(list((tmp_path / "datasets").glob("*.parquet"))) == 1


def _limit_file_size() -> None:
    # A real write failure without a full disk: files may not grow past 400 kB, and the
    # kernel's SIGXFSZ is ignored so the write fails with EFBIG instead of killing the process.
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))


def test_a_failed_write_stores_nothing(tmp_path) -> None:
    import numpy as np

    big = tmp_path / "big.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.random((40_000, 5)), columns=list("abcde")).to_csv(big, index=False)
    env = {**os.environ, "SHIPML_WORKSPACE": str(tmp_path / "ws")}
    out = subprocess.run([sys.executable, "-m", "core", "import", "--data", str(big)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: could not write the dataset: File too large")
    assert list((tmp_path / "ws" / "datasets").iterdir()) == []
    from core.store import crud
    from core.store.db import make_engine, session_scope

    engine = make_engine(f"sqlite:///{tmp_path / 'ws' / 'shipml.db'}")
    with session_scope(engine) as session:
        assert crud.list_projects(session) == []
    engine.dispose()


def test_clean_that_cannot_write_its_output_keeps_the_earlier_one(tmp_path) -> None:
    import numpy as np

    raw = tmp_path / "raw.csv"
    pd.DataFrame(np.random.default_rng(0).random((40_000, 5)), columns=list("abcde")).to_csv(raw, index=False)
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(recipe_to_json(Recipe()))
    out_file = tmp_path / "clean.csv"
    out_file.write_text("earlier\n")
    env = {**os.environ, "SHIPML_WORKSPACE": str(tmp_path / "ws")}
    out = subprocess.run([sys.executable, "-m", "core", "clean", "--data", str(raw), "--recipe", str(recipe_file),
                          "--out", str(out_file)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         preexec_fn=_limit_file_size)
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"error: could not write {out_file}: File too large\n"
    assert out_file.read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.csv", "raw.csv", "recipe.json"]


def test_a_trial_line_says_why_a_trial_stopped_early(capsys) -> None:
    """Its score covers only the folds it ran, so it may read above the best complete trial."""
    def line(**fields) -> str:
        _print_trial(TrialRecord(number=16, model="random_forest", params={}, score_std=None, fold_scores=(),
                                 duration_s=1.0, **fields))
        return capsys.readouterr().err.strip()

    assert line(score=0.6499, state="pruned", stop="time limit", folds=2) == (
        "trial  16 random_forest            stopped early (time limit, 2 folds) 0.6499")
    assert line(score=0.61, state="pruned", stop="median pruner", folds=1).endswith("(median pruner, 1 fold) 0.6100")
    assert line(score=0.65, state="complete", folds=5).endswith("random_forest            complete 0.6500")
    assert line(score=None, state="failed", error="boom").endswith("failed: boom")
