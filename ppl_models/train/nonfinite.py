"""Catching non-finite losses and gradients, and naming where they came from.

Training checks for trouble cheaply: the loss is summed on the device and, every ``log_every``
steps, read back together with one flag saying whether every parameter is still finite (a non-finite
gradient turns parameters non-finite at the next optimizer step). That is one host sync per
interval, not one per step.

When a check fails the loop rolls back to the last good checkpoint and replays the steps up to the
failure *carefully*: each step is traced with :class:`SiteCheck`, which records the first sample
site whose value, log-density or distribution parameters are non-finite, and :class:`StepHooks`
checks the gradients before the optimizer step and the parameters after it. The first finding is
what the error names.
"""

from __future__ import annotations

from typing import Iterable

import torch
from pyro.poutine.messenger import Messenger


class NonFiniteError(FloatingPointError):
    """Training stopped on a non-finite loss, gradient or parameter (after rolling back)."""


class NonFinite(Exception):
    """Raised inside the loop when a check fails; the loop recovers or turns it into NonFiniteError.

    Args:
        first, last: the steps (1-based) between which the problem appeared.
        what: what was seen, e.g. "the loss summed over the interval is nan".
        diagnosed: True when a careful step pinned the problem to one step and one site or parameter.
    """

    def __init__(self, first: int, last: int, what: str, diagnosed: bool = False):
        super().__init__(what)
        self.first, self.last, self.what, self.diagnosed = first, last, what, diagnosed

    def describe(self) -> str:
        """One sentence for users."""
        where = f"step {self.last}" if self.first == self.last else f"steps {self.first}-{self.last}"
        return f"{where}: {self.what}"


def _kind(t: torch.Tensor) -> str:
    return "nan" if bool(torch.isnan(t).any()) else "inf"


def all_finite(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """A 0-dim bool tensor on the tensors' device: whether every element of every tensor is finite.
    Nothing is read back to the host."""
    flags = [torch.isfinite(t).all() for t in tensors]
    return torch.stack(flags).all() if flags else torch.tensor(True)


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor | None]]) -> str | None:
    """The name of the first tensor with a non-finite element, with ``nan`` or ``inf``; None if all are
    finite (or None). Syncs once per tensor: for careful steps only."""
    for name, t in named:
        if t is not None and not bool(torch.isfinite(t).all()):
            return f"{name!r} ({_kind(t)})"
    return None


def _distribution_problems(fn) -> str:
    """Which parameters of a distribution are non-finite (or non-positive, for a scale)."""
    while hasattr(fn, "base_dist"):  # Independent, Masked, Expanded wrappers
        fn = fn.base_dist
    found = []
    for name in getattr(fn, "arg_constraints", {}):
        value = fn.__dict__.get(name)  # only parameters given (or cached); never compute one
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                found.append(f"{name} has {_kind(value)} values")
            elif name == "scale" and not bool((value > 0).all()):
                found.append(f"scale has values <= 0 (min {value.min().item():.3g})")
    return f"; its {type(fn).__name__} distribution's " + " and ".join(found) if found else ""


class SiteCheck(Messenger):
    """Records the first sample site whose value or log-density is non-finite, in execution order
    (guide sites come before the model's in an SVI step). Adds one ``log_prob`` per site: used only
    for the careful replay of a failed interval."""

    def __init__(self):
        super().__init__()
        self.finding: str | None = None

    def _postprocess_message(self, msg: dict) -> None:
        if msg["type"] != "sample" or self.finding is not None or msg["fn"] is None:
            return
        value, name = msg["value"], msg["name"]
        role = "observed site" if msg["is_observed"] else "latent site"
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            self.finding = f"{role} {name!r}: its value has {_kind(value)}{_distribution_problems(msg['fn'])}"
            return
        with torch.no_grad():
            try:
                log_prob = msg["fn"].log_prob(value)
            except (ValueError, RuntimeError):
                return
        if not bool(torch.isfinite(log_prob).all()):
            self.finding = (f"{role} {name!r}: its log-density is {_kind(log_prob)}"
                            f"{_distribution_problems(msg['fn'])}")


class StepHooks:
    """Optimizer hooks: clip the gradient norm (``grad_clip``) and, on careful steps, record the first
    parameter whose gradient is non-finite before the step or whose value is after it.

    Args:
        module: the trained module (parameter names come from it).
        optimizer: the optimizer to hook.
        grad_clip: maximum global gradient norm, or None.
    """

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float | None):
        self.named = list(module.named_parameters())
        self.params = [p for _, p in self.named]
        self.grad_clip = grad_clip
        self.careful = False
        self.finding: str | None = None
        optimizer.register_step_pre_hook(self._before)
        optimizer.register_step_post_hook(self._after)

    def _before(self, optimizer, args, kwargs) -> None:
        if self.careful and self.finding is None:
            bad = first_nonfinite((n, p.grad) for n, p in self.named)
            if bad:
                self.finding = f"the gradient of parameter {bad} (the loss itself was finite)"
        if self.grad_clip is not None:  # non-finite norms propagate, and the checks catch them
            torch.nn.utils.clip_grad_norm_([p for p in self.params if p.grad is not None], self.grad_clip)

    def _after(self, optimizer, args, kwargs) -> None:
        if self.careful and self.finding is None:
            bad = first_nonfinite(self.named)
            if bad:
                lr = optimizer.param_groups[0]["lr"]
                self.finding = f"parameter {bad} after the optimizer step (lr {lr:g})"

