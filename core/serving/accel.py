"""Compiled LightGBM trees for the fast path (lleaves): optional, verified, never required.

LightGBM's booster walks its trees in a generic interpreter; on the churn model (200 trees, 72
features) that is ~10 µs a row on one core, most of a 10,000-row request. ``lleaves`` turns the
same trees into machine code through LLVM (4-5x faster here, equal to the booster to ~1e-16).

Compiling takes seconds (7 s for 200 trees on this machine), so the service never waits for it:
it starts on the plain booster and a background thread swaps the compiled trees in when they
are ready and proven equal. Machine code can crash a process rather than raise, so every
compiled file is first built, loaded and checked in a *child process*
(``python -m core.serving.accel MODEL_TXT OBJECT``); only a file that passed there is loaded into
the service, and checked once more against the booster before it is used. Any failure (lleaves
not installed, an objective it does not support, a child that crashed or timed out, a
difference on the probe rows) leaves the booster in place and is logged.

Compiled files are cached by a key of the model text, the lleaves and llvmlite versions and the
host CPU (the code is specialised for it), so a restart loads them in ~25 ms. The cache folder is
trusted like the model folder: whoever can write there can make the service run their code.

``python -m core.serving --no-compiled-trees`` turns the accelerator off.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger("shipml.serving")

COMPILE_TIMEOUT_S = 600.0  # a child still compiling after this is stopped (the booster stays)
TOLERANCE = 1e-12  # largest accepted gap to the booster, relative to max(1, |value|)
NAME = "lleaves"

Predict = Callable[[np.ndarray], np.ndarray]


class Trees:
    """The trees of one LightGBM model: the booster now, compiled code once it is proven equal.

    ``predict`` is what the fast path calls; it reads ``_compiled`` once per call, so the switch
    is a single assignment and a request in progress finishes on whichever it started with.
    """

    def __init__(self, booster, booster_predict: Predict) -> None:
        self.booster = booster
        self._booster_predict = booster_predict
        self._compiled: Predict | None = None
        self._keep: object = None  # the lleaves model: its machine code lives as long as this
        self.state = "booster"  # booster | compiling | compiled | failed: ... (shown on /version)
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None
        self._closed = False

    @property
    def path(self) -> str:
        """Which trees answer: ``"lleaves"`` or ``"booster"``."""
        return NAME if self._compiled is not None else "booster"

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The model's output for the float64 feature matrix ``X`` (as ``Booster.predict``)."""
        compiled = self._compiled
        return compiled(X) if compiled is not None else self._booster_predict(X)

    def accelerate(self, cache_dir: Path, *, background: bool = True) -> None:
        """Compile (or load from ``cache_dir``) and switch to the compiled trees when proven.

        Args:
            cache_dir: Folder for compiled files (created if missing).
            background: Run in a daemon thread (the service); False waits (tests, benchmarks).
        """
        if self._thread is not None or self._compiled is not None:
            return
        self.state = "compiling"
        if background:
            self._thread = threading.Thread(target=self._accelerate, args=(Path(cache_dir),),
                                            name="shipml-compile-trees", daemon=True)
            self._thread.start()
        else:
            self._accelerate(Path(cache_dir))

    def wait(self, timeout: float | None = None) -> str:
        """Wait for a background ``accelerate`` to end; returns ``path``."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.path

    def close(self) -> None:
        """Stop a compiler child still running (the service is shutting down)."""
        self._closed = True
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()

    def _accelerate(self, cache_dir: Path) -> None:
        started = time.perf_counter()
        try:
            self._compiled, self._keep = self._load_proven(cache_dir)
        except Exception as exc:  # noqa: BLE001 - the booster is always a correct fallback
            self.state = f"failed: {exc}"[:300]
            log.warning("compiled trees unavailable, predicting with LightGBM's booster: %s", self.state)
            return
        self.state = "compiled"
        log.info("predicting with compiled trees (lleaves), ready after %.1f s", time.perf_counter() - started)

    def _load_proven(self, cache_dir: Path) -> tuple[Predict, object]:
        """Compiled trees for the booster: built and checked by a child, then checked here again."""
        import lleaves  # noqa: F401 - fail early (and cheaply) when the accelerator is not installed

        text = self.booster.model_to_string(num_iteration=None)  # the iterations Booster.predict uses
        key = cache_key(text)
        cache_dir.mkdir(parents=True, exist_ok=True)
        model_txt, obj = cache_dir / f"{key}.txt", cache_dir / f"{key}.o"
        if not model_txt.exists():
            _write_atomically(model_txt, text.encode())
        self._run_child(model_txt, obj)
        model = _load(model_txt, obj)
        predict = _predictor(model)
        gap = compare(predict, self._booster_predict, probe_rows(self.booster))
        if gap > TOLERANCE:
            raise RuntimeError(f"compiled trees differ from the booster by {gap:.3g}")
        return predict, model

    def _run_child(self, model_txt: Path, obj: Path) -> None:
        """``python -m core.serving.accel``: compile if needed, load and check, in a child."""
        command = [sys.executable, "-m", "core.serving.accel", str(model_txt), str(obj)]
        if self._closed:
            raise RuntimeError("the service is closing")
        self._child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=_repo_root())
        try:
            _, err = self._child.communicate(timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            self._child.kill()
            self._child.wait()
            raise RuntimeError(f"compiling took more than {COMPILE_TIMEOUT_S:.0f} s") from exc
        if self._child.returncode != 0:
            if not self._closed:  # a crash while loading a cached file must not repeat on every start
                obj.unlink(missing_ok=True)
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {self._child.returncode}"]
            raise RuntimeError(f"the compiler process failed: {tail[0]}")


# --- the parent's side ----------------------------------------------------------------------


def cache_key(model_text: str) -> str:
    """What the compiled code depends on: the model, the compiler versions and the host CPU."""
    import llvmlite
    import llvmlite.binding as llvm
    from importlib.metadata import version

    llvm.initialize_native_target()  # host CPU detection needs the native target
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:
        features = ""
    parts = [model_text, version("lleaves"), llvmlite.__version__, llvm.get_process_triple(),
             llvm.get_host_cpu_name(), features, "fp64"]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def _lower_priority() -> None:
    """In the child: compile at a lower priority than the requests the service is answering
    (set by the child itself: a ``preexec_fn`` is unsafe in a process with threads)."""
    try:
        os.nice(10)
    except OSError:
        pass


def _repo_root() -> str:
    """Where ``core`` is importable from (the child runs ``-m core.serving.accel``)."""
    return str(Path(__file__).resolve().parents[2])


def _write_atomically(path: Path, data: bytes) -> None:
    """Write a file that readers see whole or not at all (a crash leaves no half file)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(model_txt: Path, obj: Path):
    """An lleaves model from its text and an already compiled object file (no compiling)."""
    import lleaves

    model = lleaves.Model(model_file=str(model_txt))
    model.compile(cache=str(obj))  # the file exists: lleaves loads it instead of compiling
    return model


