"""The conditional VAE (Sohn, Lee & Yan 2015, "Learning Structured Output Representation using
Deep Conditional Generative Models") as a Pyro program.

    z | c ~ p(z | c)                      N(mu(c), sigma(c)^2) from Sohn et al.'s conditional prior
                                          network, or N(0, I) with ``prior="standard"``
    x | z, c ~ p(x | decoder(z, c))       the observation's shape, see ``likelihoods.py``
    q(z | x, c)                           the recognition network (the guide)

The condition c comes from one of two builders (``CONDITIONS``):

- ``label``: c = one-hot(y), a class-conditional model (``labels = "condition"``). Given y, the
  bounds are on log p(x | y); without y the model draws y ~ Uniform{0..classes-1} as a latent site
  ``"y"``, so unconditional sampling works.
- ``partial``: c = the visible part of the image (Sohn et al.'s MNIST quadrant prediction); the model
  scores only the hidden pixels, so the bounds are on log p(x_hidden | x_visible).
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
from ppl_models.models.likelihoods import Likelihood, get_likelihood, observation
from ppl_models.nets import mlp
from ppl_models.registry import register_model

PRIORS = ("network", "standard")


@dataclass(frozen=True)
class CVAEConfig:
    """Architecture of the MLP conditional VAE and what it is conditioned on."""

    condition: str = "label"  # label (c = one-hot class) | partial (c = visible part of the image)
    classes: int = 10  # number of classes, for condition="label"
    visible: str = "top"  # visible region for condition="partial" (VISIBLE_REGIONS): top, bottom, left, right, top-left, quadrants:1|2|3
    prior: str = "network"  # p(z | c): network (Sohn et al.'s prior network) | standard (N(0, I))
    latent_dim: int = 16  # size of z
    hidden: tuple[int, ...] = (256,)  # encoder and prior-network hidden widths; the decoder mirrors them
    activation: str = "relu"  # nonlinearity between layers (ppl_models.nets.ACTIVATIONS)
    likelihood: str = "bernoulli"  # bernoulli | gaussian | gaussian-learned
    obs_scale: float = 0.1  # standard deviation of the fixed-scale gaussian likelihood


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate the last dimensions of ``a`` and ``b`` after broadcasting their batch dimensions
    (particles and enumerated values add dimensions on the left of one of them)."""
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*batch, a.shape[-1]), b.expand(*batch, b.shape[-1])], dim=-1)


def _normal(out: torch.Tensor) -> dist.Distribution:
    """A diagonal Normal over the last dimension from a network's ``[..., 2 * latent_dim]`` output."""
    loc, raw_scale = out.chunk(2, dim=-1)
    return dist.Normal(loc, F.softplus(raw_scale) + MIN_SCALE).to_event(1)


class _Condition(nn.Module):
    """What a CVAE is conditioned on: the vector c, the modelled part of x, and p(x | z, c)."""

    name: str  # the config's condition name
    labels: str | None  # the model's label use (ppl_models.models.protocol)
    keyword: str  # the keyword argument of model/guide this condition reads
    dim: int  # size of c
    target_dim: int  # size of the modelled part of one flattened observation

    def batch_size(self, x, y, visible, batch_size: int | None) -> int:
        """The batch size all given inputs agree on; rejects the other condition's keyword."""
        given = {"y": y, "visible": visible}
        wrong = [k for k, v in given.items() if k != self.keyword and v is not None]
        if wrong:
            raise ValueError(f"cvae with condition={self.name!r} takes no {wrong[0]!r} (it reads {self.keyword!r})")
        sizes = {k: int(v.shape[0]) for k, v in (("x", x), (self.keyword, given[self.keyword])) if v is not None}
        if batch_size is not None:
            sizes["batch_size"] = int(batch_size)
        if not sizes:
            raise ValueError(f"cvae needs x, {self.keyword} or batch_size to know the batch size")
        if len(set(sizes.values())) > 1:
            raise ValueError(f"cvae: the batch sizes of its inputs disagree: {sizes}")
        return next(iter(sizes.values()))


