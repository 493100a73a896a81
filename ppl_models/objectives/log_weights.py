"""Per-data-point log importance weights of a model/guide pair, vectorized over particles."""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


def log_importance_weights(model, guide, *args, num_particles: int = 1, max_plate_nesting: int = 1) -> torch.Tensor:
    """log w_k(x_n) = log p(x_n, z_k) - log q(z_k | x_n) for ``num_particles`` draws z_k ~ q(z | x_n).

    The particles run as one batched pass: model and guide execute once inside a ``pyro.plate``
    to the left of the model's own plates. Site scales (minibatch subsampling) are not applied,
    so each entry is the weight of one data point.

    Args:
        model: Pyro model ``model(*args)``; its data plate is the rightmost batch dimension.
        guide: Pyro guide with the same signature and latent site names.
        *args: the model's arguments, e.g. a batch ``x`` of shape ``[N, ...]``.
        num_particles: K, the number of draws per data point.
        max_plate_nesting: how many plates the model nests (1 for a single data plate).

    Returns:
        Tensor of shape ``[num_particles, N]``.
    """
    with pyro.plate("particles", num_particles, dim=-(max_plate_nesting + 1)):
        guide_trace = poutine.trace(guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
    log_w: torch.Tensor | float = 0.0
    for site in model_trace.nodes.values():
        if site["type"] == "sample" and not site_is_subsample(site):
            log_w = log_w + site["fn"].log_prob(site["value"])
    for site in guide_trace.nodes.values():
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
            log_w = log_w - site["fn"].log_prob(site["value"])
    return log_w
