"""Name -> objective factory, filled by the :func:`register_objective` decorator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyro.infer import ELBO

from ppl_models.objectives.iwae import GRAD_ESTIMATORS, IWAE
from ppl_models.objectives.reparam_elbo import ReparamELBO


@dataclass(frozen=True)
class ObjectiveEntry:
    """A registered objective."""

    name: str  # command-line name
    factory: Callable[[int, str], ELBO]  # (particles, grad_estimator) -> ELBO object
    description: str  # one line for help texts


_OBJECTIVES: dict[str, ObjectiveEntry] = {}


Factory = Callable[[int, str], ELBO]


def register_objective(name: str, description: str) -> Callable[[Factory], Factory]:
    """Decorator registering a factory ``f(particles, grad_estimator) -> pyro.infer.ELBO`` under ``name``."""

    def decorator(factory: Factory) -> Factory:
        _OBJECTIVES[name] = ObjectiveEntry(name, factory, description)
        return factory

    return decorator


def available_objectives() -> dict[str, str]:
    """Registered objective names mapped to their descriptions."""
    return {name: e.description for name, e in _OBJECTIVES.items()}


def build_objective(name: str, particles: int = 1, grad_estimator: str = "standard") -> ELBO:
    """Instantiate objective ``name``.

    Args:
        name: a registered objective name.
        particles: Monte Carlo samples per data point (vectorized).
        grad_estimator: ``standard``, or ``stl`` / ``dreg`` where the objective offers them.
    """
    if name not in _OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(_OBJECTIVES)}")
    if particles < 1:
        raise ValueError(f"particles must be at least 1, got {particles}")
    if grad_estimator not in GRAD_ESTIMATORS:
        raise ValueError(f"unknown grad_estimator {grad_estimator!r}; choose one of {', '.join(GRAD_ESTIMATORS)}")
    return _OBJECTIVES[name].factory(particles, grad_estimator)


def _standard_only(name: str, grad_estimator: str) -> None:
    if grad_estimator != "standard":
        raise ValueError(f"objective {name!r} has only the standard gradient estimator; "
                         f"use --objective iwae for {grad_estimator!r} (at --particles 1 it is the ELBO)")


# Both ELBOs give the values and gradients of Pyro's Trace_ELBO / TraceMeanField_ELBO (tested),
# with less work per step for reparameterized guides, and defer to Pyro's classes otherwise.
# max_plate_nesting=1: the data plate; particles vectorize in the dimension to its left.


@register_objective("elbo", "ELBO with a Monte Carlo KL term (as Pyro's Trace_ELBO)")
def _elbo(particles: int, grad_estimator: str) -> ELBO:
    _standard_only("elbo", grad_estimator)
    return ReparamELBO(analytic_kl=False, num_particles=particles, max_plate_nesting=1)


@register_objective("elbo-analytic", "ELBO with the KL term in closed form where known (as TraceMeanField_ELBO)")
def _elbo_analytic(particles: int, grad_estimator: str) -> ELBO:
    _standard_only("elbo-analytic", grad_estimator)
    return ReparamELBO(analytic_kl=True, num_particles=particles, max_plate_nesting=1)


@register_objective("iwae", "importance-weighted ELBO (Burda et al. 2015); standard, stl or dreg gradients")
def _iwae(particles: int, grad_estimator: str) -> ELBO:
    return IWAE(num_particles=particles, grad_estimator=grad_estimator, max_plate_nesting=1)
