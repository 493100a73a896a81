"""The ``adversarial`` strategy: Algorithm 1 of Goodfellow et al. (2014), "Generative Adversarial Nets".

For a model with a ``generator`` and a ``discriminator`` (:mod:`ppl_models.models.gan`). Each step of
the training loop is one discriminator step on the loop's batch of data and as many generated
samples; every ``d_steps``-th discriminator step (k in the paper) is followed by one generator step
on a fresh batch of samples. So k discriminator steps see k different minibatches of data, as in
Algorithm 1, and the loop's batching, checkpoints, resume and non-finite guard serve the GAN as they
serve SVI. The losses are in :mod:`ppl_models.objectives.adversarial`.

Both players share one Adam optimizer with a parameter group each (Adam is per parameter, so this
is two optimizers in one state dict: both are checkpointed and resumed together), with the betas
(0.5, 0.999) of Radford et al. (2016). A step leaves the other player's gradients unset, and Adam
skips parameters without gradients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from ppl_models.inference.strategy import Strategy, register_strategy
from ppl_models.objectives.adversarial import discriminator_loss, generator_loss

if TYPE_CHECKING:
    from ppl_models.train.config import TrainConfig

BETAS = (0.5, 0.999)  # Adam's betas for both players (Radford et al. 2016)


def _check_players(module: torch.nn.Module) -> None:
    for name in ("generator", "discriminator", "discriminate", "fake"):
        if not hasattr(module, name):
            raise ValueError(f"--strategy adversarial needs a model with a generator, a discriminator, discriminate(x) and fake(n) "
                             f"(e.g. gan); {type(module).__name__} has no {name!r}")


@register_strategy("adversarial", "GAN training: k discriminator steps per generator step (Goodfellow et al. 2014)")
class Adversarial(Strategy):
    """Two-player training of a GAN: ``config.d_steps`` discriminator steps per generator step, with
    the generator loss ``config.generator_loss`` (``non-saturating`` or ``minimax``).

    Args:
        module: the GAN (``generator``, ``discriminator``, ``fake(n)``).
        config: the training configuration.
        train_x: the training data (unused: the players have no per-data-point state).
    """

    uses_objective = False  # the game's losses replace the ELBO

    def __init__(self, module: torch.nn.Module, config: TrainConfig, train_x: torch.Tensor):
        super().__init__(module, config, train_x)
        _check_players(module)
        self.d_steps = config.d_steps
        self.generator_loss: Callable[[torch.Tensor], torch.Tensor] = generator_loss(config.generator_loss)
        self.d_done = 0  # discriminator steps so far: a generator step follows every d_steps-th

    def optimizer(self, module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        """One fused Adam with a parameter group per player (generator first)."""
        groups = [{"params": list(module.generator.parameters()), "name": "generator"},
                  {"params": list(module.discriminator.parameters()), "name": "discriminator"}]
        return torch.optim.Adam(groups, lr=lr, betas=BETAS, fused=True)

    def step(self, objective, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
             x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """One discriminator step on ``x``, then a generator step if k discriminator steps are done.

        Returns the detached discriminator loss, -V(D, G) summed over the batch.
        """
        d_loss = self.discriminator_step(module, optimizer, x)
        self.d_done += 1
        if self.d_done % self.d_steps == 0:
            self.generator_step(module, optimizer, x.shape[0])
        return d_loss

    def discriminator_step(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           x: torch.Tensor) -> torch.Tensor:
        """Ascend V(D, G) in D's parameters on data ``x`` and as many detached samples G(z)."""
        with torch.no_grad():
            fake = module.fake(x.shape[0])
        loss = discriminator_loss(module.discriminate(x), module.discriminate(fake))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def generator_step(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, n: int) -> torch.Tensor:
        """Descend the generator loss in G's parameters on ``n`` fresh samples; D's gradients are dropped."""
        loss = self.generator_loss(module.discriminate(module.fake(n)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in module.discriminator.parameters():
            p.grad = None
        optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Where in the k-step round the players are, so a resumed run continues it exactly."""
        return {"d_done": torch.tensor(self.d_done)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict` output."""
        self.d_done = int(state.get("d_done", 0))
