"""A few plain SVI steps on one batch, shared by the per-model "training lowers the loss" tests."""

import torch


def svi_losses(module: torch.nn.Module, loss_fn, x: torch.Tensor, steps: int, lr: float = 3e-3) -> list[float]:
    """The loss at each of ``steps`` Adam steps of ``loss_fn(module.model, module.guide, x)``."""
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(module.model, module.guide, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
