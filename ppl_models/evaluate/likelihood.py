"""The ELBO and the importance-sampled log-likelihood of a trained model, in bounded memory.

With the guide q(z | x) as proposal and K draws z_k ~ q,

    log p(x) ~= logsumexp_k log w_k - log K,   log w_k = log p(x, z_k) - log q(z_k | x),

(Burda et al. 2015, eq. 6; Rezende et al. 2014, appendix E). The estimate is a stochastic lower
bound that tightens as K grows; the mean of log w_k over k is the ELBO. Particles are drawn in
chunks and combined with a running log-sum-exp, so memory does not grow with K.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from ppl_models.models.protocol import NO_LIKELIHOOD, bind_labels, has_likelihood
from ppl_models.objectives.log_weights import log_importance_weights


@dataclass(frozen=True)
class LikelihoodResult:
    """Dataset-level results, in nats per data point."""

    elbo: float  # mean ELBO, averaged over all K draws
    nll: float  # -mean log p(x), importance sampled with K draws (positive for discrete data)
    bits_per_dim: float  # nll / (data dimensions * ln 2)
    nll_samples: int  # K
    n: int  # number of data points

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def evenly_spaced_indices(n: int, limit: int | None) -> torch.Tensor:
    """A fixed subset of ``limit`` indices spread evenly over ``range(n)`` (all of them if None).

    Files sorted by label (the binarized MNIST test set is) need this: their first N rows are not
    a fair sample.
    """
    if limit is None or limit >= n:
        return torch.arange(n)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return torch.linspace(0, n - 1, limit).round().long().unique()


@torch.no_grad()
def bounds_table(
    model, x: torch.Tensor, num_samples: int, iwae_k: tuple[int, ...] = (), batch_size: int = 100,
    particle_chunk: int = 100, progress: bool = False, guide_for: Callable | None = None,
    y: torch.Tensor | None = None, keep_log_weights: bool = False,
) -> dict[str, torch.Tensor]:
    """Per-data-point bounds from one stream of K importance samples, each of shape ``[N]``.

    ``elbo`` is the mean of log w over all K draws, ``iwae_k`` the IWAE bound of the first k
    draws for each k in ``iwae_k`` (at most K), and ``log_px`` the estimate from all K. A model
    without likelihood (:func:`~ppl_models.models.protocol.has_likelihood`) is refused.

    Args:
        model: a module with Pyro ``model(x)`` and ``guide(x)`` methods.
        x: data ``[N, ...]`` on the model's device.
        num_samples: K, importance samples per data point.
        iwae_k: sizes of the IWAE bounds to report besides the ELBO and log p(x).
        batch_size: data points per pass.
        particle_chunk: importance samples per pass; memory scales with batch_size * particle_chunk.
        progress: show a tqdm bar over batches.
        guide_for: ``guide_for(model, x_batch)`` gives the proposal for a batch (an inference
            strategy's fitted or refined guide); by default the model's own guide.
        y: labels ``[N]``, passed to a model conditioned on them (see
            :func:`ppl_models.models.protocol.bind_labels`; a semi-supervised model gets none).
        keep_log_weights: also return every log weight, ``log_weights`` ``[K, N]`` (for k-hat).
    """
    if any(k > num_samples or k < 1 for k in iwae_k):
        raise ValueError(f"iwae_k must lie in 1..{num_samples} (the number of samples), got {list(iwae_k)}")
    if not has_likelihood(model):
        raise ValueError(f"{type(model).__name__} has {NO_LIKELIHOOD}: its observed site has no density, so it "
                         f"has no ELBO and no log p(x) (give it an observation model to get bounds)")
    if getattr(model, "exact_likelihood", False) and num_samples > 1 and not keep_log_weights:
        # no latent sites: every weight is log p(x) itself, so one draw gives every column exactly
        table = bounds_table(model, x, 1, (), batch_size, 1, progress, guide_for, y)
        return {**table, **{f"iwae_{k}": table["log_px"] for k in iwae_k}}
    chunk = max((particle_chunk, *iwae_k))  # the first chunk holds the draws of every IWAE-k bound
    columns: dict[str, list[torch.Tensor]] = {"elbo": [], "log_px": [], **{f"iwae_{k}": [] for k in iwae_k}}
    weights: list[list[torch.Tensor]] = []  # per batch, its particle chunks
    for start in tqdm(range(0, x.shape[0], batch_size), disable=None if progress else True, desc="evaluate", unit="batch"):
        xb = x[start : start + batch_size]
        view = bind_labels(model, None if y is None else y[start : start + batch_size], evaluation=True)
        guide = view.guide if guide_for is None else guide_for(view, xb)
        lse = total = None  # running log-sum-exp and sum of log w over particle chunks
        weights.append([])
        for k0 in range(0, num_samples, chunk):
            lw = log_importance_weights(view.model, guide, xb, num_particles=min(chunk, num_samples - k0))
            if keep_log_weights:
                weights[-1].append(lw)
            if k0 == 0:
                for k in iwae_k:
                    columns[f"iwae_{k}"].append(lw[:k].logsumexp(0) - math.log(k))
            lse = lw.logsumexp(0) if lse is None else torch.logaddexp(lse, lw.logsumexp(0))
            total = lw.sum(0) if total is None else total + lw.sum(0)
        columns["elbo"].append(total / num_samples)
        columns["log_px"].append(lse - math.log(num_samples))
    table = {name: torch.cat(parts) for name, parts in columns.items()}
    if keep_log_weights:
        table["log_weights"] = torch.cat([torch.cat(chunks) for chunks in weights], 1)
    return table


def per_datapoint_bounds(
    model, x: torch.Tensor, num_samples: int, batch_size: int = 100, particle_chunk: int = 100, progress: bool = False,
    guide_for: Callable | None = None, y: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-data-point ELBO and log p(x) estimate, each of shape ``[N]`` (see :func:`bounds_table`)."""
    table = bounds_table(model, x, num_samples, (), batch_size, particle_chunk, progress, guide_for, y)
    return table["elbo"], table["log_px"]


def estimate_log_likelihood(
    model, x: torch.Tensor, num_samples: int = 1000, batch_size: int = 100, particle_chunk: int = 100,
    progress: bool = False, guide_for: Callable | None = None, y: torch.Tensor | None = None,
) -> LikelihoodResult:
    """Mean ELBO, NLL and bits per dimension of ``model`` on data ``x``.

    Args:
        model: a module with Pyro ``model(x)`` and ``guide(x)`` methods.
        x: data ``[N, ...]`` on the model's device.
        num_samples: K, importance samples per data point (any size: drawn in chunks).
        batch_size: data points per pass.
        particle_chunk: importance samples per pass.
        progress: show a tqdm bar.
        guide_for: the proposal for each batch (see :func:`per_datapoint_bounds`).
        y: labels for a model conditioned on them (then the bounds are on log p(x | y)).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    elbo, log_px = per_datapoint_bounds(model, x, num_samples, batch_size, particle_chunk, progress, guide_for, y)
    nll = -log_px.mean().item()
    dims = math.prod(x.shape[1:])
    return LikelihoodResult(elbo.mean().item(), nll, nll / (dims * math.log(2)), num_samples, x.shape[0])
