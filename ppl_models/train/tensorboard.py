"""``--tensorboard``: per-epoch summaries of a training run under ``RUN/tensorboard/``.

Each epoch adds, at the global step the epoch ended on (the ``step`` column of ``metrics.csv``):

- ``loss/train``: the epoch's train loss and ``elbo/valid``: the validation ELBO, both exactly the
  values of that epoch's ``metrics.csv`` row (nats per data point);
- ``lr``: the learning rate of the optimizer at the epoch's end;
- ``grad_norm``: the mean over the epoch's optimizer steps of the global L2 norm of all gradients,
  taken before ``--grad-clip`` clips them. Each step adds its norm to a sum kept on the device (no
  host sync per step); the sum is read back once, at the epoch's end. After a mid-epoch resume or a
  rollback the mean covers the steps taken since then;
- ``samples/mean``: a grid of 64 decoder means, drawn as ``samples/mean.png`` is (one column per
  class for label-conditioned models; inputs a model needs to sample come from the validation
  split). Vector data get no image.

Logging does not change training: the grid is drawn in eval mode without gradients, under a saved
and restored random state, and the gradient norm only reads the gradients, so a run trains bit for
bit as it would without ``--tensorboard``. TensorBoard is an optional dependency
(``pip install "ppl-models[tensorboard]"``); :func:`require_tensorboard` refuses the flag with that
hint when it is missing, before anything is trained or written.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ppl_models.evaluate.samples import grid_columns, image_grid, sample_observations
from ppl_models.rng import restored_rng

INSTALL_HINT = 'pip install "ppl-models[tensorboard]" (or pip install tensorboard)'
GRID_SAMPLES = 64  # decoder means in each epoch's sample grid, as in samples/mean.png


class TensorBoardMissing(ModuleNotFoundError, ValueError):
    """``--tensorboard`` without the ``tensorboard`` package (a ValueError too: a user error)."""


def require_tensorboard() -> type:
    """``torch.utils.tensorboard.SummaryWriter``; :class:`TensorBoardMissing` with the install hint
    if the ``tensorboard`` package cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise TensorBoardMissing(f"--tensorboard needs the tensorboard package, which is not installed ({e}); "
                                 f"install it with {INSTALL_HINT}") from e
    return SummaryWriter


class TensorBoardLog:
    """Per-epoch TensorBoard summaries of one training run (see the module docstring).

    Constructing it checks that TensorBoard is installed and hooks the optimizer, but writes
    nothing; the event file is opened at the first :meth:`log_epoch`. Create it before any other
    optimizer step pre-hook (gradient clipping) so the norm is the one before clipping.

    Args:
        directory: where the event files go (``RUN/tensorboard``).
        optimizer: the training optimizer; every step adds the gradient norm of ``params``.
        params: the trained parameters.
        data: the split :func:`~ppl_models.evaluate.samples.sample_inputs` may draw from (or None).
    """

    def __init__(self, directory: str | Path, optimizer: torch.optim.Optimizer, params, data=None):
        self._writer_cls = require_tensorboard()
        self.directory, self.data = Path(directory), data
        self.params = list(params)
        self.writer = None
        self.norm_sum: torch.Tensor | None = None
        self.norm_steps = 0
        optimizer.register_step_pre_hook(self._add_grad_norm)

    def _add_grad_norm(self, optimizer, args, kwargs) -> None:
        grads = [p.grad.detach() for p in self.params if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g).float() for g in grads]))
            self.norm_sum = norm if self.norm_sum is None else self.norm_sum + norm
            self.norm_steps += 1

    def reset_grad_norm(self) -> None:
        """Forget the steps summed so far (after a rollback or resume and at each epoch's end)."""
        self.norm_sum, self.norm_steps = None, 0

    def log_epoch(self, step: int, train_loss: float, valid_elbo: float, lr: float, model: torch.nn.Module) -> None:
        """Write one epoch's scalars and sample grid at global step ``step``, then flush."""
        if self.writer is None:  # purge_step: drop what a killed process logged after its last checkpoint
            self.directory.mkdir(parents=True, exist_ok=True)
            self.writer = self._writer_cls(log_dir=str(self.directory), purge_step=step)
        self.writer.add_scalar("loss/train", train_loss, step)
        self.writer.add_scalar("elbo/valid", valid_elbo, step)
        self.writer.add_scalar("lr", lr, step)
        if self.norm_sum is not None:
            self.writer.add_scalar("grad_norm", (self.norm_sum / self.norm_steps).item(), step)
        self.reset_grad_norm()
        grid = self._sample_grid(model)
        if grid is not None:
            self.writer.add_image("samples/mean", grid, step, dataformats="HW")
        self.writer.flush()

    def _sample_grid(self, model: torch.nn.Module) -> torch.Tensor | None:
        """Decoder means as a grid ``[H, W]`` in [0, 1], or None for vector data; random states and the
        module's mode are restored, so training goes on exactly as without it."""
        training = model.training
        try:
            model.eval()
            with restored_rng():
                samples = sample_observations(model, GRID_SAMPLES, mean=True, data=self.data)
        finally:
            model.train(training)
        if samples.dim() != 3:  # vectors [n, D] (and other shapes) are not images
            return None
        return image_grid(samples.detach().float().cpu(), grid_columns(model))

    def close(self) -> None:
        """Flush and close the event file (if one was opened)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "TensorBoardLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
