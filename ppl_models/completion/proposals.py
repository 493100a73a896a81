"""Where the particles come from in latent completion: four proposals q(z) for p(z | x_observed).

Latent completion (:mod:`.latent`) weights draws z_k ~ q by w_k = p(z_k, x_observed) / q(z_k) and
decodes them. The proposals, from the cheapest to the most fitted:

- the prior p(z): the model itself with its observed site blocked, so log w = log p(x_observed | z)
  (likelihood weighting; valid for any model, poor when x_observed says much about z);
- the encoder q(z | x) fed the image with its hidden pixels set to 0 (it never saw masked inputs);
- the encoder fed an iteratively imputed image: z ~ q(z | x_t), the hidden pixels of x_{t+1} are the
  decoder's mean E[x | z] (the missing-data imputation of Rezende et al. 2014, with means instead
  of draws; Mattei & Frellsen 2018 discuss where it goes wrong), R rounds from the zero-filled image;
- per-point SVI: a diagonal Normal per image fitted to p(z | x_observed) by maximizing the ELBO of
  the visible-only model (:func:`ppl_models.inference.per_datapoint.fit_local`), started from the
  encoder on the imputed image (semi-amortized inference, Kim et al. 2018).

Also here: :class:`ModelRecorder`, which reads the latent values and the observed site's
distribution off one pass of a model, and :func:`observation_mean`.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import pyro
import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from ppl_models.completion.masked_likelihood import visible_model
from ppl_models.completion.method import paste
from ppl_models.inference.local_guide import LatentSite, LocalGuide, LocalParams, guide_params, latent_sites
from ppl_models.inference.per_datapoint import fit_local

MOMENT_DRAWS = 64  # encoder draws whose moments start per-point SVI when the encoder is not a diagonal Normal


class ModelRecorder(Messenger):
    """A Pyro messenger that records, during one pass of a model, its latent values and the
    distribution at its observed site.

    After the pass, ``latents`` maps each unobserved sample site to its value and ``fn`` is the
    distribution of the site ``site`` (e.g. a :class:`~.masked_likelihood.VisibleLikelihood`).

    Args:
        site: the model's observed site (its first ``observed_sites`` entry).

    Raises:
        ValueError: (during the pass) a latent site is enumerated: its value is the enumerated
            support, not a draw, and latent completion needs draws.
    """

    def __init__(self, site: str):
        super().__init__()
        self.site = site
        self.latents: dict[str, torch.Tensor] = {}
        self.fn: torch.distributions.Distribution | None = None

    def _pyro_post_sample(self, msg: dict) -> None:
        if site_is_subsample(msg):
            return
        if msg["name"] == self.site:
            self.fn = msg["fn"]
        elif not msg["is_observed"]:
            if "_enumerate_dim" in msg["infer"]:
                raise ValueError(f"latent site {msg['name']!r} is enumerated in the model and its proposal does not "
                                 f"sample it; latent completion needs a draw of every latent site")
            self.latents[msg["name"]] = msg["value"]


def observation_mean(fn: torch.distributions.Distribution | None, site: str = "x") -> torch.Tensor:
    """E[x | z]: the mean of the observed site's distribution ``fn`` (``[*batch, *event]``).

    Raises:
        ValueError: the site was not reached, or its distribution has no mean (naming both).
    """
    if fn is None:
        raise ValueError(f"the model never reached its observed site {site!r}")
    try:
        return fn.mean
    except NotImplementedError:
        raise ValueError(f"the observed site {site!r} has a {type(fn).__name__}, which has no mean; latent "
                         f"completion's mean image needs E[x | z]") from None


def prior_proposal(module: torch.nn.Module) -> Callable:
    """p(z) as a guide: ``module.model`` with its observed sites blocked, run on the batch."""
    return poutine.block(module.model, hide=list(module.observed_sites))


def encoder_proposal(module: torch.nn.Module, x_in: torch.Tensor) -> Callable:
    """q(z | x_in) as a guide that ignores its arguments: the model's guide fed ``x_in`` ``[B, *event]``."""

    def guide(*args, **kwargs):
        return module.guide(x_in)

    return guide


