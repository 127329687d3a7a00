"""Immutable datasets: one read-only Parquet file per content hash.

A dataset is stored under the sha256 of the bytes it was loaded from, so the same upload is
stored once and a stored file never changes: anything derived from a dataset (profiles, models)
can cite its hash and trust it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from core.config import Settings
from core.errors import BadInput
from core.files import replaced_atomically

__all__ = ["dataset_path", "load_frame", "save_frame"]

_HASH = re.compile(r"[0-9a-f]{64}")


def dataset_path(content_hash: str, *, settings: Settings) -> Path:
    """Where the dataset with this hash lives (whether or not it exists yet).

    Args:
        content_hash: A sha256 hex digest, 64 lowercase hex characters.
        settings: Gives ``datasets_dir``.

    Raises:
        BadInput: The hash is not 64 lowercase hex characters (this also keeps any path
            separator or ``..`` out of the file name).
    """
    if not isinstance(content_hash, str) or not _HASH.fullmatch(content_hash):
        raise BadInput("not a valid dataset id (expected 64 lowercase hex characters)")
    return settings.datasets_dir / f"{content_hash}.parquet"


def save_frame(frame: pd.DataFrame, *, content_hash: str, settings: Settings) -> Path:
    """Store a frame as read-only Parquet under its hash, once.

    The file is written to a temporary name in the same folder, flushed to disk and renamed
    into place, so readers never see a partial file; if anything fails the temporary file is
    removed. If the dataset already exists nothing is written.

    Args:
        frame: The table; its index is not stored.
        content_hash: The sha256 of the source bytes (``LoadedTable.content_hash``).
        settings: Gives ``datasets_dir``.

    Returns:
        The path of the stored file.

    Raises:
        BadInput: The hash is malformed.
        StorageError: The disk is full or the folder cannot be written; no file is left.
        pyarrow.ArrowException: The frame has a column Parquet cannot hold (ingest prevents
            this by turning mixed-type columns into text).
    """
    path = dataset_path(content_hash, settings=settings)
    if path.exists():
        return path  # content-addressed: the same hash means the same data
    path.parent.mkdir(parents=True, exist_ok=True)
    # A concurrent writer of the same hash writes the same data: whichever rename lands last wins.
    with replaced_atomically(path, "wb", read_only=True, name="the dataset") as fh:
        frame.to_parquet(fh, engine="pyarrow", index=False)
    return path


def load_frame(content_hash: str, *, settings: Settings) -> pd.DataFrame:
    """Load a stored dataset.

    Args:
        content_hash: The dataset's hash.
        settings: Gives ``datasets_dir``.

    Returns:
        The frame as it was saved (with a fresh RangeIndex).

    Raises:
        BadInput: The hash is malformed or no dataset has it.
    """
    path = dataset_path(content_hash, settings=settings)
    if not path.is_file():
        raise BadInput(f"dataset {content_hash[:12]} not found")
    return pd.read_parquet(path, engine="pyarrow")
