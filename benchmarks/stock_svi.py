"""Pyro's stock SVI on a ``ppl_models`` VAE, written as a Pyro user writes it: the benchmarks' slow reference."""

from __future__ import annotations

import pyro
from torch import nn


def stock_svi(module: nn.Module, loss: pyro.infer.ELBO, lr: float = 1e-3) -> pyro.infer.SVI:
    """``pyro.infer.SVI`` on ``module``'s model and guide with ``pyro.optim.Adam({"lr": lr})`` and ``loss``.

    The model registers ``module.decoder`` and the guide ``module.encoder`` with ``pyro.module`` (Pyro's
    way to put a network's parameters in the param store), which is cleared first; ``svi.step(x)`` then
    steps ``module``'s own parameters.
    """

    def model(x):
        pyro.module("decoder", module.decoder)
        return module.model(x)

    def guide(x):
        pyro.module("encoder", module.encoder)
        return module.guide(x)

    pyro.clear_param_store()
    return pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": lr}), loss)
