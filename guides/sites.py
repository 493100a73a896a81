"""The latent sites of a model, read from a trace of it: what an automatic guide must sample.

A site is *local* if it sits in the ``"data"`` plate (one value per data point, inferred by the
encoder) and *global* otherwise (one value for the whole data set, a free parameter). Every site
is handled in the unconstrained space of ``biject_to(support)``; a local site's value for one data
point, unconstrained and flattened, is a vector of :attr:`LatentSite.size` numbers, and the joint
families concatenate these vectors over the sites (as Pyro's ``AutoContinuous`` does for a whole
model).

Supports are read once, from the traced example batch: a support that moves with another latent's
value (``Uniform(0, z2)``) is refused; one that depends on the data is not detected.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from math import prod
from typing import Callable, Iterator

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import sum_rightmost
from pyro.poutine.indep_messenger import CondIndepStackFrame
from pyro.poutine.util import site_is_subsample
from torch.distributions import Transform, biject_to, constraints

DATA_PLATE = "data"  # the plate over data points (see ppl_models.models.protocol)
ENUMERATED = "parallel"  # infer={"enumerate": "parallel"}: summed out by the objective, not guided
MEDIAN_DRAWS = 15  # prior draws whose median initializes a site's location (as Pyro's init_to_median)


@dataclass(frozen=True)
class LatentSite:
    """A continuous latent sample site of a model, as traced on an example batch."""

    name: str  # the site name shared by model and guide
    batch_shape: torch.Size  # the site's batch shape in the traced model (data dim of the example batch)
    event_shape: torch.Size  # the site's event shape
    support: constraints.Constraint  # where its values lie
    frames: tuple[CondIndepStackFrame, ...]  # the plates it sits in (outermost first)
    init_loc: torch.Tensor  # unconstrained prior median: per data point [size] if local, else the full shape

    @property
    def transform(self) -> Transform:
        """The bijection from the unconstrained space onto the support."""
        return biject_to(self.support)

    @property
    def is_real(self) -> bool:
        """True if the support is (an independent product of) the real line: no transform needed."""
        support = self.support
        while isinstance(support, constraints.independent):
            support = support.base_constraint
        return support is constraints.real

    @property
    def unconstrained_event_shape(self) -> torch.Size:
        """Event shape in the unconstrained space (e.g. K-1 for a K-simplex)."""
        # from the full shape: a transform with tensor parameters (an interval's bounds) broadcasts them
        full = self.transform.inverse_shape(self.batch_shape + self.event_shape)
        return torch.Size(full[len(self.batch_shape):])

    @property
    def data_dim(self) -> int | None:
        """The batch dim (negative) of the data plate, or None for a global site."""
        return next((f.dim for f in self.frames if f.name == DATA_PLATE), None)

    @property
    def is_local(self) -> bool:
        """True if the site has one value per data point."""
        return self.data_dim is not None

    @property
    def point_batch_shape(self) -> torch.Size:
        """The batch shape without the data dim (the plates nested inside the data plate)."""
        shape = list(self.batch_shape)
        if self.is_local:
            del shape[len(shape) + self.data_dim]
        return torch.Size(shape)

    @property
    def size(self) -> int:
        """Unconstrained numbers per data point (local) or in all (global)."""
        return prod(self.point_batch_shape) * prod(self.unconstrained_event_shape)

    def unpack(self, flat: torch.Tensor) -> torch.Tensor:
        """``[..., N, size]`` (a local site's per-point vectors) to the unconstrained value
        ``[..., *batch_shape with N, *unconstrained_event_shape]``."""
        event = self.unconstrained_event_shape
        value = flat.reshape(*flat.shape[:-1], *self.point_batch_shape, *event)
        return value.movedim(-(1 + len(self.point_batch_shape) + len(event)), self.data_dim - len(event))

    def constrain(self, unconstrained: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The value in the support and log|d unconstrained / d value| summed to the batch shape
        (the density correction of a Delta site, as in Pyro's ``AutoContinuous``)."""
        if self.is_real:
            return unconstrained, 0.0
        transform = self.transform
        value = transform(unconstrained)
        log_density = -transform.log_abs_det_jacobian(unconstrained, value)
        batch_dims = value.dim() - len(self.event_shape)
        return value, sum_rightmost(log_density, log_density.dim() - batch_dims)


def plates(sites: list[LatentSite], data_size: int) -> dict[str, pyro.plate]:
    """One ``pyro.plate`` per plate name of ``sites`` (the data plate of size ``data_size``), to be
    entered once per site so that every site shares its model site's plates."""
    out = {}
    for site in sites:
        for f in site.frames:
            if f.name not in out:  # pyro.plate records its subsample site when built: build each once
                out[f.name] = pyro.plate(f.name, data_size if f.name == DATA_PLATE else f.size, dim=f.dim)
    return out


@contextlib.contextmanager
def inside(site: LatentSite, plate_objects: dict[str, pyro.plate]) -> Iterator[None]:
    """Enter the plates of ``site``."""
    with contextlib.ExitStack() as stack:
        for f in site.frames:
            stack.enter_context(plate_objects[f.name])
        yield


def find_latent_sites(model: Callable, example_x: torch.Tensor, model_kwargs: dict | None = None) -> list[LatentSite]:
    """The continuous latent sites of ``model``, found by tracing ``model(example_x, **model_kwargs)``.

    Observed sites, plate subsample sites and enumerated sites (``infer={"enumerate": "parallel"}``)
    are skipped. The trace runs without gradients, without validation and on a forked RNG (building
    a guide does not move the global random stream).

    Raises:
        ValueError: for a discrete latent site that is not enumerated, a site in a sequential or
            subsampled plate, or a site whose support depends on another latent's value.
    """
    traces = []
    with torch.no_grad(), pyro.validation_enabled(False), torch.random.fork_rng(devices=[]):
        for seed in (0, 1):  # two draws: a support that moves with the draw depends on a latent
            torch.manual_seed(seed)
            traces.append(poutine.trace(model).get_trace(example_x, **(model_kwargs or {})))
        sites = [_latent_site(site) for site in _latent_nodes(traces[0])]
    for site in sites:
        other = traces[1].nodes.get(site.name)
        if other is None:
            raise ValueError(f"latent site {site.name!r} appears in one run of the model but not in another; an "
                             f"automatic guide needs the same sites on every run (write a guide instead)")
        _check_static_support(site, other["fn"].support)
    return sites


def _latent_nodes(trace) -> list[dict]:
    nodes = []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        if site["infer"].get("enumerate") == ENUMERATED:
            continue
        fn = site["fn"]
        if fn.support.is_discrete:
            raise ValueError(
                f"latent site {name!r} is discrete ({type(fn).__name__}); an automatic guide samples only "
                f"continuous latents: mark it infer={{'enumerate': 'parallel'}} in the model so the objective "
                f"sums it out, or write a guide for the model"
            )
        nodes.append(site)
    return nodes


def _latent_site(node: dict) -> LatentSite:
    name, fn = node["name"], node["fn"]
    frames = tuple(reversed(node["cond_indep_stack"]))  # outermost first
    for f in frames:
        if f.dim is None:
            raise ValueError(f"latent site {name!r} sits in the sequential plate {f.name!r}; an automatic guide "
                             f"needs vectorized plates (give the plate a dim, or write a guide)")
        if f.full_size is not None and f.full_size != f.size:
            raise ValueError(f"latent site {name!r} sits in the subsampled plate {f.name!r} (size {f.size} of "
                             f"{f.full_size}); an automatic guide needs unsubsampled plates")
    site = LatentSite(name, torch.Size(fn.batch_shape), torch.Size(fn.event_shape), fn.support, frames,
                      init_loc=torch.empty(0))
    median = site.transform.inv(fn.sample((MEDIAN_DRAWS,))).median(0).values  # unconstrained: stays feasible
    median = torch.where(median.isfinite(), median, torch.zeros_like(median))
    if site.is_local:  # one location per data point: the mean over the example batch
        data_axis = site.data_dim - len(site.unconstrained_event_shape)
        median = median.movedim(data_axis, 0).reshape(median.shape[data_axis], -1).mean(0)
    return dataclasses.replace(site, init_loc=median.detach().clone())


def _check_static_support(site: LatentSite, other: constraints.Constraint) -> None:
    """A guide reads each support once; refuse a support whose bounds changed between two draws."""
    probe = torch.linspace(-1.0, 1.0, max(site.unconstrained_event_shape.numel(), 1), dtype=site.init_loc.dtype)
    shape = (*site.batch_shape, *site.unconstrained_event_shape)
    u = probe.reshape(site.unconstrained_event_shape).expand(shape)
    a, b = site.transform(u), biject_to(other)(u)
    if a.shape != b.shape or not torch.allclose(a, b):
        raise ValueError(f"the support of latent site {site.name!r} ({site.support}) depends on another latent's "
                         f"value; an automatic guide needs supports fixed by the model (write a guide instead)")
