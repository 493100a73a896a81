"""The Gaussian mixture model (Bishop 2006, PRML ch. 9): the simplest latent-variable model.

    c ~ Categorical(pi)                           one of C components, per data point
    x | c ~ Normal(mu_c, diag sigma_c^2)          the observation's shape, flattened to D inside

The component ``c`` is a discrete latent marked ``infer={"enumerate": "parallel"}``: the
objectives sum it out exactly (Pyro's ``TraceEnum_ELBO``; ``log_importance_weights``), so

    log p(x) = log sum_c pi_c N(x | mu_c, sigma_c^2)

is computed in closed form and training is maximum likelihood of pi, mu and sigma, which are
module parameters. The model has no guide: nothing is left to infer once ``c`` is enumerated (the
registry's automatic guide skips enumerated sites and samples nothing).

Initialisation, without data (the model is built before it sees any): every mean is drawn from
Normal(0.5, 0.1) per dimension (the middle of [0, 1] data, spread enough to break the symmetry
between components), every scale is ``INIT_SCALE`` and the weights are uniform. The draw uses
torch's global RNG, which the trainer seeds from the run's seed, so a run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from ppl_models.models.likelihoods import get_likelihood
from ppl_models.registry import register_model

INIT_LOC, INIT_SPREAD = 0.5, 0.1  # initial means ~ Normal(INIT_LOC, INIT_SPREAD) per dimension
INIT_SCALE = 0.3  # initial standard deviation of every component (about that of grey-level digits)


@dataclass(frozen=True)
class GMMConfig:
    """Size of the mixture."""

    components: int = 10  # C, the number of mixture components
    min_scale: float = 0.05  # floor on each component's per-dimension standard deviation (constant pixels)
    likelihood: str = "gaussian"  # the only one: the components are Gaussian

    def __post_init__(self) -> None:
        if self.components < 1:
            raise ValueError(f"gmm: components must be at least 1, got {self.components}")
        if not self.min_scale > 0:
            raise ValueError(f"gmm: min_scale must be positive, got {self.min_scale}")
        if self.likelihood != "gaussian":
            raise ValueError(f"gmm: likelihood must be 'gaussian' (Gaussian components), got {self.likelihood!r}; "
                             f"for binary data use a model with a Bernoulli likelihood, e.g. vae")


@register_model("gmm", GMMConfig, "Gaussian mixture, diagonal components; the component is enumerated (exact log p(x))")
class GMM(nn.Module):
    """Gaussian mixture with diagonal covariances, fitted by maximum likelihood (Bishop 2006, ch. 9).

    Args:
        config: the number of components and the scale floor.
        event_shape: shape of one observation, e.g. ``torch.Size([8, 8])``; flattened to D dims.
    """

    observed_sites = ("x",)  # sites conditioned on data; ``c`` is the (enumerated) latent

    def __init__(self, config: GMMConfig, event_shape: torch.Size):
        super().__init__()
        self.config = config
        self.event_shape = torch.Size(event_shape)
        self.likelihood = get_likelihood("gaussian")  # read by the trainer's data checks
        dim, c = prod(self.event_shape), config.components
        if INIT_SCALE <= config.min_scale:
            raise ValueError(f"gmm: min_scale {config.min_scale} must be below the initial scale {INIT_SCALE}")
        self.logits = nn.Parameter(torch.zeros(c))  # log pi up to a constant
        self.loc = nn.Parameter(INIT_LOC + INIT_SPREAD * torch.randn(c, dim))  # mu, [C, D]
        raw = torch.full((c, dim), INIT_SCALE - config.min_scale)
        self.raw_scale = nn.Parameter(raw.expm1().log())  # softplus^-1 of sigma - min_scale, [C, D]

    @property
    def weights(self) -> torch.Tensor:
        """The mixing proportions pi, ``[C]``."""
        return self.logits.softmax(-1)

    @property
    def scale(self) -> torch.Tensor:
        """The per-dimension standard deviations sigma, ``[C, D]`` (at least ``min_scale``)."""
        return F.softplus(self.raw_scale) + self.config.min_scale

    def component_means(self) -> torch.Tensor:
        """The component means mu reshaped to observations, ``[C, *event_shape]`` (detached)."""
        return self.loc.detach().reshape(-1, *self.event_shape)

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro model: c ~ pi, x ~ N(mu_c, sigma_c^2); ``x=None`` samples ``batch_size`` new points.

        Under enumeration ``c`` holds every component at once (shape ``[C, 1, ...]``), so the
        component parameters are gathered with the value's shape and broadcast against the batch.
        """
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            c = pyro.sample("c", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            loc = self.loc[c].reshape(*c.shape, *self.event_shape)
            scale = self.scale[c].reshape(*c.shape, *self.event_shape)
            return pyro.sample("x", dist.Normal(loc, scale).to_event(len(self.event_shape)), obs=x)
