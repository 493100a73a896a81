"""Atomic file creation: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

_UMASK = os.umask(0)  # reading the umask means setting it: read it once, at import, and put it back
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Create ``path`` atomically: ``write(fileobj)`` fills a temp file that is fsynced and renamed.

    The file gets the permissions a plain ``open(path, "w")`` would give (0666 less the umask), not
    the 0600 of the temporary file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_savefig(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write the matplotlib figure ``fig`` as a PNG at ``path`` atomically, creating its folder."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path
