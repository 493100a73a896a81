"""The base of our objectives: a Pyro ELBO defined by its ``differentiable_loss`` alone."""

from __future__ import annotations

import torch
from pyro.infer import ELBO


class DifferentiableELBO(ELBO):
    """A :class:`pyro.infer.ELBO` whose ``loss`` and ``loss_and_grads`` (the ``pyro.infer.SVI``
    interface) follow from ``differentiable_loss``, which subclasses implement."""

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The loss to minimise, as a differentiable scalar tensor."""
        raise NotImplementedError

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The loss as a float (no gradient)."""
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Compute the loss, backpropagate it, and return it as a float (for ``pyro.infer.SVI``)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()
