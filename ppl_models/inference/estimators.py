"""Log-likelihood estimators at equal cost: naive Monte Carlo from the prior vs importance sampling.

Both estimate log p(x) = log E[w] with K draws and the same log-mean-exp,

    log p(x) ~= logsumexp_k log w_k - log K,

and differ only in the proposal:

- ``"prior"``: z_k ~ p(z), log w_k = log p(x | z_k) (the naive Monte Carlo estimator);
- ``"guide"``: z_k ~ q(z | x), log w_k = log p(x, z_k) - log q(z_k | x) (Burda et al. 2015, eq. 6).

Both are consistent and, by Jensen's inequality, biased low for finite K. In a deep latent model
the prior almost never proposes a z that explains a given x, so its estimate is far below log p(x)
and noisy; the guide proposes where the posterior is (Rezende et al. 2014, appendix E; Wu et al.
2017, "On the quantitative analysis of decoder-based generative models"). :func:`compare_estimators`
measures that gap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from pyro.util import get_rng_state, set_rng_state
from torch import nn
from tqdm.auto import tqdm

from ppl_models.objectives.log_weights import log_importance_weights

PROPOSALS = ("guide", "prior")


def prior_log_weights(model: Callable, *args, num_particles: int = 1, max_plate_nesting: int = 1) -> torch.Tensor:
    """log w_k(x_n) = log p(x_n | z_k) for ``num_particles`` draws z_k ~ p(z), the naive MC weights.

    The model runs once inside a ``pyro.plate`` to the left of its own plates, so its latent sites
    draw K prior samples per data point; the weight sums the ``log_prob`` of the observed sites
    (``site["is_observed"]``, including ``pyro.factor`` terms). Site scales are not applied.

    Args:
        model: Pyro model ``model(*args)`` that observes its data; its data plate is the rightmost
            batch dimension.
        *args: the model's arguments, e.g. a batch ``x`` of shape ``[N, ...]``.
        num_particles: K, the number of prior draws per data point.
        max_plate_nesting: how many plates the model nests (1 for a single data plate).

    Returns:
        Tensor of shape ``[num_particles, N]``.
    """
    with pyro.plate("particles", num_particles, dim=-(max_plate_nesting + 1)):
        trace = poutine.trace(model).get_trace(*args)
    log_w: torch.Tensor | None = None
    for site in trace.nodes.values():
        if site["type"] == "sample" and site["is_observed"] and not site_is_subsample(site):
            lp = site["fn"].log_prob(site["value"])
            log_w = lp if log_w is None else log_w + lp
    if log_w is None:
        raise ValueError("the model has no observed sample sites: pass the data it conditions on")
    return log_w


def log_mean_exp_chunked(
    log_weights: Callable[[int], torch.Tensor], num_samples: int, particle_chunk: int = 100
) -> torch.Tensor:
    """logsumexp_k log w_k - log K over ``num_samples`` weights drawn ``particle_chunk`` at a time.

    Args:
        log_weights: ``log_weights(k)`` draws k weights per data point, shape ``[k, N]``.
        num_samples: K, the total number of weights per data point.
        particle_chunk: weights per call; memory scales with it, not with K.

    Returns:
        Tensor of shape ``[N]``, combined with a running log-sum-exp.
    """
    if num_samples < 1 or particle_chunk < 1:
        raise ValueError(f"num_samples and particle_chunk must be at least 1, got {num_samples}, {particle_chunk}")
    lse = None
    for k0 in range(0, num_samples, particle_chunk):
        chunk = log_weights(min(particle_chunk, num_samples - k0)).logsumexp(0)
        lse = chunk if lse is None else torch.logaddexp(lse, chunk)
    return lse - math.log(num_samples)


@torch.no_grad()
def log_likelihood(
    module: nn.Module, x: torch.Tensor, num_samples: int, proposal: str = "guide", batch_size: int = 100,
    particle_chunk: int = 100, max_plate_nesting: int = 1,
) -> torch.Tensor:
    """Per-data-point estimate of log p(x) with K = ``num_samples`` draws from ``proposal``.

    Streams like :func:`ppl_models.evaluate.likelihood.per_datapoint_bounds`: ``batch_size`` data
    points and ``particle_chunk`` draws per pass, combined with a running log-sum-exp.

    Args:
        module: a module with Pyro ``model(x)`` and ``guide(x)`` methods.
        x: data ``[N, ...]`` on the module's device.
        num_samples: K, draws per data point.
        proposal: ``"guide"`` (importance sampling with q(z | x)) or ``"prior"`` (naive MC).
        batch_size: data points per pass.
        particle_chunk: draws per pass; memory scales with batch_size * particle_chunk.
        max_plate_nesting: how many plates the model nests.

    Returns:
        Tensor of shape ``[N]``.
    """
    if proposal not in PROPOSALS:
        raise ValueError(f"unknown proposal {proposal!r}; choose one of {list(PROPOSALS)}")
    weights, programs = (
        (log_importance_weights, (module.model, module.guide)) if proposal == "guide" else (prior_log_weights, (module.model,))
    )
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        out.append(log_mean_exp_chunked(
            lambda k: weights(*programs, xb, num_particles=k, max_plate_nesting=max_plate_nesting),  # noqa: B023
            num_samples, particle_chunk,
        ))
    return torch.cat(out)


@dataclass(frozen=True)
class EstimatorResult:
    """One estimator at one K, repeated with fresh draws; log-likelihoods in nats per data point."""

    estimator: str  # proposal: "guide" (importance sampling) or "prior" (naive Monte Carlo)
    num_samples: int  # K, draws per data point
    repeats: int  # independent repetitions of the whole estimate
    n: int  # number of data points
    mean: float  # mean over repeats of the dataset-mean log p(x) estimate
    reference: float  # dataset-mean reference log p(x)
    reference_samples: int | None  # K of the guide-IS reference; None when an exact reference was given
    bias: float  # mean - reference (negative: the estimate is low)
    spread: float  # std over repeats of the dataset-mean estimate
    point_spread: float  # std over repeats of each data point's estimate, averaged over data points
    rmse: float  # root mean square over repeats of (dataset-mean estimate - reference)
    seconds: float  # mean wall-clock seconds of one repeat (one pass over the data)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def _sync(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def compare_estimators(
    module: nn.Module, x: torch.Tensor, num_samples: int | Sequence[int], repeats: int = 10, reference_samples: int = 5000,
    reference: torch.Tensor | None = None, seed: int = 0, proposals: Sequence[str] = PROPOSALS,
    batch_size: int = 100, particle_chunk: int = 100, progress: bool = False,
) -> list[EstimatorResult]:
    """Bias, spread and cost of the log p(x) estimators with equal numbers of draws K.

    The reference is ``reference`` (exact per-point log p(x), shape ``[N]``) if given, else the
    guide-IS estimate with ``reference_samples`` draws. Repeat r of every estimator runs under
    seed ``seed + 1 + r`` (the reference under ``seed``); the caller's RNG state is restored.

    Args:
        module: a module with Pyro ``model(x)`` and ``guide(x)`` methods.
        x: data ``[N, ...]`` on the module's device.
        num_samples: K, or several Ks (one result per K and proposal).
        repeats: independent repetitions per estimator (at least 2, for the spread).
        reference_samples: K of the guide-IS reference when ``reference`` is None.
        reference: exact per-point log p(x), shape ``[N]``.
        seed: base seed.
        proposals: estimators to run, from ``("guide", "prior")``.
        batch_size: data points per pass.
        particle_chunk: draws per pass.
        progress: show a tqdm bar over (K, proposal, repeat).

    Returns:
        One :class:`EstimatorResult` per (K, proposal), Ks in the given order.
    """
    if repeats < 2:
        raise ValueError(f"repeats must be at least 2 to measure a spread, got {repeats}")
    ks = [num_samples] if isinstance(num_samples, int) else list(num_samples)
    rng = get_rng_state()
    try:
        if reference is None:
            pyro.set_rng_seed(seed)
            reference = log_likelihood(module, x, reference_samples, "guide", batch_size, particle_chunk)
            ref_k = reference_samples
        else:
            ref_k = None
        ref = reference.to(x.device, torch.float64).mean()
        runs = [(k, p, r) for k in ks for p in proposals for r in range(repeats)]
        estimates: dict[tuple[int, str], list[torch.Tensor]] = {}
        seconds: dict[tuple[int, str], float] = {}
        for k, p, r in tqdm(runs, disable=None if progress else True, desc="estimators", unit="run"):
            pyro.set_rng_seed(seed + 1 + r)
            _sync(x)
            t0 = time.perf_counter()
            est = log_likelihood(module, x, k, p, batch_size, particle_chunk)
            _sync(x)
            seconds[k, p] = seconds.get((k, p), 0.0) + time.perf_counter() - t0
            estimates.setdefault((k, p), []).append(est.to(torch.float64))
    finally:
        set_rng_state(rng)
    results = []
    for (k, p), ests in estimates.items():
        per_point = torch.stack(ests)  # [repeats, N]
        means = per_point.mean(1)
        results.append(EstimatorResult(
            estimator=p, num_samples=k, repeats=repeats, n=x.shape[0], mean=means.mean().item(),
            reference=ref.item(), reference_samples=ref_k, bias=(means.mean() - ref).item(),
            spread=means.std().item(), point_spread=per_point.std(0).mean().item(),
            rmse=(means - ref).square().mean().sqrt().item(), seconds=seconds[k, p] / repeats,
        ))
    return results
