"""One writer per run directory: an advisory lock on ``RUN/.lock`` held while a run trains.

``fcntl.flock`` locks belong to the open file, so the operating system releases them when the
holder exits for any reason (SIGKILL included): a dead run never leaves a stale lock. The file
also records the holder's process id, to name it in the error a second writer gets. Readers (eval,
sample, diagnose) take no lock and keep working while a run trains.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RunLocked(OSError):
    """Another process is writing the run directory."""


@contextmanager
def run_lock(directory: str | Path) -> Iterator[Path]:
    """Hold the write lock of the run ``directory`` (created if missing) inside the block.

    Raises:
        RunLocked: another process holds it; the message names the run and the holder's pid.
        OSError: the directory cannot be created or written, naming it.
    """
    directory = Path(directory)
    path = directory / ".lock"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OSError(f"cannot write the run directory {directory}: {e.strerror or e}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLocked(f"run {directory} is being written by process {holder} (lock {path}); wait for it "
                            f"to finish, or stop it and use --resume") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
