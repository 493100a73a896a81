"""The beta-VAE (Higgins et al. 2017): the VAE trained with the KL term weighted by beta.

    L_beta(x) = E_q[log p(x | z)] - beta * KL(q(z | x) || p(z))

written the Pyro way: the latent site ``z`` is sampled under ``poutine.scale(scale=beta)`` in both
the model and the guide, so every ELBO of :mod:`ppl_models.objectives` weights log p(z) and
log q(z | x) (or their closed-form KL) by beta and the likelihood by 1. beta > 1 trades
reconstruction for a posterior closer to the factorized prior (the "disentangling" pressure of the
paper); beta = 1 is the VAE.

For beta != 1, L_beta is not a bound on log p(x). Evaluation must still report bounds on log p(x),
so the scale applies only while the module is in training mode (``self.training``, the default of
a freshly built module, which is what ``ppl_models.train.fit`` trains). ``fit`` returns the model
in eval mode and ``RunDir.load_model`` loads it in eval mode, where the programs are the plain
VAE's: ``ppl eval`` bounds are the usual ELBO and importance-sampled log p(x). (The importance
weights of ``ppl_models.objectives.log_importance_weights`` ignore site scales anyway.) The IWAE
objective refuses the scaled sites (one scale per data point is required), as beta-IWAE is no
bound either: train with ``elbo`` or ``elbo-analytic``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch
from pyro import poutine

from ppl_models.models.likelihoods import observation
from ppl_models.models.vae import VAE, VAEConfig
from ppl_models.registry import register_model


@dataclass(frozen=True)
class BetaVAEConfig(VAEConfig):
    """The MLP VAE's architecture plus the weight of the KL term."""

    beta: float = 4.0  # weight of KL(q || p) in the training objective (1: the VAE); ignored in eval mode

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")


@register_model("beta_vae", BetaVAEConfig, "beta-VAE (Higgins et al. 2017): MLP VAE with the KL term weighted by beta")
class BetaVAE(VAE):
    """MLP VAE whose latent site is scaled by ``beta`` in training mode (see the module docstring).

    Args:
        config: the architecture and beta.
        event_shape: shape of one observation.
    """

    def kl_weight(self) -> float:
        """beta while training, 1 in eval mode (so evaluation bounds are on log p(x))."""
        return self.config.beta if self.training else 1.0

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro model: the VAE's, with the prior term of ``z`` scaled by :meth:`kl_weight`."""
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            with poutine.scale(scale=self.kl_weight()):
                z = pyro.sample("z", self.prior())
            px = observation(self.likelihood, self.decoder(z), self.event_shape, self.config.obs_scale)
            return pyro.sample("x", px, obs=x)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide: the VAE's encoder q(z | x), its entropy term scaled by :meth:`kl_weight`."""
        with poutine.scale(scale=self.kl_weight()):
            return super().guide(x, batch_size)
