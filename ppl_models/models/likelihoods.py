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


GREY_LEVELS = 255  # the largest value of 8-bit grey-level images


def first_bad(bad: torch.Tensor) -> tuple[int, ...] | None:
    """The index of the first True element of the mask ``bad`` (row-major order), or None."""
    if not bool(bad.any()):
        return None
    flat = int(bad.reshape(-1).nonzero()[0])
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), bad.shape))


def row_note(rows: torch.Tensor | None, i: int) -> str:
    """``" (source row r)"`` when ``rows`` (see :class:`ppl_models.data.Split`) says data point ``i``
    came from another row ``r`` of its source, else ``""``."""
    return "" if rows is None or int(rows[i]) == i else f" (source row {int(rows[i])})"


def describe_element(x: torch.Tensor, index: tuple[int, ...], rows: torch.Tensor | None = None) -> str:
    """``"element (i, ...) is v"`` for ``x[index]``, with the source row of data point ``i`` (:func:`row_note`)."""
    return f"element {index}{row_note(rows, index[0])} is {x[index].item()!r}"


def looks_like_grey_levels(x: torch.Tensor) -> bool:
    """Whether ``x`` looks like 8-bit grey levels: whole numbers in 0..255, some above 1."""
    finite = x[torch.isfinite(x)]
    return (finite.numel() > 0 and bool((finite == finite.round()).all()) and float(finite.min()) >= 0
            and 1 < float(finite.max()) <= GREY_LEVELS)


def check_support(lik: Likelihood, x: torch.Tensor, where: str, rows: torch.Tensor | None = None) -> None:
    """Raise a ValueError naming ``where``, the first bad index and its value if ``x`` is outside
    the likelihood's support: every built-in likelihood models pixel intensities, so all need
    finite values in [0, 1], and the binary (Bernoulli) one values in {0, 1}.

    The message says how to fix the usual mistakes: grey levels 0..255 (divide by 255) and grey
    data under a Bernoulli likelihood (``--binarize dynamic`` or a gaussian likelihood).

    Args:
        lik: the likelihood family.
        x: data ``[N, ...]``.
        where: what ``x`` is, for the message (e.g. "binarized_mnist/train", or "path/x.npy/train").
        rows: source row of each data point (``Split.rows``), to name it in the message.
    """
    bad = ~torch.isfinite(x)
    if lik.binary_data:
        bad |= (x != 0) & (x != 1)
        need = "values in {0, 1}"
    else:
        bad |= (x < 0) | (x > 1)
        need = "finite values in [0, 1] (pixel intensities)"
    index = first_bad(bad)
    if index is None:
        return
    if not bool(torch.isfinite(x[index])):
        hint = ""
    elif looks_like_grey_levels(x):
        hint = f" (the data look like grey levels 0..{GREY_LEVELS}: divide them by {GREY_LEVELS}"
        hint += ", then pass --binarize dynamic or use a gaussian likelihood)" if lik.binary_data else ")"
    elif lik.binary_data and 0 <= float(x[index]) <= 1:
        hint = " (grey-level data: pass --binarize dynamic or a gaussian likelihood)"
    else:
        hint = " (rescale the data to [0, 1], or write a model with a likelihood of its own for other data)"
    raise ValueError(f"{where}: the {lik.name} likelihood needs {need}, but {describe_element(x, index, rows)}{hint}")


def check_probabilities(x: torch.Tensor, where: str, rows: torch.Tensor | None = None) -> None:
    """Raise a ValueError naming ``where``, the first bad index and its value unless every value of
    ``x`` is a probability in [0, 1]: dynamic binarization draws x ~ Bernoulli(x) (call this
    before ``torch.bernoulli``, whose own error names nothing).

    Args:
        x: grey-level data ``[N, ...]``.
        where: what ``x`` is, for the message.
        rows: source row of each data point (``Split.rows``), to name it in the message.
    """
    index = first_bad(~((x >= 0) & (x <= 1)))  # NaN fails both comparisons
    if index is None:
        return
    hint = f" (the data look like grey levels 0..{GREY_LEVELS}: divide them by {GREY_LEVELS})" \
        if looks_like_grey_levels(x) else ""
    raise ValueError(f"{where}: --binarize dynamic draws each pixel from Bernoulli(x), so x must lie in [0, 1], "
                     f"but {describe_element(x, index, rows)}{hint}")
