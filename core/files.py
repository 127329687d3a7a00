"""File-system helpers for writing files atomically (datasets, model versions, command outputs)."""
from __future__ import annotations

import os
import secrets
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
def replaced_atomically(path: Path, mode: str = "w", *, read_only: bool = False,
                        name: str | None = None) -> Iterator[IO]:
    """A file to write that takes ``path``'s place only once the block ends without error.

    Readers see the old file or the whole new one; a failure (a full disk, an error while
    writing) leaves ``path`` as it was and no temporary file behind. The temporary file's name is
    random, so two writers of one path (processes, or an app's sessions) never share it; it is
    created with the usual permissions (a container's user reads a routing file written here).

    Args:
        read_only: make the file read-only before it appears (stored data never changes).
        name: what the error message calls the file (default: its path).

    Raises:
        StorageError: the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        with open(tmp, mode.replace("w", "x"), **text) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if read_only:
            tmp.chmod(0o444)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        # The system's words for the error number: pyarrow words the same EFBIG differently
        # depending on how the file was opened.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StorageError(f"could not write {name or path}: {reason}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` as :func:`replaced_atomically` does: a config another
    program reads (Prometheus, kubectl) is never seen half-written. Returns ``path``."""
    with replaced_atomically(path) as fh:
        fh.write(text)
    return Path(path)