class LabelCondition(_Condition):
    """c = one-hot(y): class-conditional generation; without labels the model draws y uniformly."""

    name, labels, keyword = "label", "condition", "y"

    def __init__(self, config: CVAEConfig, event_shape: torch.Size):
        super().__init__()
        self.classes, self.event_shape = config.classes, event_shape
        self.dim, self.target_dim = config.classes, prod(event_shape)

    def _one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if y.dtype != torch.int64 or bool(((y < 0) | (y >= self.classes)).any()):
            raise ValueError(f"cvae labels y must be int64 classes in 0..{self.classes - 1}, got {y.dtype} "
                             f"values {sorted(set(y.flatten().tolist()))[:5]}...")
        return F.one_hot(y, self.classes).to(like.dtype)

    def model_condition(self, x, y, visible, like: torch.Tensor) -> torch.Tensor:
        """c for the model: one-hot(y); a uniform latent site ``"y"`` when ``y`` is None."""
        if y is None:
            y = pyro.sample("y", dist.Categorical(logits=like.new_zeros(self.classes)))
        return self._one_hot(y, like)

    def guide_condition(self, x, y, visible, like: torch.Tensor) -> torch.Tensor:
        """c for the guide: one-hot(y); the guide has no y site, so it needs the labels."""
        if y is None:
            raise ValueError("cvae with condition='label': the guide q(z | x, y) needs the labels y [N] "
                             "(this model is conditioned on them)")
        return self._one_hot(y, like)

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The modelled part of ``x``: all of it, flattened."""
        return x.reshape(x.shape[0], -1)

    def observation(self, lik: Likelihood, out: torch.Tensor, obs_scale: float, x, visible) -> dist.Distribution:
        """p(x | z, c) over whole images."""
        return observation(lik, out, self.event_shape, obs_scale)

    def sample_inputs(self, data, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Labels 0, 1, ..., classes-1, 0, 1, ...: a grid of ``classes`` columns shows one class per column."""
        return {"y": torch.arange(n, device=device) % self.classes}


