"""Completion with a conditional VAE trained to see the observed part: the amortized reference.

The zoo's ``cvae`` with ``condition="partial"`` (Sohn, Lee & Yan 2015, "Learning Structured Output
Representation using Deep Conditional Generative Models", their MNIST quadrant prediction; Pyro's CVAE
example) models p(x_h | c) = E_{p(z | c)} p(x_h | z, c) with c the visible pixels of one fixed
region. Completing an image is then sampling it:

- draws: z ~ p(z | c), x_h ~ p(x_h | z, c) (the model's own ``model(visible=x)``; its
  ``MaskedMixture`` pastes the visible pixels back);
- mean: E[x_h | c] = E_{p(z | c)} E[x_h | z, c], the decoder's mean averaged over K draws of z;
- log p(x_h | x_v): importance sampling with the recognition network q(z | x, c) as proposal,
  K draws (Burda et al. 2015): the model's own bounds are on log p(x_h | x_v).

It completes only the mask it was trained for: its visible region must be the mask's observed part.
"""

from __future__ import annotations

import time

import pyro
import torch
from pyro import poutine
from tqdm.auto import tqdm

from ppl_models.completion.masks import HALVES, QUADRANTS_VISIBLE, parse_mask
from ppl_models.completion.method import Completion, CompletionMethod, CompletionSettings, paste, register_method
from ppl_models.evaluate.likelihood import bounds_table
from ppl_models.models.cvae import CVAE, VISIBLE_REGIONS

MASK_NAMES = (*HALVES, *(f"quadrants:{k}" for k in QUADRANTS_VISIBLE))  # the named masks of masks.py


def region_mask(region: str, event_shape: tuple[int, int]) -> torch.Tensor:
    """The visible pixels ``[H, W]`` (bool) of the cvae visible region ``region`` (``VISIBLE_REGIONS``)."""
    h, w = event_shape
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return VISIBLE_REGIONS[region](rows, cols, h, w)


def _matching(visible: torch.Tensor, names, mask_of) -> list[str]:
    return [name for name in names if torch.equal(mask_of(name).to(visible.device), visible)]


def mismatch_reason(module: CVAE, hidden: torch.Tensor) -> str | None:
    """Why a partial cvae cannot complete under ``hidden`` ``[N, H, W]``: its visible region is not the
    observed part of every image (naming the region it was trained for, the mask it completes, and the
    visible region that would match), or None."""
    event = tuple(module.event_shape)
    trained = module.cond.visible_mask
    if tuple(hidden.shape[-2:]) != event:
        return f"not applicable: the mask is for images {list(hidden.shape[-2:])}, this cvae's are {list(event)}"
    observed = ~hidden.reshape(-1, *event)
    if bool((observed == trained.to(observed.device)).all()):
        return None
    completes = _matching(~trained, MASK_NAMES, lambda name: parse_mask(name, event).hidden)
    why = (f"not applicable: this cvae was trained with visible={module.config.visible!r}"
           + (f" (it completes the mask {' or '.join(completes)})" if completes else ""))
    if not bool((observed == observed[:1]).all()):
        return f"{why}; the mask differs between images, and a cvae sees one fixed region"
    regions = _matching(observed[0], VISIBLE_REGIONS, lambda name: region_mask(name, event))
    if regions:
        also = f" (or {', '.join(regions[1:])})" if len(regions) > 1 else ""
        return f"{why}; train one with --set visible={regions[0]}{also} for this mask"
    return f"{why}; this mask's observed pixels match no cvae visible region ({', '.join(VISIBLE_REGIONS)})"


@torch.no_grad()
def completion_draws(module: CVAE, x: torch.Tensor, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` draws of the model given the visible part of ``x`` ``[B, H, W]``, and each draw's
    decoder mean, both ``[samples, B, H, W]`` (visible pixels: ``x``'s).

    Both are read from a trace of ``module.model(visible=x)`` under a particle plate left of the data
    plate: the site ``x``'s value and its distribution's mean (the decoder's mean at hidden pixels)."""
    with pyro.plate("particles", samples, dim=-2):
        site = poutine.trace(module.model).get_trace(visible=x).nodes[module.observed_sites[0]]
    return site["value"], site["fn"].mean


@torch.no_grad()
def predictive_mean(module: CVAE, x: torch.Tensor, particles: int, chunk: int) -> torch.Tensor:
    """E[x_h | c] ``[B, H, W]``: the decoder's mean averaged over ``particles`` draws z ~ p(z | c),
    drawn ``chunk`` at a time (visible pixels: ``x``'s)."""
    total = torch.zeros_like(x)
    for k0 in range(0, particles, chunk):
        total += completion_draws(module, x, min(chunk, particles - k0))[1].sum(0)
    return total / particles


@register_method("cvae", "a conditional VAE trained with the observed part as its condition (Sohn et al. 2015): "
                 "the amortized reference, for the one mask it was trained on")
class ConditionalVAECompletion(CompletionMethod):
    """Complete images with a ``cvae`` (``condition="partial"``) whose visible region is the observed part."""

    def not_applicable(self, module: torch.nn.Module, hidden: torch.Tensor) -> str | None:
        """A reason unless ``module`` is a partial cvae whose ``cond.visible_mask`` is ``~hidden`` in every image."""
        if not isinstance(module, CVAE):
            return (f"not applicable: needs a cvae trained on the observed part (condition='partial'); "
                    f"{type(module).__name__} is not one")
        if module.config.condition != "partial":
            return (f"not applicable: this cvae is conditioned on {module.config.condition!r}; completion needs "
                    f"one trained with --set condition=partial --set visible=<the observed region>")
        return mismatch_reason(module, hidden)

    def complete(self, module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor,
                 settings: CompletionSettings) -> list[Completion]:
        """Complete ``x`` ``[N, H, W]`` (``hidden`` must be the cvae's hidden region); one :class:`Completion` row.

        log_p_hidden comes first, from :func:`~ppl_models.evaluate.likelihood.bounds_table` with
        K = ``settings.num_particles`` (so it equals that function's ``log_px`` under the same seed),
        then the draws and the mean, ``settings.batch_size`` images at a time.
        """
        start = time.perf_counter()
        why = self.not_applicable(module, hidden)
        if why is not None:
            raise ValueError(f"cvae completion: {why}")
        k = settings.num_particles
        log_p_hidden = bounds_table(module, x, k, batch_size=settings.batch_size,
                                    particle_chunk=settings.particle_chunk, progress=settings.progress)["log_px"].cpu()
        draws, means = [], []
        for b0 in tqdm(range(0, x.shape[0], settings.batch_size), disable=None if settings.progress else True,
                       desc="cvae", unit="batch"):
            xb = x[b0 : b0 + settings.batch_size]
            draws.append(completion_draws(module, xb, settings.samples)[0].cpu())
            means.append(predictive_mean(module, xb, k, settings.particle_chunk).cpu())
        x_cpu = x.detach().cpu()
        hidden_cpu = hidden.cpu().expand_as(x_cpu)
        return [Completion(self.name, "", paste(x_cpu, torch.cat(draws, 1), hidden_cpu),
                           paste(x_cpu, torch.cat(means), hidden_cpu), log_p_hidden,
                           f"IS with the recognition network q(z | x_hidden, x_visible), K={k}",
                           time.perf_counter() - start, {"visible": module.config.visible, "mean_particles": k})]
