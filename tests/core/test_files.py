"""Atomic file writes: a reader sees the old file or the whole new one, a failure leaves no trace."""
from __future__ import annotations

import errno

import pytest

from core.errors import StorageError
from core.files import replaced_atomically, write_text_atomically


def test_the_new_content_replaces_the_old_with_nothing_left_beside_it(tmp_path) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old\n")
    with replaced_atomically(path) as fh:
        fh.write("new\n")
        assert path.read_text() == "old\n"  # nobody sees the new file before it is whole
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


@pytest.mark.parametrize(("error", "raised"), [
    (ValueError("a bug while writing"), ValueError),
    # A full disk cannot be produced here for real: the error the write would raise stands in.
    (OSError(errno.ENOSPC, "No space left on device"), StorageError),
])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial_one(tmp_path, error, raised) -> None:
    path = tmp_path / "out.csv"
    path.write_text("old\n")
    with pytest.raises(raised) as caught, replaced_atomically(path) as fh:
        fh.write("half")
        raise error
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    if raised is StorageError:
        assert str(caught.value) == f"could not write {path}: No space left on device"


def test_a_missing_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(StorageError, match="could not write .*nowhere.*No such file"), \
            replaced_atomically(tmp_path / "nowhere" / "out.csv", "wb") as fh:
        fh.write(b"x")


def test_text_written_atomically_replaces_a_config_whole(tmp_path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text("old: true\n")
    assert write_text_atomically(path, "scrape_configs: []\n") == path
    assert path.read_text() == "scrape_configs: []\n" and [p.name for p in tmp_path.iterdir()] == ["prometheus.yml"]