# LightGBM's kZeroThreshold (1e-35 as a C float): reading a dense row, the booster keeps only
# values of larger magnitude and reads the rest as 0.0; the compiled trees compare raw values,
# so a split at -1e-35 (one-hot columns have them) sent a value of -1e-35 the other way.
ZERO_THRESHOLD = float(np.float32(1e-35))


def _predictor(model) -> Predict:
    """The compiled forest as ``Booster.predict`` would be called: one thread, float64 rows,
    values the booster reads as zero set to zero."""

    def predict(X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        magnitude = np.abs(X)
        tiny = (magnitude <= ZERO_THRESHOLD) & (magnitude > 0.0)
        if tiny.any():
            X = np.where(tiny, 0.0, X)
        return model.predict(X, n_jobs=1)

    return predict


# --- checking -------------------------------------------------------------------------------


def probe_rows(booster, max_rows: int = 4096) -> np.ndarray:
    """Rows that reach every branch edge: each split threshold, the next double above it, NaN,
    zero and a few wide values, per feature (features cycle through theirs independently)."""
    dump = booster.dump_model()
    n_features = booster.num_feature()
    thresholds: list[set[float]] = [set() for _ in range(n_features)]

    def walk(node: dict) -> None:
        if "split_feature" not in node:
            return
        for value in str(node.get("threshold", "")).split("||"):  # categorical splits: "1||3"
            try:
                thresholds[node["split_feature"]].add(float(value))
            except ValueError:
                pass
        walk(node["left_child"])
        walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    columns = []
    for values in thresholds:
        edges = sorted(values)
        column = [np.nan, 0.0, -1e12, 1e12, 1.0, -1.0]
        column += edges + [float(np.nextafter(v, np.inf)) for v in edges]
        columns.append(column)
    n_rows = min(max_rows, max(len(c) for c in columns))
    X = np.empty((n_rows, n_features))
    for j, column in enumerate(columns):
        X[:, j] = np.resize(np.asarray(column, dtype=np.float64), n_rows)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(64, n_features)) * 100
    noise[::5] = np.nan
    return np.vstack([X, X[rng.permutation(n_rows)], noise])


def compare(compiled: Predict, reference: Predict, X: np.ndarray) -> float:
    """Largest gap of ``compiled`` to ``reference`` on ``X``, relative to max(1, |value|)
    (infinite when shapes differ or one gives NaN where the other does not)."""
    got, expected = np.asarray(compiled(X)), np.asarray(reference(X))
    if got.shape != expected.shape or not np.array_equal(np.isnan(got), np.isnan(expected)):
        return float("inf")
    if got.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        gap = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
    return float(np.nanmax(gap)) if not np.isnan(gap).all() else 0.0


# --- the child's side -----------------------------------------------------------------------


def compile_and_check(model_txt: Path, obj: Path) -> dict:
    """In the child: compile ``model_txt`` to ``obj`` if missing, then load and check it.

    A file that fails the check is removed, so the next start compiles again.
    """
    import lightgbm
    import lleaves

    started = time.perf_counter()
    compiled_now = not obj.exists()
    if compiled_now:
        model = lleaves.Model(model_file=str(model_txt))
        tmp = obj.with_name(f"{obj.name}.{os.getpid()}.tmp")
        try:
            model.compile(cache=str(tmp))  # compiles, writes tmp, and loads the code
            os.replace(tmp, obj)
        finally:
            tmp.unlink(missing_ok=True)
    model = _load(model_txt, obj)
    booster = lightgbm.Booster(model_file=str(model_txt))
    gap = compare(_predictor(model), lambda X: booster.predict(X, num_threads=1), probe_rows(booster))
    if gap > TOLERANCE:
        obj.unlink(missing_ok=True)
        raise SystemExit(f"compiled trees differ from the booster by {gap:.3g}")
    return {"compiled": compiled_now, "seconds": round(time.perf_counter() - started, 3), "max_gap": gap}


def main(argv: list[str] | None = None) -> int:
    """``python -m core.serving.accel MODEL_TXT OBJECT``: prints a JSON line, exit 0 when proven."""
    args = sys.argv[1:] if argv is None else argv
    _lower_priority()
    if len(args) != 2:
        print("usage: python -m core.serving.accel MODEL_TXT OBJECT", file=sys.stderr)
        return 2
    print(json.dumps(compile_and_check(Path(args[0]), Path(args[1]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
