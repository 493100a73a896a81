"""S draws per data point from a guide, and everything the diagnostics read off them.

One batched pass of model and guide per chunk of particles (the traces of
:func:`ppl_models.objectives.log_weights.particle_traces`) gives, per draw z_s ~ q(z | x_n):

    log w_s = log p(x_n, z_s) - log q(z_s | x_n)           the importance weight
    log p(x_n | z_s) = log p(x_n, z_s) - log p(z_s)         the likelihood term
    rate_s = log q(z_s | x_n) - log p(z_s)                  so rate_s - log p(x_n | z_s) = -log w_s

Model sites marked for enumeration (a mixture's component) are summed out of both log p(x, z)
and log p(z), so log p(x | z) marginalizes them exactly (log sum_c p(x, z, c) - log sum_c p(z, c)).

Per site, the draws also give the posterior mean E_q[z] (averaging q's own mean over the draws
where the distribution has one, which removes most of the Monte Carlo noise for a diagonal
Normal) and, where q and p factorize over the site's coordinates, the KL per coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.distributions import Independent, kl_divergence

from ppl_models.objectives.log_weights import particle_traces, per_point, sample_sites, sum_enumerated


@dataclass
class PosteriorDraws:
    """What S guide draws say about each of N data points (tensors on the data's device)."""

    log_weights: torch.Tensor  # [S, N] log p(x, z_s) - log q(z_s | x)
    log_likelihood: torch.Tensor  # [S, N] log p(x | z_s), enumerated sites summed out
    latents: dict[str, torch.Tensor]  # site -> [D, N, ...]: the first D draws of each latent site
    posterior_mean: dict[str, torch.Tensor]  # continuous site -> [N, ...]: E_q[z] per data point
    rate: torch.Tensor  # [N] KL(q(z | x) || p(z)): closed form if ``rate_analytic``, else Monte Carlo
    rate_analytic: bool  # the rate is the closed-form KL (one latent site, no enumeration, torch knows it)
    kl_per_dim: dict[str, torch.Tensor] = field(default_factory=dict)  # site -> [N, ...] KL per coordinate
    kl_per_dim_missing: dict[str, str] = field(default_factory=dict)  # site -> why it has no KL per coordinate
    discrete_sites: tuple[str, ...] = ()  # latent sites with a discrete support (no mean, no active units)
    global_sites: tuple[str, ...] = ()  # latent sites outside the data plate (counted in every point's weight)

    @property
    def num_samples(self) -> int:
        """S, the draws per data point."""
        return self.log_weights.shape[0]


def _base(fn):
    """The distribution inside any ``Independent`` wrappers, with the number of event dims they added."""
    dims = 0
    while isinstance(fn, Independent):
        dims += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn, dims


def _mean_or_value(fn, value: torch.Tensor) -> torch.Tensor:
    base, _ = _base(fn)
    if type(base).__name__ == "Delta":
        return value
    try:
        mean = fn.mean
    except NotImplementedError:
        return value
    return mean.expand_as(value) if torch.is_tensor(mean) and bool(torch.isfinite(mean).all()) else value


def _elementwise(fn, value: torch.Tensor):
    """The base distribution of ``fn`` if it factorizes over every coordinate of ``value``, else None."""
    base, _ = _base(fn)
    if type(base).__name__ == "Delta" or base.event_shape != torch.Size():
        return None
    try:
        return base if base.log_prob(value).shape == value.shape else None
    except (ValueError, RuntimeError):
        return None


def _per_dim_kl(q_fn, p_fn, value: torch.Tensor, analytic: bool) -> torch.Tensor | str:
    """KL(q || p) per coordinate of one site, ``[k, B, ...]``, or the reason there is none."""
    q_base, p_base = _elementwise(q_fn, value), _elementwise(p_fn, value)
    if q_base is None or p_base is None:
        return "q or p does not factorize over its coordinates"
    if analytic:
        try:
            return kl_divergence(q_base, p_base).expand_as(value)
        except NotImplementedError:
            pass
    return q_base.log_prob(value) - p_base.log_prob(value)


class _Accumulator:
    """Running sums over particle chunks for one batch of data points."""

    def __init__(self, keep: int):
        self.keep = keep
        self.log_w: list[torch.Tensor] = []
        self.log_lik: list[torch.Tensor] = []
        self.latents: dict[str, list[torch.Tensor]] = {}
        self.kept = 0
        self.sums: dict[str, torch.Tensor] = {}  # "mean:SITE", "kl:SITE", "rate"
        self.count = 0

    def add(self, name: str, value: torch.Tensor) -> None:
        total = value.sum(0)
        self.sums[name] = total if name not in self.sums else self.sums[name] + total


def _chunk(model, guide, x, k: int, acc: _Accumulator, notes: dict) -> None:
    guide_trace, model_trace, particle_dim = particle_traces(model, guide, x, num_particles=k)
    observed = [s for s in sample_sites(model_trace) if s["is_observed"]]
    latent = [s for s in sample_sites(model_trace) if not s["is_observed"]]
    enumerated = [s for s in latent if "_enumerate_dim" in s["infer"]]
    proposed = [s for s in sample_sites(guide_trace) if not s["is_observed"]]

    def total(sites) -> torch.Tensor | float:
        out: torch.Tensor | float = 0.0
        for s in sites:
            out = out + per_point(s["fn"].log_prob(s["value"]), particle_dim)
        return out

    log_prior = sum_enumerated(total(latent), particle_dim)
    log_joint = sum_enumerated(total(latent) + total(observed), particle_dim)
    log_q = total(proposed)
    shape = (k, x.shape[0])
    log_w = torch.as_tensor(log_joint - log_q).expand(shape)
    log_lik = torch.as_tensor(log_joint - log_prior).expand(shape)
    acc.log_w.append(log_w)
    acc.log_lik.append(log_lik)
    acc.count += k

    by_name = {s["name"]: s for s in proposed}
    continuous = [s for s in latent if s not in enumerated]
    local = [s for s in continuous if any(f.dim == -1 for f in s["cond_indep_stack"])]
    notes["global"] = tuple(s["name"] for s in continuous if s not in local)
    notes["discrete"] = tuple(s["name"] for s in local if s["fn"].support.is_discrete)
    analytic = (len(local) == 1 and not enumerated and set(by_name) == {local[0]["name"]}
                and not local[0]["fn"].support.is_discrete)
    rate = None
    if analytic:
        site = local[0]
        try:
            rate = per_point(kl_divergence(by_name[site["name"]]["fn"], site["fn"]), particle_dim).expand(shape)
        except NotImplementedError:
            analytic = False
    notes["rate_analytic"] = analytic
    acc.add("rate", log_lik - log_w if rate is None else rate)

    take = min(acc.keep - acc.kept, k)
    for s in local:
        name, value = s["name"], s["value"]
        if take > 0:
            acc.latents.setdefault(name, []).append(value[:take].expand(take, *value.shape[1:]))
        if s["fn"].support.is_discrete or name not in by_name:
            continue
        q_fn = by_name[name]["fn"]
        acc.add(f"mean:{name}", _mean_or_value(q_fn, value).expand_as(value))
        kl = _per_dim_kl(q_fn, s["fn"], value, analytic)
        if isinstance(kl, str):
            notes.setdefault("kl_missing", {})[name] = kl
        else:
            acc.add(f"kl:{name}", kl.expand_as(value))
    acc.kept += max(take, 0)


@torch.no_grad()
def draw_posterior(model, guide, x: torch.Tensor, num_samples: int, keep: int = 100,
                   particle_chunk: int = 100) -> PosteriorDraws:
    """Draw ``num_samples`` z_s ~ q(z | x) per data point of the batch ``x`` and summarize them.

    Args:
        model: Pyro model ``model(x)`` with its data plate at dim -1.
        guide: Pyro guide ``guide(x)`` with the same latent site names.
        x: a batch of observations ``[N, ...]``.
        num_samples: S, draws per data point.
        keep: D, draws per data point kept as values of the latent sites (for export).
        particle_chunk: draws per pass; memory scales with N * particle_chunk.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    acc, notes = _Accumulator(keep), {}
    for k0 in range(0, num_samples, particle_chunk):
        _chunk(model, guide, x, min(particle_chunk, num_samples - k0), acc, notes)
    s = acc.count
    return PosteriorDraws(
        log_weights=torch.cat(acc.log_w), log_likelihood=torch.cat(acc.log_lik),
        latents={name: torch.cat(parts) for name, parts in acc.latents.items()},
        posterior_mean={k[5:]: v / s for k, v in acc.sums.items() if k.startswith("mean:")},
        rate=acc.sums["rate"] / s, rate_analytic=notes["rate_analytic"],
        kl_per_dim={k[3:]: v / s for k, v in acc.sums.items() if k.startswith("kl:")},
        kl_per_dim_missing=notes.get("kl_missing", {}), discrete_sites=notes["discrete"],
        global_sites=notes["global"],
    )


def concatenate(parts: list[PosteriorDraws]) -> PosteriorDraws:
    """Join the draws of consecutive batches of data points (along the data dimension)."""
    first = parts[0]
    cat = lambda key, dim: {n: torch.cat([getattr(p, key)[n] for p in parts], dim) for n in getattr(first, key)}  # noqa: E731
    return PosteriorDraws(
        log_weights=torch.cat([p.log_weights for p in parts], 1),
        log_likelihood=torch.cat([p.log_likelihood for p in parts], 1),
        latents=cat("latents", 1), posterior_mean=cat("posterior_mean", 0), rate=torch.cat([p.rate for p in parts]),
        rate_analytic=first.rate_analytic, kl_per_dim=cat("kl_per_dim", 0),
        kl_per_dim_missing=first.kl_per_dim_missing, discrete_sites=first.discrete_sites,
        global_sites=first.global_sites,
    )
