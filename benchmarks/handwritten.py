"""A hand-written PyTorch VAE with the same networks as ``ppl_models``' VAE: the speed reference.

No Pyro: the ELBO is written out (Bernoulli log-likelihood via binary cross-entropy, KL in closed
form), and so is the importance-weighted bound (Burda et al. 2015) with the standard, STL (Roeder
et al. 2017) and DReG (Tucker et al. 2019) gradient estimators. Its encoder and decoder are
``nn.Sequential`` stacks of the same shapes as ours, so weights can be copied across with
``load_state_dict``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ppl_models.nets import mlp


class HandWrittenVAE(nn.Module):
    """Encoder [D, *hidden, 2Z] and decoder [Z, *hidden reversed, D], as in ``ppl_models.models.vae``."""

    def __init__(self, data_dim: int = 784, hidden: tuple[int, ...] = (400,), latent_dim: int = 50, act: str = "relu"):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.net = mlp([data_dim, *hidden, 2 * latent_dim], act)
        self.decoder = mlp([latent_dim, *reversed(hidden), data_dim], act)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO summed over the batch (Bernoulli pixels, analytic Gaussian KL)."""
        x = x.reshape(x.shape[0], -1)
        loc, raw = self.encoder.net(x).chunk(2, dim=-1)
        scale = F.softplus(raw) + 1e-5
        z = loc + scale * torch.randn_like(loc)
        logits = self.decoder(z)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = 0.5 * (loc.pow(2) + scale.pow(2) - 1).sum() - scale.log().sum()
        return rec + kl

    def iwae_loss(self, x: torch.Tensor, particles: int, grad_estimator: str = "standard",
                  eps: torch.Tensor | None = None) -> torch.Tensor:
        """Negative IWAE bound summed over the batch, with K = ``particles`` draws per data point.

        log w_k = log p(x | z_k) + log N(z_k; 0, I) - log q(z_k | x) for z_k = loc + scale * eps_k,
        eps of shape [K, B, Z] (drawn with ``torch.randn`` unless given). ``stl`` and ``dreg``
        evaluate log q with detached loc and scale; ``dreg`` also scales the gradient arriving at
        each z_k by its normalized weight w~_k, so the encoder's path gradient is weighted by
        w~_k^2 (Tucker et al. 2019).
        """
        if grad_estimator not in ("standard", "stl", "dreg"):
            raise ValueError(f"unknown grad_estimator {grad_estimator!r}")
        x = x.reshape(x.shape[0], -1)
        loc, raw = self.encoder.net(x).chunk(2, dim=-1)
        scale = F.softplus(raw) + 1e-5
        if eps is None:
            eps = torch.randn((particles, *loc.shape), dtype=loc.dtype, device=loc.device)
        z = loc + scale * eps  # [K, B, Z]
        logits = self.decoder(z)  # [K, B, D]
        # Negated after the pixel sum: one [K, B] negation, not a [K, B, D] one (Bernoulli.log_prob negates per pixel).
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        half_log_2pi = 0.5 * math.log(2 * math.pi)
        log_pz = (-0.5 * z.pow(2) - half_log_2pi).sum(-1)
        q_loc, q_scale = (loc, scale) if grad_estimator == "standard" else (loc.detach(), scale.detach())
        log_qz = (-0.5 * ((z - q_loc) / q_scale).pow(2) - q_scale.log() - half_log_2pi).sum(-1)
        log_w = log_px + log_pz - log_qz  # [K, B]
        if grad_estimator == "dreg" and torch.is_grad_enabled():
            w = torch.softmax(log_w.detach(), dim=0).unsqueeze(-1)
            z.register_hook(lambda g: g * w)
        bound = log_w.logsumexp(0) - math.log(particles)
        return -bound.sum()


def step(model: HandWrittenVAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> torch.Tensor:
    """One hand-written training step; returns the detached loss."""
    loss = model.loss(x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def iwae_step(model: HandWrittenVAE, optimizer: torch.optim.Optimizer, x: torch.Tensor, particles: int,
              grad_estimator: str = "standard") -> torch.Tensor:
    """One hand-written IWAE training step; returns the detached loss."""
    loss = model.iwae_loss(x, particles, grad_estimator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()
