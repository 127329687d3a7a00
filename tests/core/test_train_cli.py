"""`python -m core train` and `predict`, as a user runs them."""
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
pytestmark = pytest.mark.xdist_group("train-cli")


def run(*args: str, workspace: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIPML_WORKSPACE": str(workspace)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_train_then_predict(tmp_path, sample_path) -> None:
    data = sample_path("penguins.csv")
    out = run("train", "--data", str(data), "--target", "species", "--budget", "15", "--per-model", "8",
              "--models", "logistic_regression,lightgbm", "--out", str(tmp_path / "model"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "registered penguins version 1" in out.stdout
    assert {"model.joblib", "model.json", "MODEL_CARD.md"} <= {p.name for p in (tmp_path / "model").iterdir()}
    # The holdout was scored, then the shipped model (and its drift reference) learned from every row.
    info = json.loads((tmp_path / "model" / "model.json").read_text())
    # Each species' scores, as the card lists them.
    per_class = [line for line in out.stdout.splitlines() if line.startswith("class ")]
    assert len(per_class) == 3 and all(" rows, precision " in line and ", recall " in line for line in per_class)
    assert {r["class"] for r in info["metrics"]["per_class"]} == {"Adelie", "Chinstrap", "Gentoo"}
    assert "## Per class (out-of-fold)" in (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert info["cv"]["holdout_share"] == 0.2 and "all rows" in info["cv"]["final_fit"]
    # A small table: tuned with 10 folds, reported with the 5 asked for.
    assert (info["cv"]["tuning_n_folds"], info["cv"]["n_folds"]) == (10, 5)
    assert info["cv"]["tuning"]["per_model_s"] == 8.0
    labelled = pd.read_csv(data).dropna(subset=["species"])
    assert len(pd.read_parquet(tmp_path / "model" / "reference.parquet")) == len(labelled)
    test = pd.read_csv(data).drop(columns=["species"]).head(30)
    test.to_csv(tmp_path / "test.csv", index=False)
    out = run("predict", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "test.csv"),
              "--out", str(tmp_path / "preds.csv"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert list(preds.columns) == ["prediction", "proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]
    assert len(preds) == 30 and preds.filter(like="proba_").sum(axis=1).round(6).eq(1).all()
    assert "would refuse" not in out.stderr and "against the file's" not in out.stdout  # no target in it
    # The training file itself holds the target: scored against it, and said to flatter the model.
    out = run("predict", "--model", str(tmp_path / "model"), "--data", str(data), "--out", str(tmp_path / "own.csv"),
              workspace=tmp_path)
    own = pd.read_csv(tmp_path / "own.csv")
    accuracy = (own["prediction"] == pd.read_csv(data)["species"]).mean()
    assert f"against the file's 'species' ({len(labelled)} rows with a value): Accuracy {accuracy:.4f}" in out.stdout
    assert "the data the model was trained on" in out.stderr
    # An island the model never saw: scored (as any unknown value), with the note that the service would refuse it.
    test.assign(island=["Atlantis"] + list(test["island"][1:])).to_csv(tmp_path / "odd.csv", index=False)
    out = run("predict", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "odd.csv"),
              "--out", str(tmp_path / "p1.csv"), workspace=tmp_path)
    assert out.returncode == 0 and len(pd.read_csv(tmp_path / "p1.csv")) == 30
    assert ("note: the prediction service would refuse 'island': expected one of the 3 known categories, got "
            "unknown category (row 1 of the file)") in out.stderr
    test.drop(columns=["island"]).to_csv(tmp_path / "broken.csv", index=False)
    out = run("predict", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "broken.csv"),
              "--out", str(tmp_path / "p2.csv"), workspace=tmp_path)
    assert out.returncode == 2 and "'island'" in out.stderr and not (tmp_path / "p2.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "0"], "budget"),
        (["--per-model", "-5"], "time per model"),
        (["--models", "telepathy"], "telepathy"),
        (["--metric", "r2"], "r2"),
        (["--task", "regression"], "text"),
        (["--log-target"], "log of the target applies to a regression"),
    ],
)
def test_bad_requests_fail_before_training(tmp_path, sample_path, args, message) -> None:
    out = run("train", "--data", str(sample_path("penguins.csv")), "--target", "species", *args,
              "--out", str(tmp_path / "m"), workspace=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert "trial" not in out.stderr  # nothing was trained
    assert not (tmp_path / "m").exists()


def test_one_class_target_and_tiny_classes_are_refused(tmp_path) -> None:
    one = tmp_path / "one.csv"
    pd.DataFrame({"x": range(50), "y": ["a"] * 50}).to_csv(one, index=False)
    out = run("train", "--data", str(one), "--target", "y", "--out", str(tmp_path / "m"), workspace=tmp_path)
    assert out.returncode == 2 and "only one value" in out.stderr
    tiny = tmp_path / "tiny.csv"
    pd.DataFrame({"x": range(50), "y": ["a"] * 25 + ["b"] * 22 + ["c"] * 3}).to_csv(tiny, index=False)
    out = run("train", "--data", str(tiny), "--target", "y", "--out", str(tmp_path / "m"), workspace=tmp_path)
    assert out.returncode == 2 and "'c'" in out.stderr


def test_no_usable_feature_is_refused(tmp_path) -> None:
    ids = tmp_path / "ids.csv"
    pd.DataFrame({"customer_id": range(200), "y": [0, 1] * 100}).to_csv(ids, index=False)
    out = run("train", "--data", str(ids), "--target", "y", "--out", str(tmp_path / "m"), workspace=tmp_path)
    assert out.returncode == 2 and "feature" in out.stderr, out.stderr
    constant = tmp_path / "constant.csv"
    pd.DataFrame({"x": [1.5] * 200, "region": "north", "y": [0, 1] * 100}).to_csv(constant, index=False)
    out = run("train", "--data", str(constant), "--target", "y", "--out", str(tmp_path / "m"), workspace=tmp_path)
    assert out.returncode == 2 and "every feature column holds the same value" in out.stderr, out.stderr
    assert "trial" not in out.stderr and not (tmp_path / "m").exists()


def _predict_defaults(tmp_path: Path, sample_path) -> pd.DataFrame:
    """`core predict` with the model in tmp_path/model on 500 rows of the credit-default sample."""
    pd.read_csv(sample_path("default.csv")).drop(columns=["default"]).head(500).to_csv(tmp_path / "test.csv", index=False)
    out = run("predict", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "test.csv"),
              "--out", str(tmp_path / "preds.csv"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    return pd.read_csv(tmp_path / "preds.csv")


def test_binary_predictions_use_the_tuned_threshold(tmp_path, sample_path) -> None:
    out = run("train", "--data", str(sample_path("default.csv")), "--target", "default", "--trials", "2",
              "--models", "logistic_regression", "--out", str(tmp_path / "model"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    threshold = meta["metrics"]["decision_threshold"]
    assert 0 < threshold < 1 and meta["cv"]["decision_threshold_maximises"] == "balanced_accuracy"
    assert meta["metrics"]["positive_class"] == "Yes"  # the rarer class, by default
    assert f"at the decision threshold {threshold:.3g}" in out.stdout
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert f"at the decision threshold {threshold:.3g} on the probability of 'Yes' that the model predicts with" in card
    assert "maximises balanced accuracy" in card
    preds = _predict_defaults(tmp_path, sample_path)
    expected = (preds["proba_Yes"] >= threshold).map({True: "Yes", False: "No"})
    assert (preds["prediction"] == expected).all()


def test_the_positive_class_can_be_chosen(tmp_path, sample_path) -> None:
    common = ("train", "--data", str(sample_path("default.csv")), "--target", "default", "--trials", "2",
              "--models", "logistic_regression", "--metric", "f1")
    out = run(*common, "--positive-class", "No", "--out", str(tmp_path / "model"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    threshold = meta["metrics"]["decision_threshold"]
    assert meta["metrics"]["positive_class"] == "No" and meta["cv"]["tuning"]["positive_class"] == "No"
    assert meta["metrics"]["recall"]["mean"] > 0.9  # of 'No', 97 % of the rows
    preds = _predict_defaults(tmp_path, sample_path)
    assert (preds["prediction"] == np.where(preds["proba_No"] >= threshold, "No", "Yes")).all()
    # A class the target lacks, or a positive class for a task that has none: refused before training.
    out = run(*common, "--positive-class", "Maybe", "--out", str(tmp_path / "bad"), workspace=tmp_path)
    assert out.returncode == 2 and "'Maybe' is not a class of the target; its classes are 'No', 'Yes'" in out.stderr
    out = run("train", "--data", str(sample_path("penguins.csv")), "--target", "species", "--trials", "1",
              "--positive-class", "Adelie", "--out", str(tmp_path / "penguins"), workspace=tmp_path)
    assert out.returncode == 2 and "a positive class applies to a binary target" in out.stderr, out.stderr
    assert not (tmp_path / "bad").exists() and not (tmp_path / "penguins").exists()


def test_rows_ordered_by_a_date_are_split_by_time_unless_cv_says_otherwise(tmp_path, sample_path) -> None:
    common = ("train", "--data", str(sample_path("chicago.csv")), "--target", "ridership", "--models", "ridge",
              "--trials", "2")
    out = run(*common, "--out", str(tmp_path / "by-time"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "ordered by 'date', so the folds split by time" in out.stderr
    cv = json.loads((tmp_path / "by-time" / "model.json").read_text())["cv"]
    assert (cv["kind"], cv["time_column"]) == ("time", "date")
    # Shuffled folds are an explicit choice, and they come with the warning.
    out = run(*common, "--cv", "kfold", "--out", str(tmp_path / "shuffled"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "split by time" not in out.stderr and "look time-ordered by 'date'" in out.stderr
    assert json.loads((tmp_path / "shuffled" / "model.json").read_text())["cv"]["kind"] == "kfold"


def test_dates_stored_as_text_get_a_note_with_the_step_that_converts_them(tmp_path, sample_path) -> None:
    from core.registry import load_exported

    common = ("train", "--data", str(sample_path("chicago.csv")), "--target", "ridership", "--models", "ridge",
              "--trials", "1")
    out = run(*common, "--out", str(tmp_path / "as-text"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    note = next(line for line in out.stderr.splitlines() if line.startswith("note: 'date' holds dates stored as text"))
    step = json.loads(note[note.index("{"):])
    assert (step["kind"], step["column"], step["to"]) == ("fix_type", "date", "datetime")
    as_text, _ = load_exported(tmp_path / "as-text")
    assert "date" not in as_text.named_steps["features"].kinds_  # left out: a different value in every row
    # The step from the note, in a recipe file: the note is gone and the model uses the date's parts.
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"version": 1, "steps": [step]}))
    out = run(*common, "--recipe", str(recipe), "--out", str(tmp_path / "as-dates"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "holds dates stored as text" not in out.stderr
    as_dates, _ = load_exported(tmp_path / "as-dates")
    assert as_dates.named_steps["features"].kinds_["date"] == "datetime"
    # --fix-types does the same without a recipe file, and the version records the step.
    out = run(*common, "--fix-types", "--out", str(tmp_path / "fixed"), workspace=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "note: 'date' holds dates stored as text: converted" in out.stderr
    fixed, meta = load_exported(tmp_path / "fixed")
    assert fixed.named_steps["features"].kinds_["date"] == "datetime"
    assert [s["kind"] for s in meta["recipe"]["steps"]] == ["fix_type"]

