"""Tests for core.data.storage: content-addressed, immutable Parquet datasets."""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from core.config import Settings
from core.data.storage import dataset_path, load_frame, save_frame
from core.errors import BadInput, StorageError

HASH = hashlib.sha256(b"some upload").hexdigest()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(workspace=tmp_path / "workspace")


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": pd.Series([31, 42, 27], dtype="int64"),
            "score": [1.5, float("nan"), 2.25],
            "name": ["ann", "bob", "cy"],
            "joined": pd.to_datetime(["2024-01-02 00:00:00", "2025-03-04 05:06:07", None]),
            "seen": pd.to_datetime(["2024-01-02T00:00:00Z"] * 3, utc=True),
            "active": [True, False, True],
            "visits": pd.array([1, None, 3], dtype="Int64"),
            "plan": pd.Categorical(["free", "pro", "free"]),
        }
    )


def test_dataset_path_is_the_hash_under_datasets_dir(settings: Settings) -> None:
    assert dataset_path(HASH, settings=settings) == settings.datasets_dir / f"{HASH}.parquet"


@pytest.mark.parametrize(
    "bad",
    ["", "abc", HASH[:-1], HASH + "0", HASH.upper(), "../" + HASH[3:], HASH[:-1] + "g", HASH[:-1] + "/", None],
)
def test_dataset_path_refuses_anything_but_64_hex(settings: Settings, bad) -> None:
    with pytest.raises(BadInput, match="not a valid dataset id"):
        dataset_path(bad, settings=settings)


def test_round_trip_keeps_values_and_dtypes(settings: Settings, frame: pd.DataFrame) -> None:
    save_frame(frame, content_hash=HASH, settings=settings)
    loaded = load_frame(HASH, settings=settings)
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded["joined"].dtype == "datetime64[ns]"
    assert str(loaded["seen"].dtype) == "datetime64[ns, UTC]"
    assert loaded["active"].dtype == "bool"


def test_index_is_not_stored(settings: Settings, frame: pd.DataFrame) -> None:
    save_frame(frame.set_index(pd.Index([10, 20, 30])), content_hash=HASH, settings=settings)
    assert load_frame(HASH, settings=settings).index.equals(pd.RangeIndex(3))


def test_saved_file_is_read_only_and_no_temp_file_remains(settings: Settings, frame: pd.DataFrame) -> None:
    path = save_frame(frame, content_hash=HASH, settings=settings)
    assert path == dataset_path(HASH, settings=settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert sorted(p.name for p in settings.datasets_dir.iterdir()) == [path.name]


def test_second_save_is_a_no_op(settings: Settings, frame: pd.DataFrame) -> None:
    path = save_frame(frame, content_hash=HASH, settings=settings)
    before = path.stat()
    again = save_frame(frame.iloc[:1], content_hash=HASH, settings=settings)  # even different data
    after = again.stat()
    assert again == path
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert len(load_frame(HASH, settings=settings)) == 3


def test_failed_write_leaves_no_file_behind(settings: Settings) -> None:
    unwritable = pd.DataFrame({"mixed": [1, "a"], "b": [1, 2]})  # pyarrow refuses mixed objects
    with pytest.raises(Exception) as info:
        save_frame(unwritable, content_hash=HASH, settings=settings)
    assert not isinstance(info.value, BadInput)  # a bug upstream, not a user error
    assert list(settings.datasets_dir.iterdir()) == []
    # ... and the hash is still free for a correct save.
    save_frame(pd.DataFrame({"mixed": ["1", "a"], "b": [1, 2]}), content_hash=HASH, settings=settings)
    assert load_frame(HASH, settings=settings)["mixed"].tolist() == ["1", "a"]


def test_interrupted_write_leaves_no_temp_file(settings: Settings, frame: pd.DataFrame, monkeypatch) -> None:
    # An fsync failure (a dying disk) cannot be produced for real here, so it is simulated.
    def crash(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(StorageError, match="could not write the dataset: disk on fire"):
        save_frame(frame, content_hash=HASH, settings=settings)
    assert list(settings.datasets_dir.iterdir()) == []


def test_load_missing_dataset(settings: Settings) -> None:
    with pytest.raises(BadInput, match=f"dataset {HASH[:12]} not found"):
        load_frame(HASH, settings=settings)
