"""Writing files whole or not at all, and where cached files go."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Iterator


def temporary_path(path: Path) -> Path:
    """A hidden name of its own beside ``path``, to write to and then rename over it."""
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Open a binary handle whose contents replace ``path`` only when the block ends cleanly.

    The data goes to a temporary file of its own in the same folder, is synced to
    disk, then renamed over ``path``: a killed process leaves the old file or the
    new one, and writers started together do not share a temporary name.
    """
    path = Path(path)
    tmp = temporary_path(path)
    # os.open, not tempfile: the file gets the permissions the umask allows, as open() would give it.
    handle = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def default_cache_dir() -> Path:
    """The user's cache folder for landmarks: crops and compiled kernels."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "landmarks"
