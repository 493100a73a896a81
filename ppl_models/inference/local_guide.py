"""A guide made of explicit per-data-point parameters, for the non-amortized strategies.

Per-data-point SVI keeps one set of variational parameters phi_i per data point; semi-amortized
SVI refines the encoder's output for each data point. Both need the same thing: a guide whose
parameters are plain tensors ``[N, ...]`` rather than the output of a network. For every latent
site of the model, q(z_i) is a diagonal Normal in the unconstrained space, mapped into the site's
support with ``biject_to`` (so positive or bounded latents work too).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to, constraints

# site name -> (loc, log_scale), each [N, *unconstrained event shape]
LocalParams = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class LatentSite:
    """A latent sample site of a model, as seen for one data point."""

    name: str  # the site name shared by model and guide
    shape: tuple[int, ...]  # shape of one data point's value, in the unconstrained space
    support: constraints.Constraint  # the site's support; biject_to(support) maps reals into it


def latent_sites(module, x: torch.Tensor) -> list[LatentSite]:
    """The model's latent sites, found by tracing ``module.model`` once on the first data points.

    Raises ``ValueError`` for a latent site outside the data plate (a global latent has no
    per-data-point posterior) or a discrete one (it has no reparameterized Normal counterpart).
    """
    with torch.no_grad(), pyro.validation_enabled(False):
        trace = poutine.trace(module.model).get_trace(x[:2])
    sites = []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        if not any(frame.dim == -1 for frame in site["cond_indep_stack"]):
            raise ValueError(f"latent site {name!r} is outside the data plate; per-data-point guides need local latents")
        if site["fn"].support.is_discrete:
            raise ValueError(f"latent site {name!r} is discrete; per-data-point guides need continuous latents")
        unconstrained = biject_to(site["fn"].support).inv(site["value"])
        sites.append(LatentSite(name, tuple(unconstrained.shape[1:]), site["fn"].support))
    if not sites:
        raise ValueError("the model has no latent sites to infer")
    return sites


def prior_init(sites: list[LatentSite], n: int, device: torch.device | str = "cpu", dtype=torch.float32) -> LocalParams:
    """Parameters of a standard Normal (in the unconstrained space) for ``n`` data points."""
    return {s.name: (torch.zeros(n, *s.shape, device=device, dtype=dtype),
                     torch.zeros(n, *s.shape, device=device, dtype=dtype)) for s in sites}


def local_distribution(site: LatentSite, loc: torch.Tensor, log_scale: torch.Tensor) -> dist.TorchDistribution:
    """q(z_i) for one site: Normal(loc, exp(log_scale)) over the event dims, pushed into the support."""
    base = dist.Normal(loc, log_scale.exp()).to_event(len(site.shape))
    support = site.support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support is constraints.real:
        return base
    return dist.TransformedDistribution(base, [biject_to(site.support)])


class LocalGuide:
    """A Pyro guide ``guide(x, *args)`` that samples every latent site from explicit parameters.

    Args:
        sites: the model's latent sites (:func:`latent_sites`).
        params: per-site ``(loc, log_scale)`` tensors for the batch being guided.
    """

    def __init__(self, sites: list[LatentSite], params: LocalParams):
        self.sites = sites
        self.params = params

    def __call__(self, x: torch.Tensor | None = None, *args, **kwargs) -> None:
        """Sample each latent site inside the data plate."""
        n = next(iter(self.params.values()))[0].shape[0]
        with pyro.plate("data", n):
            for site in self.sites:
                pyro.sample(site.name, local_distribution(site, *self.params[site.name]))


def guide_params(module, x: torch.Tensor, sites: list[LatentSite]) -> LocalParams:
    """Read ``(loc, log_scale)`` off the amortized guide's distributions for the batch ``x``.

    The guide's sites must be diagonal Normals (possibly wrapped in ``Independent`` or pushed
    through a transform), as the encoder guides are; the result keeps its graph to the encoder.
    """
    trace = poutine.trace(module.guide).get_trace(x)
    params = {}
    for site in sites:
        fn = trace.nodes[site.name]["fn"]
        while isinstance(fn, (dist.Independent, torch.distributions.Independent, dist.TransformedDistribution)):
            fn = fn.base_dist
        if not isinstance(fn, torch.distributions.Normal):
            raise ValueError(
                f"the guide's site {site.name!r} is a {type(fn).__name__}; refining it needs a (diagonal) Normal guide"
            )
        params[site.name] = (fn.loc, fn.scale.log())
    return params
