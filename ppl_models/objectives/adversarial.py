"""The two players' losses of a generative adversarial network (Goodfellow et al. 2014).

The discriminator D outputs a logit l(x), with D(x) = sigmoid(l(x)). The value of the game is

    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],

which D maximizes and G minimizes (Algorithm 1). Written with logits, log D = -softplus(-l) and
log(1 - D) = -softplus(l), which are stable where D saturates. Each loss is summed over the batch,
as the ELBO losses are, so the training loop reports it per data point the same way.

Generator losses, chosen by ``--generator-loss``:

- ``minimax``: minimize log(1 - D(G(z))), the game as written. Early in training D rejects the
  generator's samples with confidence, D(G(z)) ~ 0, where this loss is flat: its gradient in l is
  -sigmoid(l) = -D(G(z)) ~ 0.
- ``non-saturating``: maximize log D(G(z)) instead (Goodfellow et al. 2014, section 3). It has the
  same fixed point, and its gradient in l, 1 - D(G(z)), is largest exactly where the minimax one
  vanishes.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V(D, G) for one batch: -sum log D(x) - sum log(1 - D(G(z))).

    Args:
        real_logits: D's logits on data ``[B]``.
        fake_logits: D's logits on generated samples ``[B]`` (from detached samples for a D step).
    """
    return F.softplus(-real_logits).sum() + F.softplus(fake_logits).sum()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """sum log(1 - D(G(z))), which the generator minimizes (the game as written)."""
    return -F.softplus(fake_logits).sum()


def non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-sum log D(G(z)): the generator maximizes log D(G(z)) (Goodfellow et al. 2014, section 3)."""
    return F.softplus(-fake_logits).sum()


GENERATOR_LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "non-saturating": non_saturating_generator_loss,
    "minimax": minimax_generator_loss,
}


def generator_loss(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The generator loss ``name`` (``non-saturating`` or ``minimax``), with an error listing both."""
    try:
        return GENERATOR_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown generator loss {name!r}; choose one of {', '.join(GENERATOR_LOSSES)}") from None
