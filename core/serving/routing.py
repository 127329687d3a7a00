"""Routing between two model versions behind one endpoint: A/B splits and shadow mode.

A ``Routing`` is immutable. The service keeps one and replaces it as a whole (one attribute
assignment, atomic in Python): a request reads it once when it starts and finishes on the
objects it read, so a promotion never changes the model under a request in progress.

Assignment is sticky by a request key: ``u = sha256(key)`` read as a number in [0, 1); the
request goes to the challenger when ``u < weight_b``. The same key therefore always lands on the
same variant, across restarts and on every replica, and raising the weight only moves keys
from the champion to the challenger, never back. A request without a key is assigned by its
request id (a random UUID), i.e. at random, and the log records the variant it got.

The routing file (``--routing FILE``, JSON; written by ``core.deploy.abtest``)::

    {"champion": "/path/to/model_a", "challenger": "/path/to/model_b", "weight_b": 0.1, "shadow": false}

``challenger`` null (or missing) serves the champion alone; ``shadow`` true scores every request
with the challenger off the response path and logs its predictions (``weight_b`` is then
ignored). Paths are read from this file only, never from an HTTP request.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BadInput
from core.files import replaced_atomically

CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"
_SCALE = float(1 << 64)


def key_position(key: str) -> float:
    """Where ``key`` falls in [0, 1): the first 8 bytes of its sha256 as a fraction."""
    digest = hashlib.sha256(key.encode("utf-8", errors="surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(key: str, weight_b: float) -> str:
    """``"challenger"`` for a share ``weight_b`` of keys, ``"champion"`` for the rest (sticky)."""
    return CHALLENGER if weight_b > 0 and key_position(key) < weight_b else CHAMPION


@dataclass(frozen=True)
class RoutingSpec:
    """What to serve, as written in a routing file (folders, not loaded models)."""

    champion: Path
    challenger: Path | None = None
    weight_b: float = 0.0
    shadow: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.weight_b) <= 1.0:
            raise BadInput("weight_b must be between 0 and 1")
        if self.challenger is None and (self.shadow or self.weight_b):
            raise BadInput("a split or shadow mode needs a challenger")

    @property
    def mode(self) -> str:
        """``single``, ``split`` or ``shadow``."""
        if self.challenger is None:
            return "single"
        return "shadow" if self.shadow else "split"

    def to_json(self) -> dict[str, Any]:
        return {"champion": str(self.champion), "challenger": str(self.challenger) if self.challenger else None,
                "weight_b": float(self.weight_b), "shadow": bool(self.shadow)}


def read_spec(path: Path) -> RoutingSpec:
    """Read and check a routing file; relative folders are taken from the file's own folder.

    Relative folders let one file serve two views of the same folder: the app's on the host and
    the service's inside a container, where that folder is mounted at ``/data``.

    Raises:
        BadInput: Unreadable, not the expected JSON object, or inconsistent values.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise BadInput("the routing file is missing or not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("champion"), str):
        raise BadInput("the routing file needs a \"champion\" model folder")
    unknown = set(doc) - {"champion", "challenger", "weight_b", "shadow", "previous", "note", "started"}
    if unknown:
        raise BadInput("the routing file has unknown fields")
    challenger = doc.get("challenger")
    weight = doc.get("weight_b", 0.0)
    if challenger is not None and not isinstance(challenger, str):
        raise BadInput("\"challenger\" must be a model folder or null")
    if type(weight) not in (int, float) or not isinstance(doc.get("shadow", False), bool):
        raise BadInput("\"weight_b\" must be a number and \"shadow\" true or false")
    home = Path(path).parent  # an absolute folder stays as it is: home / "/abs" is "/abs"
    return RoutingSpec(champion=home / doc["champion"], challenger=home / challenger if challenger else None,
                       weight_b=float(weight) if challenger else 0.0, shadow=bool(doc.get("shadow", False)))


def write_spec(path: Path, spec: RoutingSpec, **extra: Any) -> None:
    """Write a routing file atomically (a reader sees the old file or the new, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path) as fh:
        fh.write(json.dumps({**spec.to_json(), **extra}, indent=2))


@dataclass(frozen=True)
class Routing:
    """Loaded models and how requests reach them; replaced whole, never changed."""

    champion: Any  # LoadedModel
    challenger: Any | None = None  # LoadedModel
    weight_b: float = 0.0
    shadow: bool = False

    @property
    def mode(self) -> str:
        if self.challenger is None:
            return "single"
        return "shadow" if self.shadow else "split"

    def pick(self, key: str) -> tuple[str, Any]:
        """The variant name and model that serve a request with this key (or request id)."""
        if self.challenger is not None and not self.shadow and assign(key, self.weight_b) == CHALLENGER:
            return CHALLENGER, self.challenger
        return CHAMPION, self.champion

    def describe(self) -> dict[str, Any]:
        """A JSON view: mode, weights and each variant's name and version."""
        def one(m: Any) -> dict[str, Any] | None:
            return None if m is None else {"name": m.name, "version": m.version, "sha256": m.sha256}

        weight_b = self.weight_b if self.mode == "split" else 0.0
        return {"mode": self.mode, "weights": {CHAMPION: 1.0 - weight_b, CHALLENGER: weight_b},
                CHAMPION: one(self.champion), CHALLENGER: one(self.challenger)}
