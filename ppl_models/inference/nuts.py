"""A gold-standard posterior for a handful of data points: NUTS over the latents, network frozen.

The No-U-Turn sampler (Hoffman & Gelman 2014) draws from p(z | x) of the trained model, so it
shows what the amortized guide q(z | x) misses (the amortization and approximation gaps of Cremer
et al. 2018). Choices:

- The network is frozen: its weights are ``nn.Parameter`` attributes, not ``pyro.param`` sites, so
  NUTS treats them as constants; :func:`frozen` also turns off their ``requires_grad`` while it
  runs (and restores it), so no graph is built through them and no ``.grad`` accumulates.
- One chain per data point by default: the posterior factorizes over the data plate, and separate
  chains adapt their own step size and mass matrix, so one hard data point cannot stall the others.
  ``joint=True`` runs all points as one chain (less Python overhead, shared adaptation).
- The model must only have latents local to its data plate (dim -1), as the models here do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.transforms import ReshapeTransform
from pyro.infer import MCMC, NUTS
from pyro.util import get_rng_state, set_rng_state
from torch import nn
from torch.distributions import biject_to

from ppl_models.inference.estimators import log_likelihood, log_mean_exp_chunked
from ppl_models.objectives.log_weights import log_importance_weights


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Turn off ``requires_grad`` on every parameter of ``module`` inside the block, then restore it."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def nuts_posterior(
    module: nn.Module, x: torch.Tensor, num_samples: int = 200, warmup: int = 200, seed: int = 0, joint: bool = False,
    max_tree_depth: int = 10, progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Draw from p(z | x) for every latent site with NUTS, the module's network held fixed.

    Args:
        module: a module with a Pyro ``model(x)`` whose latents are local to its data plate.
        x: a few data points ``[N, ...]``.
        num_samples: S, kept draws per chain.
        warmup: adaptation steps per chain (step size and diagonal mass matrix), discarded.
        seed: chain i runs under seed ``seed + i``; the caller's RNG state is restored.
        joint: one chain over all N points instead of one chain per point.
        max_tree_depth: NUTS's cap on the trajectory doubling.
        progress: show Pyro's progress bar.

    Returns:
        ``{site: Tensor[S, N, ...]}`` for every latent sample site.
    """
    batches = [x] if joint else [x[i : i + 1] for i in range(x.shape[0])]
    rng = get_rng_state()
    draws: dict[str, list[torch.Tensor]] = {}
    try:
        with frozen(module):
            for i, xb in enumerate(batches):
                pyro.set_rng_seed(seed + i)
                kernel = NUTS(module.model, max_tree_depth=max_tree_depth)
                mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, disable_progbar=not progress)
                mcmc.run(xb)
                for site, value in mcmc.get_samples().items():
                    draws.setdefault(site, []).append(value.detach())
    finally:
        set_rng_state(rng)
    return {site: torch.cat(values, dim=1) for site, values in draws.items()}


@dataclass(frozen=True)
class PosteriorCheck:
    """How the guide q(z | x_n) of one data point compares with its NUTS posterior (all latents)."""

    index: int  # position of the data point in x
    mean_distance: float  # |guide mean - NUTS mean| / NUTS std, averaged over latent dimensions
    std_ratio: float  # guide std / NUTS std, averaged over latent dimensions
    log_px_nuts: float | None  # log p(x) importance-sampled with a Gaussian fitted to the NUTS draws
    log_px_guide: float | None  # log p(x) importance-sampled with the guide, same K
    num_samples: int  # K of both log p(x) estimates (0 when they were not computed)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def _guide_moments(module: nn.Module, x: torch.Tensor, sites: list[str], num_samples: int) -> dict[str, tuple]:
    """Per-site guide mean and std, ``[N, ...]`` each: exact when the distribution has them, else sampled."""
    trace = poutine.trace(module.guide).get_trace(x)
    out = {}
    for site in sites:
        fn = trace.nodes[site]["fn"]
        try:
            out[site] = (fn.mean, fn.variance.sqrt())
        except NotImplementedError:
            with pyro.plate("moments", num_samples, dim=-2):
                z = poutine.trace(module.guide).get_trace(x).nodes[site]["value"]
            out[site] = (z.mean(0), z.std(0))
    return out


