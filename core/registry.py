"""Model versions: two-phase writes, artifact hashes, aliases and model cards.

Saving a version is split so that no reader ever sees a half-saved model:

1. one short transaction allocates the next version number and inserts a PENDING row;
2. outside any transaction the Pipeline and a reference sample are written to temporary files,
   fsynced and renamed into place under random names (never the user's model name);
3. a second transaction records the sha256 and turns the row READY.

Anything that fails marks the row FAILED and removes its files. A process killed in between
leaves a PENDING row and at most a temporary file; ``mark_stale_pending`` tidies both up.

Pickled files run code when loaded, so ``load_pipeline`` and ``load_exported`` hash the file and
refuse it unless the hash matches the one recorded when it was written.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import platform
import re
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import joblib
import pandas as pd
from sqlalchemy import func, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.config import Settings
from core.errors import BadInput
from core.files import replaced_atomically
from core.serving_io import Labelling, labelling_of
from core.store.db import session_scope
from core.store.models import ModelAlias, ModelVersion, utcnow

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = [
    "VersionMeta",
    "aliases",
    "export_version",
    "get_version",
    "library_versions",
    "list_model_names",
    "list_versions",
    "load_exported",
    "load_pipeline",
    "mark_stale_pending",
    "model_card",
    "register_version",
    "set_alias",
    "validate_model_name",
]

PENDING, READY, FAILED = "PENDING", "READY", "FAILED"
REFERENCE_MAX_ROWS = 5_000
EXPORT_FORMAT = "shipml-model/1"
TAMPERED = "model file does not match its registry hash; refusing to load"

_NAME = re.compile(r"[A-Za-z0-9 ._-]{1,100}")
_ALIAS = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?")
_FILE = re.compile(r"[0-9a-f]{32}\.(?:joblib|parquet)")  # what we write: no separators, no ".."
_SHA = re.compile(r"[0-9a-f]{64}")
_LIBRARIES = {
    "sklearn": "scikit-learn",
    "lightgbm": "lightgbm",
    "pandas": "pandas",
    "numpy": "numpy",
    "joblib": "joblib",
}


@dataclass(frozen=True)
class VersionMeta:
    """What the trainer knows about a model it hands to the registry."""

    dataset_hash: str
    target: str
    task: str
    recipe_json: str
    plan_json: str
    model_family: str
    params: dict
    metrics: dict
    cv: dict
    training_seconds: float
    description: str = ""


# --------------------------------------------------------------------------- writing


def validate_model_name(name: str) -> str:
    """Return ``name`` without surrounding spaces, or raise if it is not a valid model name.

    Raises:
        BadInput: Not 1-100 characters of ASCII letters, digits, spaces, ``.``, ``-``, ``_``.
    """
    cleaned = name.strip() if isinstance(name, str) else ""
    if not _NAME.fullmatch(cleaned):
        raise BadInput(
            "a model name needs 1-100 characters: letters, digits, spaces, '.', '-' or '_'"
        )
    return cleaned


def register_version(
    engine: Engine,
    *,
    name: str,
    pipeline: Any,
    meta: VersionMeta,
    reference: pd.DataFrame,
    settings: Settings,
) -> ModelVersion:
    """Save a trained Pipeline as the next version of model ``name``.

    Args:
        engine: The store.
        name: The model's name (see ``validate_model_name``).
        pipeline: The fitted Pipeline (anything joblib can pickle).
        meta: Data hash, target, task, recipe, plan, family, params, metrics, CV and timing.
        reference: Training data; up to 5,000 rows (sampled with ``settings.random_seed``) are
            kept as Parquet for drift monitoring.
        settings: Gives ``models_dir`` and the seed.

    Returns:
        The READY version.

    Raises:
        BadInput: The name is invalid.
        Exception: Whatever made saving fail; the version is then FAILED and has no files.
    """
    name = validate_model_name(name)
    stem = uuid.uuid4().hex
    row = _insert_pending(engine, name=name, meta=meta, stem=stem)
    folder = settings.models_dir
    artifact, ref = folder / row.artifact_file, folder / row.reference_file
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sha, size = _atomic_write(artifact, lambda fh: joblib.dump(pipeline, fh))
        sample = _sample(reference, seed=settings.random_seed)
        _atomic_write(ref, lambda fh: sample.to_parquet(fh, engine="pyarrow", index=False))
        with session_scope(engine) as session:
            # Only a row still PENDING may become READY: mark_stale_pending may have given up
            # on a very slow save and removed its files meanwhile.
            done = session.exec(
                update(ModelVersion)
                .where(col(ModelVersion.id) == row.id, col(ModelVersion.status) == PENDING)
                .values(status=READY, sha256=sha, size_bytes=size)
            )
            if done.rowcount != 1:
                raise BadInput("the save was marked interrupted before it finished")
            return session.get(ModelVersion, row.id, populate_existing=True)
    except BaseException as exc:
        # If the FAILED mark cannot be written we cannot know the row's state: keep the files
        # rather than risk deleting a READY version's (the sweep at start-up catches orphans).
        try:
            status = _mark_failed(engine, row.id, error=f"{type(exc).__name__}: {exc}")
        except Exception:
            status = None
        if status is not None and status != READY:
            artifact.unlink(missing_ok=True)
            ref.unlink(missing_ok=True)
        raise


def _insert_pending(engine: Engine, *, name: str, meta: VersionMeta, stem: str) -> ModelVersion:
    """Allocate the next version number and insert a PENDING row, in one short transaction."""
    with session_scope(engine) as session:
        lock_model(session, name)
        latest = session.exec(
            select(func.max(ModelVersion.version)).where(ModelVersion.model_name == name)
        ).one()
        row = ModelVersion(
            model_name=name,
            version=(latest or 0) + 1,
            status=PENDING,
            artifact_file=f"{stem}.joblib",
            reference_file=f"{stem}.parquet",
            dataset_hash=meta.dataset_hash,
            target=meta.target,
            task=meta.task,
            recipe_json=meta.recipe_json,
            plan_json=meta.plan_json,
            model_family=meta.model_family,
            params_json=_dumps(meta.params),
            metrics_json=_dumps(meta.metrics),
            cv_json=_dumps(meta.cv),
            library_versions_json=_dumps(library_versions()),
            training_seconds=float(meta.training_seconds),
            description=meta.description,
        )
        session.add(row)
        session.flush()
        return row


def lock_model(session: Session, name: str) -> None:
    """Serialise writers of one model's versions and aliases for the rest of the transaction.

    SQLite needs nothing: the engine starts every transaction with BEGIN IMMEDIATE, which
    already admits one writer at a time. PostgreSQL takes a transaction-level advisory lock
    keyed on the name (in a namespace of our own), so two sessions never read the same
    "latest version" and insert the same next one.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.exec(
            text("SELECT pg_advisory_xact_lock(hashtext('shipml.model'), hashtext(:name))"),
            params={"name": name},
        )


