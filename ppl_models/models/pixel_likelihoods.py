"""Per-pixel conditionals p(x_i | x_<i) of an autoregressive image model, from a network's outputs.

An autoregressive network gives ``outputs`` numbers for each pixel; a :class:`PixelLikelihood`
turns the numbers of one pixel into its log-probability, a draw and a mean. Images hold values in
[0, 1]; the 8-bit likelihoods model the grey level ``round(x * 255)``.

- ``bernoulli``: 1 output, the logit of the pixel being 1 (binary data).
- ``categorical``: 256 outputs, a softmax over the grey levels (van den Oord et al. 2016).
- ``logistic``: 2 outputs, the location and log-scale of a logistic discretized into the 256 bins
  of width 1/255 centred on k/255, the edge bins extended to -inf and +inf (Salimans et al. 2017,
  "PixelCNN++", eq. 2, with one mixture component).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.distributions import Categorical

LEVELS = 256  # grey levels of 8-bit images
MIN_LOG_SCALE = -7.0  # floor on the logistic's log-scale, as in PixelCNN++


@dataclass(frozen=True)
class PixelLikelihood:
    """One pixel's conditional given the network's outputs for it (``out`` is ``[..., outputs]``)."""

    name: str  # name used in configs and on the command line
    outputs: int  # network outputs per pixel
    binary_data: bool  # True when the support is {0, 1} (read by likelihoods.check_support)
    log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (out [..., k], x [...]) -> log p [...]
    sample: Callable[[torch.Tensor], torch.Tensor]  # out [..., k] -> a draw x [...] in [0, 1]
    mean: Callable[[torch.Tensor], torch.Tensor]  # out [..., k] -> E[x] [...]
    description: str  # one line for help texts


def grey_levels(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit grey level ``round(x * 255)`` of values ``x`` in [0, 1], as int64."""
    return (x * (LEVELS - 1)).round().clamp(0, LEVELS - 1).long()


def _bernoulli_log_prob(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # the log-density of BernoulliImage (likelihoods.py): -BCE with logits, without torch's extra negations
    return -F.binary_cross_entropy_with_logits(out[..., 0], x, reduction="none")


def _bernoulli_sample(out: torch.Tensor) -> torch.Tensor:
    return torch.bernoulli(torch.sigmoid(out[..., 0]))


def _categorical_log_prob(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return Categorical(logits=out).log_prob(grey_levels(x))


def _categorical_sample(out: torch.Tensor) -> torch.Tensor:
    return Categorical(logits=out).sample().to(out.dtype) / (LEVELS - 1)


def _categorical_mean(out: torch.Tensor) -> torch.Tensor:
    levels = torch.arange(LEVELS, dtype=out.dtype, device=out.device) / (LEVELS - 1)
    return torch.softmax(out, -1) @ levels


# The discretized logistic is written by hand: neither torch nor Pyro has a discretized logistic
# distribution (both have only the continuous one). With a = (c + h - loc) / s and b = (c - h - loc) / s
# for the bin centred on c, half-width h = 1 / 510,
#     P(bin) = sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)),
# so log P = logsigmoid(a) + logsigmoid(-b) + log(-expm1(b - a)), stable for every loc and scale
# (no cut-over to the density at the centre, as PixelCNN++ needs for its plain difference).
# The lowest bin is logsigmoid(a) (its lower edge is -inf), the highest logsigmoid(-b).

def _logistic_parts(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return out[..., 0], out[..., 1].clamp(min=MIN_LOG_SCALE)


def discretized_logistic_log_prob(loc: torch.Tensor, log_scale: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """log P(grey level ``level``) under a logistic(loc, exp(log_scale)) on [0, 1] discretized into 256 bins.

    Args:
        loc, log_scale: the logistic's location and log-scale, broadcastable with ``level``.
        level: int64 grey levels in 0..255.
    """
    half = 0.5 / (LEVELS - 1)
    centre = level.to(loc.dtype) / (LEVELS - 1)
    inv_scale = torch.exp(-log_scale)
    a = (centre + half - loc) * inv_scale
    b = (centre - half - loc) * inv_scale
    interior = F.logsigmoid(a) + F.logsigmoid(-b) + torch.log(-torch.expm1(-2 * half * inv_scale))
    return torch.where(level == 0, F.logsigmoid(a), torch.where(level == LEVELS - 1, F.logsigmoid(-b), interior))


def _logistic_log_prob(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    loc, log_scale = _logistic_parts(out)
    return discretized_logistic_log_prob(loc, log_scale, grey_levels(x))


def _logistic_sample(out: torch.Tensor) -> torch.Tensor:
    # a continuous logistic draw, rounded to its bin: exactly a draw of the discretized distribution
    loc, log_scale = _logistic_parts(out)
    u = torch.rand_like(loc).clamp(1e-6, 1 - 1e-6)
    y = loc + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return grey_levels(y.clamp(0, 1)).to(out.dtype) / (LEVELS - 1)


def _logistic_mean(out: torch.Tensor) -> torch.Tensor:
    loc, log_scale = _logistic_parts(out)
    levels = torch.arange(LEVELS, device=out.device)
    log_p = discretized_logistic_log_prob(loc[..., None], log_scale[..., None], levels)
    return log_p.exp() @ (levels.to(out.dtype) / (LEVELS - 1))


PIXEL_LIKELIHOODS: dict[str, PixelLikelihood] = {
    lik.name: lik
    for lik in [
        PixelLikelihood("bernoulli", 1, True, _bernoulli_log_prob, _bernoulli_sample,
                        lambda out: torch.sigmoid(out[..., 0]), "Bernoulli logit per pixel, for binary data"),
        PixelLikelihood("categorical", LEVELS, False, _categorical_log_prob, _categorical_sample, _categorical_mean,
                        "256-way softmax over the grey level round(255 x)"),
        PixelLikelihood("logistic", 2, False, _logistic_log_prob, _logistic_sample, _logistic_mean,
                        "discretized logistic over 256 grey levels (PixelCNN++, one component)"),
    ]
}


def get_pixel_likelihood(name: str) -> PixelLikelihood:
    """Look up a pixel likelihood by name, with an error that lists the valid names."""
    try:
        return PIXEL_LIKELIHOODS[name]
    except KeyError:
        raise ValueError(f"unknown pixel likelihood {name!r}; choose one of {', '.join(PIXEL_LIKELIHOODS)}") from None
