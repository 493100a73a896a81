"""Name -> objective factory, filled by the :func:`register_objective` decorator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyro.infer import ELBO

from ppl_models.objectives.reparam_elbo import ReparamELBO


@dataclass(frozen=True)
class ObjectiveEntry:
    """A registered objective."""

    name: str  # command-line name
    factory: Callable[[int], ELBO]  # particles -> ELBO object
    description: str  # one line for help texts


_OBJECTIVES: dict[str, ObjectiveEntry] = {}


def register_objective(name: str, description: str) -> Callable[[Callable[[int], ELBO]], Callable[[int], ELBO]]:
    """Decorator registering a factory ``f(particles) -> pyro.infer.ELBO`` under ``name``."""

    def decorator(factory: Callable[[int], ELBO]) -> Callable[[int], ELBO]:
        _OBJECTIVES[name] = ObjectiveEntry(name, factory, description)
        return factory

    return decorator


def available_objectives() -> dict[str, str]:
    """Registered objective names mapped to their descriptions."""
    return {name: e.description for name, e in _OBJECTIVES.items()}


def build_objective(name: str, particles: int = 1) -> ELBO:
    """Instantiate objective ``name``.

    Args:
        name: a registered objective name.
        particles: Monte Carlo samples per data point (vectorized).
    """
    if name not in _OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {', '.join(_OBJECTIVES)}")
    if particles < 1:
        raise ValueError(f"particles must be at least 1, got {particles}")
    return _OBJECTIVES[name].factory(particles)


# Both ELBOs give the values and gradients of Pyro's Trace_ELBO / TraceMeanField_ELBO (tested),
# with less work per step for reparameterized guides, and defer to Pyro's classes otherwise.
# max_plate_nesting=1: the data plate; particles vectorize in the dimension to its left.


@register_objective("elbo", "ELBO with a Monte Carlo KL term (as Pyro's Trace_ELBO)")
def _elbo(particles: int) -> ELBO:
    return ReparamELBO(analytic_kl=False, num_particles=particles, max_plate_nesting=1)


@register_objective("elbo-analytic", "ELBO with the KL term in closed form where known (as TraceMeanField_ELBO)")
def _elbo_analytic(particles: int) -> ELBO:
    return ReparamELBO(analytic_kl=True, num_particles=particles, max_plate_nesting=1)
