"""File-system helpers for writing files atomically (datasets, model versions, command outputs)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from core.errors import StorageError


def fsync_dir(directory: Path) -> None:
    """Persist a rename itself, not only the file's bytes (matters after a power cut)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def replaced_atomically(path: Path, mode: str = "w") -> Iterator[IO]:
    """A file to write that takes ``path``'s place only once the block ends without error.

    Readers see the old file or the whole new one; a failure (a full disk, an error while
    writing) leaves ``path`` as it was and no temporary file behind. The temporary file is named
    after this process, so two processes writing one path do not share it.

    Raises:
        StorageError: the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with open(tmp, mode.replace("w", "x"), **text) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"could not write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
