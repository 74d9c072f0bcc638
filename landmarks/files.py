"""Writing files whole or not at all, never over a command's own inputs, and where cached files go."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import UsageError


def temporary_path(path: Path) -> Path:
    """A hidden name of its own beside ``path``, to write to and then rename over it. It keeps
    the suffix, which some writers (a video's container) choose their format by."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(8)}.tmp{path.suffix}")


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


class PartFile:
    """A file written under a temporary name and renamed to ``path`` by ``finish``, or removed by
    ``discard``: for outputs written over a while (a video, JSON lines), so that an interrupted
    run leaves no cut-off file under the final name."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.part = temporary_path(self.path)

    def finish(self) -> Path:
        if self.part.exists():
            os.replace(self.part, self.path)
        return self.path

    def discard(self) -> None:
        self.part.unlink(missing_ok=True)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path (links, ``./x``, ``..``), or
    where both exist the same file by any other name (a hard link, a second mount)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


class Outputs:
    """What one command reads, and the one gate its outputs pass: an output that is one of the
    command's inputs, by any name, is refused before anything is written.

    A command names each input with its flag (``reads``) before it writes; each writer asks
    ``check`` (or writes through ``write_bytes`` / ``write_text``) with its own flag.
    """

    def __init__(self):
        self._inputs: list[tuple[str, Path]] = []
        self._outputs: list[tuple[str, Path]] = []

    def reads(self, flag: str, *paths) -> None:
        """Record ``paths`` (None ones are skipped) as what ``flag`` gave the command to read."""
        self._inputs += [(flag, Path(path)) for path in paths if path is not None]

    def input_flag(self, path) -> str | None:
        """The flag whose input ``path`` is, or None."""
        return next((flag for flag, given in self._inputs if same_file(Path(path), given)), None)

    def check(self, flag: str, path) -> Path:
        """``path`` as an output of ``flag``; a UsageError (exit 2) if the command reads it, or
        another of its outputs (another flag's) is written there."""
        path = Path(path)
        source = self.input_flag(path)
        if source is not None:
            raise UsageError(f"{flag} {path} is the {source} input; choose another path")
        other = next((given for given, out in self._outputs if given != flag and same_file(path, out)), None)
        if other is not None:
            raise UsageError(f"{flag} {path} is also the {other} output; choose another path")
        self._outputs.append((flag, path))
        return path

    def write_bytes(self, flag: str, path, data: bytes) -> Path:
        """Write ``data`` whole to ``path`` (created folders and all) after ``check``."""
        path = self.check(flag, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as handle:
            handle.write(data)
        return path

    def write_text(self, flag: str, path, text: str) -> Path:
        return self.write_bytes(flag, path, text.encode("utf-8"))


def default_cache_dir() -> Path:
    """The user's cache folder for landmarks: crops and compiled kernels."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "landmarks"
