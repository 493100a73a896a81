"""A user model that reaches what the execution plan does not support only on some batches, for its tests.

A linear-Gaussian VAE whose model observes a batch shorter than ``short`` inside a sequential plate
(``for _ in pyro.plate(...)``): the Pyro path runs it, the plan's handler refuses it. The plan is built
on a full batch, and a later short one (the last of an epoch) reaches the plate.
"""
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppl_models import register_model


@dataclass(frozen=True)
class ShortBatchConfig:
    latent_dim: int = 2  # size of z
    short: int = 50  # a batch smaller than this is observed inside a sequential plate


@register_model("short-batch", ShortBatchConfig, "linear-Gaussian VAE; a short batch is observed in a sequential plate")
class ShortBatch(nn.Module):
    observed_sites = ("x",)

    def __init__(self, config: ShortBatchConfig, event_shape: torch.Size):
        super().__init__()
        self.event_shape, self.short = event_shape, config.short
        self.enc = nn.Linear(event_shape.numel(), 2 * config.latent_dim)
        self.dec = nn.Linear(config.latent_dim, event_shape.numel())
        self.register_buffer("zero", torch.zeros(config.latent_dim))

    def model(self, x=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(self.zero, 1.0).to_event(1))
            loc = self.dec(z).reshape(*z.shape[:-1], *self.event_shape)
            px = dist.Normal(loc, 0.5).to_event(len(self.event_shape))
            if n >= self.short:
                return pyro.sample("x", px, obs=x)
            for _ in pyro.plate("short", 1):  # sequential
                value = pyro.sample("x", px, obs=x)
            return value

    def guide(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            loc, raw = self.enc(x.reshape(x.shape[0], -1)).chunk(2, -1)
            pyro.sample("z", dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))
