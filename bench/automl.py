"""Benchmark: ShipML's AutoML (`python -m core train --budget B`) against FLAML and default LightGBM.

For each dataset the rows are split once, 80/20 with a fixed seed (stratified for
classification); every contender trains on the same 80 % and is scored on the same 20 %, which
none of them sees while training:

1. ``shipml``   - ``python -m core train --data train.csv --target T --budget B --metric M --out DIR``
   in a fresh process (its own temporary ``SHIPML_WORKSPACE``), then ``python -m core predict``
   on the test rows without the target. Wall time is the whole ``train`` command (start-up,
   import, tuning, evaluation, final fit and registration), reported against the budget.
2. ``flaml``    - ``flaml.AutoML().fit(X, y, task=..., time_budget=B, metric=M, seed=...)`` with its
   defaults otherwise, in a fresh process from its own virtualenv (``.venv-bench``, see the
   Makefile: FLAML pins xgboost < 3 and brings its own numpy/scipy).
3. ``lightgbm`` - ``LGBMClassifier()`` / ``LGBMRegressor()`` with default parameters, text columns
   as pandas ``category`` (categories learned on the training rows), in a fresh process of the
   app's Python.

Every contender runs with ``OMP_NUM_THREADS=1`` and one job (ShipML's trials are single-threaded
by design; FLAML gets ``n_jobs=1``, LightGBM ``n_jobs=1``), so all three get the same share of a
small, shared machine; ``--peer-jobs -1`` gives FLAML and LightGBM all cores instead.

The metric M is the one scored: ROC AUC (binary, positive class = the second of the sorted
classes, as ``core.modeling.metrics`` does it), accuracy (multiclass) and R² (regression).
ShipML and FLAML are both told to optimise it (ShipML's own multiclass default would be
balanced accuracy). All predictions are scored here, by one function.

Run from the repository root with the app's Python::

    python -m bench.automl                                  # budget 60 s, all five datasets
    python -m bench.automl --quick                          # budget 15 s, two datasets
    python -m bench.automl --budget 30 --datasets penguins,concrete
    python -m bench.automl --peer-python ''                 # skip FLAML
    python -m bench.automl --over-seeds s42.json s1.json    # several seeds' --json-out, read together

Prints a Markdown table, a detail table (families, trials, times) and the raw results as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from core.wording import STOP_REASONS

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "data" / "samples"
DEFAULT_PEER_PYTHON = ".venv-bench/bin/python"  # made by `make bench`
METRIC_LABELS = {"roc_auc": "ROC AUC", "accuracy": "accuracy", "r2": "R²"}


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    target: str
    task: str  # binary | multiclass | regression

    @property
    def metric(self) -> str:
        return {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}[self.task]


DATASETS = {
    d.name: d
    for d in (
        Dataset("mlc_churn", "mlc_churn.csv", "churn", "binary"),
        Dataset("lending_club", "lending_club.csv", "Class", "binary"),
        Dataset("penguins", "penguins.csv", "species", "multiclass"),
        Dataset("concrete", "concrete.csv", "compressive_strength", "regression"),
        Dataset("deliveries", "deliveries.csv", "time_to_delivery", "regression"),
        # Not in the default run (the five): two lopsided binary tables, by --datasets.
        Dataset("taxi", "taxi.csv", "tip", "binary"),
        Dataset("default", "default.csv", "default", "binary"),
    )
}
STANDARD = ("mlc_churn", "lending_club", "penguins", "concrete", "deliveries")
QUICK = ("penguins", "concrete")


# --- data and scoring --------------------------------------------------------------------------


def split(dataset: Dataset, folder: Path, seed: int) -> dict:
    """Write train.csv, test.csv (with the target) and test_X.csv (without) into ``folder``."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    if folder.exists():
        shutil.rmtree(folder)  # a kept folder from an earlier run: start clean
    frame = pd.read_csv(SAMPLES / dataset.file)
    frame = frame[frame[dataset.target].notna()]  # no contender can learn from or score a missing target
    stratify = None if dataset.task == "regression" else frame[dataset.target]
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    test.drop(columns=[dataset.target]).to_csv(folder / "test_X.csv", index=False)
    return {"rows": len(frame), "train_rows": len(train), "test_rows": len(test), "columns": frame.shape[1] - 1}


