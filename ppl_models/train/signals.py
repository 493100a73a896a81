"""Graceful stopping: SIGINT or SIGTERM ends training after the current step, with a checkpoint.

Inside :class:`GracefulStop` the first SIGINT (Ctrl-C) or SIGTERM (what schedulers and ``kill``
send) only sets a flag; the training loop polls it after every step (a Python attribute, no device
sync), finishes the step, writes a checkpoint and raises :class:`TrainingStopped`. The original
handlers are put back as soon as the first signal arrives, so a second Ctrl-C interrupts at once;
the atomic checkpoint writes keep the files on disk intact even then.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """Training was stopped by a signal after writing a checkpoint; ``--resume`` continues it.

    Args:
        signum: the signal received.
        step: the last completed step.
        checkpoint: the checkpoint written.
        writer: whether this process wrote it (under torchrun only rank 0 does, and only it reports the stop).
    """

    def __init__(self, signum: int, step: int, checkpoint: Path, writer: bool = True):
        self.signum, self.step, self.checkpoint, self.writer = signum, step, checkpoint, writer
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; checkpoint {checkpoint} "
                         f"written; continue with --resume")


class GracefulStop:
    """Context manager turning SIGINT/SIGTERM into a polled request. Outside the main thread (where
    Python cannot install handlers) it does nothing and ``requested`` stays None."""

    def __init__(self):
        self.requested: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.requested = signum
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
