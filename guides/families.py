"""Posterior families of the automatic guide, registered by name.

A family turns the encoder's features ``h(x)`` ``[N, H]`` into q(z | x) for every *local* latent
site (see :mod:`guides.sites`) and samples those sites; *global* sites always get
:class:`GlobalNormal`, free parameters as Pyro's ``AutoNormal``. Every distribution is built in
the unconstrained space and pushed into the site's support with ``biject_to``, so positive,
bounded or simplex-valued latents keep their support.

``normal`` is registered here; the joint families ``lowrank`` and ``iaf`` in
:mod:`guides.joint_families`.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from guides.config import GuideConfig
from guides.encoder import MIN_SCALE
from guides.registry import family_class, register_family
from guides.sites import LatentSite, inside

# Initial posterior scales, in the unconstrained space. Local: the encoder starts every q(z | x) at
# half the width of a unit prior, narrow enough that the decoder sees z carry signal from the first
# step, wide enough that softplus (whose slope is about the scale itself when small) lets the scale
# grow quickly if the posterior is wider. Global: 0.1, as Pyro's AutoNormal, so a global latent
# (shared by every data point) does not jitter the whole model while the other parameters settle.
LOCAL_INIT_SCALE = 0.5
GLOBAL_INIT_SCALE = 0.1


def inverse_softplus(y: float) -> float:
    """The x with softplus(x) = y (y > 0)."""
    return math.log(math.expm1(y))


def positive_scale(raw: torch.Tensor) -> torch.Tensor:
    """softplus(raw) + MIN_SCALE: a scale that stays positive when softplus underflows."""
    return F.softplus(raw) + MIN_SCALE


def site_normal(site: LatentSite, loc: torch.Tensor, scale: torch.Tensor) -> dist.TorchDistribution:
    """A diagonal Normal over ``site``'s unconstrained event dims, mapped into its support.

    ``loc`` and ``scale`` have the shape ``[*batch, *unconstrained_event_shape]``; the result has the
    site's batch and event shapes.
    """
    base = dist.Normal(loc, scale).to_event(len(site.unconstrained_event_shape))
    return base if site.is_real else dist.TransformedDistribution(base, [site.transform])


class Family(nn.Module):
    """q(z | x) over the local sites, from encoder features.

    Args:
        sites: the model's local latent sites.
        features: H, the width of the encoder features.
        config: the guide's configuration (rank, flows, ... as the family needs).
    """

    def __init__(self, sites: list[LatentSite], features: int, config: GuideConfig):
        super().__init__()
        self.sites = sites
        self.sizes = [s.size for s in sites]
        self.dim = sum(self.sizes)  # D, unconstrained numbers per data point over all local sites

    def init_loc(self) -> torch.Tensor:
        """The unconstrained prior medians of all sites, concatenated ``[D]``."""
        return torch.cat([s.init_loc.reshape(-1) for s in self.sites])

    def params(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The family's distribution parameters per data point, for features ``h`` ``[N, H]``."""
        raise NotImplementedError

    def forward(self, h: torch.Tensor, plates: dict[str, pyro.plate]) -> dict[str, torch.Tensor]:
        """Sample every local site (a Pyro program); returns the values by site name."""
        raise NotImplementedError


def build_family(name: str, sites: list[LatentSite], features: int, config: GuideConfig) -> Family:
    """Instantiate family ``name``; an unknown name is an error listing the registered ones."""
    return family_class(name)(sites, features, config)


@register_family("normal")
class NormalFamily(Family):
    """Mean-field: an independent diagonal Normal per site, its location and scale given by the
    encoder per data point (Kingma & Welling 2014). Each site is its own reparameterized sample
    site that depends on no other, as the STL and DReG estimators need."""

    description = "a diagonal Normal per site (mean-field; works with STL and DReG)"

    def __init__(self, sites: list[LatentSite], features: int, config: GuideConfig):
        super().__init__(sites, features, config)
        self.head = nn.Linear(features, 2 * self.dim)
        with torch.no_grad():
            self.head.bias[: self.dim] = self.init_loc()
            self.head.bias[self.dim :] = inverse_softplus(LOCAL_INIT_SCALE)

    def params(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loc`` and ``scale``, each ``[N, D]`` (sites concatenated, unconstrained)."""
        loc, raw = self.head(h).split(self.dim, dim=-1)
        return {"loc": loc, "scale": positive_scale(raw)}

    def forward(self, h: torch.Tensor, plates: dict[str, pyro.plate]) -> dict[str, torch.Tensor]:
        """Sample every local site from its own Normal (a Pyro program)."""
        p = self.params(h)
        values = {}
        for site, loc, scale in zip(self.sites, p["loc"].split(self.sizes, -1), p["scale"].split(self.sizes, -1)):
            with inside(site, plates):
                values[site.name] = pyro.sample(site.name, site_normal(site, site.unpack(loc), site.unpack(scale)))
        return values


class GlobalNormal(nn.Module):
    """q(z) for one global site: a diagonal Normal in the unconstrained space with free location and
    scale, mapped into the support (as Pyro's ``AutoNormal``). The location starts at the prior's
    unconstrained median.

    Args:
        site: the global latent site.
    """

    def __init__(self, site: LatentSite):
        super().__init__()
        self.site = site
        self.loc = nn.Parameter(site.init_loc.clone())
        self.raw_scale = nn.Parameter(torch.full_like(site.init_loc, inverse_softplus(GLOBAL_INIT_SCALE)))

    def forward(self, plates: dict[str, pyro.plate]) -> torch.Tensor:
        """Sample the site inside its plates (a Pyro program)."""
        with inside(self.site, plates):
            return pyro.sample(self.site.name, site_normal(self.site, self.loc, positive_scale(self.raw_scale)))
