"""The hand-written amortized guide: an MLP encoder to a diagonal Normal over one latent site."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from ppl_models.nets import mlp

MIN_SCALE = 1e-5  # keeps the posterior scale positive when softplus underflows


class DiagonalNormalEncoder(nn.Module):
    """q(z | x) = Normal(mu(x), diag(sigma(x)^2)), the amortized guide of Kingma & Welling (2014).

    One MLP maps a flattened observation to ``2 * latent_dim`` numbers: the location and, through
    a softplus, the scale of the posterior. :meth:`guide` is a Pyro program whose site and plate
    names match the model's (``"z"`` inside ``pyro.plate("data")``).

    Args:
        in_dim: size of one flattened observation.
        hidden: hidden-layer widths.
        latent_dim: size of the latent vector.
        act: activation name (see :mod:`ppl_models.nets`).
        site: name of the latent sample site this guide proposes for.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], latent_dim: int, act: str = "relu", site: str = "z"):
        super().__init__()
        self.site = site
        self.latent_dim = latent_dim
        self.net = mlp([in_dim, *hidden, 2 * latent_dim], act)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior location and scale, each of shape ``[batch, latent_dim]``."""
        loc, raw_scale = self.net(x.reshape(x.shape[0], -1)).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + MIN_SCALE

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide: sample the latent site for every data point of the batch ``x``."""
        with pyro.plate("data", x.shape[0]):
            loc, scale = self(x)
            return pyro.sample(self.site, dist.Normal(loc, scale).to_event(1))