def decoder_mean(module: torch.nn.Module, guide: Callable, x: torch.Tensor) -> torch.Tensor:
    """E[x | z] for one draw z ~ ``guide(x)`` per image, ``[B, *event]`` (the model replayed on the draw)."""
    site = module.observed_sites[0]
    guide_trace = poutine.trace(guide).get_trace(x)
    recorder = ModelRecorder(site)
    poutine.replay(recorder(module.model), trace=guide_trace)(x)
    return observation_mean(recorder.fn, site).expand(x.shape)


def impute(module: torch.nn.Module, x_fill: torch.Tensor, hidden: torch.Tensor, rounds: int) -> torch.Tensor:
    """Iterative imputation (after Rezende et al. 2014): ``rounds`` times draw z ~ q(z | x_t) and
    set the hidden pixels of x_{t+1} to E[x | z], from ``x_fill`` (hidden pixels 0).

    Args:
        module: the model, with its encoder ``guide``.
        x_fill: the images ``[B, *event]`` with their hidden pixels set to 0.
        hidden: ``[B, *event]``, True where a pixel is missing.
        rounds: R, the number of rounds (0: ``x_fill`` itself).

    Returns:
        The imputed images ``[B, *event]`` (observed pixels those of ``x_fill``).
    """
    x_t = x_fill
    for _ in range(rounds):
        x_t = paste(x_fill, decoder_mean(module, encoder_proposal(module, x_t), x_fill), hidden)
    return x_t


def encoder_start(module: torch.nn.Module, x_in: torch.Tensor, sites: list[LatentSite]) -> tuple[LocalParams, str]:
    """Starting ``(loc, log_scale)`` per site for per-point SVI, from the encoder fed ``x_in``.

    A diagonal-Normal encoder gives its own parameters (:func:`guide_params`); any other guide (a
    full-covariance Normal, a flow) gives the per-coordinate mean and log standard deviation of
    ``MOMENT_DRAWS`` of its draws, mapped into each site's unconstrained space.

    Returns:
        The parameters (detached) and how they were found, for the row's ``extra``.
    """
    try:
        params = guide_params(module, x_in, sites)
        return {name: (loc.detach(), log_scale.detach()) for name, (loc, log_scale) in params.items()}, "encoder"
    except ValueError as e:
        reason = str(e)
    with pyro.plate("particles", MOMENT_DRAWS, dim=-2):
        trace = poutine.trace(module.guide).get_trace(x_in)
    params = {}
    for site in sites:
        u = biject_to(site.support).inv(trace.nodes[site.name]["value"])
        u = u.expand(MOMENT_DRAWS, x_in.shape[0], *site.shape)
        params[site.name] = (u.mean(0), u.std(0).clamp_min(1e-4).log())
    return params, f"moments of {MOMENT_DRAWS} encoder draws ({reason})"


def svi_proposal(module: torch.nn.Module, hidden: torch.Tensor, x_fill: torch.Tensor, x_start: torch.Tensor,
                 steps: int, lr: float, tol: float = 1e-3) -> tuple[LocalGuide, dict]:
    """Per-point SVI on the visible-only model: a diagonal Normal q_i(z) per image, fitted by
    :func:`~ppl_models.inference.per_datapoint.fit_local` from the encoder fed ``x_start``.

    Args:
        module: the model (frozen: only q_i is fitted).
        hidden: ``[B, *event]``, True where a pixel is missing.
        x_fill: the images with their hidden pixels set to 0 (only visible pixels are scored).
        x_start: what the encoder sees for the starting point (the imputed images).
        steps: the cap on Adam steps.
        lr: Adam's step size.
        tol: relative improvement of the windowed loss below which the fit stops.

    Returns:
        The fitted guide and ``{"svi_steps": steps taken, "svi_start": how it started}``.

    Raises:
        ValueError: a latent site is discrete or outside the data plate (see :func:`latent_sites`).
    """
    sites = latent_sites(module, x_fill)
    start, how = encoder_start(module, x_start, sites)
    target = SimpleNamespace(model=visible_model(module, ~hidden))  # fit_local reads only .model
    fitted, taken = fit_local(target, x_fill, sites, start, steps, lr, tol)
    return LocalGuide(sites, fitted), {"svi_steps": int(taken), "svi_start": how}
