"""Observation likelihoods p(x | z) built from a decoder's flat output.

Each likelihood says how many decoder outputs it needs per data dimension and turns those outputs
into a Pyro distribution whose event covers one whole observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

MIN_SCALE = 1e-3  # floor on a learned pixel scale, so densities on constant pixels stay finite


@dataclass(frozen=True)
class Likelihood:
    """How a decoder output becomes p(x | z)."""

    name: str  # name used in configs and on the command line
    outputs_per_dim: int  # decoder outputs needed per data dimension
    binary_data: bool  # True when the support is {0, 1}
    build: Callable[[torch.Tensor, float, int], dist.Distribution]  # (outputs [..., *event, k], obs_scale, event dims)
    description: str  # one line for help texts


class BernoulliImage(TorchDistribution):
    """Independent Bernoulli pixels given by logits, one event per image.

    The same distribution as ``Bernoulli(logits=logits).to_event(event_dims)`` (tested), with
    ``log_prob`` negating the per-image sum instead of every pixel: torch's ``Bernoulli.log_prob``
    negates the whole ``[K, B, H, W]`` tensor, which cost 15% of an IWAE step at K=50
    (benchmarks/iwae_step.py). This is the one hand-written log-density among the likelihoods.

    Args:
        logits: ``[*batch, *event]`` log-odds of each pixel being 1.
        event_dims: how many rightmost dimensions of ``logits`` form one observation.
    """

    arg_constraints = {"logits": constraints.real}
    has_rsample = False

    def __init__(self, logits: torch.Tensor, event_dims: int, validate_args: bool | None = None):
        self.logits = logits
        split = logits.dim() - event_dims
        super().__init__(logits.shape[:split], logits.shape[split:], validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.boolean, len(self.event_shape))

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def expand(self, batch_shape, _instance=None) -> "BernoulliImage":
        """The distribution with its batch shape broadcast to ``batch_shape``."""
        shape = torch.Size(batch_shape) + self.event_shape
        return BernoulliImage(self.logits.expand(shape), len(self.event_shape))

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """Draw binary images."""
        with torch.no_grad():
            return torch.bernoulli(torch.sigmoid(self.logits).expand(self.shape(sample_shape)))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Sum over each image's pixels of log Bernoulli(value | logits), batch-shaped."""
        logits, value = torch.broadcast_tensors(self.logits, value)
        bce = F.binary_cross_entropy_with_logits(logits, value, reduction="none")
        return -bce.flatten(-len(self.event_shape)).sum(-1) if self.event_shape else -bce


def _bernoulli(out: torch.Tensor, obs_scale: float, event_dims: int) -> dist.Distribution:
    return BernoulliImage(out[..., 0], event_dims)


def _gaussian_fixed(out: torch.Tensor, obs_scale: float, event_dims: int) -> dist.Distribution:
    loc = out[..., 0]
    return dist.Normal(loc, loc.new_tensor(obs_scale).expand(loc.shape)).to_event(event_dims)


def _gaussian_learned(out: torch.Tensor, obs_scale: float, event_dims: int) -> dist.Distribution:
    return dist.Normal(out[..., 0], F.softplus(out[..., 1]) + MIN_SCALE).to_event(event_dims)


LIKELIHOODS: dict[str, Likelihood] = {
    lik.name: lik
    for lik in [
        Likelihood("bernoulli", 1, True, _bernoulli, "Bernoulli logits per pixel, for binary data"),
        Likelihood("gaussian", 1, False, _gaussian_fixed, "Normal with fixed scale obs_scale: the L2 loss"),
        Likelihood("gaussian-learned", 2, False, _gaussian_learned, "Normal with decoded mean and per-pixel scale"),
    ]
}


def get_likelihood(name: str) -> Likelihood:
    """Look up a likelihood by name, with an error that lists the valid names."""
    try:
        return LIKELIHOODS[name]
    except KeyError:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {', '.join(LIKELIHOODS)}") from None


def observation(lik: Likelihood, out: torch.Tensor, event_shape: torch.Size, obs_scale: float) -> dist.Distribution:
    """p(x | z) with batch shape ``out.shape[:-1]`` and event shape ``event_shape``.

    Args:
        lik: the likelihood family.
        out: decoder output of shape ``[..., prod(event_shape) * lik.outputs_per_dim]``.
        event_shape: shape of one observation, e.g. ``(28, 28)``.
        obs_scale: fixed standard deviation, used by ``gaussian`` only.
    """
    out = out.reshape(*out.shape[:-1], *event_shape, lik.outputs_per_dim)
    return lik.build(out, obs_scale, len(event_shape))


def check_support(lik: Likelihood, x: torch.Tensor, where: str) -> None:
    """Raise a ValueError naming ``where``, the first bad index and its value if ``x`` is outside
    the likelihood's support (binary likelihoods need every value in {0, 1}; all need finite values).

    Args:
        lik: the likelihood family.
        x: data ``[N, ...]``.
        where: what ``x`` is, for the message (e.g. "binarized_mnist/train").
    """
    bad = ~torch.isfinite(x)
    need = "finite values"
    if lik.binary_data:
        bad |= (x != 0) & (x != 1)
        need = "values in {0, 1}"
    if bool(bad.any()):
        flat = int(bad.reshape(-1).nonzero()[0])
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), x.shape))
        hint = " (grey-level data: pass --binarize dynamic or a gaussian likelihood)" if lik.binary_data else ""
        raise ValueError(
            f"{where}: the {lik.name} likelihood needs {need}, but element {index} is {x[index].item()!r}{hint}"
        )
