"""A watched folder: every complete new CSV or Parquet file landing there retrains a model once.

Call :func:`scan_watched_folder` on a schedule (cron, a Kubernetes CronJob running
``python -m core retrain --model NAME --watch DIR``, or the app). A file is taken only when it
is complete:

* **names**: only ``*.csv`` and ``*.parquet``; hidden (``.name``), editor/lock (``~name``) files and
  anything still carrying a temporary suffix (``.part``, ``.tmp``, ``.crdownload``...) are skipped,
  so writers that write under a temporary name and rename when done (rsync, most uploaders) are
  picked up at the rename;
* **size-stable**: a file modified less than ``settle_s`` seconds ago is left for the next scan,
  and one whose size or modification time changes while it is read is skipped too, so a slow
  copy is never read half-written; symbolic links are ignored.

Each file content retrains a model at most once: the retrain run stores the file's sha256, which
the store keeps unique per model, so a copy of an old file, a second scanner on another machine,
or a lost state file never retrains twice. The small JSON state file (:class:`SeenStore`) only
spares re-reading files already handled and says what happened to each.

New rows follow the champion: a file's rows join the champion's data; if its retrain is not
promoted, the next file builds on the champion's data again, without them.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from core.config import Settings
from core.data.ingest import read_path
from core.errors import BadInput
from core.files import replaced_atomically
from core.monitoring.policy import PromotionPolicy
from core.monitoring.retrain import AlreadyRetrained, retrain

__all__ = ["SeenStore", "WatchResult", "is_candidate", "scan_watched_folder"]

SUFFIXES = (".csv", ".parquet")
TEMPORARY_MARKERS = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".filepart", ".swp")
DEFAULT_SETTLE_S = 5.0


@dataclass(frozen=True)
class WatchResult:
    """What a scan did with one file.

    Attributes:
        file: The file's name.
        status: ``retrained``, ``already_seen`` (this content was used before), ``waiting`` (still
            being written) or ``failed`` (unreadable, or the retrain refused it).
        sha256: The content hash, once read.
        run_id: The retrain run, when one was recorded.
        decision: ``promoted`` or ``kept_as_challenger`` for a retrain.
        message: One line for a person.
    """

    file: str
    status: str
    sha256: str | None = None
    run_id: int | None = None
    decision: str | None = None
    message: str = ""


class SeenStore:
    """Per file name: the size and modification time last handled, its hash and what happened.

    A JSON file written atomically. It is a cache: the once-per-content rule lives in the store.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def default(cls, folder: Path, *, model_name: str, settings: Settings) -> SeenStore:
        """The state file of one (folder, model) pair in the workspace (never inside the folder)."""
        key = hashlib.sha256(f"{Path(folder).resolve()}\0{model_name}".encode()).hexdigest()[:20]
        return cls(settings.workspace / "monitoring" / "watch" / f"{key}.json")

    def load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, entries: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(self.path) as fh:
            json.dump(entries, fh, indent=1, sort_keys=True)


def is_candidate(name: str) -> bool:
    """Whether a file name looks like a finished CSV or Parquet file."""
    lower = name.lower()
    if lower.startswith((".", "~")) or not lower.endswith(SUFFIXES):
        return False
    stem = lower.rsplit(".", 1)[0]
    return not any(marker in stem for marker in TEMPORARY_MARKERS)


def scan_watched_folder(
    engine: Engine,
    folder: Path,
    *,
    model_name: str,
    settings: Settings,
    seen_store: SeenStore | None = None,
    policy: PromotionPolicy = PromotionPolicy(),
    budget_s: float | None = None,
    max_trials: int | None = None,
    settle_s: float = DEFAULT_SETTLE_S,
) -> list[WatchResult]:
    """Retrain ``model_name`` once on each complete new file in ``folder``, oldest first.

    Args:
        engine: The store.
        folder: The watched folder (not searched recursively).
        model_name: The model the files' rows are added to.
        settings: Workspace and limits.
        seen_store: The state file; default: one per (folder, model) in the workspace.
        policy: The promotion policy of every retrain.
        budget_s: Tuning budget per retrain (None: the champion's).
        max_trials: Trial cap per retrain (None: the champion's).
        settle_s: A file must have been left unchanged this long.

    Returns:
        One result per candidate file that is new or changed since the last scan (files already
        handled and unchanged are not listed again).

    Raises:
        BadInput: The folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"the watched folder {folder.name!r} does not exist")
    store = seen_store or SeenStore.default(folder, model_name=model_name, settings=settings)
    entries = store.load()
    candidates = []
    for entry in os.scandir(folder):
        if not is_candidate(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):  # symbolic links, folders, pipes: never
            candidates.append((info.st_mtime_ns, entry.name, info))
    results = []
    for _, name, info in sorted(candidates):
        key = {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
        known = entries.get(name)
        if known and {k: known.get(k) for k in key} == key and known.get("status") != "waiting":
            continue  # handled before and unchanged
        result = _handle(engine, folder / name, info, model_name=model_name, settings=settings, policy=policy,
                         budget_s=budget_s, max_trials=max_trials, settle_s=settle_s)
        results.append(result)
        entries[name] = key | {"status": result.status, "sha256": result.sha256, "run_id": result.run_id,
                               "decision": result.decision, "checked_at": time.time()}
        store.save(entries)  # after every file, so a crash mid-scan loses nothing
    return results


def _handle(engine: Engine, path: Path, info: os.stat_result, *, model_name: str, settings: Settings,
            policy: PromotionPolicy, budget_s, max_trials, settle_s: float) -> WatchResult:
    name = path.name
    if time.time() - info.st_mtime < settle_s:
        return WatchResult(file=name, status="waiting", message="still being written; next scan")
    try:
        loaded = read_path(path, settings=settings)
        after = path.stat()
    except BadInput as exc:
        return WatchResult(file=name, status="failed", message=str(exc))
    except OSError:
        return WatchResult(file=name, status="waiting", message="the file disappeared while it was read")
    if (after.st_size, after.st_mtime_ns) != (info.st_size, info.st_mtime_ns):
        return WatchResult(file=name, status="waiting", message="the file changed while it was read; next scan")
    digest = loaded.content_hash
    try:
        outcome = retrain(engine, model_name=model_name, new_data=loaded.frame, settings=settings,
                          reason="new_data", policy=policy, budget_s=budget_s, max_trials=max_trials,
                          new_data_name=name, note=f"watched file {name}", source_hash=digest)
    except AlreadyRetrained:
        return WatchResult(file=name, status="already_seen", sha256=digest,
                           message="this content was already used to retrain the model")
    except BadInput as exc:
        return WatchResult(file=name, status="failed", sha256=digest, message=str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others; the run is recorded
        return WatchResult(file=name, status="failed", sha256=digest,
                           message=f"retraining stopped on an internal error ({type(exc).__name__})")
    return WatchResult(file=name, status="retrained", sha256=digest, run_id=outcome.run_id,
                       decision=outcome.decision, message=outcome.message)
