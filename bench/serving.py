"""Benchmark: ShipML's prediction service against `mlflow models serve` and in-process prediction.

The model is a LightGBM Pipeline trained through ShipML (``python -m core train --models
lightgbm``) on ``data/samples/mlc_churn.csv`` (19 input columns, default recipe and plan).
Everything runs on 127.0.0.1 in one run, bounded in time:

1. ``floor``  - in-process, one row: the Pipeline's ``predict_proba`` and the fast path
   (``core.serving.fastpath``), on the load generator's core; and one 10,000-row batch: LightGBM's
   booster alone on the already-transformed rows (the model's own cost, a ceiling no server can
   beat on one core), the fast path, and the service's whole work without HTTP (JSON parsing,
   schema checks, prediction, response JSON).
2. ``shipml`` - ``python -m core.serving --model DIR`` (one uvicorn worker), with the prediction
   log on (the default) and off (``SHIPML_SERVE_LOG_PREDICTIONS=false``).
3. ``mlflow`` - the same Pipeline saved with ``mlflow.sklearn.save_model`` in the peer
   virtualenv (``.venv-bench``, see the Makefile) and served by ``mlflow models serve
   --env-manager local -w 1``; ShipML's ``core`` package is on its PYTHONPATH so the pickled
   Pipeline loads.

Each server is pinned to core 0 with ``taskset``; the load generator (this process) to core 1.
The load generator is a small asyncio HTTP/1.1 client over keep-alive connections (a client
library would be the bottleneck on one core): for each concurrency C (1, 8, 32), C connections
send single-row JSON requests back to back for ``--duration`` seconds; p50/p99 latency and
requests/s count only 200 answers (other statuses are reported). Then ``--batches`` requests of
10,000 rows each, one at a time (rows/s).

Run from the repository root with the app's Python::

    python -m bench.serving --peer-python .venv-bench/bin/python
    python -m bench.serving --duration 5 --peer-python ''      # quick, without MLflow

Prints Markdown tables and the raw results as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "samples" / "mlc_churn.csv"
SERVER_CORE, CLIENT_CORE = "0", 1
CONCURRENCY = (1, 8, 32)
BATCH_ROWS = 10_000

SAVE_MLFLOW = """
import sys, joblib, mlflow.sklearn
pipeline = joblib.load(sys.argv[1])
# Our own file: pickle it as scikit-learn models were always saved (skops would refuse ShipML types).
mlflow.sklearn.save_model(pipeline, sys.argv[2], serialization_format="cloudpickle")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


def train(work: Path) -> Path:
    """A LightGBM churn model trained and exported by ShipML's own CLI."""
    out = work / "model"
    cmd = [sys.executable, "-m", "core", "train", "--data", str(DATA), "--target", "churn",
           "--models", "lightgbm", "--trials", "1", "--budget", "120", "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env(SHIPML_WORKSPACE=str(work / "ws-train")),
                   stdout=subprocess.DEVNULL)
    return out


# --- load generator -------------------------------------------------------------------------


