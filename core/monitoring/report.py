"""Evidently, behind our own adapter: the downloadable HTML drift report and Evidently's verdicts.

Evidently's API changed in 0.7 and is slow and memory-hungry on large windows (1M x 20 columns:
~90 s, ~2.7 GB), so the report runs on a seeded sample of a few thousand rows of each side; the
numbers on the Monitor page come from ``core.monitoring.drift`` on the whole window. Imports of
Evidently stay inside the functions: it takes seconds to import and is only needed here.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import BadInput
from core.files import replaced_atomically
from core.monitoring.drift import CATEGORICAL, NUMERIC, DriftConfig, column_kinds

DEFAULT_SAMPLE_ROWS = 5000


@dataclass(frozen=True)
class EvidentlyVerdict:
    """One column's result in Evidently's ``DataDriftPreset``."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class EvidentlyDrift:
    columns: dict[str, EvidentlyVerdict]
    drifted_count: int
    share_drifted: float


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, *,
                    columns: Sequence[str] | None = None) -> EvidentlyDrift:
    """Run Evidently's ``DataDriftPreset`` directly, with its defaults, on the given frames.

    Column types are left to Evidently's own inference (this is the peer we compare with, not
    our report). ``columns`` restricts the preset to those columns.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    preset = DataDriftPreset(columns=list(columns)) if columns is not None else DataDriftPreset()
    snapshot = Report([preset], include_tests=True).run(current, reference)
    data = snapshot.dict()
    scores = {m["config"]["column"]: m for m in data["metrics"] if m["config"].get("type", "").endswith("ValueDrift")}
    count = next(m["value"] for m in data["metrics"] if m["config"].get("type", "").endswith("DriftedColumnsCount"))
    failed = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL" for t in data["tests"]
              if t["metric_config"]["params"].get("type", "").endswith("ValueDrift")}
    verdicts = {
        name: EvidentlyVerdict(column=name, method=m["config"]["method"], score=float(m["value"]),
                               threshold=float(m["config"]["threshold"]), drifted=failed[name])
        for name, m in scores.items()
    }
    return EvidentlyDrift(columns=verdicts, drifted_count=int(count["count"]), share_drifted=float(count["share"]))


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(n=rows, random_state=seed) if len(frame) > rows else frame


def drift_report_html(reference: pd.DataFrame, current: pd.DataFrame, *, columns: Sequence[str] | None = None,
                      sample_rows: int = DEFAULT_SAMPLE_ROWS, seed: int = 0,
                      config: DriftConfig = DriftConfig()) -> bytes:
    """Evidently's data drift report as one self-contained HTML page (works offline).

    Args:
        reference: The baseline rows.
        current: The window.
        columns: Columns to include; default: the shared columns ``detect_drift`` compares
            (numeric and categorical; free text and dates are left out).
        sample_rows: At most this many rows of each side go into the report (seeded sample).
        seed: Seed of the sample.
        config: Decides each column's kind, so the report treats columns as our verdicts do.

    Raises:
        BadInput: an empty frame or no column to compare.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    if len(reference) == 0 or len(current) == 0:
        raise BadInput(f"the {'reference' if len(reference) == 0 else 'current'} data has no rows")
    shared = [c for c in current.columns if c in reference.columns]
    names = [c for c in (columns if columns is not None else shared) if c in shared]
    kinds = column_kinds(current[names], config=config)
    numeric = [c for c in names if kinds[str(c)] == NUMERIC]
    categorical = [c for c in names if kinds[str(c)] == CATEGORICAL]
    if not numeric and not categorical:
        raise BadInput("no numeric or categorical column to compare")
    keep = numeric + categorical
    definition = dict(numerical_columns=numeric, categorical_columns=categorical, text_columns=[],
                      datetime_columns=[], unknown_columns=[], list_columns=[])
    cur = Dataset.from_pandas(_sample(current[keep], sample_rows, seed), data_definition=DataDefinition(**definition))
    ref = Dataset.from_pandas(_sample(reference[keep], sample_rows, seed), data_definition=DataDefinition(**definition))
    snapshot = Report([DataDriftPreset(columns=keep)]).run(cur, ref)
    with tempfile.TemporaryDirectory(prefix="shipml-report-") as tmp:
        path = Path(tmp) / "drift.html"
        snapshot.save_html(str(path))
        return path.read_bytes()


def save_drift_report(reference: pd.DataFrame, current: pd.DataFrame, path: Path, **options) -> Path:
    """Write ``drift_report_html(reference, current, **options)`` to ``path`` atomically."""
    html = drift_report_html(reference, current, **options)
    path = Path(path)
    with replaced_atomically(path, "wb") as fh:
        fh.write(html)
    return path
