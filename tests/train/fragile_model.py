"""A model that breaks under too large a learning rate, for the non-finite guard's tests.

Its global parameter ``w`` enters only through ``sqrt(w)``, which an observed ``anchor`` pulls
towards 0.5 (so w -> 0.25). Adam moves ``w`` by about ``lr`` per step while the gradient keeps its
sign, so from ``w = 1`` a learning rate of 0.6 takes it below zero at the second step and the
third step's ``sqrt`` is nan; with a learning rate of 0.06 it settles near 0.25 and never crosses.
"""
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppl_models import register_model


@dataclass(frozen=True)
class FragileConfig:
    latent_dim: int = 2  # size of z


@register_model("fragile-sqrt", FragileConfig, "linear-Gaussian model plus a parameter that lives under a sqrt")
class FragileSqrt(nn.Module):
    observed_sites = ("x",)

    def __init__(self, config: FragileConfig, event_shape: torch.Size):
        super().__init__()
        self.event_shape = event_shape
        self.decoder = nn.Linear(config.latent_dim, event_shape.numel())
        self.w = nn.Parameter(torch.tensor(1.0))  # deliberately unconstrained
        self.register_buffer("zero", torch.zeros(config.latent_dim))

    def model(self, x=None, batch_size=None):
        pyro.sample("anchor", dist.Normal(self.w.sqrt(), 0.1), obs=self.zero.new_tensor(0.5))
        with pyro.plate("data", x.shape[0] if x is not None else batch_size):
            z = pyro.sample("z", dist.Normal(self.zero, 1.0).to_event(1))
            loc = self.decoder(z).reshape(*z.shape[:-1], *self.event_shape)
            return pyro.sample("x", dist.Normal(loc, 1.0).to_event(len(self.event_shape)), obs=x)
