"""Bidirectional Monte Carlo (BDMC): sandwich log p(x) between two AIS bounds on simulated data.

Grosse, Ghahramani & Adams (2015, "Sandwiching the marginal likelihood using bidirectional Monte
Carlo"), as used by Wu et al. (2017) to check AIS on decoder-based models: simulate
(x, z) ~ p(x, z) from the model itself, so that z is an exact draw from the posterior p(z | x).

- Forward AIS from z_0 ~ p(z) to p(x, z) (:mod:`ppl_models.diagnostics.ais`) gives a stochastic
  lower bound on log p(x).
- Reverse AIS starts at the exact posterior draw z (replicated over the chains), anneals beta from
  1 to 0 with the same transitions (the forward run's tuned step sizes, reversed), and its weights
  estimate 1 / p(x) without bias, so -(log mean of the reverse weights) is a stochastic upper bound.

The gap between the two bounds bounds the error of either; it shrinks as the number of steps
grows, which :func:`bdmc_sandwich` measures. With enumerated discrete sites the simulated
continuous z is an exact posterior draw of the marginal (the discrete ones summed out), so BDMC
still applies. Keyword arguments of the model (e.g. labels ``y``) are bound for the simulation
and for both AIS runs alike, so the bounds are on log p(x | those arguments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pyro
import torch
from pyro import poutine

from ppl_models.diagnostics.ais import (AnnealingPath, anneal, beta_schedule, log_mean_exp, network_frozen,
                                        owner_module, tuned_step_sizes)
from ppl_models.rng import restored_rng


@dataclass(frozen=True)
class BDMCResult:
    """BDMC bounds on log p(x_n) for simulated data points."""

    lower: torch.Tensor  # [n] forward-AIS stochastic lower bound of log p(x) on simulated points
    upper: torch.Tensor  # [n] reverse-AIS stochastic upper bound
    steps: int  # T, annealing increments of each direction
    chains: int  # C, AIS runs per data point and direction
    x: torch.Tensor  # [n, ...] the simulated observations

    def to_json(self) -> dict:
        """Means over the points of both bounds, their gap, steps and chains (JSON-ready)."""
        lower, upper = self.lower.mean().item(), self.upper.mean().item()
        return {"lower": lower, "upper": upper, "gap": upper - lower, "steps": self.steps, "chains": self.chains,
                "points": int(self.lower.shape[0])}


def _observed_site(model: Callable) -> str:
    """The site holding x: the first of ``observed_sites`` of the model or of its module."""
    sites = getattr(model, "observed_sites", None) or getattr(owner_module(model), "observed_sites", None)
    if not sites:
        raise ValueError("bdmc: cannot tell which site holds x; pass a module's model (e.g. module.model) whose "
                         "module declares observed_sites")
    return sites[0]


def simulate(model: Callable, num_points: int, **model_kwargs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Draw ``num_points`` pairs (x, z) ~ p(x, z): x ``[n, ...]`` and ``{site: value [n, ...]}`` of every site."""
    name = _observed_site(model)
    trace = poutine.trace(model).get_trace(None, batch_size=num_points, **model_kwargs)
    values = {n: s["value"] for n, s in trace.nodes.items() if s["type"] == "sample" and n != name}
    return trace.nodes[name]["value"], values


def _bounds(program: Callable, x: torch.Tensor, z: dict[str, torch.Tensor], betas: list[float], chains: int,
            leapfrog: int, step_size: float, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) ``[n]`` from forward and reverse AIS on x, the reverse chain started at z."""
    path = AnnealingPath(program, x, chains)
    if path.exact:
        log_px = path.evaluate({}, 1.0, grad=False).log_f[0]
        return log_px, log_px
    eps = tuned_step_sizes(program, x, betas, leapfrog, step_size, progress)
    forward = anneal(path, path.prior_draw, betas, leapfrog, eps, progress)
    posterior = {name: t.inv(z[name]).expand(chains, *z[name].shape).clone() for name, t in path.transforms.items()}
    reverse = anneal(path, posterior, betas[::-1], leapfrog, eps[::-1], progress)
    return log_mean_exp(forward.log_w), -log_mean_exp(reverse.log_w)


def _prepared(model: Callable, num_points: int, model_kwargs: dict):
    """The program to anneal (model with its keyword arguments bound) and simulated (x, z)."""
    program = partial(model, **model_kwargs) if model_kwargs else model
    x, z = simulate(model, num_points, **model_kwargs)
    return program, x, z


def bdmc(model: Callable, num_points: int, steps: int = 500, chains: int = 8, leapfrog: int = 10,
         step_size: float = 0.05, schedule: str = "sigmoid", seed: int = 0, progress: bool = False,
         **model_kwargs) -> BDMCResult:
    """Sandwich log p(x) on ``num_points`` points simulated from the model (Grosse et al. 2015).

    Args:
        model: a Pyro program ``model(x=None, batch_size=None, **model_kwargs)`` of a module that
            declares ``observed_sites``, its latents local to the data plate.
        num_points: n, simulated data points.
        steps, chains, leapfrog, step_size, schedule, progress: as for
            :func:`ppl_models.diagnostics.ais.ais_log_likelihood`, for each direction.
        seed: seeds the simulation and both runs; the caller's RNG state is restored.
        **model_kwargs: passed to the model when simulating and annealing.
    """
    betas = beta_schedule(steps, schedule)
    with restored_rng(seed), network_frozen(model), torch.no_grad(), pyro.validation_enabled(False):
        program, x, z = _prepared(model, num_points, model_kwargs)
        lower, upper = _bounds(program, x, z, betas, chains, leapfrog, step_size, progress)
    return BDMCResult(lower, upper, steps, chains, x)


def bdmc_sandwich(model: Callable, num_points: int, step_counts: tuple[int, ...] = (10, 100, 500), chains: int = 8,
                  leapfrog: int = 10, step_size: float = 0.05, schedule: str = "sigmoid", seed: int = 0,
                  progress: bool = False, **model_kwargs) -> list[dict]:
    """BDMC for several step counts on the same simulated data: the gap shrinking with T.

    Arguments as for :func:`bdmc`.

    Returns:
        One dict per step count, ``{"steps", "lower", "upper", "gap"}``: the means over the
        simulated points of both bounds, and upper - lower.
    """
    rows = []
    with restored_rng(seed), network_frozen(model), torch.no_grad(), pyro.validation_enabled(False):
        program, x, z = _prepared(model, num_points, model_kwargs)
        for steps in step_counts:
            betas = beta_schedule(steps, schedule)
            lower, upper = _bounds(program, x, z, betas, chains, leapfrog, step_size, progress)
            lower, upper = lower.mean().item(), upper.mean().item()
            rows.append({"steps": steps, "lower": lower, "upper": upper, "gap": upper - lower})
    return rows