def _request(path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length is None:
        raise RuntimeError("response without Content-Length")
    await reader.readexactly(length)
    return status


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (field 3 on), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system, all threads) a server has used so far, its child processes
    included (``mlflow models serve`` answers from a uvicorn child of its CLI); None if unknown.

    On a shared machine a server pinned to one core gets only part of it; the requests or rows
    per CPU-second it spent say what it would do with the core to itself.
    """
    if pid is None or _stat(pid) is None:
        return None
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += parents.get(current, [])
        if (fields := _stat(current)) is not None:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _per_cpu_second(count: float, before: float | None, after: float | None) -> float | None:
    return count / (after - before) if before is not None and after is not None and after > before else None


async def _load(port: int, requests: list[bytes], concurrency: int, duration: float, pid: int | None = None) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + duration

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
        i = offset
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            status = await _exchange(reader, writer, requests[i % len(requests)])
            took = time.perf_counter() - start
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                latencies.append(took)
            i += 1
        writer.close()

    started, cpu_before = time.perf_counter(), _cpu_seconds(pid)
    await asyncio.gather(*(worker(k * 7) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    lat = np.asarray(latencies) * 1e3
    return {
        "concurrency": concurrency,
        "requests_per_s": len(latencies) / elapsed,
        "requests_per_cpu_s": _per_cpu_second(len(latencies), cpu_before, _cpu_seconds(pid)),
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "ok": len(latencies),
        "statuses": statuses,
    }


async def _batches(port: int, request: bytes, n: int, pid: int | None = None) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**28)
    times, statuses = [], []
    cpu_before = _cpu_seconds(pid)
    for _ in range(n):
        start = time.perf_counter()
        statuses.append(await _exchange(reader, writer, request))
        times.append(time.perf_counter() - start)
    cpu_after = _cpu_seconds(pid)
    writer.close()
    best = statistics.median(times)
    return {"rows": BATCH_ROWS, "median_s": best, "rows_per_s": BATCH_ROWS / best, "statuses": statuses,
            "rows_per_cpu_s": _per_cpu_second(BATCH_ROWS * n, cpu_before, cpu_after)}


# --- servers --------------------------------------------------------------------------------


class Server:
    """A server process pinned to SERVER_CORE, ready when ``probe`` answers 200."""

    def __init__(self, cmd: list[str], *, probe: str, env: dict[str, str], log: Path):
        self.port = int(cmd[cmd.index("--port") + 1])
        self.probe = probe
        self.log = log.open("wb")
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CORE, *cmd], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{self.probe}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server not ready in {timeout} s; see {self.log.name}")

    def wait_trees(self, timeout: float = 300.0) -> dict:
        """ShipML: wait until a LightGBM model's compiled trees are in use or have failed
        (the service answers on the booster meanwhile); returns ``/version``'s ``predictor``."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            predictor = httpx.get(f"http://127.0.0.1:{self.port}/version", timeout=5).json().get("predictor", {})
            if predictor.get("trees_state") != "compiling" or time.monotonic() > deadline:
                return predictor
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def shipml_server(model_dir: Path, work: Path, *, log_on: bool) -> Server:
    """``python -m core.serving`` on a free port with the prediction log on or off."""
    logging = "true" if log_on else "false"
    env = _env(SHIPML_WORKSPACE=str(work / f"ws-serve-{logging}"), SHIPML_SERVE_LOG_PREDICTIONS=logging)
    return Server([sys.executable, "-m", "core.serving", "--model", str(model_dir), "--host", "127.0.0.1",
                   "--port", str(_free_port())], probe="/health/ready", env=env, log=work / f"shipml-{logging}.log")


def log_cost(model_dir: Path, work: Path, single: list[bytes], batch: bytes, *, rounds: int, seconds: float,
             n_batches: int) -> dict:
    """The prediction log's cost: log-on and log-off servers both up, measured in turns.

    Each round runs, on each server in turn (the order alternates between rounds), single rows
    at concurrency 1 and 8 for ``seconds`` each and ``n_batches`` 10,000-row requests. The two
    servers thus share the same moments of a busy machine; the cost is 1 - on/off of the mean.
    """
    servers = {"on": shipml_server(model_dir, work, log_on=True), "off": shipml_server(model_dir, work, log_on=False)}
    runs: dict[str, dict[str, list]] = {mode: {"c1": [], "c8": [], "batch": []} for mode in servers}
    try:
        predictors = {}
        for mode, server in servers.items():
            server.wait_ready()
            predictors[mode] = server.wait_trees()
            asyncio.run(_load(server.port, single, 1, 1.0))  # warm-up
        for r in range(rounds):
            for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                port, pid = servers[mode].port, servers[mode].proc.pid
                runs[mode]["c1"].append(asyncio.run(_load(port, single, 1, seconds, pid)))
                runs[mode]["c8"].append(asyncio.run(_load(port, single, 8, seconds, pid)))
                runs[mode]["batch"].append(asyncio.run(_batches(port, batch, n_batches, pid)))
                time.sleep(0.5)  # the log-on writer finishes its last batch before the other's turn
    finally:
        for server in servers.values():
            server.stop()
    out: dict = {"rounds": rounds, "seconds": seconds, "batches": n_batches, "predictor": predictors, "cost": {}}
    for kind, field in [("c1", "requests_per_s"), ("c8", "requests_per_s"), ("batch", "rows_per_s")]:
        on = [run[field] for run in runs["on"][kind]]
        off = [run[field] for run in runs["off"][kind]]
        out["cost"][kind] = {"on_mean": statistics.mean(on), "off_mean": statistics.mean(off),
                             "on": on, "off": off, "cost": 1.0 - statistics.mean(on) / statistics.mean(off)}
        # The same per CPU-second of the server: what the log costs with the core to itself.
        cpu_field = field.replace("_per_s", "_per_cpu_s")
        per_cpu = {mode: [run[cpu_field] for run in runs[mode][kind] if run.get(cpu_field)] for mode in runs}
        if per_cpu["on"] and per_cpu["off"]:
            out["cost"][kind].update({"on_per_cpu_s": statistics.mean(per_cpu["on"]),
                                      "off_per_cpu_s": statistics.mean(per_cpu["off"]),
                                      "cpu_cost": 1.0 - statistics.mean(per_cpu["on"]) / statistics.mean(per_cpu["off"])})
        if kind != "batch":
            for mode in ("on", "off"):
                out["cost"][kind][f"{mode}_p50_ms"] = [run["p50_ms"] for run in runs[mode][kind]]
                out["cost"][kind][f"{mode}_p99_ms"] = [run["p99_ms"] for run in runs[mode][kind]]
    return out


