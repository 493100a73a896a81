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

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppl_models.models.vae import VAE, VAEConfig
from ppl_models.nets import mlp
from ppl_models.registry import register_model


@dataclass(frozen=True)
class AutoencoderConfig(VAEConfig):
    """Architecture of the MLP autoencoder: the same fields as the MLP VAE's."""


@register_model("autoencoder", AutoencoderConfig, "deterministic MLP autoencoder (reconstruction loss; not a density model)")
class Autoencoder(VAE):
    """Deterministic autoencoder whose ``model`` and ``guide`` are Pyro programs (see the module docstring):
    the MLP VAE with a point-mass encoder and a masked prior.

    Args:
        config: the architecture.
        event_shape: shape of one observation, e.g. ``torch.Size([28, 28])``.
    """

    density_model = False  # evaluation "bounds" are reconstruction log-likelihoods, not bounds on log p(x)

    def build_encoder(self, data_dim: int) -> nn.Module:
        """The encoder network x -> z (an MLP with the VAE's widths)."""
        return mlp([data_dim, *self.config.hidden, self.config.latent_dim], self.config.activation)

    def prior(self) -> dist.Distribution:
        """N(0, I), masked out: it shapes generation but adds nothing to any objective."""
        return super().prior().mask(False)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide: the point mass z = encoder(x)."""
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Delta(self.encoder(x.reshape(x.shape[0], -1))).to_event(1))
