"""A hand-written PyTorch VAE with the same networks as ``ppl_models``' VAE: the speed reference.

No Pyro: the ELBO is written out (Bernoulli log-likelihood via binary cross-entropy, KL in closed
form). Its encoder and decoder are ``nn.Sequential`` stacks of the same shapes as ours, so weights
can be copied across with ``load_state_dict``.
"""

from __future__ import annotations

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


def step(model: HandWrittenVAE, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> torch.Tensor:
    """One hand-written training step; returns the detached loss."""
    loss = model.loss(x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()