def _log_cost_table(result: dict) -> str:
    lines = ["| load | log on (mean) | log off (mean) | cost | on, per round | off, per round | "
             "on / off per server CPU-second | cost per CPU-second |",
             "|---|---:|---:|---:|---|---|---:|---:|"]
    names = {"c1": "single rows, concurrency 1 (requests/s)", "c8": "single rows, concurrency 8 (requests/s)",
             "batch": "10,000-row batches (rows/s)"}
    for kind, row in result["cost"].items():
        cpu = (f"{row['on_per_cpu_s']:,.0f} / {row['off_per_cpu_s']:,.0f} | {row['cpu_cost']:+.1%}"
               if "cpu_cost" in row else "- | -")
        lines.append(f"| {names[kind]} | {row['on_mean']:,.0f} | {row['off_mean']:,.0f} | {row['cost']:+.1%} | "
                     f"{', '.join(f'{v:,.0f}' for v in row['on'])} | {', '.join(f'{v:,.0f}' for v in row['off'])} | "
                     f"{cpu} |")
    for kind in ("c1", "c8"):
        row = result["cost"][kind]
        lines.append("")
        lines.append(f"{names[kind]}: p50 ms on {_span(row['on_p50_ms'])}, off {_span(row['off_p50_ms'])}; "
                     f"p99 ms on {_span(row['on_p99_ms'])}, off {_span(row['off_p99_ms'])}")
    return "\n".join(lines)


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def _run_against(server: Server, single: list[bytes], batch: bytes | None, duration: float, n_batches: int) -> dict:
    server.wait_ready()
    predictor = server.wait_trees() if server.probe == "/health/ready" else None
    # Warm-up: first requests pay for imports and caches.
    asyncio.run(_load(server.port, single, 1, 1.0))
    pid = server.proc.pid
    result = {"single": [asyncio.run(_load(server.port, single, c, duration, pid)) for c in CONCURRENCY]}
    if predictor is not None:
        result["predictor"] = predictor
    if batch is not None and n_batches:
        result["batch"] = asyncio.run(_batches(server.port, batch, n_batches, pid))
    return result


# --- floor ----------------------------------------------------------------------------------


