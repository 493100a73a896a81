"""How many data points and importance samples one pass of a likelihood estimate takes.

The importance-sampled log p(x) (:func:`ppl_models.evaluate.likelihood.bounds_table`) runs the guide
and the model on ``batch_size`` data points times ``particle_chunk`` draws at once. Its memory grows
with that product, the number of *units* (data point x particle) in a pass, and so does the work one
kernel launch does: on a GPU, a few large passes run far faster than thousands of 100 x 100 ones,
each paying Python's and Pyro's fixed cost (Burda et al. 2015 evaluate with K = 5000; at 100 x 100
that is 5000 passes over the 10,000 MNIST test images).

On a CUDA device the sizes come from free memory: one probe pass measures the peak bytes per unit
(``torch.cuda.max_memory_allocated``), and :func:`size_chunks`, a pure function, fits
``safety`` x free bytes with as many particles per pass as K allows, then as many data points as
fit, both split evenly. On the CPU nothing is probed: the defaults (100 x 100) stay, so CPU
results are those of a fixed chunking, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Protocol

import torch

from ppl_models.models.protocol import bind_labels
from ppl_models.objectives.log_weights import log_importance_weights
from ppl_models.rng import restored_rng

DEFAULT_BATCH = 100  # data points per pass where memory is not measured (the CPU), as before
DEFAULT_PARTICLES = 100  # importance samples per pass there
SAFETY = 0.5  # fraction of the free bytes a sized pass may fill (the rest: fragmentation, other tensors)
MAX_UNITS = 1 << 21  # at most this many data point x particle units per pass (launch cost is long amortized)
MAX_ELEMENTS = (1 << 31) - 1  # and at most this many observation elements per pass (32-bit indexable)
PROBE_POINTS = 64  # data points of the probe pass
PROBE_PARTICLES = 64  # particles of the probe pass


@dataclass(frozen=True)
class Chunks:
    """The pass sizes an evaluation uses, and how they were chosen."""

    batch_size: int  # data points per pass
    particle_chunk: int  # importance samples per pass
    how: str  # "defaults", "given", or "sized to free memory"
    bytes_per_unit: float | None = None  # measured peak bytes per data point x particle (sized only)
    free_bytes: int | None = None  # device bytes free when sized (sized only)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def even_split(n: int, cap: int) -> int:
    """The size of the pieces when ``n`` items are cut into as few pieces of at most ``cap`` as
    possible, made as equal as possible (so no last pass is a sliver)."""
    if n < 1 or cap < 1:
        raise ValueError(f"even_split needs n >= 1 and cap >= 1, got {n}, {cap}")
    pieces = -(-n // cap)
    return -(-n // pieces)


def size_chunks(free_bytes: int, bytes_per_unit: float, num_samples: int, num_points: int, *,
                batch_size: int | None = None, particle_chunk: int | None = None, safety: float = SAFETY,
                max_units: int = MAX_UNITS) -> tuple[int, int]:
    """``(batch_size, particle_chunk)`` whose product of units fits ``safety * free_bytes``.

    A size that is given is kept; the others are chosen: first particles (up to K, so one data
    point's draws take as few passes as possible), then data points (up to N) with what is left,
    each split evenly over its passes (:func:`even_split`). At least one unit always runs.

    Args:
        free_bytes: device memory free for the pass.
        bytes_per_unit: peak bytes one data point x particle needs (measured).
        num_samples: K, importance samples per data point.
        num_points: N, data points evaluated.
        batch_size: data points per pass, if fixed by the user.
        particle_chunk: particles per pass, if fixed by the user.
        safety: fraction of ``free_bytes`` to fill, in (0, 1].
        max_units: cap on data points x particles per pass.
    """
    if num_samples < 1 or num_points < 1:
        raise ValueError(f"num_samples and num_points must be at least 1, got {num_samples}, {num_points}")
    if not (bytes_per_unit > 0 and math.isfinite(bytes_per_unit)):
        raise ValueError(f"bytes_per_unit must be a finite number > 0, got {bytes_per_unit}")
    if not 0 < safety <= 1:
        raise ValueError(f"safety must lie in (0, 1], got {safety}")
    if max_units < 1:
        raise ValueError(f"max_units must be at least 1, got {max_units}")
    units = int(max(free_bytes, 0) * safety // bytes_per_unit)
    units = min(max(units, 1), max_units)
    if batch_size is not None and particle_chunk is not None:
        return batch_size, particle_chunk
    if particle_chunk is not None:
        return even_split(num_points, max(1, units // min(particle_chunk, num_samples))), particle_chunk
    if batch_size is not None:
        return batch_size, even_split(num_samples, max(1, units // min(batch_size, num_points)))
    particles = even_split(num_samples, units)
    return even_split(num_points, max(1, units // particles)), particles


class MemoryGauge(Protocol):
    """What sizing needs from a device: its free bytes, and the peak bytes a function allocates."""

    def free_bytes(self) -> int: ...

    def peak_bytes(self, fn: Callable[[], object]) -> int: ...


class CudaMemory:
    """:class:`MemoryGauge` of one CUDA device, through torch's caching allocator."""

    def __init__(self, device: torch.device):
        self.device = device

    def free_bytes(self) -> int:
        """Free device memory plus what this process's allocator holds cached but unused."""
        free, _ = torch.cuda.mem_get_info(self.device)
        return int(free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device))

    def peak_bytes(self, fn: Callable[[], object]) -> int:
        """Peak bytes allocated while ``fn`` runs, above what was allocated before it."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        fn()
        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device) - base)


@torch.no_grad()
def measure_bytes_per_unit(model, x: torch.Tensor, num_samples: int, memory: MemoryGauge,
                           y: torch.Tensor | None = None) -> float:
    """Peak bytes per data point x particle of one pass of log importance weights, measured on the
    first ``PROBE_POINTS`` points with ``PROBE_PARTICLES`` draws (fewer if N or K is smaller) after a
    one-draw warm-up (which allocates the kernels' workspaces). The model's own guide proposes;
    the random streams are put back afterwards, so the estimate draws what it would have drawn.
    The probe's fixed costs count as per-unit costs: the figure errs on the large side."""
    b, k = min(x.shape[0], PROBE_POINTS), min(num_samples, PROBE_PARTICLES)
    view = bind_labels(model, None if y is None else y[:b], evaluation=True)
    with restored_rng():
        log_importance_weights(view.model, view.guide, x[:b], num_particles=1)
        peak = memory.peak_bytes(lambda: log_importance_weights(view.model, view.guide, x[:b], num_particles=k))
    return max(peak, 1) / (b * k)


def eval_chunks(model, x: torch.Tensor, num_samples: int, *, batch_size: int | None = None,
                particle_chunk: int | None = None, y: torch.Tensor | None = None, memory: MemoryGauge | None = None,
                safety: float = SAFETY) -> Chunks:
    """The pass sizes of an importance-sampled evaluation of ``model`` on ``x`` with K = ``num_samples``.

    Sizes that are given are kept. The others are sized to free memory when ``memory`` is given or
    ``x`` lies on a CUDA device (:class:`CudaMemory`); elsewhere they are the defaults, 100 x 100.
    A model without latent sites (``exact_likelihood``) is sized for one draw per point, as
    :func:`~ppl_models.evaluate.likelihood.bounds_table` evaluates it.

    Args:
        model: a module with Pyro ``model`` and ``guide`` methods.
        x: the data ``[N, ...]``, on the evaluation's device.
        num_samples: K.
        batch_size: data points per pass, if the user fixed it.
        particle_chunk: particles per pass, if the user fixed it.
        y: labels for a model conditioned on them.
        memory: the device's gauge (default: CUDA's for CUDA data, none on the CPU).
        safety: fraction of the free memory a pass may fill.
    """
    if batch_size is not None and particle_chunk is not None:
        return Chunks(batch_size, particle_chunk, "given")
    if memory is None and x.device.type == "cuda":
        memory = CudaMemory(x.device)
    if memory is None:
        how = "defaults" if batch_size is None and particle_chunk is None else "given, defaults for the rest"
        return Chunks(batch_size or DEFAULT_BATCH, particle_chunk or DEFAULT_PARTICLES, how)
    draws = 1 if getattr(model, "exact_likelihood", False) else num_samples
    per_unit = measure_bytes_per_unit(model, x, draws, memory, y)
    free = memory.free_bytes()
    elements = max(1, math.prod(x.shape[1:]))
    batch, particles = size_chunks(free, per_unit, draws, x.shape[0], batch_size=batch_size,
                                   particle_chunk=particle_chunk, safety=safety,
                                   max_units=max(1, min(MAX_UNITS, MAX_ELEMENTS // elements)))
    return Chunks(batch, particles, "sized to free memory", per_unit, free)
