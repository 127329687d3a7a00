"""Benchmark: data drift of 1,000,000 current rows x 20 columns against a 100,000-row reference.

Contenders, each in a fresh process of the app's Python (so its peak memory is its own), on the
same generated frames (seeded; 12 numeric and 8 categorical columns, 4 of them shifted, one
moved by a tiny but statistically detectable amount):

1. ``floor``     - the least any drift check has to touch: one ``np.sort`` of every numeric column
   (reference and current) and one count of every categorical column.
2. ``shipml``    - ``core.monitoring.drift.detect_drift(reference, current)``.
3. ``evidently`` - ``Report([DataDriftPreset()]).run(current, reference)`` and ``snapshot.dict()``,
   Evidently 0.7 called directly with its defaults.

Then, in one more process, a **shared sample** (5,000 rows of each frame, seeded) goes through
both ``detect_drift`` and Evidently, and their per-column verdicts are compared; so are the
verdicts of the two full runs.

Time is the drift work inside each process (frame generation excluded). Memory: the process's
peak resident set over its life (``VmHWM``: interpreter, imports and frames included); "work
peak", the highest resident set while the contender ran (``VmHWM`` reset through
``/proc/self/clear_refs`` once the frames are built; the frames still count); and "frames", the
resident set just before the work started.

Run from the repository root::

    python -m bench.drift                      # ours and the floor 3 times, Evidently once
    python -m bench.drift --repeat 1 --skip-evidently
    python -m bench.drift --current-rows 100000 --reference-rows 10000   # a quick look

Prints a Markdown table, the verdict comparison and the raw results as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIFTED = ("num_shifted", "num_scaled", "cat_shifted", "yes_no_shifted")


# --- data --------------------------------------------------------------------------------------


def make_frame(n: int, *, seed: int, current: bool):
    """20 columns; the current frame moves the SHIFTED columns and ``num_tiny`` (by 0.02 std)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    s = 1.0 if current else 0.0

    def labels(values, p=None, *, dtype="object"):
        values = np.asarray(values, dtype=object)
        codes = rng.choice(len(values), n, p=p)
        if dtype == "category":
            return pd.Categorical.from_codes(codes, categories=list(values))
        return values[codes]  # one shared str object per label, as a CSV reader would not, but cheap

    zips = [f"{10000 + i}" for i in range(1000)]
    p20 = np.linspace(1, 2, 20)
    p20 = p20 / p20.sum()
    p20_shifted = p20[::-1]
    with_missing = rng.lognormal(3, 1, n)
    with_missing[rng.random(n) < 0.05] = np.nan
    region = labels([f"r{i}" for i in range(50)], dtype="category")
    region[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame({
        "num_normal": rng.normal(0, 1, n),
        "num_shifted": rng.normal(0.3 * s, 1, n),
        "num_lognormal": rng.lognormal(0, 0.8, n),
        "num_missing": with_missing,
        "num_scaled": rng.exponential(1 + 0.3 * s, n),
        "num_uniform": rng.uniform(0, 100, n),
        "num_count": rng.poisson(30, n),
        "num_heavy": rng.standard_t(4, n),
        "num_three_values": rng.integers(0, 3, n).astype(float),
        "num_binary_int": (rng.random(n) < 0.3).astype(np.int64),
        "num_tiny": rng.normal(0.02 * s, 1, n),
        "num_float32": rng.gamma(2, 2, n).astype(np.float32),
        "cat_small": labels(["a", "b", "c"], [0.5, 0.3, 0.2]),
        "cat_shifted": labels([f"k{i}" for i in range(20)], p20_shifted if current else p20),
        "cat_category": labels(["red", "green", "blue", "grey", "black"], dtype="category"),
        "cat_region": region,
        "cat_bool": rng.random(n) < 0.4,
        "cat_zip": labels(zips),
        "yes_no_shifted": labels(["yes", "no"], [0.5 + 0.25 * s, 0.5 - 0.25 * s]),
        "cat_eight": labels([f"t{i}" for i in range(8)], dtype="category"),
    })


# --- workers (each in its own process) ---------------------------------------------------------


def _status(field: str) -> int:
    """A ``/proc/self/status`` field in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return -1


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)
        return True
    except OSError:
        return False


def work_floor(reference, current) -> dict:
    import numpy as np
    import pandas as pd

    for frame in (reference, current):
        for name in frame.columns:
            col = frame[name]
            if pd.api.types.is_float_dtype(col.dtype) or (pd.api.types.is_integer_dtype(col.dtype)
                                                         and not pd.api.types.is_bool_dtype(col.dtype)):
                np.sort(col.to_numpy())
            elif isinstance(col.dtype, pd.CategoricalDtype):
                np.bincount(col.cat.codes.to_numpy() + 1)
            else:
                col.value_counts()
    return {}


def _our_verdicts(result) -> dict:
    out = {c.column: {"method": c.method, "score": c.score, "drifted": c.drifted} for c in result.columns}
    return out | {s.column: {"skipped": s.reason} for s in result.skipped}


def work_shipml(reference, current) -> dict:
    from core.monitoring.drift import detect_drift

    result = detect_drift(reference, current)
    return {"verdicts": _our_verdicts(result), "share": result.share_drifted,
            "skipped": [s.column for s in result.skipped]}


def _evidently_verdicts(reference, current) -> dict:
    from core.monitoring.report import evidently_drift

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # evidently_drift = Report([DataDriftPreset()], include_tests=True).run(current, reference)
        # and snapshot.dict(), read into per-column verdicts
        result = evidently_drift(reference, current)
    return {"verdicts": {k: {"method": v.method, "score": v.score, "drifted": v.drifted}
                         for k, v in result.columns.items()}, "share": result.share_drifted}


def work_evidently(reference, current) -> dict:
    import evidently

    return _evidently_verdicts(reference, current) | {"version": evidently.__version__}


def work_agreement(reference, current, *, sample_rows: int, seed: int) -> dict:
    from core.monitoring.drift import detect_drift

    out = {}
    for rows in (sample_rows, 1000):
        ref, cur = reference.sample(n=rows, random_state=seed), current.sample(n=rows, random_state=seed + 1)
        ours = _our_verdicts(detect_drift(ref, cur))
        theirs = _evidently_verdicts(ref, cur)["verdicts"]
        out[str(rows)] = {"ours": ours, "evidently": theirs}
    return out


WORKERS = {"floor": work_floor, "shipml": work_shipml, "evidently": work_evidently}


def run_worker_here(name: str, args) -> dict:
    """In the child: build the frames, reset the peak, time the work, report one JSON line."""
    import numpy as np  # noqa: F401  (imports before the clock and the peak reset)
    import pandas as pd  # noqa: F401

    if name in ("shipml", "agreement"):
        import core.monitoring.drift  # noqa: F401
    if name in ("evidently", "agreement"):
        import evidently.presets  # noqa: F401
    start = time.perf_counter()
    reference = make_frame(args.reference_rows, seed=args.seed, current=False)
    current = make_frame(args.current_rows, seed=args.seed + 1, current=True)
    generate_s = time.perf_counter() - start
    rss_data, data_peak = _status("VmRSS"), _status("VmHWM")
    reset = _reset_peak()
    start = time.perf_counter()
    if name == "agreement":
        extra = work_agreement(reference, current, sample_rows=args.sample_rows, seed=args.seed)
    else:
        extra = WORKERS[name](reference, current)
    seconds = time.perf_counter() - start
    work_peak = _status("VmHWM")
    # the reset also clears the kernel's ru_maxrss, so the life-long peak is the larger of the two
    return {"seconds": seconds, "generate_s": generate_s, "rss_after_data_mb": rss_data,
            "work_peak_mb": work_peak if reset else None, "peak_mb": max(data_peak, work_peak)} | extra


# --- driver ------------------------------------------------------------------------------------


def run_child(name: str, args) -> dict:
    command = [sys.executable, "-m", "bench.drift", "--worker", name, "--current-rows", str(args.current_rows),
               "--reference-rows", str(args.reference_rows), "--sample-rows", str(args.sample_rows),
               "--seed", str(args.seed)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPML_")} | {"OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - start
    if done.returncode:
        return {"error": f"exit {done.returncode}: {done.stderr[-1500:]}", "wall_s": wall}
    return json.loads(done.stdout.strip().splitlines()[-1]) | {"wall_s": wall}


def compare(ours: dict, theirs: dict) -> dict:
    columns = sorted(set(ours) | set(theirs))
    rows = []
    for c in columns:
        o, t = ours.get(c), theirs.get(c)
        if o and "skipped" in o:  # a column we leave out (free text, dates): not a verdict to compare
            rows.append({"column": c, "ours": o, "evidently": t, "same": None})
            continue
        rows.append({"column": c, "ours": o, "evidently": t,
                     "same": bool(o and t and o["drifted"] == t["drifted"] and o["method"] == t["method"])})
    compared = [r for r in rows if r["same"] is not None]
    return {"rows": rows, "agree": sum(r["same"] for r in compared), "columns": len(compared),
            "skipped": len(rows) - len(compared)}


def verdict_table(title: str, cmp: dict) -> str:
    skipped = f"; {cmp['skipped']} left out by ShipML (see the row)" if cmp.get("skipped") else ""
    lines = [f"**{title}**: {cmp['agree']} of {cmp['columns']} compared columns agree (method and verdict){skipped}", "",
             "| column | method | ours: score, drifted | Evidently: score, drifted | same |", "|---|---|---|---|---|"]
    for r in cmp["rows"]:
        o, t = r["ours"] or {}, r["evidently"] or {}
        fmt = lambda v: f"{v['score']:.4g}, {'yes' if v['drifted'] else 'no'}" if v else "–"  # noqa: E731
        ours = f"skipped: {o['skipped']}" if "skipped" in o else fmt(o)
        same = "n/a" if r["same"] is None else ("yes" if r["same"] else "**no**")
        lines.append(f"| {r['column']} | {o.get('method') or t.get('method')} | {ours} | {fmt(t)} | {same} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--current-rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--sample-rows", type=int, default=5000, help="rows of each side in the shared sample")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours and the floor (Evidently runs once)")
    parser.add_argument("--skip-evidently", action="store_true", help="leave out the direct Evidently run")
    parser.add_argument("--json-out", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", choices=[*WORKERS, "agreement"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_worker_here(args.worker, args), default=float))
        return

    print(f"{date.today()} current {args.current_rows:,} x 20, reference {args.reference_rows:,} x 20, "
          f"seed {args.seed}, cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"floor": [], "shipml": [], "evidently": []}
    for i in range(args.repeat):  # in turns, so a busy moment of the shared machine hits each
        for name in ("floor", "shipml"):
            runs[name].append(run_child(name, args))
            print(f"{name} run {i + 1}: {runs[name][-1].get('seconds', runs[name][-1].get('error'))}", file=sys.stderr)
        if i == 0 and not args.skip_evidently:
            runs["evidently"].append(run_child("evidently", args))
            print(f"evidently: {runs['evidently'][-1].get('seconds', runs['evidently'][-1].get('error'))}",
                  file=sys.stderr)
    agreement = run_child("agreement", args)
    load_after = os.getloadavg()[0]

    def median(name: str, key: str):
        values = [r[key] for r in runs[name] if key in r and r[key] is not None]
        return statistics.median(values) if values else None

    labels = {"floor": "NumPy floor: sort every numeric column, count every categorical one",
              "shipml": "ShipML `detect_drift`", "evidently": "Evidently `DataDriftPreset` (direct)"}
    floor_s = median("floor", "seconds")
    lines = ["| contender | seconds (median) | x floor | peak memory (MB) | work peak (MB) | frames (MB) | runs (s) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for name, label in labels.items():
        if not runs[name] or "seconds" not in runs[name][0]:
            continue
        sec = median(name, "seconds")
        lines.append(f"| {label} | {sec:.2f} | {sec / floor_s:.1f} | {median(name, 'peak_mb'):,.0f} | "
                     f"{median(name, 'work_peak_mb'):,.0f} | {median(name, 'rss_after_data_mb'):,.0f} | "
                     + ", ".join(f"{r['seconds']:.2f}" for r in runs[name] if "seconds" in r) + " |")
    print("\n".join(lines))
    ours_s = median("shipml", "seconds")
    if runs["evidently"] and "seconds" in runs["evidently"][0]:
        ev = runs["evidently"][0]
        print(f"\nEvidently / ShipML: {ev['seconds'] / ours_s:.1f}x the time, "
              f"{ev['peak_mb'] / median('shipml', 'peak_mb'):.1f}x the peak memory")
    comparisons = {}
    if "error" not in agreement:
        for rows, pair in agreement.items():
            if isinstance(pair, dict) and "ours" in pair:
                comparisons[f"sample {rows}"] = compare(pair["ours"], pair["evidently"])
    if runs["evidently"] and "verdicts" in runs["evidently"][0] and "verdicts" in runs["shipml"][0]:
        comparisons["full"] = compare(runs["shipml"][0]["verdicts"], runs["evidently"][0]["verdicts"])
    titles = {f"sample {args.sample_rows}": f"Shared sample, {args.sample_rows:,} rows of each frame",
              "sample 1000": "Shared sample, 1,000 rows of each frame (p-value tests)",
              "full": f"Full frames ({args.current_rows:,} vs {args.reference_rows:,} rows)"}
    for key, cmp in comparisons.items():
        print()
        print(verdict_table(titles[key], cmp))
    if runs["shipml"] and "verdicts" in runs["shipml"][0]:
        drifted = sorted(k for k, v in runs["shipml"][0]["verdicts"].items() if v.get("drifted"))
        print(f"\nShipML drifted columns on the full frames: {', '.join(drifted)} (shifted on purpose: "
              f"{', '.join(SHIFTED)}; num_tiny moved by 0.02 std)")
    print(f"\nload {load_before:.1f} -> {load_after:.1f}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    raw = json.dumps({"date": str(date.today()), "commit": head.stdout.strip(), "args": vars(args) | {"json_out": None},
                      "runs": runs, "agreement": comparisons, "load": [load_before, load_after]}, default=str)
    if args.json_out:
        args.json_out.write_text(raw)
    print(raw)


if __name__ == "__main__":
    main()