def batch_floor(model_dir: Path, big: list[dict], work: Path, repeats: int = 5) -> dict:
    """In-process, one 10,000-row batch: the booster alone, the compiled trees alone, the fast
    path (on the booster, then on compiled trees), the service's work."""
    from core.config import Settings
    from core.serving.app import _Job, _prediction_body
    from core.serving.model import load_model
    from core.serving.routing import Routing

    settings = Settings()
    model = load_model(model_dir, extra_columns="reject", unseen_categories="reject",
                       fast_max_rows=settings.serve_fastpath_max_rows)
    frame = pd.DataFrame(big)
    transformed = np.asarray(model.pipeline[:-1].transform(frame), dtype=np.float64)
    booster = model.pipeline[-1].booster_
    body = json.dumps({"rows": big}).encode()
    trees = getattr(model.fast, "trees", None)

    def service_work() -> None:
        _prediction_body("x", model, _Job(Routing(champion=model), body, "json", None, settings.serve_max_rows, request_id="x").run()[5])

    out = _timed_calls([("booster_only", lambda: booster.predict(transformed, num_threads=1)),
                        ("fastpath_predict (booster)", lambda: model.fast.predict(frame)),
                        ("service_work_no_http (booster)", service_work)], len(big), repeats)
    if trees is not None:
        model.fast.accelerate(work / "compiled", background=False)
        if trees.path != "booster":
            out.update(_timed_calls([(f"compiled_trees_only ({trees.path})", lambda: trees.predict(transformed)),
                                     (f"fastpath_predict ({trees.path})", lambda: model.fast.predict(frame)),
                                     (f"service_work_no_http ({trees.path})", service_work)], len(big), repeats))
    return out


def _timed_calls(calls: list, rows: int, repeats: int) -> dict:
    """Median wall time of each call, and the thread's CPU time (robust to a busy machine)."""
    out = {}
    for name, call in calls:
        times, cpu = [], []
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.thread_time()
            call()
            times.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - cpu_start)
        best = statistics.median(times)
        out[name] = {"rows": rows, "median_s": best, "rows_per_s": rows / best,
                     "median_cpu_s": statistics.median(cpu), "rows_per_cpu_s": rows / statistics.median(cpu)}
    return out


def floor(model_dir: Path, rows: pd.DataFrame, seconds: float = 3.0) -> dict:
    """In-process, one row at a time: the Pipeline and the fast path (p50 and calls/s)."""
    from core.registry import load_exported
    from core.serving.fastpath import compile_pipeline

    pipeline, _ = load_exported(model_dir)
    fast = compile_pipeline(pipeline)
    singles = [rows.iloc[[i]] for i in range(len(rows))]
    out = {}
    for name, call in [("pipeline_predict_proba", pipeline.predict_proba),
                       ("fastpath_predict", fast.predict if fast else None)]:
        if call is None:
            continue
        times = []
        deadline = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            call(singles[i % len(singles)])
            times.append(time.perf_counter() - start)
            i += 1
        times_ms = np.asarray(times[10:]) * 1e3
        out[name] = {"p50_ms": float(np.median(times_ms)), "p99_ms": float(np.percentile(times_ms, 99)),
                     "calls_per_s": len(times_ms) / (times_ms.sum() / 1e3)}
    return out


# --- report ---------------------------------------------------------------------------------


