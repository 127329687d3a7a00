"""Benchmark: load and profile a 1,000,000 x 20 mixed-type CSV.

Contenders, each in its own fresh Python process so timings and peak memory do not leak
into one another:

1. ``floor``  - bare ``pandas.read_csv``: the least any tool has to do.
2. ``shipml`` - ``core.data.ingest.read_path`` + ``profile_table`` + ``detect_issues``.
3. ``peer``   - ydata-profiling in minimal mode (``ProfileReport(minimal=True)``, computing
   its description, without rendering HTML), run from its own virtualenv because it pins
   numpy/scipy versions the app does not use.

Run from the repository root::

    python -m bench.profile                      # generate the CSV in a temp dir, run all 3 times
    python -m bench.profile --csv /tmp/x.csv     # reuse (or create) a CSV at that path
    python -m bench.profile --peer-python ''     # skip the peer
    python -m bench.profile --repeat 1 --rows 100000   # a quick look

Prints a Markdown table: wall time of the work inside the process (imports excluded),
and the process's peak resident memory (VmHWM, imports and interpreter included).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PEER_PYTHON = ".venv-bench/bin/python"  # made by `make bench`
TARGET = "churned"


# --- data --------------------------------------------------------------------------------------


def make_csv(path: Path, rows: int, seed: int = 42) -> None:
    """Write a mixed table: numbers (skewed, with gaps), categories, booleans, dates as text,
    free text, money as text and a binary target, with some missing values."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def with_gaps(values: np.ndarray, share: float) -> np.ndarray:
        values = values.astype(object if values.dtype.kind in "OU" else float)
        values[rng.random(rows) < share] = None if values.dtype == object else np.nan
        return values

    words = np.array(
        "late early delivered broken refund great poor service quick slow box item price support "
        "order customer happy again never always".split()
    )
    text = pd.Series(words[rng.integers(0, len(words), rows)])
    for _ in range(5):
        text = text + " " + words[rng.integers(0, len(words), rows)]
    seconds = rng.integers(0, 86_400 * 365, rows).astype("timedelta64[s]")
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "income": with_gaps(rng.lognormal(10, 1, rows), 0.05),
            "score": rng.normal(0, 1, rows),
            "ratio": rng.uniform(0, 1, rows),
            "visits": rng.poisson(3, rows),
            "balance": with_gaps(rng.normal(1000, 300, rows), 0.02),
            "temperature": rng.normal(20, 5, rows).round(1),
            "plan": rng.choice(["basic", "plus", "pro", "team", "enterprise"], rows),
            "region": with_gaps(rng.choice([f"region_{i}" for i in range(50)], rows), 0.03),
            "city": rng.choice([f"city_{i}" for i in range(2000)], rows),
            "channel": rng.choice(["web", "app", "phone"], rows, p=[0.6, 0.3, 0.1]),
            "active": rng.random(rows) < 0.7,
            "newsletter": rng.choice(["yes", "no"], rows),
            "signup_date": (np.datetime64("2020-01-01") + rng.integers(0, 1500, rows)).astype(str),
            "last_seen": (np.datetime64("2024-01-01T00:00:00") + seconds).astype(str),
            "comment": with_gaps(text.to_numpy(), 0.1),
            "title": text.str.slice(0, 20).to_numpy(),
            "spend": [f"${v:,.2f}" for v in rng.lognormal(5, 1, rows)],
            TARGET: rng.random(rows) < 0.2,
        }
    )
    frame.to_csv(path, index=False)


# --- workers (run in a child process) ----------------------------------------------------------


def work_floor(csv: Path) -> dict:
    import pandas as pd

    start = time.perf_counter()
    frame = pd.read_csv(csv)
    return {"seconds": time.perf_counter() - start, "shape": list(frame.shape)}


