"""The execution plan's minimal, fixed handler: stand-ins for ``pyro.sample`` and ``pyro.plate``.

Pyro runs every ``pyro.sample`` through a stack of messengers (trace, replay, broadcast, plate), each
a Python object that reads and writes a message dict. That generality costs about 0.4 ms a step, and
``torch.compile`` cannot trace through the ``Message`` TypedDict. Once a model and guide are known to
need only sampling, replaying, plate broadcasting and log-densities (``plan.py`` checks this against
Pyro's own traces), this module does exactly that and nothing else:

- :meth:`MinimalHandler.sample` broadcasts the distribution over the active plates as Pyro's
  ``BroadcastMessenger`` does, then returns the observed value, the guide's value (when replaying),
  or a fresh ``fn(...)`` draw (``rsample`` for a reparameterized distribution, as Pyro calls it), and
  records the site in a :class:`PlanTrace` with the fields the objectives read;
- :meth:`MinimalHandler.plate` is a context that adds one batch dimension (the next free dim from the
  right, as Pyro allocates it) and yields the indices ``arange(size)``;
- :func:`installed` swaps both into ``pyro`` and ``pyro.primitives`` for the duration of a step, so the
  model's own Python code (its control flow included) runs unchanged each step.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pyro
import pyro.primitives
import torch


@dataclass(frozen=True)
class Frame:
    """One active plate: what Pyro's ``CondIndepStackFrame`` tells the objectives (the data plate is dim -1)."""

    name: str  # the plate's name
    dim: int  # its batch dimension, negative
    size: int  # its size


class PlanTrace:
    """The part of a Pyro trace the objectives read: ``nodes``, site name -> site dict, in execution order."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}


class UnsupportedSite(RuntimeError):
    """A site the minimal handler does not implement (the plan then falls back to the Pyro path)."""


class MinimalHandler:
    """Samples, replays and records sites; see the module docstring."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.trace = PlanTrace()
        self.replay: PlanTrace | None = None

    def run(self, fn, *args, replay: PlanTrace | None = None, **kwargs) -> PlanTrace:
        """Execute ``fn(*args, **kwargs)`` (a model or guide) and return its trace; with ``replay``, latent
        sites take that trace's values, as ``poutine.replay``."""
        self.trace, self.replay = PlanTrace(), replay
        fn(*args, **kwargs)
        trace, self.replay = self.trace, None
        return trace

    def sample(self, name: str, fn, *args, obs: torch.Tensor | None = None, obs_mask=None, infer=None, **kwargs):
        """The stand-in for ``pyro.sample``: broadcast, then observe, replay or draw, and record."""
        if obs_mask is not None:
            raise UnsupportedSite(f"site {name!r} has an obs_mask")
        if name in self.trace.nodes:
            raise UnsupportedSite(f"site {name!r} is sampled twice")
        fn = self._broadcast(name, fn)
        if obs is not None:
            value, observed = obs, True
        elif self.replay is not None and name in self.replay.nodes:
            value, observed = self.replay.nodes[name]["value"], False
        else:
            value, observed = fn(*args, **kwargs), False
        self.trace.nodes[name] = {"type": "sample", "name": name, "fn": fn, "value": value, "is_observed": observed,
                                  "scale": 1.0, "mask": None, "infer": infer or {},
                                  "cond_indep_stack": tuple(self.frames)}  # outermost first, as Pyro's
        return value

    def plate(self, name: str, size: int | None = None, subsample_size: int | None = None, subsample=None,
              dim: int | None = None, **kwargs) -> "_Plate":
        """The stand-in for ``pyro.plate`` (a full plate only: subsampling is a Pyro-path feature)."""
        if subsample is not None or (subsample_size is not None and subsample_size != size):
            raise UnsupportedSite(f"plate {name!r} subsamples")
        if size is None:
            raise UnsupportedSite(f"plate {name!r} has no size")
        return _Plate(self, name, int(size), dim)

    def _broadcast(self, name: str, fn):
        """``fn`` expanded over the active plates, exactly as Pyro's ``BroadcastMessenger._pyro_sample``."""
        actual = fn.batch_shape
        target: list[int | None] = [None if size == 1 else size for size in actual]
        for frame in self.frames:
            target = [None] * (-frame.dim - len(target)) + target
            if target[frame.dim] is not None and target[frame.dim] != frame.size:
                raise ValueError(f"Shape mismatch inside plate('{frame.name}') at site {name} dim {frame.dim}, "
                                 f"{frame.size} vs {target[frame.dim]}")
            target[frame.dim] = frame.size
        for i in range(-len(target) + 1, 1):
            if target[i] is None:
                target[i] = actual[i] if len(actual) >= -i else 1
        if tuple(target) == tuple(actual):
            return fn
        expanded = fn.expand(target)
        if expanded.has_rsample != fn.has_rsample:
            expanded.has_rsample = fn.has_rsample
        return expanded


class _Plate:
    """A plate context of :class:`MinimalHandler`."""

    def __init__(self, handler: MinimalHandler, name: str, size: int, dim: int | None):
        self.handler, self.name, self.size, self.dim = handler, name, size, dim

    def __enter__(self) -> torch.Tensor:
        used = {f.dim for f in self.handler.frames}
        dim = self.dim
        if dim is None:
            dim = -1
            while dim in used:
                dim -= 1
        elif dim in used:
            raise ValueError(f"plate {self.name!r}: dim {dim} is already used by another plate")
        self.handler.frames.append(Frame(self.name, dim, self.size))
        return torch.arange(self.size)

    def __exit__(self, *exc) -> None:
        self.handler.frames.pop()

    def __iter__(self):
        raise UnsupportedSite(f"plate {self.name!r} is used as a sequential (iterated) plate")


@contextmanager
def installed(handler: MinimalHandler) -> Iterator[MinimalHandler]:
    """Route ``pyro.sample`` and ``pyro.plate`` (and ``pyro.primitives``'s, which ``pyro.factor`` and
    ``pyro.deterministic`` call) to ``handler`` inside the block; Pyro's own are restored after."""
    saved = (pyro.sample, pyro.plate, pyro.primitives.sample, pyro.primitives.plate)
    pyro.sample = pyro.primitives.sample = handler.sample
    pyro.plate = pyro.primitives.plate = handler.plate
    try:
        yield handler
    finally:
        pyro.sample, pyro.plate, pyro.primitives.sample, pyro.primitives.plate = saved