VISIBLE_REGIONS = {  # (row index grid, column index grid, H, W) -> visible-pixel mask
    "top": lambda r, c, h, w: r < h // 2,
    "bottom": lambda r, c, h, w: r >= h // 2,
    "left": lambda r, c, h, w: c < w // 2,
    "right": lambda r, c, h, w: c >= w // 2,
    "top-left": lambda r, c, h, w: (r < h // 2) & (c < w // 2),
    # Pyro's CVAE tutorial (examples/cvae/mnist.py): 1 quadrant shows the bottom-left, 2 the left half,
    # 3 all but the bottom-right
    "quadrants:1": lambda r, c, h, w: (r >= h // 2) & (c < w // 2),
    "quadrants:2": lambda r, c, h, w: c < w // 2,
    "quadrants:3": lambda r, c, h, w: (r < h // 2) | (c < w // 2),
}


class PartialCondition(_Condition):
    """c = the visible pixels of the image; the model scores only the hidden ones (image completion).

    With ``x`` given, p(x | z, c) masks the log-probability of the visible pixels out, so the bound
    is on log p(x_hidden | x_visible). When sampling (``x=None``) it is a ``MaskedMixture`` of a
    ``Delta`` at the visible pixels and the decoder's likelihood at the hidden ones: draws and means
    (what ``ppl sample`` tiles) are the visible pixels pasted back around the completion.
    """

    name, labels, keyword = "partial", None, "visible"

    def __init__(self, config: CVAEConfig, event_shape: torch.Size):
        super().__init__()
        if len(event_shape) != 2:
            raise ValueError(f"cvae with condition='partial' needs grey images [H, W], got event shape {tuple(event_shape)}")
        if config.visible not in VISIBLE_REGIONS:
            raise ValueError(f"unknown visible region {config.visible!r}; choose one of {', '.join(VISIBLE_REGIONS)}")
        h, w = event_shape
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        self.register_buffer("visible_mask", VISIBLE_REGIONS[config.visible](rows, cols, h, w), persistent=False)
        self.event_shape = event_shape
        self.dim = int(self.visible_mask.sum())
        self.target_dim = h * w - self.dim

    def _source(self, x, visible) -> torch.Tensor:
        source = visible if visible is not None else x
        if source is None:
            raise ValueError("cvae with condition='partial' samples completions: pass the `visible` images [N, H, W] "
                             "(see sample_inputs)")
        if source.shape[1:] != self.event_shape:
            raise ValueError(f"cvae: images must have shape [N, {', '.join(map(str, self.event_shape))}], "
                             f"got {tuple(source.shape)}")
        return source

    def model_condition(self, x, y, visible, like: torch.Tensor) -> torch.Tensor:
        """c: the visible pixels ``[N, dim]`` of ``visible`` if given, else of ``x``."""
        return self._source(x, visible)[:, self.visible_mask]

    guide_condition = model_condition

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The modelled part of ``x``: its hidden pixels ``[N, target_dim]``."""
        return x[:, ~self.visible_mask]

    def observation(self, lik: Likelihood, out: torch.Tensor, obs_scale: float, x, visible) -> dist.Distribution:
        """p(x_hidden | z, c) on whole images: visible pixels masked out, or pasted in when sampling."""
        pixels = lik.build(out.reshape(*out.shape[:-1], *self.event_shape, lik.outputs_per_dim), obs_scale, 0)
        if x is not None:
            return pixels.mask(~self.visible_mask).to_event(2)
        shown = dist.Delta(self._source(x, visible))
        return dist.MaskedMixture(self.visible_mask, pixels, shown).to_event(2)

    def sample_inputs(self, data, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The first ``n`` evenly spread images of ``data.x``, their hidden pixels zeroed."""
        if data is None:
            raise ValueError("cvae with condition='partial' completes images: sample_inputs needs a data split")
        index = torch.linspace(0, data.x.shape[0] - 1, n).round().long()
        return {"visible": data.x[index].to(device) * self.visible_mask}


CONDITIONS: dict[str, type[_Condition]] = {"label": LabelCondition, "partial": PartialCondition}


@register_model("cvae", CVAEConfig, "conditional VAE (Sohn et al. 2015): class-conditional or image completion")
class CVAE(nn.Module):
    """MLP conditional VAE whose ``model`` and ``guide`` are Pyro programs sharing the site ``z``.

    ``labels`` is the condition's: ``"condition"`` for ``condition="label"``, ``None`` for
    ``condition="partial"``. The keyword ``y`` belongs to the label condition and ``visible`` to
    the partial one; passing the other raises.

    Args:
        config: the architecture and condition.
        event_shape: shape of one observation, e.g. ``torch.Size([8, 8])``.
    """

    observed_sites = ("x",)  # sites conditioned on data; the rest of the model's sites are latent

    def __init__(self, config: CVAEConfig, event_shape: torch.Size):
        super().__init__()
        if config.condition not in CONDITIONS:
            raise ValueError(f"unknown cvae condition {config.condition!r}; choose one of {', '.join(CONDITIONS)}")
        if config.prior not in PRIORS:
            raise ValueError(f"unknown cvae prior {config.prior!r}; choose one of {', '.join(PRIORS)}")
        self.config = config
        self.event_shape = torch.Size(event_shape)
        self.likelihood = get_likelihood(config.likelihood)
        self.cond = CONDITIONS[config.condition](config, self.event_shape)
        self.labels = self.cond.labels
        c_dim, hidden, act = self.cond.dim, config.hidden, config.activation
        self.encoder = mlp([self.cond.target_dim + c_dim, *hidden, 2 * config.latent_dim], act)
        self.decoder = mlp(
            [config.latent_dim + c_dim, *reversed(hidden), prod(self.event_shape) * self.likelihood.outputs_per_dim], act
        )
        self.prior_net = mlp([c_dim, *hidden, 2 * config.latent_dim], act) if config.prior == "network" else None
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def _prior(self, c: torch.Tensor) -> dist.Distribution:
        if self.prior_net is None:
            return dist.Normal(self._zero, self._one).expand([self.config.latent_dim]).to_event(1)
        return _normal(self.prior_net(c))

    def model(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, batch_size: int | None = None,
        visible: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pyro model p(z | c) p(x | z, c) for a batch.

        Args:
            x: observations ``[N, *event_shape]``, or ``None`` to sample.
            y: labels ``[N]`` (int64) for ``condition="label"``; ``None`` draws them as the latent site ``"y"``.
            batch_size: how many to sample when ``x``, ``y`` and ``visible`` are all ``None``.
            visible: images ``[N, *event_shape]`` whose visible region is the condition, for
                ``condition="partial"`` (only its visible pixels are read); ``None`` takes them from ``x``.
        """
        n = self.cond.batch_size(x, y, visible, batch_size)
        with pyro.plate("data", n):
            c = self.cond.model_condition(x, y, visible, self._zero)
            z = pyro.sample("z", self._prior(c))
            out = self.decoder(_cat(z, c))
            px = self.cond.observation(self.likelihood, out, self.config.obs_scale, x, visible)
            return pyro.sample("x", px, obs=x)

    def guide(
        self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None,
        visible: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pyro guide q(z | x, c): the recognition network on the modelled part of ``x`` and on c."""
        n = self.cond.batch_size(x, y, visible, batch_size)
        with pyro.plate("data", n):
            c = self.cond.guide_condition(x, y, visible, self._zero)
            return pyro.sample("z", _normal(self.encoder(_cat(self.cond.target(x), c))))

    def sample_inputs(self, data, n: int) -> dict[str, torch.Tensor]:
        """Keyword arguments for ``model(batch_size=n, **...)``: labels ``arange(n) % classes`` (label),
        or the first ``n`` evenly spread images of ``data.x`` with their hidden pixels zeroed (partial).

        Args:
            data: a :class:`ppl_models.data.Split` (unused, may be ``None``, for ``condition="label"``).
            n: number of samples.
        """
        return self.cond.sample_inputs(data, n, self._zero.device)
