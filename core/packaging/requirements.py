"""The slim, pinned requirement set that goes into every model image.

The app's ``requirements.txt`` pins everything the app, its tests and its benchmarks use
(Streamlit, Evidently, Optuna, Plotly, pytest, ...). A model image needs only the service and what
unpickling and running a Pipeline needs. We start from a short list of root packages, walk their
declared dependencies (as installed here, evaluated for Linux and this Python) and pin every
package of that closure to the version ``requirements.txt`` pins, so the image runs the very
library versions the model was trained with.
"""
from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from core.config import PROJECT_ROOT
from core.errors import BadInput

REQUIREMENTS_TXT = PROJECT_ROOT / "requirements.txt"

# What the prediction service imports, and what a pickled Pipeline needs to load and run.
RUNTIME_ROOTS = (
    "fastapi",
    "uvicorn",
    "uvloop",  # uvicorn's faster event loop and HTTP parser, picked up when installed
    "httptools",
    "prometheus-client",
    "msgspec",  # the service's JSON encoding and decoding
    "pandas",
    "numpy",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "lleaves",  # compiled LightGBM trees for the fast path (optional at run time: core.serving.accel)
    "joblib",
    "threadpoolctl",
    "pyarrow",
    "pydantic",
    "pydantic-settings",
    "sqlalchemy",
    "sqlmodel",
)

# Never in a model image: the app's UI, monitoring, tuning and charting stacks (a test checks it).
EXCLUDED = frozenset({"streamlit", "evidently", "optuna", "plotly"})


def normalize(name: str) -> str:
    """A distribution name in PEP 503 normal form (``Scikit_Learn`` -> ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = REQUIREMENTS_TXT) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by normalised name."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins[normalize(req.name)] = exact[0]
    return pins


def runtime_requirements(path: Path = REQUIREMENTS_TXT) -> list[str]:
    """The pinned ``name==version`` lines for a model image, sorted by name.

    Raises:
        BadInput: A package of the closure is not installed here or not pinned in ``path``
            (the requirement set would not be reproducible).
    """
    pins = read_pins(path)
    marker_env = default_environment()
    marker_env["extra"] = ""  # root packages without extras
    seen: dict[str, str] = {}
    todo = [normalize(n) for n in RUNTIME_ROOTS]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in pins:
            raise BadInput(f"the runtime package {name} is not pinned in requirements.txt")
        seen[name] = pins[name]
        try:
            declared = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            raise BadInput(f"the runtime package {name} is not installed here") from None
        for text in declared:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(marker_env):
                todo.append(normalize(req.name))
    leaked = EXCLUDED & seen.keys()
    if leaked:  # a dependency change pulled the UI stack in: fail loudly rather than ship it
        raise BadInput(f"the runtime requirement set would include {', '.join(sorted(leaked))}")
    return [f"{name}=={seen[name]}" for name in sorted(seen)]