def fitted_proposal(
    module: nn.Module, x: torch.Tensor, samples: dict[str, torch.Tensor], widen: float = 1.2
) -> Callable[..., None]:
    """A Pyro guide with a Gaussian per data point and site, fitted to posterior draws.

    Each site's draws are mapped to unconstrained space, flattened, and fitted with a full-covariance
    normal (sample mean; sample covariance times ``widen**2`` for heavier coverage, plus a small
    jitter), then mapped back: a proposal for importance sampling whose tails cover the posterior.

    Args:
        module: the module whose ``model`` defines the sites' supports.
        x: the data points ``[N, ...]`` the draws belong to.
        samples: ``{site: Tensor[S, N, ...]}``, e.g. from :func:`nuts_posterior`.
        widen: factor on the fitted standard deviations.

    Returns:
        ``guide(x)``, a Pyro program sampling every site in ``samples`` inside ``pyro.plate("data")``.
    """
    with torch.no_grad():
        model_sites = poutine.trace(module.model).get_trace(x).nodes
    proposals = {}
    for site, draws in samples.items():
        fn = model_sites[site]["fn"]
        event_shape = fn.event_shape
        to_support = biject_to(fn.support)
        flat = to_support.inv(draws).reshape(draws.shape[0], x.shape[0], -1)  # [S, N, D]
        loc = flat.mean(0)
        centred = flat - loc
        cov = torch.einsum("snd,sne->nde", centred, centred) / max(flat.shape[0] - 1, 1)
        eye = torch.eye(flat.shape[-1], dtype=flat.dtype, device=flat.device)
        jitter = 1e-6 * cov.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[..., None, None]
        cov = widen**2 * cov + jitter * eye
        base = dist.MultivariateNormal(loc, covariance_matrix=cov)
        proposals[site] = dist.TransformedDistribution(
            base, [ReshapeTransform(torch.Size([flat.shape[-1]]), event_shape), to_support]
        )

    def guide(x: torch.Tensor, batch_size: int | None = None) -> None:
        with pyro.plate("data", x.shape[0]):
            for site, proposal in proposals.items():
                pyro.sample(site, proposal)

    return guide


@torch.no_grad()
def compare_with_guide(
    module: nn.Module, x: torch.Tensor, samples: dict[str, torch.Tensor], log_px_samples: int = 1000,
    particle_chunk: int = 500, seed: int = 0, widen: float = 1.2, moment_samples: int = 1000,
) -> list[PosteriorCheck]:
    """Check the guide of each data point against its NUTS posterior draws.

    Args:
        module: a module with Pyro ``model(x)`` and ``guide(x)`` methods.
        x: the data points ``[N, ...]`` that ``samples`` were drawn for.
        samples: ``{site: Tensor[S, N, ...]}`` from :func:`nuts_posterior`.
        log_px_samples: K for the two importance-sampled log p(x); 0 skips them.
        particle_chunk: draws per pass of the log p(x) estimates.
        seed: seed of the log p(x) estimates (both use it); the caller's RNG state is restored.
        widen: standard-deviation factor of the Gaussian fitted to the NUTS draws.
        moment_samples: draws for the guide's moments when its distribution lacks closed forms.

    Returns:
        One :class:`PosteriorCheck` per data point.
    """
    n, sites = x.shape[0], sorted(samples)
    moments = _guide_moments(module, x, sites, moment_samples)
    distances, ratios = [], []
    for site in sites:
        nuts_mean, nuts_std = samples[site].mean(0), samples[site].std(0)
        guide_mean, guide_std = moments[site]
        distances.append(((guide_mean - nuts_mean).abs() / nuts_std).reshape(n, -1))
        ratios.append((guide_std / nuts_std).reshape(n, -1))
    distance, ratio = torch.cat(distances, 1).mean(1), torch.cat(ratios, 1).mean(1)
    log_nuts = log_guide = [None] * n
    if log_px_samples > 0:
        proposal = fitted_proposal(module, x, samples, widen)
        rng = get_rng_state()
        try:
            pyro.set_rng_seed(seed)
            log_nuts = log_mean_exp_chunked(
                lambda k: log_importance_weights(module.model, proposal, x, num_particles=k),
                log_px_samples, particle_chunk,
            ).tolist()
            pyro.set_rng_seed(seed)
            log_guide = log_likelihood(module, x, log_px_samples, "guide", x.shape[0], particle_chunk).tolist()
        finally:
            set_rng_state(rng)
    return [
        PosteriorCheck(i, distance[i].item(), ratio[i].item(), log_nuts[i], log_guide[i], max(log_px_samples, 0))
        for i in range(n)
    ]