def _truth_and_preds(dataset: Dataset, folder: Path, predictions: Path):
    """The test targets and what ``predictions`` says, as the arrays the metric takes.

    ``predictions`` is a CSV with ``prediction`` and, for classifiers, ``proba_<class>``; for
    ROC AUC the positive class is the second of the sorted training classes.
    """
    import numpy as np
    import pandas as pd

    y_true = pd.read_csv(folder / "test.csv")[dataset.target]
    pred = pd.read_csv(predictions)
    if len(pred) != len(y_true):
        raise RuntimeError(f"{predictions}: {len(pred)} predictions for {len(y_true)} test rows")
    if dataset.task == "regression":
        return y_true.to_numpy(float), pred["prediction"].to_numpy(float)
    if dataset.task == "multiclass":
        return y_true.astype(str).to_numpy(), pred["prediction"].astype(str).to_numpy()
    classes = sorted(pd.read_csv(folder / "train.csv")[dataset.target].astype(str).unique())
    positive = classes[1]
    column = f"proba_{positive}"
    if column not in pred.columns:
        raise RuntimeError(f"{predictions}: no column {column!r} (has {list(pred.columns)})")
    return np.asarray(y_true.astype(str) == positive), pred[column].to_numpy(float)


def _metric(task: str, y, p) -> float:
    from sklearn import metrics

    if task == "regression":
        return float(metrics.r2_score(y, p))
    if task == "multiclass":
        return float(metrics.accuracy_score(y, p))
    return float(metrics.roc_auc_score(y, p))


def score(dataset: Dataset, folder: Path, predictions: Path) -> float:
    """The test score of a predictions CSV."""
    return _metric(dataset.task, *_truth_and_preds(dataset, folder, predictions))