def _table(results: dict) -> str:
    lines = ["| server | concurrency | requests/s | p50 ms | p99 ms | non-200 | requests per server CPU-second |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, result in results.items():
        if "single" not in result:
            continue
        for row in result["single"]:
            bad = sum(v for k, v in row["statuses"].items() if k != 200)
            per_cpu = row.get("requests_per_cpu_s")
            lines.append(f"| {name} | {row['concurrency']} | {row['requests_per_s']:.0f} | "
                         f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {bad} | "
                         f"{f'{per_cpu:,.0f}' if per_cpu else '-'} |")
    lines += ["", "| server | 10,000-row batch: median s | rows/s | rows per server CPU-second |", "|---|---:|---:|---:|"]
    for name, result in results.items():
        if "batch" in result:
            b = result["batch"]
            per_cpu = b.get("rows_per_cpu_s")
            lines.append(f"| {name} | {b['median_s']:.3f} | {b['rows_per_s']:.0f} | "
                         f"{f'{per_cpu:,.0f}' if per_cpu else '-'} |")
    lines += ["", "| in-process, one row | p50 ms | p99 ms | calls/s |", "|---|---:|---:|---:|"]
    for name, row in results.get("floor", {}).items():
        lines.append(f"| {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['calls_per_s']:.0f} |")
    lines += ["", "| in-process, one 10,000-row batch | median s | rows/s | median CPU s | rows per CPU-second |",
              "|---|---:|---:|---:|---:|"]
    for name, row in results.get("batch_floor", {}).items():
        lines.append(f"| {name} | {row['median_s']:.3f} | {row['rows_per_s']:.0f} | {row['median_cpu_s']:.3f} | "
                     f"{row['rows_per_cpu_s']:.0f} |")
    load = results.get("load_average")
    if load:
        lines += ["", f"Load average (1 min): {load['start']:.2f} at the start, {load['end']:.2f} at the end."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    parser.add_argument("--batches", type=int, default=5, help="10,000-row requests per server")
    parser.add_argument("--peer-python", default=str(ROOT / ".venv-bench" / "bin" / "python"),
                        help="Python of the MLflow virtualenv ('' skips MLflow)")
    parser.add_argument("--model", help="an exported model folder (default: train one)")
    parser.add_argument("--log-cost", action="store_true",
                        help="only the prediction log's cost: log-on and log-off servers measured in turns")
    parser.add_argument("--rounds", type=int, default=6, help="--log-cost: rounds (each server once per round)")
    parser.add_argument("--round-seconds", type=float, default=4.0,
                        help="--log-cost: seconds per concurrency level per turn")
    args = parser.parse_args(argv)

    os.sched_setaffinity(0, {CLIENT_CORE})
    work = Path(tempfile.mkdtemp(prefix="shipml-bench-serving-"))
    try:
        model_dir = Path(args.model) if args.model else train(work)
        table = pd.read_csv(DATA).drop(columns=["churn"])
        sample = table.sample(200, random_state=0)
        records = json.loads(sample.to_json(orient="records"))
        big = json.loads(table.sample(BATCH_ROWS, replace=True, random_state=1).to_json(orient="records"))
        if args.log_cost:
            started = os.getloadavg()[0]
            single = [_request("/predict", json.dumps({"rows": [r]}).encode()) for r in records]
            result = log_cost(model_dir, work, single, _request("/predict", json.dumps({"rows": big}).encode()),
                              rounds=args.rounds, seconds=args.round_seconds, n_batches=3)
            result["load_average"] = {"start": started, "end": os.getloadavg()[0]}
            print(_log_cost_table(result))
            print(f"\nLoad average (1 min): {started:.2f} at the start, {result['load_average']['end']:.2f} at the end.")
            print()
            print(json.dumps(result, indent=1))
            return 0
        results: dict = {"load_average": {"start": os.getloadavg()[0]}, "floor": floor(model_dir, sample),
                         "batch_floor": batch_floor(model_dir, big, work)}

        shipml_single = [_request("/predict", json.dumps({"rows": [r]}).encode()) for r in records]
        shipml_batch = _request("/predict", json.dumps({"rows": big}).encode())
        for name, logging in [("shipml (log on)", "true"), ("shipml (log off)", "false")]:
            server = shipml_server(model_dir, work, log_on=logging == "true")
            try:
                results[name] = _run_against(server, shipml_single, shipml_batch, args.duration, args.batches)
            finally:
                server.stop()

        if args.peer_python:
            saved = work / "mlflow-model"
            subprocess.run([args.peer_python, "-c", SAVE_MLFLOW, str(model_dir / "model.joblib"), str(saved)],
                           check=True, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL)
            mlflow = str(Path(args.peer_python).with_name("mlflow"))
            port = _free_port()
            server = Server([mlflow, "models", "serve", "-m", str(saved), "--env-manager", "local", "-w", "1",
                             "--host", "127.0.0.1", "--port", str(port)], probe="/ping",
                            # mlflow starts `uvicorn` by name: the peer venv's bin must be on PATH.
                            env=_env(PATH=f"{Path(mlflow).parent}{os.pathsep}{os.environ.get('PATH', '')}"),
                            log=work / "mlflow.log")
            mlflow_single = [_request("/invocations", json.dumps({"dataframe_records": [r]}).encode())
                             for r in records]
            mlflow_batch = _request("/invocations", json.dumps({"dataframe_records": big}).encode())
            try:
                results["mlflow"] = _run_against(server, mlflow_single, mlflow_batch, args.duration, args.batches)
            finally:
                server.stop()

        results["load_average"]["end"] = os.getloadavg()[0]
        print(_table(results))
        print()
        print(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
