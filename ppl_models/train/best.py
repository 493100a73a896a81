"""The best checkpoint, early stopping, and which checkpoint a reader loads.

At each epoch's end the trainer computes the validation bounds (:func:`validation_bounds`:
``valid_elbo``, and ``valid_iwae``, the IWAE-K bound of the trained K, for ``--objective iwae``) and
tracks the best epoch of the *trained objective's* bound (:func:`monitored`). Every run keeps that
epoch's checkpoint as ``RUN/checkpoints/best.pt``: the same state as its ``step-N.pt``, written with
the same atomic writer right after it, never deleted by the keep-last-N cleanup, and never read by
``--resume`` (which always continues from the newest ``step-N.pt``). ``--early-stop P`` ends
training once P epochs in a row have not improved on the best bound.

The tracker (best bound, its epoch and step) is part of every checkpoint, so a resumed run keeps
counting exactly; :func:`reconcile_best` repairs ``best.pt`` after a crash between the two writes.
Readers (``ppl eval``, ``sample``, ``probe``, ``diagnose``, :class:`~ppl_models.train.run.RunDir`'s
``load_model``) load ``best.pt`` by default when it exists (:func:`choose_checkpoint`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ppl_models.models.protocol import has_likelihood
from ppl_models.train.distributed import World
from ppl_models.train.checkpoint import (BEST, CheckpointWarning, checkpoint_path, load_checkpoint, load_latest,
                                         save_best)

CHECKPOINT_CHOICES = ("best", "latest")  # besides a file path


def monitored(tc) -> str:
    """The metrics column whose best value picks ``best.pt`` and drives early stopping (the trained objective's)."""
    return "valid_iwae" if tc.objective == "iwae" else "valid_elbo"


def validation_bounds(model, data, guide_for: Callable, tc, world: World = World()) -> dict[str, float]:
    """Mean validation bounds in nats per point: ``valid_elbo``, plus ``valid_iwae`` (the IWAE-K bound,
    K = ``tc.particles``, from the same K draws, whose mean log w is then the ELBO) for iwae runs.
    Read back to the host once. NaN for a model without likelihood (:func:`~ppl_models.models.protocol.has_likelihood`).
    Under torchrun (``world``) each rank bounds its contiguous share of the split and the sums are all-reduced."""
    from ppl_models.evaluate.likelihood import per_datapoint_bounds  # evaluate reads run directories: import late

    iwae = tc.objective == "iwae"
    if not has_likelihood(model):  # an implicit model (a GAN without observation model): no bound exists
        return {"valid_elbo": math.nan, **({"valid_iwae": math.nan} if iwae else {})}
    k = tc.particles if iwae else 1
    x, y = data.valid_x, data.valid_y
    if world.size > 1:
        x, y = world.shard(x), None if y is None else world.shard(y)
    elbo, log_px = per_datapoint_bounds(model, x, k, batch_size=1000 if k == 1 else 200, guide_for=guide_for, y=y)
    if world.size == 1:
        values = torch.stack([elbo.mean(), log_px.mean()] if iwae else [elbo.mean()]).tolist()
    else:
        n = torch.tensor(float(x.shape[0]), device=elbo.device)
        total_elbo, total_log_px, count = world.sum(torch.stack([elbo.sum(), log_px.sum(), n])).tolist()
        values = [total_elbo / count, total_log_px / count] if iwae else [total_elbo / count]
    return dict(zip(("valid_elbo", "valid_iwae"), values))


class BestTracker:
    """The best validation bound so far, and the epoch and step it was reached at."""

    def __init__(self, epoch: int = 0):
        self.bound, self.epoch, self.step = -math.inf, epoch, None

    def update(self, bound: float, epoch: int, step: int) -> bool:
        """Record epoch ``epoch``'s bound; True if it is a new best (strictly better; NaN never is)."""
        if bound > self.bound:
            self.bound, self.epoch, self.step = bound, epoch, step
            return True
        return False

    def exhausted(self, patience: int | None, epochs_done: int) -> bool:
        """Whether ``patience`` epochs have passed without a new best (never with ``patience=None``)."""
        return patience is not None and epochs_done - self.epoch >= patience

    def describe_stop(self, patience: int, key: str, epochs_done: int, path: Path) -> str:
        """The line an early stop prints and logs."""
        return (f"early stop after epoch {epochs_done}: {key} has not improved for {patience} epochs (best "
                f"{self.bound:.4f} nats at epoch {self.epoch}, kept in {path})")

    def state_dict(self) -> dict[str, Any]:
        """Plain values for the checkpoint."""
        return {"bound": self.bound, "epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict[str, Any] | None, epochs_done: int) -> None:
        """Restore :meth:`state_dict` output; a checkpoint older than best tracking starts afresh at ``epochs_done``."""
        if state is None:
            self.__init__(epochs_done)
        else:
            self.bound, self.epoch, self.step = state["bound"], state["epoch"], state["step"]


def _step_of(path: Path) -> int | None:
    try:
        return int(load_checkpoint(path)["step"]) if path.exists() else None
    except ValueError:
        return None


def reconcile_best(directory: Path, state: dict[str, Any], event: Callable[[str], None]) -> None:
    """After resuming from ``state``: make ``best.pt`` hold the tracker's best step again.

    A run killed between an epoch's ``step-N.pt`` and its ``best.pt`` resumes from a state whose
    best step is N: ``best.pt`` is written from it (or from ``step-M.pt`` for an older best M, if it
    is still kept). A ``best.pt`` newer than the state (its ``step-N.pt`` was unreadable, so an older
    one was resumed) belongs to a future that the resumed run replays; it is removed if it cannot
    be restored, and rewritten when that epoch ends as best again.
    """
    directory = Path(directory)
    tracked, have = (state.get("best") or {}).get("step"), _step_of(directory / BEST)
    if tracked == have:
        return
    source = state if tracked is not None and tracked == state["step"] else None
    if source is None and tracked is not None and checkpoint_path(directory, tracked).exists():
        try:
            source = load_checkpoint(checkpoint_path(directory, tracked))
        except ValueError:
            source = None
    if source is not None:
        save_best(directory, source)
        event(f"{BEST} restored from the checkpoint of step {tracked}, the best epoch so far")
    elif have is not None and have > state["step"]:
        (directory / BEST).unlink(missing_ok=True)
        event(f"removed {BEST} of step {have}: it is newer than the checkpoint resumed from (step {state['step']})")


@dataclass(frozen=True)
class CheckpointChoice:
    """The checkpoint a reader loaded, and why."""

    path: Path  # the file loaded
    kind: str  # best | latest | file
    step: int  # training steps it was taken after
    epoch: int  # epochs done at that step
    note: str  # why this one, in words

    def describe(self) -> str:
        """One line for ``ppl eval``."""
        return f"checkpoint {self.path} (step {self.step}, epoch {self.epoch}: {self.note})"


def choose_checkpoint(directory: Path, which: str = "best",
                      map_location: str | torch.device = "cpu") -> tuple[CheckpointChoice, dict[str, Any]] | None:
    """The checkpoint ``which`` of a run's ``checkpoints/`` directory as ``(choice, state)``; None if it has none.

    ``best``: ``best.pt`` if it exists and loads (an unreadable one is a :class:`CheckpointWarning`),
    else the newest loadable ``step-N.pt``; ``latest``: the newest loadable ``step-N.pt``; anything
    else is a checkpoint file, as given or inside ``directory``, loaded weights-only as every checkpoint.

    Raises:
        FileNotFoundError: a checkpoint file that does not exist.
        ValueError: a file or every ``step-N.pt`` that cannot be loaded.
    """
    directory = Path(directory)
    note = "the newest checkpoint"
    if which not in CHECKPOINT_CHOICES:
        path = Path(which).expanduser()
        path = path if path.is_file() or not (directory / which).is_file() else directory / which
        if not path.is_file():
            raise FileNotFoundError(f"--checkpoint {which}: no such checkpoint file (nor in {directory}); give best, "
                                    f"latest or a checkpoint file")
        state = load_checkpoint(path, map_location)
        return CheckpointChoice(path, "file", state["step"], state["epoch"], "the file asked for"), state
    if which == "best":
        path, note = directory / BEST, f"no {BEST} in this run: the newest checkpoint"
        if path.exists():
            try:
                state = load_checkpoint(path, map_location)
                return CheckpointChoice(path, "best", state["step"], state["epoch"], "the best validation bound"), state
            except ValueError as e:
                warnings.warn(f"{e}; falling back to the newest checkpoint", CheckpointWarning, stacklevel=2)
                note = f"{BEST} unreadable: the newest checkpoint"
    loaded = load_latest(directory, map_location)
    if loaded is None:
        return None
    path, state = loaded
    return CheckpointChoice(path, "latest", state["step"], state["epoch"], note), state