def paired_bootstrap(dataset: Dataset, folder: Path, ours: Path, theirs: Path, *, n: int = 1000,
                     seed: int = 0) -> tuple[float, float]:
    """A 95 % interval of score(ours) - score(theirs) over test rows resampled with replacement."""
    import numpy as np

    y, p_ours = _truth_and_preds(dataset, folder, ours)
    _, p_theirs = _truth_and_preds(dataset, folder, theirs)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if dataset.task == "binary" and (y[idx].all() or not y[idx].any()):
            continue  # AUC needs both classes
        diffs.append(_metric(dataset.task, y[idx], p_ours[idx]) - _metric(dataset.task, y[idx], p_theirs[idx]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


# --- workers (run in a child process, from the app's or the peer's Python) ---------------------


def _load_xy(dataset: Dataset, folder: Path):
    import pandas as pd

    train = pd.read_csv(folder / "train.csv")
    return train.drop(columns=[dataset.target]), train[dataset.target], pd.read_csv(folder / "test_X.csv")


def _write_predictions(model, X_test, path: Path) -> None:
    import pandas as pd

    out = pd.DataFrame({"prediction": model.predict(X_test)})
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        proba = model.predict_proba(X_test)
        for i, cls in enumerate(model.classes_):
            out[f"proba_{cls}"] = proba[:, i]
    out.to_csv(path, index=False)


def work_flaml(dataset: Dataset, folder: Path, budget: float, seed: int, jobs: int) -> dict:
    from flaml import AutoML, __version__

    X, y, X_test = _load_xy(dataset, folder)
    automl = AutoML()
    start = time.perf_counter()
    automl.fit(X, y, task="regression" if dataset.task == "regression" else "classification",
               metric=dataset.metric, time_budget=budget, seed=seed, n_jobs=jobs, verbose=0)
    fit_s = time.perf_counter() - start
    _write_predictions(automl, X_test, folder / "pred_flaml.csv")
    return {
        "fit_s": fit_s,
        "version": __version__,
        "best": automl.best_estimator,
        # trials per learner (a private attribute: FLAML has no public trial count)
        "per_learner": {k: int(v) for k, v in getattr(automl, "_iter_per_learner", {}).items()},
        "improvements": len(automl.config_history),
        "best_cv": 1 - automl.best_loss,  # FLAML minimises 1 - score for roc_auc, accuracy and r2
        "best_config": automl.best_config,
        "eval_method": getattr(automl._state, "eval_method", None),
        # (learner, seconds since the search started) of each new best model
        "history": [(v[0], round(float(v[2]), 1)) for v in automl.config_history.values()],
    }


def work_lightgbm(dataset: Dataset, folder: Path, budget: float, seed: int, jobs: int) -> dict:
    import lightgbm
    import pandas as pd

    X, y, X_test = _load_xy(dataset, folder)
    for column in X.columns:
        if not (pd.api.types.is_numeric_dtype(X[column]) or pd.api.types.is_bool_dtype(X[column])):
            categories = pd.Categorical(X[column]).categories
            X[column] = pd.Categorical(X[column], categories=categories)
            X_test[column] = pd.Categorical(X_test[column], categories=categories)  # unseen -> missing
    cls = lightgbm.LGBMRegressor if dataset.task == "regression" else lightgbm.LGBMClassifier
    model = cls(n_jobs=jobs, verbose=-1)  # defaults otherwise; n_jobs/verbose do not change the model
    start = time.perf_counter()
    model.fit(X, y)
    fit_s = time.perf_counter() - start
    _write_predictions(model, X_test, folder / "pred_lightgbm.csv")
    return {"fit_s": fit_s, "version": lightgbm.__version__}


WORKERS = {"flaml": work_flaml, "lightgbm": work_lightgbm}


# --- contenders (run from the driver) ----------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPML_")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONHASHSEED"] = "0"
    return env


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str], env: dict[str, str], timeout: float) -> tuple[subprocess.CompletedProcess, float, float, list]:
    """Run a command, timing it; stderr lines are stamped with the seconds since the start."""
    cpu0, start = _cpu_children(), time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stamped: list[tuple[float, str]] = []
    stdout: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stamped.append((time.perf_counter() - start, line.rstrip("\n")))

    def read_stdout() -> None:
        assert proc.stdout is not None
        stdout.append(proc.stdout.read())

    readers = [threading.Thread(target=read_stderr, daemon=True), threading.Thread(target=read_stdout, daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    wall = time.perf_counter() - start
    for reader in readers:
        reader.join(10)
    stderr = "\n".join(line for _, line in stamped)
    done = subprocess.CompletedProcess(command, proc.returncode, "".join(stdout), stderr)
    return done, wall, _cpu_children() - cpu0, stamped


# "stopped early (time limit, 2 folds)" since session 20, "pruned" before.
TRIAL_LINE = re.compile(r"^trial\s+(\d+)\s+(\S+)\s+(complete|pruned|stopped early|failed)(?: \([^)]*\))?(?:\s+(-?[\d.]+)$)?")


def run_shipml(dataset: Dataset, folder: Path, budget: float, seed: int, python: str) -> dict:
    workspace = Path(tempfile.mkdtemp(prefix="ws-", dir=folder))
    env = _child_env() | {"SHIPML_WORKSPACE": str(workspace), "SHIPML_RANDOM_SEED": str(seed)}
    model_dir = folder / "shipml-model"
    train = [python, "-m", "core", "train", "--data", str(folder / "train.csv"), "--target", dataset.target,
             "--budget", str(budget), "--metric", dataset.metric, "--out", str(model_dir)]
    done, wall, cpu, stamped = _run(train, env, timeout=budget * 10 + 300)
    if done.returncode:
        return {"error": f"train exited {done.returncode}: {done.stderr[-2000:]}", "wall_s": wall}
    trials = []
    for at, line in stamped:
        if m := TRIAL_LINE.match(line):
            trials.append({"n": int(m[1]), "model": m[2], "state": "pruned" if m[3] == "stopped early" else m[3],
                           "score": float(m[4]) if m[4] else None, "at_s": round(at, 1)})
    best = re.search(r"best model: (\S+) \(([\d,]+) trials?; ([^)]+)\)", done.stdout)
    cv = re.search(r"^(.+?): (-?[\d.,]+) ± ([\d.,]+) \(baseline", done.stdout, re.M)  # 1,234.5 over 1,000
    holdout = re.search(r"^holdout .+?: (-?[\d.,]+|nan)", done.stdout, re.M)
    predict = [python, "-m", "core", "predict", "--model", str(model_dir), "--data", str(folder / "test_X.csv"),
               "--out", str(folder / "pred_shipml.csv")]
    pdone, _, _, _ = _run(predict, env, timeout=600)
    if pdone.returncode:
        return {"error": f"predict exited {pdone.returncode}: {pdone.stderr[-2000:]}", "wall_s": wall}
    families: dict[str, dict[str, int]] = {}
    for t in trials:
        fam = families.setdefault(t["model"], {"complete": 0, "pruned": 0, "failed": 0})
        fam[t["state"]] += 1
    return {
        "score": score(dataset, folder, folder / "pred_shipml.csv"),
        "wall_s": wall,
        "cpu_s": cpu,
        "overshoot": wall / budget,
        "last_trial_at_s": trials[-1]["at_s"] if trials else None,
        "best": best[1] if best else None,
        "trials": int(best[2].replace(",", "")) if best else len(trials),
        "stopped": {words: key for key, words in STOP_REASONS.items()}.get(best[3]) if best else None,
        "cv": float(cv[2].replace(",", "")) if cv else None,
        "holdout": float(holdout[1].replace(",", "")) if holdout else None,
        "families": families,
        "trial_log": trials,
        "warnings": [line for _, line in stamped if line.startswith("warning:")],
    }


def run_worker(name: str, dataset: Dataset, folder: Path, budget: float, seed: int, python: str, jobs: int) -> dict:
    command = [python, "-m", "bench.automl", "--worker", name, "--folder", str(folder), "--datasets", dataset.name,
               "--budget", str(budget), "--seed", str(seed), "--peer-jobs", str(jobs)]
    done, wall, cpu, _ = _run(command, _child_env(), timeout=budget * 10 + 300)
    if done.returncode:
        return {"error": f"{name} exited {done.returncode}: {done.stderr[-2000:]}", "wall_s": wall}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result |= {"wall_s": wall, "cpu_s": cpu, "score": score(dataset, folder, folder / f"pred_{name}.csv")}
    return result


# --- report ------------------------------------------------------------------------------------


def _fmt(result: dict | None) -> str:
    if not result:
        return "–"
    if "error" in result:
        return "error"
    return f"{result['score']:.4f}"


def winner(results: dict[str, dict]) -> str:
    labels = {"shipml": "ShipML", "flaml": "FLAML", "lightgbm": "LightGBM"}
    scored = {k: round(v["score"], 4) for k, v in results.items() if v and "score" in v}
    if not scored:
        return "–"
    top = max(scored.values())
    return " = ".join(labels[k] for k, v in scored.items() if v == top)


def _vs(row: dict) -> str:
    vs = row.get("vs_best_peer")
    if not vs:
        return "–"
    low, high = vs["ci95"]
    return f"{vs['diff']:+.4f} [{low:+.4f}, {high:+.4f}]"


def table(rows: list[dict], budget: float) -> str:
    lines = [
        f"| dataset | task | metric | ShipML | FLAML | LightGBM default | ShipML wall / budget ({budget:g} s) | winner "
        "| ShipML − best peer [95% CI] |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        d, r = DATASETS[row["dataset"]], row["results"]
        ship = r.get("shipml") or {}
        ratio = f"{ship['wall_s']:.0f} s = {ship['wall_s'] / budget:.2f}x" if "wall_s" in ship else "–"
        lines.append(f"| {d.name} | {d.task} | {METRIC_LABELS[d.metric]} | {_fmt(r.get('shipml'))} | "
                     f"{_fmt(r.get('flaml'))} | {_fmt(r.get('lightgbm'))} | {ratio} | {winner(r)} | {_vs(row)} |")
    return "\n".join(lines)


def detail_table(rows: list[dict]) -> str:
    lines = [
        "| dataset | rows (train/test) | ShipML best (CV, holdout) | ShipML trials: complete/pruned/failed per family | "
        "last trial ended at | ShipML CPU / wall | FLAML best (trials per learner) | FLAML wall | load before → after |",
        "|---|---|---|---|---:|---:|---|---:|---|",
    ]
    for row in rows:
        r = row["results"]
        ship, fl = r.get("shipml") or {}, r.get("flaml") or {}
        if "error" in ship or not ship:
            ship_best = fams = last = cpu = "–"
        else:
            ship_best = f"{ship['best']} ({ship['cv']:.4f}, {ship['holdout']:.4f})" if ship.get("cv") is not None \
                else str(ship["best"])
            fams = "; ".join(f"{k} {v['complete']}/{v['pruned']}/{v['failed']}" for k, v in ship["families"].items())
            fams = f"{ship['trials']}: {fams} (stopped: {ship['stopped']})"
            last = f"{ship['last_trial_at_s']:.0f} s" if ship.get("last_trial_at_s") is not None else "–"
            cpu = f"{ship['cpu_s'] / ship['wall_s']:.2f}"
        if "best" in fl:
            per = fl.get("per_learner") or {}
            fl_best = f"{fl['best']} ({sum(per.values())} trials: " + ", ".join(f"{k} {v}" for k, v in per.items()
                                                                              if v) + ")"
        else:
            fl_best = "–"
        fl_wall = f"{fl['wall_s']:.0f} s" if "wall_s" in fl and "error" not in fl else "–"
        load = f"{row['load_before']:.1f} → {row['load_after']:.1f}"
        lines.append(f"| {row['dataset']} | {row['split']['train_rows']}/{row['split']['test_rows']} | {ship_best} | "
                     f"{fams} | {last} | {cpu} | {fl_best} | {fl_wall} | {load} |")
    return "\n".join(lines)


def seeds_table(runs: list[dict]) -> str:
    """The target read over several split seeds: per dataset, ShipML's lead over the better peer
    on each seed, each contender's mean test score over the seeds, and ShipML's lead on the means.

    ``runs`` are the raw results (``--json-out``) of runs on different seeds; where two hold the
    same dataset and seed, the later one counts (a rerun of some tables after a change). A
    contender with a missing or failed score on some seed gets no mean.
    """
    labels = {"shipml": "ShipML", "flaml": "FLAML", "lightgbm": "LightGBM default"}
    seeds = list(dict.fromkeys(run["seed"] for run in runs))
    by_dataset: dict[str, dict[int, dict]] = {}
    for run in runs:
        for row in run["rows"]:
            by_dataset.setdefault(row["dataset"], {})[run["seed"]] = row
    lines = [
        "| dataset | " + " | ".join(f"seed {s}: ShipML − best peer" for s in seeds) + " | "
        + " | ".join(f"mean {label}" for label in labels.values()) + " | ShipML − best peer, on the means |",
        "|---|" + "---:|" * (len(seeds) + len(labels) + 1),
    ]
    for name, rows in by_dataset.items():
        leads = [f"{rows[s]['vs_best_peer']['diff']:+.4f}" if "vs_best_peer" in rows.get(s, {}) else "–"
                 for s in seeds]
        means = {}
        for key in labels:
            scores = [rows[s]["results"].get(key, {}).get("score") if s in rows else None for s in seeds]
            if all(score is not None for score in scores):
                means[key] = statistics.fmean(scores)
        peers = [v for k, v in means.items() if k != "shipml"]
        # Rounded before it is signed: equal means summed in another order differ by ~1e-17, not "-0.0000".
        lead = f"{round(means['shipml'] - max(peers), 4) + 0.0:+.4f}" if "shipml" in means and peers else "–"
        cells = [f"{means[k]:.4f}" if k in means else "–" for k in labels]
        lines.append(f"| {name} | " + " | ".join(leads + cells + [lead]) + " |")
    return "\n".join(lines)


def code_state() -> dict:
    """The commit, and a hash of the files the result depends on (they may be uncommitted)."""
    import hashlib

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    files = ["core/modeling/tuning.py", "core/modeling/specs.py", "core/training.py"]
    return {"head": head.stdout.strip()} | {
        f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:12] for f in files if (ROOT / f).exists()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for ShipML and FLAML (default 60)")
    parser.add_argument("--datasets", help=f"comma-separated, from: {', '.join(DATASETS)} "
                                           f"(default: {', '.join(STANDARD)})")
    parser.add_argument("--quick", action="store_true", help=f"budget 15 s on {' and '.join(QUICK)}")
    parser.add_argument("--seed", type=int, default=42, help="split seed, also given to ShipML and FLAML")
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="Python with FLAML; '' skips it")
    parser.add_argument("--peer-jobs", type=int, default=1, help="n_jobs for FLAML and LightGBM (default 1)")
    parser.add_argument("--json-out", type=Path, help="also write the raw results here")
    parser.add_argument("--keep", type=Path, help="keep splits, models and predictions in this folder")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--over-seeds", type=Path, nargs="+", metavar="JSON",
                        help="run nothing: read --json-out files of runs on different seeds and print the "
                             "target read over them (mean scores, ShipML's lead per seed)")
    args = parser.parse_args()

    if args.over_seeds:
        print(seeds_table([json.loads(path.read_text()) for path in args.over_seeds]))
        return

    if args.worker:  # child process: train, write predictions, report one JSON line
        dataset = DATASETS[args.datasets]
        result = WORKERS[args.worker](dataset, args.folder, args.budget, args.seed, args.peer_jobs)
        print(json.dumps(result, default=str))
        return

    budget = 15.0 if args.quick else args.budget
    names = list(QUICK) if args.quick else [n.strip() for n in (args.datasets or ",".join(STANDARD)).split(",")]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; use: {', '.join(DATASETS)}")
    peer = args.peer_python if args.peer_python and Path(args.peer_python).exists() else ""
    if args.peer_python and not peer:
        print(f"note: no FLAML Python at {args.peer_python} (run `make .venv-bench/.installed`); FLAML skipped",
              file=sys.stderr)
    print(f"{date.today()} budget {budget:g} s, seed {args.seed}, datasets {', '.join(names)}, "
          f"peer jobs {args.peer_jobs}, cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shipml-automl-") as tmp:
        tmp = str(args.keep.resolve()) if args.keep else tmp
        for name in names:
            dataset = DATASETS[name]
            folder = Path(tmp) / name
            row = {"dataset": name, "split": split(dataset, folder, args.seed), "load_before": os.getloadavg()[0]}
            row["code"] = code_state()  # core may be edited between datasets; record what this one ran
            results: dict[str, dict] = {}
            results["shipml"] = run_shipml(dataset, folder, budget, args.seed, sys.executable)
            if peer:
                results["flaml"] = run_worker("flaml", dataset, folder, budget, args.seed, peer, args.peer_jobs)
            results["lightgbm"] = run_worker("lightgbm", dataset, folder, budget, args.seed, sys.executable,
                                             args.peer_jobs)
            row["results"], row["load_after"] = results, os.getloadavg()[0]
            peers = {k: v for k, v in results.items() if k != "shipml" and "score" in v}
            if "score" in results["shipml"] and peers:
                best = max(peers, key=lambda k: peers[k]["score"])
                row["vs_best_peer"] = {
                    "peer": best, "diff": results["shipml"]["score"] - peers[best]["score"],
                    "ci95": paired_bootstrap(dataset, folder, folder / "pred_shipml.csv", folder / f"pred_{best}.csv"),
                }
            rows.append(row)
            summary = ", ".join(f"{k} {_fmt(v)}" + (f" ({v['error'][:300]})" if "error" in v else "")
                                for k, v in results.items())
            print(f"{name}: {summary}; ShipML wall {results['shipml'].get('wall_s', float('nan')):.0f} s; "
                  f"load {row['load_before']:.1f} -> {row['load_after']:.1f}", file=sys.stderr)
    print(table(rows, budget))
    print()
    print(detail_table(rows))
    ratios = [r["results"]["shipml"]["wall_s"] / budget for r in rows if "score" in r["results"]["shipml"]]
    if ratios:
        print(f"\nShipML wall / budget: median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")
    raw = json.dumps({"date": str(date.today()), "budget": budget, "seed": args.seed, "code": code_state(),
                      "rows": rows}, default=str)
    if args.json_out:
        args.json_out.write_text(raw)
    print(raw)


if __name__ == "__main__":
    main()
