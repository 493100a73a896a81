"""Atomic, weights-only checkpoints, named by the training step they were taken after.

A checkpoint is written to a temporary file in the same directory, flushed to disk with fsync and
renamed into place, so a crash (even SIGKILL) leaves either the old file or the new one, never
half of one. Older checkpoints are deleted only after the new one is in place. Loading uses
``torch.load(weights_only=True)``: a checkpoint holds tensors and plain containers only, and a
crafted pickle cannot run code. A checkpoint that cannot be read (truncated, corrupt, foreign) is
skipped with a warning naming it, and the previous good one is used.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ppl_models.atomic import atomic_write

_NAME = re.compile(r"^step-(\d+)\.pt$")
REQUIRED_KEYS = ("model", "optimizer", "rng", "epoch", "step")  # what every training checkpoint holds
BEST = "best.pt"  # the checkpoint of the epoch with the best validation bound (ppl_models.train.best)


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it could not be read; an older one is used instead."""


def checkpoint_path(directory: Path, step: int) -> Path:
    """The file name of the checkpoint taken after ``step`` training steps."""
    return Path(directory) / f"step-{step:08d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``directory``, oldest first."""
    found = []
    if Path(directory).is_dir():
        for p in Path(directory).iterdir():
            m = _NAME.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(directory: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``step``, then delete all but the newest ``keep``.

    Raises:
        OSError: the file could not be written (disk full, no permission); the message names it and
            says that the previous checkpoints are untouched.
    """
    directory = Path(directory)
    path = _write(checkpoint_path(directory, step), state)
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_best(directory: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``directory/best.pt``, atomically; the keep-last-N cleanup never deletes it,
    and resuming never reads it (its name is not a step's)."""
    return _write(Path(directory) / BEST, state)


def _write(path: Path, state: dict[str, Any]) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save(state, f))
    except OSError as e:
        previous = latest_checkpoint(path.parent)
        kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise OSError(f"cannot write checkpoint {path}: {e.strerror or e}; {kept}. Free space or fix the "
                      f"permissions, then continue with --resume") from e
    return path


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete the temporary files that a killed process left half-written in ``directory``; return them."""
    stale = sorted([*Path(directory).glob(".step-*.pt.*.tmp"), *Path(directory).glob(f".{BEST}.*.tmp")]
                   if Path(directory).is_dir() else [])
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights only), with an error that names a corrupt or foreign file.

    The zip records' CRC-32 sums are checked first: torch does not check them, and a flipped bit
    would otherwise load silently as a changed number (``tests/train/test_checkpoint_fuzz.py``).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"record {bad} fails its CRC-32 check")
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated, corrupt or unsafe files
        raise ValueError(f"checkpoint {path} is corrupt or not a ppl-models checkpoint: {_reason(path, e)}") from e
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} is not a ppl-models checkpoint: it lacks {', '.join(missing)}")
    return state


def _reason(path: Path, error: Exception) -> str:
    """A one-line reason for a failed load (torch's weights-only errors span many lines and suggest
    loading with full pickle, which this project never does)."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        return "the file is empty"
    if isinstance(error, zipfile.BadZipFile):
        return f"it is not a complete torch zip file (truncated?): {error}"
    text = str(error)
    if "Weights only load failed" in text:
        detail = text.split("WeightsUnpickler error:")[-1].strip().splitlines()
        return (f"a weights-only load refused it ({detail[0] if detail else 'unsupported content'}); it holds "
                f"something other than tensors and plain containers, and is never unpickled in full")
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint file in ``directory`` (readable or not), or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def load_latest(directory: Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that loads, as ``(path, state)``; None if there is none.

    Unreadable checkpoints are skipped newest first, each with a :class:`CheckpointWarning` that
    names it and the one used instead.

    Raises:
        ValueError: checkpoints exist but none loads; the message lists each file and its problem.
    """
    problems = []
    for _, path in reversed(list_checkpoints(directory)):
        try:
            state = load_checkpoint(path, map_location)
        except ValueError as e:
            problems.append(str(e))
            continue
        for problem in problems:
            warnings.warn(f"{problem}; falling back to {path.name}", CheckpointWarning, stacklevel=2)
        return path, state
    if problems:
        raise ValueError("no checkpoint in " + str(directory) + " can be loaded:\n  " + "\n  ".join(problems))
    return None
