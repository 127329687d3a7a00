"""`python -m core drift`, run as a user would: a real subprocess, its output and exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, workspace: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIPML_WORKSPACE": str(workspace)}
    return subprocess.run([sys.executable, "-m", "core", "drift", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def tables(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    n = 4000
    reference = pd.DataFrame({"income": rng.normal(50, 10, n), "plan": rng.choice(["basic", "pro"], n),
                              "visits": rng.poisson(12, n)})
    current = reference.sample(frac=1.0, random_state=3).reset_index(drop=True)
    current["income"] = current["income"] + 6
    ref_path, cur_path = tmp_path / "ref.csv", tmp_path / "cur.parquet"
    reference.to_csv(ref_path, index=False)
    current.to_parquet(cur_path, index=False)
    return ref_path, cur_path


def test_text_output_lists_verdicts_and_share(tmp_path, tables) -> None:
    ref, cur = tables
    out = run("--reference", str(ref), "--current", str(cur), workspace=tmp_path / "ws")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "4000 current rows against 4000 reference rows"
    income = next(line for line in lines if line.startswith("income"))
    assert "Wasserstein distance (normed)" in income and income.split()[-1] == "yes"
    assert next(line for line in lines if line.startswith("plan")).split()[-1] == "no"
    assert lines[-1] == "drifted columns: 1 of 3 (share 0.33, threshold 0.5): no dataset drift"


def test_json_output(tmp_path, tables) -> None:
    ref, cur = tables
    out = run("--reference", str(ref), "--current", str(cur), "--json", workspace=tmp_path / "ws")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    verdicts = {c["column"]: c for c in report["columns"]}
    assert set(verdicts) == {"income", "plan", "visits"}
    assert verdicts["income"]["drifted"] is True and verdicts["income"]["threshold"] == 0.1
    assert verdicts["plan"]["method"] == "Jensen-Shannon distance" and verdicts["plan"]["score"] == 0.0
    assert report["share_drifted"] == pytest.approx(1 / 3) and report["dataset_drifted"] is False


def test_bad_input_exits_2_with_one_clear_line(tmp_path, tables) -> None:
    ref, cur = tables
    other = tmp_path / "other.csv"
    pd.DataFrame({"a": [1, 2], "b": [3, 4]}).to_csv(other, index=False)
    header_only = tmp_path / "empty.csv"
    header_only.write_text("income,plan,visits\n")
    cases = {
        "file not found: missing.csv": ("--reference", str(tmp_path / "missing.csv"), "--current", str(cur)),
        "share no column": ("--reference", str(ref), "--current", str(other)),
        "no rows": ("--reference", str(ref), "--current", str(header_only)),
    }
    for message, args in cases.items():
        out = run(*args, workspace=tmp_path / "ws")
        assert out.returncode == 2, (message, out.stderr)
        assert out.stdout == ""
        assert out.stderr.startswith("error: ") and message in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
        assert str(tmp_path) not in out.stderr  # no full paths echoed back