def work_shipml(csv: Path) -> dict:
    from core.config import Settings
    from core.data.ingest import read_path
    from core.data.issues import detect_issues
    from core.data.profile import profile_table

    settings = Settings(workspace=Path(tempfile.mkdtemp()), max_upload_mb=1024)  # the file is > 200 MB
    start = time.perf_counter()
    frame = read_path(csv, settings=settings).frame
    loaded = time.perf_counter()
    profile = profile_table(frame, target=TARGET)
    profiled = time.perf_counter()
    issues = detect_issues(frame, profile, target=TARGET)
    done = time.perf_counter()
    return {
        "seconds": done - start,
        "parts": {"load": loaded - start, "profile": profiled - loaded, "issues": done - profiled},
        "shape": list(frame.shape),
        "issues": len(issues),
    }


def work_peer(csv: Path) -> dict:
    import pandas as pd
    from ydata_profiling import ProfileReport

    start = time.perf_counter()
    frame = pd.read_csv(csv)
    loaded = time.perf_counter()
    description = ProfileReport(frame, minimal=True, progress_bar=False).get_description()
    done = time.perf_counter()
    return {
        "seconds": done - start,
        "parts": {"load": loaded - start, "profile": done - loaded},
        "shape": list(frame.shape),
        "alerts": len(description.alerts),
    }


WORKERS = {"floor": work_floor, "shipml": work_shipml, "peer": work_peer}


def peak_memory_mb() -> float:
    """This process's peak resident memory.

    /proc's VmHWM starts afresh at exec; ru_maxrss would carry over the parent's peak at fork.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- driver ------------------------------------------------------------------------------------


def run_once(contender: str, csv: Path, python: str) -> dict:
    """Run one contender in a fresh process; its last stdout line is a JSON report."""
    command = [python, "-m", "bench.profile", "--worker", contender, "--csv", str(csv)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{contender} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all(contenders: dict[str, str], csv: Path, repeat: int) -> dict[str, dict]:
    """Run every contender ``repeat`` times, taking turns so that a busy spell of the
    machine hits all of them alike.

    Returns:
        Per contender: the median time (and median of each part) and the highest peak memory.
    """
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, python in contenders.items():
            runs[name].append(run_once(name, csv, python))
    summary = {}
    for name, results in runs.items():
        parts = results[0].get("parts", {})
        summary[name] = {
            "seconds": statistics.median(r["seconds"] for r in results),
            "parts": {k: statistics.median(r["parts"][k] for r in results) for k in parts},
            "peak_mb": max(r["peak_mb"] for r in results),
            "runs": [round(r["seconds"], 2) for r in results],
        }
    return summary


def table(results: dict[str, dict]) -> str:
    floor = results["floor"]["seconds"]
    labels = {
        "floor": "bare `pandas.read_csv` (floor)",
        "shipml": "ShipML: `read_path` + `profile_table` + `detect_issues`",
        "peer": "ydata-profiling 4 minimal: `read_csv` + `get_description()`",
    }
    lines = [
        "| contender | seconds (median) | x bare read | peak memory (MB) | breakdown (s) | runs (s) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, result in results.items():
        parts = ", ".join(f"{k} {v:.1f}" for k, v in result.get("parts", {}).items())
        lines.append(
            f"| {labels[name]} | {result['seconds']:.1f} | {result['seconds'] / floor:.2f} | "
            f"{result['peak_mb']:,.0f} | {parts} | {', '.join(map(str, result['runs']))} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--csv", type=Path, help="CSV to use; generated there if missing")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender; the median time is shown")
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="Python with ydata-profiling; '' skips it")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # child process: do the work, report one JSON line
        result = WORKERS[args.worker](args.csv)
        result["peak_mb"] = peak_memory_mb()
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="shipml-bench-") as tmp:
        csv = args.csv or Path(tmp) / "mixed.csv"
        if not csv.exists():
            start = time.perf_counter()
            make_csv(csv, args.rows)
            print(f"generated {csv} ({csv.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - start:.0f} s")
        contenders = {"floor": sys.executable, "shipml": sys.executable}
        if args.peer_python and Path(args.peer_python).exists():
            contenders["peer"] = args.peer_python
        results = run_all(contenders, csv, args.repeat)
        print(table(results))
        print(json.dumps(results))


if __name__ == "__main__":
    main()
