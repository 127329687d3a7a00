"""What to deploy: an exported model folder, or ``NAME@VERSION`` / ``NAME@ALIAS`` from the registry."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from core import registry
from core.config import Settings
from core.errors import BadInput
from core.store.models import ModelVersion

_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelSource:
    """A model to deploy: either a folder already on disk or a registry version to export."""

    model_name: str
    version: int
    model_dir: Path | None  # set for a folder given as is
    registry_version: ModelVersion | None  # set for a registry version (exported per deployment)

    @property
    def version_id(self) -> int | None:
        return self.registry_version.id if self.registry_version is not None else None


def resolve_source(engine: Engine, spec: str) -> ModelSource:
    """Turn ``DIR``, ``NAME``, ``NAME@3`` or ``NAME@champion`` into a model to deploy.

    A folder must hold ``model.json`` and a ``model.joblib`` matching its sha256 (checked here
    without unpickling, so a tampered folder is refused before anything starts). Otherwise the
    spec names a registry model: a number picks that version, a word an alias, nothing the
    latest READY version.

    Raises:
        BadInput: No such folder or model, a version that is not READY, or a tampered folder.
    """
    spec = (spec or "").strip()
    if not spec:
        raise BadInput("give a model folder or NAME@VERSION")
    path = Path(spec).expanduser()
    if path.is_dir():
        return check_folder(path.resolve())
    name, _, ref = spec.rpartition("@") if "@" in spec else (spec, "", "")
    name = name.strip()
    if not name or ("/" in spec and not path.exists()):
        raise BadInput("no such model folder, and not NAME@VERSION either")
    ref = ref.strip()
    if ref.isdigit():
        version = registry.get_version(engine, name=name, version=int(ref))
    elif ref:
        version = registry.get_version(engine, name=name, alias=ref.lower())
    else:
        version = registry.get_version(engine, name=name)
    if version.status != registry.READY:
        raise BadInput(f"version {version.version} of '{name}' is {version.status}; only READY versions deploy")
    return ModelSource(model_name=version.model_name, version=version.version, model_dir=None,
                       registry_version=version)


def check_folder(path: Path) -> ModelSource:
    """Read an exported model folder's identity and check its model file against its sha256.

    Raises:
        BadInput: No readable ``model.json``, or ``model.joblib`` does not match it.
    """
    source, sha = _read_identity(path)
    if not hmac.compare_digest(file_sha256(path / "model.joblib"), sha):
        raise BadInput(registry.TAMPERED)
    return source


def folder_identity(path: Path) -> ModelSource:
    """An exported model folder's name and version from its ``model.json``, without reading the
    model file: for showing what a folder holds. Whatever loads the model checks its hash.

    Raises:
        BadInput: No readable ``model.json``.
    """
    return _read_identity(path)[0]


def _read_identity(path: Path) -> tuple[ModelSource, str]:
    try:
        info = json.loads((path / "model.json").read_text())
    except (OSError, ValueError):
        raise BadInput("the folder has no readable model.json (export a model with `train --out`)") from None
    if not isinstance(info, dict):
        raise BadInput("model.json is not a model's metadata")
    sha, name, version = info.get("sha256"), info.get("name"), info.get("version")
    if not (isinstance(sha, str) and _SHA.fullmatch(sha)) or not isinstance(name, str) or not isinstance(version, int):
        raise BadInput("model.json lacks a valid name, version or sha256")
    return ModelSource(model_name=name, version=version, model_dir=path, registry_version=None), sha


def file_sha256(path: Path) -> str:
    """The sha256 of a file, or an empty string if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def materialise(source: ModelSource, *, settings: Settings, out_dir: Path, copy: bool = False) -> Path:
    """The folder to serve: the given folder as is (``copy``: copied to ``out_dir``), or the
    registry version exported to ``out_dir``. A container sees only what is under its mount, hence ``copy``."""
    if source.model_dir is not None:
        if not copy:
            return source.model_dir
        # Copied beside the final folder and renamed once checked: a failed or killed copy
        # never leaves a folder that looks like a model.
        partial = out_dir.with_name(f".{out_dir.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            shutil.copytree(source.model_dir, partial)
            check_folder(partial)  # the copy is what will be served
            partial.rename(out_dir)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return out_dir
    return registry.export_version(source.registry_version, settings=settings, out_dir=out_dir)
