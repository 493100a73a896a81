"""Annealed importance sampling (AIS) estimates of log p(x) for a trained model, its network frozen.

AIS (Neal 2001, "Annealed importance sampling") moves samples from the prior to the posterior
through the geometric path of unnormalized densities

    f_beta(z) = p(z) p(x | z)^beta,    0 = beta_0 < beta_1 < ... < beta_T = 1,

where f_0 = p(z) is normalized and f_1 = p(x, z) has normalizer p(x). Starting at z_0 ~ p(z) and
moving z_{t-1} -> z_t with a Markov kernel that leaves f_{beta_t} invariant, the weight

    log w = sum_{t=1..T} [log f_{beta_t}(z_{t-1}) - log f_{beta_{t-1}}(z_{t-1})]

has E[w] = p(x), so log of the mean of C independent weights is a stochastic lower bound on
log p(x) (Jensen). Wu, Burda, Salakhutdinov & Grosse (2017, "On the quantitative analysis of
decoder-based generative models") use it, with HMC transitions, to evaluate VAEs and GANs; this
module follows their recipe, one AIS run per data point, vectorized over chains x points.

Choices:

- Schedule: the sigmoid schedule of Grosse et al. (2015) and Wu et al. (2017),
  beta_t = (s(delta (2t/T - 1)) - s(-delta)) / (s(delta) - s(-delta)), s logistic, delta = 4:
  small steps near both ends, where f_beta changes fastest (``"linear"`` is available too).
  ``steps`` T counts weight increments; HMC runs at beta_1 .. beta_{T-1} (z_0 ~ p(z) is exact and a
  move at beta_T would not change the weight), so T = 1 is importance sampling from the prior.
- Latents: continuous sites move in unconstrained space, z = biject_to(support)(u), and
  log f_beta(u) includes log |det dz/du|. Sites marked ``infer={"enumerate": "parallel"}`` (a
  mixture's component) are summed out exactly: log f_beta(z) = log sum_c p(z, c) p(x | z, c)^beta.
  Without continuous latents that sum is log p(x) itself (``AISResult.exact``).
- Transitions: one HMC step per temperature, ``leapfrog`` steps, identity mass matrix, Metropolis
  correction, all chains x points at once, each step size jittered by +-``JITTER`` (Neal 2011).
  Step sizes are tuned on a separate pilot run (one chain per point, same schedule) that adapts
  log eps += ``ADAPT_RATE`` (acceptance probability - ``TARGET_ACCEPT``) after each transition;
  the estimating run uses the pilot's step size per (transition, point), fixed. Adapting inside
  the estimating run would bias it: the step size of transition t would depend on the chain's own
  current state z_{t-1} (was it just accepted?), so the kernel would no longer leave f_{beta_t}
  invariant, which Neal's proof needs of every kernel given what determined it (on the
  linear-Gaussian test model in-run adaptation overestimated log p(x) by about 0.07 nats at
  T = 1000). The pilot is independent of the estimating chains, so the estimate stays unbiased.
- The network is frozen (:func:`ppl_models.inference.nuts.frozen`, found through ``module.model``
  or a partial of it): gradients are taken with respect to the latents only.
- The model's only plate is its data plate (dim -1), and every site is local to it: the chains
  run in a plate at dim -2, enumeration uses dims -3 and further left.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import sum_rightmost
from pyro.poutine.util import site_is_subsample
from torch import nn
from torch.distributions import biject_to
from tqdm.auto import tqdm

from ppl_models.inference.nuts import frozen
from ppl_models.rng import restored_rng
from ppl_models.objectives.log_weights import sum_enumerated

CHAIN_DIM = -2  # dim of the chain plate; the model's data plate is dim -1
ENUM_DIM = -3  # first dim for enumerated discrete latents
SIGMOID_DELTA = 4.0  # delta of the sigmoid schedule (Grosse et al. 2015; Wu et al. 2017)
TARGET_ACCEPT = 0.65  # acceptance rate the step sizes are adapted towards
ADAPT_RATE = 0.2  # log step size += ADAPT_RATE * (acceptance probability - TARGET_ACCEPT)
JITTER = 0.2  # each transition's step sizes are eps * U(1 - JITTER, 1 + JITTER) (Neal 2011)
MIN_STEP, MAX_STEP = 1e-4, 1.0  # bounds on each leapfrog step size


@dataclass(frozen=True)
class AISResult:
    """AIS estimates of log p(x_n) for a batch of data points."""

    log_px: torch.Tensor  # [N] log of the mean AIS weight over chains (stochastic lower bound)
    log_weights: torch.Tensor  # [C, N] per-chain log weights
    steps: int  # T, the number of annealing increments (T - 1 HMC transitions)
    chains: int  # C, independent AIS runs per data point
    leapfrog: int  # leapfrog steps per HMC transition
    acceptance: float  # mean HMC acceptance rate over all transitions (nan when there were none)
    exact: bool  # True when no continuous latent exists (enumeration made it exact)


def beta_schedule(steps: int, schedule: str = "sigmoid") -> list[float]:
    """The T + 1 inverse temperatures beta_0 = 0 < ... < beta_T = 1 (``"sigmoid"`` or ``"linear"``)."""
    if steps < 1:
        raise ValueError(f"ais: steps must be at least 1, got {steps}")
    ts = [t / steps for t in range(steps + 1)]
    if schedule == "linear":
        return ts
    if schedule != "sigmoid":
        raise ValueError(f"ais: schedule must be 'sigmoid' or 'linear', got {schedule!r}")
    s = [1.0 / (1.0 + math.exp(-SIGMOID_DELTA * (2 * t - 1))) for t in ts]
    return [0.0] + [(v - s[0]) / (s[-1] - s[0]) for v in s[1:-1]] + [1.0]


def owner_module(model: Callable) -> nn.Module | None:
    """The ``nn.Module`` a Pyro program belongs to (``module.model``, or a partial of it), if any."""
    fn = model
    while isinstance(fn, partial):
        fn = fn.func
    owner = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def network_frozen(model: Callable):
    """:func:`frozen` on the module owning ``model``; a no-op for a plain function."""
    owner = owner_module(model)
    return frozen(owner) if owner is not None else nullcontext()


def _check_local(site: dict) -> None:
    """Raise a ValueError naming ``site`` unless its only plate (besides the chains) is the data plate."""
    frames = [f for f in site["cond_indep_stack"] if f.dim != CHAIN_DIM]
    if -1 not in {f.dim for f in frames}:
        raise ValueError(f"ais: site {site['name']!r} is global (outside the data plate at dim -1); per-point AIS "
                         f"needs every site local to the data plate")
    if len(frames) > 1:
        nested = [f.name for f in frames if f.dim != -1]
        raise ValueError(f"ais: site {site['name']!r} lies in nested plate(s) {nested}; per-point AIS supports only "
                         f"the data plate")


@dataclass(frozen=True)
class Evaluation:
    """log f_beta and its parts at one point u of every chain and data point."""

    latent: torch.Tensor  # [E..., C, N] sum of the latent sites' log-densities plus log |det dz/du|
    observed: torch.Tensor  # [E..., C, N] sum of the observed sites' log-densities
    log_f: torch.Tensor  # [C, N] log f_beta, enumeration summed out
    grad: dict[str, torch.Tensor]  # d log f_beta / du per continuous site (empty without grad)

    def at(self, beta: float) -> torch.Tensor:
        """log f_beta at another beta, ``[C, N]``."""
        return sum_enumerated(self.latent + beta * self.observed, CHAIN_DIM)


class AnnealingPath:
    """The densities f_beta of ``model`` on data ``x``, C chains per point, in unconstrained coordinates.

    Tracing the model forward inside the chain plate classifies its sites and draws z_0 ~ p(z).
    """

    def __init__(self, model: Callable, x: torch.Tensor, chains: int):
        self.model, self.x, self.chains = model, x, chains
        with pyro.plate("chains", chains, dim=CHAIN_DIM):
            trace = poutine.trace(model).get_trace(x)
        self.observed: list[str] = []  # sites conditioned on data
        self.latent: list[str] = []  # every other site: continuous or enumerated
        self.transforms: dict = {}  # continuous site -> biject_to(support)
        self.prior_draw: dict[str, torch.Tensor] = {}  # continuous site -> u_0 = T^-1(z_0), [C, N, ...]
        for site in trace.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            _check_local(site)
            name = site["name"]
            if site["is_observed"]:
                self.observed.append(name)
                continue
            self.latent.append(name)
            if site["infer"].get("enumerate") == "parallel":
                continue
            if site["fn"].support.is_discrete:
                raise ValueError(f"ais: discrete latent site {name!r} is not marked infer={{'enumerate': 'parallel'}}; "
                                 f"AIS moves continuous latents and sums out enumerated ones")
            self.transforms[name] = biject_to(site["fn"].support)
            self.prior_draw[name] = self.transforms[name].inv(site["value"])
        if not self.observed:
            raise ValueError("ais: the model has no observed site: pass the data x it conditions on")

    @property
    def exact(self) -> bool:
        """True when every latent is enumerated: log f_1 summed out is log p(x) itself."""
        return not self.transforms

    def evaluate(self, u: dict[str, torch.Tensor], beta: float, grad: bool = True) -> Evaluation:
        """log f_beta(u) per chain and point, with its gradient in u when ``grad``."""
        with torch.enable_grad() if grad else nullcontext():
            u = {k: v.detach().requires_grad_(grad) for k, v in u.items()}
            latent, observed = self._log_parts(u)
            log_f = sum_enumerated(latent + beta * observed, CHAIN_DIM)
            grads = torch.autograd.grad(log_f.sum(), list(u.values())) if grad else ()
        return Evaluation(latent.detach(), observed.detach(), log_f.detach(), dict(zip(u, grads)))

    def _log_parts(self, u: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(latent, observed) log-densities at z = T(u), ``[E..., C, N]`` each (see :class:`Evaluation`)."""
        z = {name: t(u[name]) for name, t in self.transforms.items()}
        program = poutine.enum(poutine.condition(self.model, data=z), first_available_dim=ENUM_DIM)
        with pyro.plate("chains", self.chains, dim=CHAIN_DIM):
            nodes = poutine.trace(program).get_trace(self.x).nodes
        observed = sum(nodes[n]["fn"].log_prob(nodes[n]["value"]) for n in self.observed)
        latent = sum((nodes[n]["fn"].log_prob(nodes[n]["value"]) for n in self.latent), observed.new_zeros(()))
        for name, t in self.transforms.items():  # log |det dz/du|, summed to [C, N]
            log_det = t.log_abs_det_jacobian(u[name], z[name])
            latent = latent + sum_rightmost(log_det, u[name].dim() - t.domain.event_dim - 2)
        return latent, observed