def _mark_failed(engine: Engine, version_id: int, *, error: str) -> str | None:
    """Turn a PENDING row FAILED; return the row's status afterwards."""
    with session_scope(engine) as session:
        session.exec(
            update(ModelVersion)
            .where(col(ModelVersion.id) == version_id, col(ModelVersion.status) == PENDING)
            .values(status=FAILED, error=error[:500])
        )
        row = session.get(ModelVersion, version_id, populate_existing=True)
        return row.status if row else None


def mark_stale_pending(engine: Engine, older_than_s: float, *, settings: Settings | None = None) -> int:
    """Mark versions left PENDING by a killed process as FAILED ("interrupted").

    Call it at app start. With ``settings`` it also removes those versions' files and
    temporary files in ``models_dir`` that are as old, so an interrupted save leaves nothing.

    Args:
        engine: The store.
        older_than_s: Only rows (and temporary files) older than this many seconds are touched,
            so a save still running elsewhere is left alone.
        settings: Gives ``models_dir``; without it no file is touched.

    Returns:
        How many versions were marked FAILED.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    with session_scope(engine) as session:
        # One conditional UPDATE, so a save that turns READY meanwhile is never overwritten.
        stale = session.exec(
            update(ModelVersion)
            .where(col(ModelVersion.status) == PENDING, col(ModelVersion.created_at) < cutoff)
            .values(status=FAILED, error="interrupted")
            .returning(col(ModelVersion.artifact_file), col(ModelVersion.reference_file))
        ).all()
    if settings is not None and settings.models_dir.is_dir():
        for files in stale:
            for file in files:
                if _FILE.fullmatch(file):
                    (settings.models_dir / file).unlink(missing_ok=True)
        for tmp in settings.models_dir.glob(".*.tmp"):
            try:
                if tmp.stat().st_mtime < time.time() - older_than_s:
                    tmp.unlink()
            except FileNotFoundError:
                pass
    return len(stale)


# --------------------------------------------------------------------------- reading


def get_version(
    engine: Engine, *, name: str, version: int | None = None, alias: str | None = None
) -> ModelVersion:
    """Find one version of a model: by number, by alias, or else the latest READY one.

    Raises:
        BadInput: Both ``version`` and ``alias`` were given, or no such version exists.
    """
    if version is not None and alias is not None:
        raise BadInput("ask for a version number or an alias, not both")
    with session_scope(engine) as session:
        query = select(ModelVersion).where(ModelVersion.model_name == name)
        if version is not None:
            query = query.where(ModelVersion.version == version)
            missing = f"model '{name}' has no version {version}"
        elif alias is not None:
            query = query.join(ModelAlias, col(ModelAlias.version_id) == col(ModelVersion.id)).where(
                ModelAlias.model_name == name, ModelAlias.alias == alias
            )
            missing = f"model '{name}' has no alias '{alias}'"
        else:
            query = query.where(ModelVersion.status == READY).order_by(
                col(ModelVersion.version).desc()
            )
            missing = f"model '{name}' has no ready version"
        found = session.exec(query).first()
    if found is None:
        raise BadInput(missing)
    return found


def labelling(version: ModelVersion) -> Labelling:
    """How a binary version labels rows: its decision threshold and positive class, read once."""
    return labelling_of(json.loads(version.metrics_json or "{}"))


def decision_threshold(version: ModelVersion) -> float | None:
    """The probability of the positive class from which a binary version predicts it, or None."""
    return labelling(version).threshold


def positive_class(version: ModelVersion) -> str | None:
    """A binary version's positive class, as text: the one its threshold cuts the probability of
    and its precision and recall describe (:class:`core.serving_io.Labelling`)."""
    return labelling(version).positive


def preparation_summary(version: ModelVersion) -> dict[str, str]:
    """What was done to a version's data, one line each (user text as it is), for comparing
    versions: ``cleaning`` (the recipe's steps in order, or "none") and ``features`` (the feature
    plan: the default, or what it leaves out, transforms and adds)."""
    from core.prep.plan import FeaturePlan  # late, as in model_card
    from core.prep.recipe import recipe_from_json
    from core.prep.steps import step_summary

    try:
        recipe = recipe_from_json(version.recipe_json or "{}")
        plan = FeaturePlan.model_validate_json(version.plan_json or "{}")
    except (BadInput, ValueError):
        return {"cleaning": "recorded in a form this ShipML cannot read", "features": ""}
    steps = "; ".join(f"{n}. {step_summary(step)}" for n, step in enumerate(recipe.steps, start=1))
    parts = [f"only {', '.join(plan.include)}" if plan.include else "",
             f"leaves out {', '.join(plan.exclude)}" if plan.exclude else "",
             f"transforms {', '.join(plan.transforms)}" if plan.transforms else "",
             f"adds {', '.join(i.name for i in plan.interactions)}" if plan.interactions else ""]
    features = "; ".join(p for p in parts if p) or ("the default" if plan == FeaturePlan() else "custom settings")
    return {"cleaning": steps or "none", "features": features}


def list_versions(engine: Engine, *, name: str | None = None) -> list[ModelVersion]:
    """All versions (every status), by model name, newest first within a model."""
    query = select(ModelVersion).order_by(
        col(ModelVersion.model_name), col(ModelVersion.version).desc()
    )
    if name is not None:
        query = query.where(ModelVersion.model_name == name)
    with session_scope(engine) as session:
        return list(session.exec(query))


def list_model_names(engine: Engine) -> list[str]:
    """Names of all models that have at least one version, sorted."""
    with session_scope(engine) as session:
        query = select(ModelVersion.model_name).distinct().order_by(col(ModelVersion.model_name))
        return list(session.exec(query))


def set_alias(engine: Engine, *, name: str, alias: str, version: int) -> None:
    """Point ``alias`` (e.g. "champion") at a READY version, moving it if it exists.

    Raises:
        BadInput: The alias is not a lowercase slug, or the version is missing or not READY.
    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise BadInput("an alias is a lowercase slug of up to 40 letters, digits, '-' or '_'")
    with session_scope(engine) as session:
        lock_model(session, name)  # two concurrent first-time sets must not both insert
        target = session.exec(
            select(ModelVersion).where(
                ModelVersion.model_name == name, ModelVersion.version == version
            )
        ).first()
        if target is None:
            raise BadInput(f"model '{name}' has no version {version}")
        if target.status != READY:
            raise BadInput(f"version {version} is {target.status}; only READY versions get aliases")
        row = session.exec(
            select(ModelAlias).where(ModelAlias.model_name == name, ModelAlias.alias == alias)
        ).first() or ModelAlias(model_name=name, alias=alias, version_id=target.id)
        row.version_id, row.updated_at = target.id, utcnow()
        session.add(row)


