"""A deterministic autoencoder as a Pyro program: the baseline for representation quality.

    z = encoder(x)                        guide: a point mass, Delta(encoder(x))
    x | z ~ p(x | decoder(z))             the observation's shape, see ``likelihoods.py``

The model declares the prior z ~ Normal(0, I) so that it can still generate (x ~ p(x | z) with
z ~ N(0, I) runs with the right shapes), but the prior is masked out (``.mask(False)``: its
log-density is 0), and the point-mass guide has log q = 0. Every objective therefore reduces to
the reconstruction loss -log p(x | z = encoder(x)); with a fixed-scale Gaussian likelihood this is
the L2 autoencoder, with a Bernoulli one the cross-entropy autoencoder.

This is not a density model: the "ELBO" and "NLL" that the evaluators report for it are the
reconstruction log-likelihood log p(x | encoder(x)) (all K importance samples coincide), not
bounds on log p(x), and its samples from N(0, I) codes need not look like data. It exposes
``density_model = False`` for commands to say so. Sites ``z`` and ``x`` in the plate ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppl_models.models.likelihoods import get_likelihood, observation
from ppl_models.nets import mlp
from ppl_models.registry import register_model


@dataclass(frozen=True)
class AutoencoderConfig:
    """Architecture of the MLP autoencoder (the same fields as the MLP VAE's)."""

    latent_dim: int = 50  # size of the code z
    hidden: tuple[int, ...] = (400,)  # encoder hidden widths; the decoder mirrors them
    activation: str = "relu"  # nonlinearity between layers (ppl_models.nets.ACTIVATIONS)
    likelihood: str = "bernoulli"  # bernoulli | gaussian | gaussian-learned
    obs_scale: float = 0.1  # standard deviation of the fixed-scale gaussian likelihood


@register_model("autoencoder", AutoencoderConfig, "deterministic MLP autoencoder (reconstruction loss; not a density model)")
class Autoencoder(nn.Module):
    """Deterministic autoencoder whose ``model`` and ``guide`` are Pyro programs (see the module docstring).

    Args:
        config: the architecture.
        event_shape: shape of one observation, e.g. ``torch.Size([28, 28])``.
    """

    observed_sites = ("x",)  # sites conditioned on data; z is latent
    density_model = False  # evaluation "bounds" are reconstruction log-likelihoods, not bounds on log p(x)

    def __init__(self, config: AutoencoderConfig, event_shape: torch.Size):
        super().__init__()
        self.config = config
        self.event_shape = torch.Size(event_shape)
        self.likelihood = get_likelihood(config.likelihood)
        data_dim = prod(self.event_shape)
        self.encoder = mlp([data_dim, *config.hidden, config.latent_dim], config.activation)
        self.decoder = mlp(
            [config.latent_dim, *reversed(config.hidden), data_dim * self.likelihood.outputs_per_dim],
            config.activation,
        )
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro model: a masked N(0, I) prior on z (used only to sample), then p(x | decoder(z))."""
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            prior = dist.Normal(self._zero, self._one).expand([self.config.latent_dim]).to_event(1)
            z = pyro.sample("z", prior.mask(False))
            px = observation(self.likelihood, self.decoder(z), self.event_shape, self.config.obs_scale)
            return pyro.sample("x", px, obs=x)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide: the point mass z = encoder(x)."""
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Delta(self.encoder(x.reshape(x.shape[0], -1))).to_event(1))
