"""Condition a model on the observed pixels only: the likelihood of the visible part of an image.

Latent completion needs p(x_observed | z) = prod over visible pixels of p(x_i | z). Pyro's own tools
mask whole events: ``poutine.mask`` and ``Distribution.mask`` take a mask that broadcasts against the
*batch* shape, and ``obs_mask`` does the same (and turns masked values into latent sites). An image
likelihood is one event per image (``.to_event(2)``), so a per-pixel mask falls inside its event.
We therefore wrap the observed site's distribution in :class:`VisibleLikelihood`, which evaluates the
per-pixel log-densities of the distribution inside the event (its ``Independent`` base, or the
Bernoulli logits of :class:`~ppl_models.models.likelihoods.BernoulliImage`) and sums the visible ones.
:func:`observe_visible` installs it at the model's observed site with a small Pyro messenger, so the
model's own code runs unchanged, user models included.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from pyro.poutine.messenger import Messenger
from torch.distributions import Independent

from ppl_models.models.likelihoods import BernoulliImage


def pixel_log_prob(fn: torch.distributions.Distribution, value: torch.Tensor, site: str = "x") -> torch.Tensor:
    """log p(value_i) for every element i of ``value`` ``[*batch, *event]``, if ``fn`` factorizes over them.

    Args:
        fn: the observed site's distribution.
        value: the observation.
        site: the site's name, for the message.

    Raises:
        ValueError: ``fn``'s density does not split into one term per element (e.g. an autoregressive
            image, or a multivariate Normal), naming the site and the distribution.
    """
    if isinstance(fn, BernoulliImage):
        logits, value = torch.broadcast_tensors(fn.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")
    if isinstance(fn, (Independent, dist.Independent)):
        return pixel_log_prob(fn.base_dist, value, site)
    if isinstance(fn, dist.MaskedDistribution):
        return pixel_log_prob(fn.base_dist, value, site) * fn._mask
    if fn.event_shape == torch.Size():
        return fn.log_prob(value)
    raise ValueError(f"the observed site {site!r} has a {type(fn).__name__} with event shape {list(fn.event_shape)}, "
                     f"whose log-density does not split into one term per pixel; conditioning on the observed "
                     f"pixels needs pixels that are independent given the latent variables")


class VisibleLikelihood(TorchDistribution):
    """``base`` with only its ``visible`` elements scored: log p(x_visible), one event per observation.

    Draws and means are the base's (hidden pixels drawn, visible ones too: completion code pastes
    the observed values back).

    Args:
        base: the observed site's distribution, event shape ``E``.
        visible: a boolean mask broadcastable to ``[*batch, *E]``: True where a value is observed.
        site: the site's name, for messages.
    """

    arg_constraints: dict = {}

    def __init__(self, base: torch.distributions.Distribution, visible: torch.Tensor, site: str = "x"):
        self.base, self.visible, self.site = base, visible, site
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self):
        return self.base.support

    @property
    def mean(self) -> torch.Tensor:
        return self.base.mean

    def expand(self, batch_shape, _instance=None) -> "VisibleLikelihood":
        """The distribution with its batch shape broadcast to ``batch_shape``."""
        return VisibleLikelihood(self.base.expand(batch_shape), self.visible, self.site)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        """A draw of the base distribution."""
        return self.base.sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Sum over the visible elements of each observation of log p(value_i), batch-shaped."""
        lp = pixel_log_prob(self.base, value, self.site)
        lp = torch.where(self.visible, lp, lp.new_zeros(()))  # where, not *: a hidden -inf must not give NaN
        event_dims = len(self.event_shape)
        return lp.flatten(-event_dims).sum(-1) if event_dims else lp


class observe_visible(Messenger):
    """A Pyro messenger under which the observed site ``site`` scores only its ``visible`` values.

    Example::

        with observe_visible(~hidden):
            trace = poutine.trace(module.model).get_trace(x)   # the site "x" holds log p(x_visible | z)

    Args:
        visible: a boolean mask broadcastable to the site's ``[*batch, *event]`` shape (e.g. ``[N, H, W]``).
        site: the observed site (the model's first ``observed_sites`` entry).
    """

    def __init__(self, visible: torch.Tensor, site: str = "x"):
        super().__init__()
        self.visible, self.site = visible, site

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] == self.site and msg["is_observed"] and not isinstance(msg["fn"], VisibleLikelihood):
            msg["fn"] = VisibleLikelihood(msg["fn"], self.visible.to(msg["value"].device), self.site)


def visible_model(module, visible: torch.Tensor):
    """``module.model`` conditioned on the visible part of its observation only (a plain function)."""
    site = module.observed_sites[0]

    def model(*args, **kwargs):
        with observe_visible(visible, site):
            return module.model(*args, **kwargs)

    return model
