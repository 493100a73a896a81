"""The VAE with two stochastic layers of Burda et al. (2015, section 5), as a Pyro program.

    z2 ~ Normal(0, I)                             (latent_dims[1],)
    z1 | z2 ~ Normal(mu(z2), diag sigma(z2)^2)    (latent_dims[0],)
    x | z1 ~ p(x | decoder(z1))                   the observation's shape, see ``likelihoods.py``

with the hierarchical guide q(z1 | x) q(z2 | z1): the guide's z2 is computed from the z1 it has just
sampled. In the paper z1 has 100 units and z2 50; x and z1 are joined by two deterministic tanh
layers of 200 units, z1 and z2 by two of 100, in every network (those are the defaults here).

Sites ``z1``, ``z2`` and ``x`` in the plate ``data``. The STL and DReG gradient estimators of the
IWAE objective refuse this guide (q(z2 | z1) conditions on z1); ``standard`` gradients work.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from guides.encoder import MIN_SCALE
from ppl_models.models.likelihoods import get_likelihood, observation
from ppl_models.nets import mlp
from ppl_models.registry import register_model


@dataclass(frozen=True)
class TwoLayerVAEConfig:
    """Architecture of the two-stochastic-layer VAE; the defaults are Burda et al.'s (2015, section 5)."""

    latent_dims: tuple[int, int] = (100, 50)  # sizes of z1 (next to x) and z2 (top)
    hidden: tuple[int, int] = (200, 100)  # width of the deterministic layers of x<->z1 and of z1<->z2
    depth: int = 2  # deterministic layers in each of those networks
    activation: str = "tanh"  # nonlinearity between layers (ppl_models.nets.ACTIVATIONS)
    likelihood: str = "bernoulli"  # bernoulli | gaussian | gaussian-learned
    obs_scale: float = 0.1  # standard deviation of the fixed-scale gaussian likelihood

    def __post_init__(self) -> None:
        for name in ("latent_dims", "hidden"):
            value = getattr(self, name)
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"{name} must be two positive sizes (z1 layer, z2 layer), got {value}")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")


class NormalLayer(nn.Module):
    """A conditional diagonal Normal: ``h [..., in_dim] -> Normal(mu(h), diag sigma(h)^2)`` over ``out_dim``.

    An MLP gives the location and, through a softplus, the scale; any leading (particle, data)
    dimensions are batch dimensions of the result.

    Args:
        in_dim: size of the conditioning vector.
        hidden: deterministic layer widths.
        out_dim: size of the variable.
        act: activation name.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], out_dim: int, act: str):
        super().__init__()
        self.net = mlp([in_dim, *hidden, 2 * out_dim], act)

    def forward(self, h: torch.Tensor) -> dist.Distribution:
        """The distribution given ``h``, with event shape ``(out_dim,)``."""
        loc, raw_scale = self.net(h).chunk(2, dim=-1)
        return dist.Normal(loc, F.softplus(raw_scale) + MIN_SCALE).to_event(1)


@register_model("two_layer_vae", TwoLayerVAEConfig, "VAE with two stochastic layers z2 -> z1 -> x (Burda et al. 2015)")
class TwoLayerVAE(nn.Module):
    """Two-stochastic-layer VAE with a hierarchical guide (see the module docstring).

    Args:
        config: the architecture.
        event_shape: shape of one observation, e.g. ``torch.Size([28, 28])``.
    """

    observed_sites = ("x",)  # sites conditioned on data; z1 and z2 are latent

    def __init__(self, config: TwoLayerVAEConfig, event_shape: torch.Size):
        super().__init__()
        self.config = config
        self.event_shape = torch.Size(event_shape)
        self.likelihood = get_likelihood(config.likelihood)
        (d1, d2), (h1, h2), act = config.latent_dims, config.hidden, config.activation
        data_dim = prod(self.event_shape)
        self.decoder = mlp([d1, *[h1] * config.depth, data_dim * self.likelihood.outputs_per_dim], act)
        self.p_z1 = NormalLayer(d2, (h2,) * config.depth, d1, act)  # p(z1 | z2)
        self.q_z1 = NormalLayer(data_dim, (h1,) * config.depth, d1, act)  # q(z1 | x)
        self.q_z2 = NormalLayer(d1, (h2,) * config.depth, d2, act)  # q(z2 | z1)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro model p(z2) p(z1 | z2) p(x | z1); ``x=None`` samples ``batch_size`` new points."""
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            z2 = pyro.sample("z2", dist.Normal(self._zero, self._one).expand([self.config.latent_dims[1]]).to_event(1))
            z1 = pyro.sample("z1", self.p_z1(z2))
            px = observation(self.likelihood, self.decoder(z1), self.event_shape, self.config.obs_scale)
            return pyro.sample("x", px, obs=x)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide q(z1 | x) q(z2 | z1): z2's distribution depends on the sampled z1."""
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", self.q_z1(x.reshape(x.shape[0], -1)))
            return pyro.sample("z2", self.q_z2(z1))
