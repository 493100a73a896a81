"""Atomic, weights-only checkpoints.

A checkpoint is written to a temporary file in the same directory, flushed to disk with fsync and
renamed into place, so a crash leaves either the old file or the new one, never half of one.
Loading uses ``torch.load(weights_only=True)``: a checkpoint holds tensors and plain containers
only, and a crafted pickle cannot run code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ppl_models.atomic import atomic_write

_NAME = re.compile(r"^epoch-(\d+)\.pt$")


def checkpoint_path(directory: Path, epoch: int) -> Path:
    """The file name of the checkpoint taken after ``epoch`` epochs."""
    return Path(directory) / f"epoch-{epoch:04d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of every checkpoint in ``directory``, oldest first."""
    found = []
    if Path(directory).is_dir():
        for p in Path(directory).iterdir():
            m = _NAME.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(directory: Path, epoch: int, state: dict[str, Any], keep: int) -> Path:
    """Write ``state`` as the checkpoint of ``epoch`` and delete all but the newest ``keep``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(directory, epoch)
    atomic_write(path, lambda f: torch.save(state, f))
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (weights only), with an error that names a corrupt file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ValueError(f"checkpoint {path} is corrupt or not a ppl-models checkpoint: {e}") from e


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None