def aliases(engine: Engine, *, name: str) -> dict[str, int]:
    """A model's aliases and the version numbers they point at."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(ModelAlias.alias, ModelVersion.version)
            .join(ModelVersion, col(ModelAlias.version_id) == col(ModelVersion.id))
            .where(ModelAlias.model_name == name)
            .order_by(col(ModelAlias.alias))
        )
        return {alias: number for alias, number in rows}


def load_pipeline(version: ModelVersion, *, settings: Settings) -> Pipeline:
    """Load a READY version's Pipeline after checking the file against its recorded sha256.

    Raises:
        BadInput: The version is not READY, or its file is missing or does not match the hash
            (the file is then never unpickled).
    """
    if version.status != READY or not version.sha256:
        raise BadInput(f"version {version.version} is {version.status}; only READY versions load")
    if not _FILE.fullmatch(version.artifact_file):
        raise BadInput(TAMPERED)
    return _load_verified(settings.models_dir / version.artifact_file, version.sha256)


def _load_verified(path: Path, expected_sha: str) -> Any:
    # Hash and unpickle through the same open file, so the file cannot be swapped in between.
    try:
        fh = path.open("rb")
    except OSError:
        raise BadInput(TAMPERED) from None
    with fh:
        if not hmac.compare_digest(_sha256_of(fh), expected_sha):
            raise BadInput(TAMPERED)
        fh.seek(0)
        return joblib.load(fh)


# --------------------------------------------------------------------------- cards and exports


def model_card(version: ModelVersion, *, aliases: dict[str, int] | None = None) -> str:
    """A Markdown model card; every user-supplied string is escaped so it stays plain text.

    Args:
        version: The version to describe.
        aliases: The model's aliases (from ``aliases()``); those naming this version are shown.
    """
    own = sorted(a for a, v in (aliases or {}).items() if v == version.version)
    from core.data.profile import Task  # late: only the card needs the modelling side
    from core.modeling.evaluation import threshold_note
    from core.modeling.metrics import METRICS, tuned_metric

    cv = json.loads(version.cv_json or "{}")
    try:
        tuned = tuned_metric(cv, Task(version.task))
    except ValueError:  # a task this ShipML does not know
        tuned = None
    created = version.created_at.strftime("%Y-%m-%d %H:%M UTC") if version.created_at else ""
    metrics = json.loads(version.metrics_json or "{}")
    # How a binary version labels rows: facts about it, shown with the others, not as scores.
    threshold, positive = metrics.pop("decision_threshold", None), metrics.pop("positive_class", None)
    per_class = metrics.pop("per_class", None)
    facts = {
        "Name": _md(version.model_name),
        "Version": str(version.version),
        "Status": _md(version.status),
        "Aliases": _md(", ".join(own)) or "none",
        "Created": created,
        "Dataset hash": _md(version.dataset_hash),
        "Target": _md(version.target),
        "Task": _md(version.task),
        "Model family": _family(version.model_family),
        "Optimised metric": _md(_metric_label(tuned)) if tuned else "not recorded",
        **({"Positive class": _md(positive)} if positive is not None else {}),
        **({"Decision threshold": _score(threshold)} if threshold is not None else {}),
        "Training time": f"{version.training_seconds:.1f} s",
        "Artifact sha256": _md(version.sha256 or "not saved"),
    }
    lines = [f"# Model card: {_md(version.model_name)}, version {version.version}", ""]
    if version.description.strip():
        lines += [f"**Description:** {_md(version.description)}", ""]
    if version.error:
        lines += [f"**Error:** {_md(version.error)}", ""]
    lines += _table(("Field", "Value"), facts)
    lines += ["", "## Metrics", ""] + _metric_table(metrics, first=tuned)
    maximises = cv.get("decision_threshold_maximises")
    if maximises in METRICS and isinstance(threshold, float):
        lines += ["", threshold_note(threshold, maximises, None if positive is None else _md(positive),
                                     time_ordered=cv.get("kind") == "time")]
    sections = (
        ("Parameters", ("Parameter", "Value"), _rows(json.loads(version.params_json or "{}"))),
        ("Cross-validation and tuning", ("Setting", "Value"), _validation_rows(cv)),
        ("Library versions", ("Library", "Version"),
         _rows(json.loads(version.library_versions_json or "{}"))),
    )
    if per_class:
        lines += ["", "## Per class (out-of-fold)", ""] + _per_class_table(per_class)
    lines += ["", "## Data preparation", ""] + _preparation(version)
    for title, header, rows in sections:
        lines += ["", f"## {title}", ""]
        lines += _table(header, rows) if rows else ["none recorded"]
    lines += [
        "",
        "## Intended use",
        "",
        f"Predicting {_md(version.target)} ({_md(version.task)}) for rows that look like the "
        "training data: the same columns, meanings and population. Use it to support decisions "
        "that a person reviews, not to make them alone.",
        "",
        "## Limitations",
        "",
        "- The metrics above are cross-validated estimates on historical data; performance on "
        "new data can be lower, especially if the population or data collection changes.",
        "- The model learns any bias present in its training data; check results across groups "
        "before relying on it.",
        "- Monitor drift against the stored reference sample and retrain when it appears.",
        "- Load the file only through ShipML, which checks its sha256 first: a model file can "
        "run code when loaded.",
        "",
    ]
    return "\n".join(lines)


def export_version(version: ModelVersion, *, settings: Settings, out_dir: Path) -> Path:
    """Write a self-contained copy of a READY version to ``out_dir``.

    Files: ``model.joblib``, ``model.json`` (all metadata including the sha256),
    ``MODEL_CARD.md`` and ``reference.parquet``, each written atomically.

    Returns:
        ``out_dir``.

    Raises:
        BadInput: The version is not READY or its file does not match its hash.
    """
    if version.status != READY or not version.sha256 or not _FILE.fullmatch(version.artifact_file):
        raise BadInput(f"version {version.version} is {version.status}; only READY versions export")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = settings.models_dir / version.artifact_file

    def copy_verified(fh: IO[bytes]) -> None:
        # Never export a file the registry would refuse to load.
        digest = hashlib.sha256()
        try:
            src = source.open("rb")
        except OSError:
            raise BadInput(TAMPERED) from None
        # A failed write (a full disk where the export goes) is _atomic_write's to report, not
        # a mismatch of the registry's file.
        with src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                fh.write(chunk)
        if not hmac.compare_digest(digest.hexdigest(), version.sha256):
            raise BadInput(TAMPERED)

    try:
        sample = (settings.models_dir / version.reference_file).read_bytes()
    except OSError:
        raise BadInput(f"version {version.version} has lost its reference sample") from None
    _atomic_write(out_dir / "model.joblib", copy_verified)
    _atomic_write(out_dir / "reference.parquet", lambda fh: fh.write(sample))
    _atomic_write(out_dir / "MODEL_CARD.md", lambda fh: fh.write(model_card(version).encode()))
    info = _metadata(version)
    _atomic_write(out_dir / "model.json", lambda fh: fh.write(json.dumps(info, indent=2).encode()))
    return out_dir


def export_zip(version: ModelVersion, *, settings: Settings) -> bytes:
    """A READY version as a zip of one folder, ``<name>-v<version>/``, holding what
    :func:`export_version` writes: unzipped, it is a model folder for `core predict --model` and
    `core deploy --model`.

    Raises:
        BadInput: As :func:`export_version` (not READY, or the file fails its hash check).
    """
    folder = export_name(version)
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="shipml-export-") as tmp:
        out = export_version(version, settings=settings, out_dir=Path(tmp))
        # Stored, not deflated: joblib and parquet files are already compact, and this runs on a click.
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(out.iterdir()):
                archive.write(path, f"{folder}/{path.name}")
    return buffer.getvalue()


def export_name(version: ModelVersion) -> str:
    """A file name for a version's export: its model's name, safe in any file system, and its
    number, as in ``churn-model-v3``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", version.model_name).strip(".-") or "model"
    return f"{name}-v{version.version}"