def _expand(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-(chain, point) tensor ``[C, N]`` viewed to broadcast against ``like`` ``[C, N, ...]``."""
    return t.reshape(*t.shape, *([1] * (like.dim() - t.dim())))


def _kinetic(p: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(0.5 * v.pow(2).reshape(*v.shape[:2], -1).sum(-1) for v in p.values())


def hmc_step(path: AnnealingPath, u: dict, current: Evaluation, beta: float, eps: torch.Tensor,
             leapfrog: int) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """One HMC transition per (chain, point) leaving f_beta invariant.

    Returns:
        The new u, whether each proposal was accepted ``[C, N]`` and its acceptance probability.
    """
    eps = eps * (1 + JITTER * (2 * torch.rand_like(eps) - 1))
    step = {k: _expand(eps, v) for k, v in u.items()}
    momentum = {k: torch.randn_like(v) for k, v in u.items()}
    p = {k: momentum[k] + 0.5 * step[k] * current.grad[k] for k in u}
    new, end = u, current
    for i in range(leapfrog):
        new = {k: new[k] + step[k] * p[k] for k in u}
        end = path.evaluate(new, beta)
        weight = 1.0 if i < leapfrog - 1 else 0.5
        p = {k: p[k] + weight * step[k] * end.grad[k] for k in u}
    log_ratio = end.log_f - _kinetic(p) - current.log_f + _kinetic(momentum)
    log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf, posinf=0.0)
    accept = torch.rand_like(log_ratio).log() < log_ratio
    moved = {k: torch.where(_expand(accept, v), new[k], v) for k, v in u.items()}
    return moved, accept, log_ratio.clamp(max=0.0).exp()


@dataclass(frozen=True)
class AnnealingRun:
    """One annealing run of every chain and point along a beta schedule."""

    log_w: torch.Tensor  # [C, N] log AIS weights
    acceptance: float  # mean acceptance rate over all transitions (nan without transitions)
    step_sizes: list[torch.Tensor]  # [C or 1, N] step size of each transition, in order


def anneal(path: AnnealingPath, u: dict[str, torch.Tensor], betas: list[float], leapfrog: int,
           step_sizes: float | list[torch.Tensor], progress: bool = False) -> AnnealingRun:
    """Anneal from ``u`` along ``betas`` (ascending: forward AIS; descending: reverse AIS of BDMC).

    Args:
        path: the densities f_beta.
        u: the start in unconstrained space, ``{site: [C, N, ...]}``, drawn exactly from f_{betas[0]}.
        betas: the schedule; one weight increment per step, one HMC transition at each inner beta.
        leapfrog: leapfrog steps per transition.
        step_sizes: one ``[C or 1, N]`` step size per transition, used as given; or a float: the
            initial step size, then adapted per (chain, point) on the way (a tuning run, whose
            weights are not a valid estimate: see the module docstring).
        progress: show a tqdm bar over the steps.
    """
    adapt = not isinstance(step_sizes, list)
    first = next(iter(u.values()))
    eps = torch.full(first.shape[:2], float(step_sizes), dtype=first.dtype, device=first.device) if adapt else None
    log_w, accepted, history = 0.0, 0.0, []
    for t in tqdm(range(1, len(betas)), disable=not progress, desc="ais", unit="step"):
        last = t == len(betas) - 1
        current = path.evaluate(u, betas[t], grad=not last)
        log_w = log_w + current.log_f - current.at(betas[t - 1])
        if last:
            break
        eps = eps if adapt else step_sizes[t - 1]
        u, accept, prob = hmc_step(path, u, current, betas[t], eps, leapfrog)
        history.append(eps)
        accepted = accepted + accept.float().mean()
        if adapt:
            eps = (eps * torch.exp(ADAPT_RATE * (prob - TARGET_ACCEPT))).clamp(MIN_STEP, MAX_STEP)
    acceptance = float(accepted) / len(history) if history else math.nan
    return AnnealingRun(log_w, acceptance, history)


def tuned_step_sizes(model: Callable, x: torch.Tensor, betas: list[float], leapfrog: int, step_size: float,
                     progress: bool = False) -> list[torch.Tensor]:
    """Per-point step sizes ``[1, N]`` for each transition, adapted on a pilot run of one chain per point."""
    pilot = AnnealingPath(model, x, 1)
    return anneal(pilot, pilot.prior_draw, betas, leapfrog, step_size, progress).step_sizes


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """log of the mean of exp(log_w) over the chains (dim 0)."""
    return log_w.logsumexp(0) - math.log(log_w.shape[0])


def ais_log_likelihood(model: Callable, x: torch.Tensor, steps: int = 500, chains: int = 8, leapfrog: int = 10,
                       step_size: float = 0.05, schedule: str = "sigmoid", seed: int = 0,
                       progress: bool = False) -> AISResult:
    """Estimate log p(x_n) of every data point by AIS from the prior (Neal 2001; Wu et al. 2017).

    Args:
        model: a Pyro program ``model(x)`` (``module.model``, or a labels-bound view's ``model``)
            whose latents are local to its data plate.
        x: the data points ``[N, ...]``; everything runs on their device.
        steps: T, annealing increments (T - 1 HMC transitions; 1 is importance sampling from the prior).
        chains: C, independent AIS runs per data point.
        leapfrog: leapfrog steps per HMC transition.
        step_size: initial leapfrog step size of the pilot run that tunes the step sizes per point
            and transition towards ``TARGET_ACCEPT`` (see the module docstring).
        schedule: ``"sigmoid"`` or ``"linear"`` (see :func:`beta_schedule`).
        seed: seeds the run; the caller's RNG state is restored afterwards.
        progress: show a tqdm bar over the annealing steps.

    Raises:
        ValueError: a discrete latent not marked for parallel enumeration, or a site outside the
            data plate (or in a plate nested in it); the message names the site.
    """
    if leapfrog < 1 or chains < 1:
        raise ValueError(f"ais: leapfrog and chains must be at least 1, got {leapfrog} and {chains}")
    betas = beta_schedule(steps, schedule)
    with restored_rng(seed), network_frozen(model), torch.no_grad(), pyro.validation_enabled(False):
        path = AnnealingPath(model, x, chains)
        if path.exact:
            log_w = path.evaluate({}, 1.0, grad=False).log_f.expand(chains, -1)
            return AISResult(log_w[0], log_w, steps, chains, leapfrog, math.nan, True)
        eps = tuned_step_sizes(model, x, betas, leapfrog, step_size, progress)
        run = anneal(path, path.prior_draw, betas, leapfrog, eps, progress)
    return AISResult(log_mean_exp(run.log_w), run.log_w, steps, chains, leapfrog, run.acceptance, False)
