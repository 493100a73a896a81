"""The variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014) as a Pyro program.

    z ~ Normal(0, I)                      (latent_dim,)
    x | z ~ p(x | decoder(z))             the observation's shape, see ``likelihoods.py``

The guide is the amortized encoder of :mod:`guides.encoder`; model and guide share the site ``z``
and the plate ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from guides.encoder import DiagonalNormalEncoder
from ppl_models.models.likelihoods import get_likelihood, observation
from ppl_models.nets import mlp
from ppl_models.registry import register_model


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of the MLP VAE. The defaults follow Pyro's VAE example, tuned on validation data."""

    latent_dim: int = 50  # size of z
    hidden: tuple[int, ...] = (400,)  # encoder hidden widths; the decoder mirrors them
    activation: str = "relu"  # nonlinearity between layers (ppl_models.nets.ACTIVATIONS)
    likelihood: str = "bernoulli"  # bernoulli | gaussian | gaussian-learned
    obs_scale: float = 0.1  # standard deviation of the fixed-scale gaussian likelihood


@register_model("vae", VAEConfig, "VAE with MLP encoder and decoder; Bernoulli or Gaussian pixels")
class VAE(nn.Module):
    """MLP variational autoencoder whose ``model`` and ``guide`` are Pyro programs.

    Args:
        config: the architecture.
        event_shape: shape of one observation, e.g. ``torch.Size([28, 28])``.
    """

    observed_sites = ("x",)  # sites conditioned on data; the rest of the model's sites are latent

    def __init__(self, config: VAEConfig, event_shape: torch.Size):
        super().__init__()
        self.config = config
        self.event_shape = torch.Size(event_shape)
        self.likelihood = get_likelihood(config.likelihood)
        data_dim = prod(self.event_shape)
        self.encoder = self.build_encoder(data_dim)
        self.decoder = mlp(
            [config.latent_dim, *reversed(config.hidden), data_dim * self.likelihood.outputs_per_dim],
            config.activation,
        )
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def build_encoder(self, data_dim: int) -> nn.Module:
        """The encoder network: the diagonal-Normal encoder guide of :mod:`guides.encoder`."""
        c = self.config
        return DiagonalNormalEncoder(data_dim, c.hidden, c.latent_dim, c.activation)

    def prior(self) -> dist.Distribution:
        """p(z) = N(0, I) over ``latent_dim`` coordinates, one event per data point."""
        return dist.Normal(self._zero, self._one).expand([self.config.latent_dim]).to_event(1)

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro model: the generative process for a batch; ``x=None`` samples ``batch_size`` new points."""
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            z = pyro.sample("z", self.prior())
            px = observation(self.likelihood, self.decoder(z), self.event_shape, self.config.obs_scale)
            return pyro.sample("x", px, obs=x)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide: the amortized encoder q(z | x)."""
        return self.encoder.guide(x)