def load_exported(model_dir: Path) -> tuple[Pipeline, dict]:
    """Load an exported model after checking ``model.joblib`` against ``model.json``'s sha256.

    Returns:
        The Pipeline and the metadata from ``model.json``.

    Raises:
        BadInput: ``model.json`` is missing or unreadable, or the model file does not match.
    """
    model_dir = Path(model_dir)
    try:
        info = json.loads((model_dir / "model.json").read_text())
    except (OSError, ValueError):
        raise BadInput("model.json is missing or not valid JSON") from None
    sha = info.get("sha256") if isinstance(info, dict) else None
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise BadInput("model.json has no valid sha256")
    return _load_verified(model_dir / "model.joblib", sha), info


# --------------------------------------------------------------------------- helpers


def library_versions() -> dict[str, str | None]:
    """Versions of Python and the libraries a pickled Pipeline depends on."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in _LIBRARIES.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = None
    return found


def _metadata(version: ModelVersion) -> dict:
    return {
        "format": EXPORT_FORMAT,
        "name": version.model_name,
        "version": version.version,
        "status": version.status,
        "sha256": version.sha256,
        "size_bytes": version.size_bytes,
        "created_at": version.created_at.isoformat() if version.created_at else None,
        "dataset_hash": version.dataset_hash,
        "target": version.target,
        "task": version.task,
        "model_family": version.model_family,
        "description": version.description,
        "recipe": json.loads(version.recipe_json),
        "plan": json.loads(version.plan_json),
        "params": json.loads(version.params_json),
        "metrics": json.loads(version.metrics_json),
        "cv": json.loads(version.cv_json),
        "library_versions": json.loads(version.library_versions_json),
        "training_seconds": version.training_seconds,
        "files": {"model": "model.joblib", "reference": "reference.parquet"},
    }


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> tuple[str, int]:
    """Write a read-only file atomically (:func:`core.files.replaced_atomically`) and hash it.

    Returns:
        The sha256 and size of what was written, read back from the file itself.

    Raises:
        StorageError: The folder is not writable or the disk is full.
    """
    with replaced_atomically(path, "w+b", read_only=True) as fh:
        write(fh)
        fh.flush()
        fh.seek(0)
        sha, size = _sha256_of(fh), fh.tell()
    return sha, size


def _sha256_of(fh: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := fh.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _sample(frame: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    if len(frame) > REFERENCE_MAX_ROWS:
        frame = frame.sample(n=REFERENCE_MAX_ROWS, random_state=seed).sort_index()
    return frame.reset_index(drop=True)


def _dumps(value: Any) -> str:
    # numpy scalars (common in params and metrics) become plain numbers; anything else, text.
    return json.dumps(value, sort_keys=True, default=lambda v: v.item() if hasattr(v, "item") else str(v))


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~!&$#])")


def _md(value: object) -> str:
    """One line of Markdown that renders as the literal text of ``value``.

    Newlines become spaces, so the text can never start a line (no headings, lists or table
    rows); what is left that could act inline (code, emphasis, links, HTML, pipes that split
    table cells) is backslash-escaped.
    """
    flat = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):  # e.g. the tuning settings: name=value pairs read better than JSON
        return ", ".join(f"{_md(k)}={_cell(v)}" for k, v in sorted(value.items()))
    return _md(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def _rows(values: dict) -> dict[str, str]:
    return {_md(key): _cell(value) for key, value in values.items()}


def _validation_rows(cv: dict[str, Any]) -> dict[str, str]:
    """The card's account of how the version was validated and searched for, in words; a key
    this ShipML does not know is listed as recorded."""
    from core.modeling.splits import CVScheme  # late, as in model_card
    from core.modeling.tuning import SEARCH_TITLES

    def seconds(value: object) -> str:
        return f"{value:g} s" if isinstance(value, int | float) else "none"

    rows: dict[str, str] = {}
    scheme = CVScheme.from_dict(cv)
    if scheme is not None:
        rows["Folds"] = _md(scheme.describe())
        if cv.get("tuning_n_folds", scheme.n_folds) != scheme.n_folds:
            rows["Folds while tuning"] = (f"{cv['tuning_n_folds']} (a small table; the winner was then "
                                          f"cross-validated with {scheme.n_folds})")
    if "tuning_rows" in cv:
        rows["Tuning sample"] = (f"{int(cv['tuning_rows']):,} training rows (a large table): the search and the "
                                 "cross-validation ran on them; the model learnt from all rows")
    if "holdout_share" in cv:
        share = cv["holdout_share"]
        rows["Holdout"] = f"{share:.0%} of the rows, kept out of tuning and scored once" if share else "none"
    if "final_fit" in cv:
        rows["Final fit"] = _md(cv["final_fit"])
    tuning = cv.get("tuning") if isinstance(cv.get("tuning"), dict) else None
    if tuning is not None:
        models = tuning.get("models") or []
        rows["Search"] = (f"{SEARCH_TITLES.get(tuning.get('search'), _md(tuning.get('search')))} over "
                          + (", ".join(_family(m) for m in models) if models else "every model family"))
        rows["Time budget"] = seconds(tuning.get("budget_s"))
        rows["Trial cap"] = _cell(tuning["max_trials"]) if tuning.get("max_trials") else "none"
        rows["Time per model"] = seconds(tuning["per_model_s"]) if tuning.get("per_model_s") else "shared"
        rows["Class weights"] = "balanced" if tuning.get("class_weight") else "none"
        if tuning.get("log_target"):
            rows["Target"] = "learnt as log(1 + target), predicted in the target's units"
        rows["Seed"] = _cell(tuning.get("seed"))
    known = {"kind", "n_folds", "group_column", "time_column", "seed", "holdout_share", "final_fit", "tuning",
             "tuning_n_folds", "tuning_rows", "decision_threshold_maximises"}  # the last is said under the metrics
    return rows | _rows({k: v for k, v in cv.items() if k not in known})


def _preparation(version: ModelVersion) -> list[str]:
    """The card's account of what was done to the data: the cleaning steps in order, then the
    feature plan, each as it was recorded with the version."""
    from core.prep.plan import FeaturePlan  # late, as in model_card
    from core.prep.recipe import recipe_from_json
    from core.prep.steps import STEP_TITLES

    try:
        recipe = recipe_from_json(version.recipe_json or "{}")
        plan = FeaturePlan.model_validate_json(version.plan_json or "{}")
    except (BadInput, ValueError):  # written by another ShipML: say so rather than guess
        return ["Recorded in a form this ShipML cannot read."]
    lines = ["Cleaning steps, in order (row steps shape the training table only; column steps are part of "
             "the model, so predictions get the same cleaning):", ""]
    steps = [(str(number), _md(STEP_TITLES.get(step.kind, step.kind)),
              "rows" if step.is_row_step else "columns (in the model)",
              _cell(step.model_dump(exclude={"kind", "reason"})) or "none", _md(step.reason) or "added by hand")
             for number, step in enumerate(recipe.steps, start=1)]
    lines += _table(("#", "Step", "Acts on", "Settings", "Why"), steps) if steps else ["none: the table as uploaded"]
    features = {
        "columns": _names(plan.include) if plan.include else "every column but the target",
        **({"left out": _names(plan.exclude)} if plan.exclude else {}),
        **{f"transform of {_md(column)}": _cell(transform.model_dump(exclude_defaults=True)) or "defaults"
           for column, transform in plan.transforms.items()},
        **({"interactions": _names(i.name for i in plan.interactions)} if plan.interactions else {}),
    }
    title = "Feature plan (the default):" if plan == FeaturePlan() else "Feature plan:"
    return lines + ["", title, ""] + _table(("Setting", "Value"), features)


def _names(names: Iterable[str]) -> str:
    return ", ".join(_md(name) for name in names)


def _metric_table(metrics: dict, *, first: str | None) -> list[str]:
    """One row per metric, ``first`` (the optimised one) first and the rest in display order:
    its cross-validated mean ± std, the baseline's mean, and a column per group of single scores
    (the trainer's ``{"holdout": {"rmse": 1.3}}``). Plain numbers go in the first column."""
    from core.modeling.metrics import in_display_order  # late, as in model_card

    groups = {k: v for k, v in metrics.items() if isinstance(v, dict) and "mean" not in v}
    names = in_display_order([k for k in metrics if k not in groups] + [m for g in groups.values() for m in g],
                             first=first)
    if not names:
        return ["none recorded"]
    rows = []
    for name in names:
        value = metrics.get(name)
        cv = baseline = ""
        if isinstance(value, dict):  # a CV summary: {"mean", "std", "baseline"}
            spread = value.get("std")
            cv = _score(value["mean"]) + (f" ± {_score(spread, like=value['mean'])}" if spread is not None else "")
            baseline = _score(value["baseline"]) if value.get("baseline") is not None else ""
        elif value is not None:
            cv = _score(value)
        single = [_score(g[name]) if name in g else "" for g in groups.values()]
        rows.append([_md(_metric_label(name)), cv, baseline, *single])
    header = ["Metric", "Cross-validated", "Baseline"] + [_md(k.capitalize()) for k in groups]
    return _table(header, rows)


def _per_class_table(rows: list[dict]) -> list[str]:
    """Each class's rows, share, predictions, precision, recall and F1, as training recorded them
    (a dash where a score is undefined: a class never predicted has no precision)."""
    def number(value: object, form: str = "{:.4f}") -> str:
        return "–" if value is None else form.format(value)

    header = ("Class", "Rows", "Share", "Predicted", "Precision", "Recall", "F1")
    return _table(header, [[_md(r.get("class")), number(r.get("rows"), "{:,}"), number(r.get("share"), "{:.1%}"),
                            number(r.get("predicted"), "{:,}"),
                            *(number(r.get(k)) for k in ("precision", "recall", "F1"))] for r in rows])


def _score(value: object, *, like: float | None = None) -> str:
    """A score as the Evaluate page writes it (:func:`core.modeling.metrics.format_score`)."""
    from core.modeling.metrics import format_score  # late, as in model_card

    return format_score(value, like=like) if isinstance(value, float | int) and not isinstance(value, bool) \
        else _cell(value)


def _family(name: str) -> str:
    """A family by its title, with the name ``core train --models`` takes."""
    from core.modeling.specs import family_title  # late: the serving image has no optuna

    title = family_title(name)
    return _md(name) if title == name else f"{_md(title)} ({_md(name)})"


def _metric_label(name: str) -> str:
    from core.modeling.metrics import METRICS  # late, as in model_card

    return METRICS[name].label if name in METRICS else name.replace("_", " ").capitalize()


def _table(header: Sequence[str], rows: dict[str, str] | Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table from cells that are already escaped (a dict: two columns, key and value)."""
    cells = [list(r) for r in rows.items()] if isinstance(rows, dict) else [list(r) for r in rows]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(r) + " |" for r in cells]
