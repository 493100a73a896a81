"""Per-data-point log importance weights of a model/guide pair, vectorized over particles.

Model sites marked ``infer={"enumerate": "parallel"}`` (discrete latents the model sums out, e.g.
a mixture's component) are enumerated in parallel to the left of the particle dimension and
summed out exactly, per data point:

    log w_k(x_n) = log sum_c p(x_n, z_k, c) - log q(z_k | x_n).

The guide is never enumerated: a guide site with an ``enumerate`` annotation (as in a
semi-supervised model whose guide proposes the label) is sampled like any other.
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


def sample_sites(trace) -> list[dict]:
    """The sample sites of ``trace``, without subsample sites."""
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]


def enumerated_sites(trace) -> list[dict]:
    """The sites of ``trace`` that an enum handler enumerated in parallel."""
    return [s for s in sample_sites(trace) if "_enumerate_dim" in s["infer"]]


def check_local_enumeration(sites: list[dict], particle_dim: int = -2) -> None:
    """Raise a ValueError naming the first enumerated site that is not local to the data plate.

    A global discrete site couples every data point (log sum_c p(c) prod_n p(x_n | c)), so it has
    no per-data-point weight; only sites in the data plate (dim -1), and in no plate nested in it,
    can be summed out point by point.

    Args:
        sites: the enumerated sites (:func:`enumerated_sites`).
        particle_dim: the dim of the particle plate, allowed besides the data plate.
    """
    for site in sites:
        dims = {frame.dim for frame in site["cond_indep_stack"]} - {particle_dim}
        if -1 not in dims:
            raise ValueError(
                f"enumerated site {site['name']!r} is global (outside the data plate at dim -1); per-data-point "
                f"weights can sum out only local discrete sites: move it into the data plate or drop its "
                f"infer={{'enumerate': 'parallel'}}"
            )
        if dims != {-1}:
            nested = [f.name for f in site["cond_indep_stack"] if f.dim not in (-1, particle_dim)]
            raise ValueError(f"enumerated site {site['name']!r} lies in nested plate(s) {nested}; "
                             f"per-data-point weights can sum out only sites in the data plate alone")


def per_point(log_prob: torch.Tensor, particle_dim: int) -> torch.Tensor:
    """Sum a site's log-density over the plates nested between the particle and the data plate
    (dims ``particle_dim + 1 .. -2``), keeping those dims with size 1."""
    dims = [d for d in range(particle_dim + 1, -1) if log_prob.dim() >= -d]
    return log_prob.sum(dims, keepdim=True) if dims else log_prob


def sum_enumerated(log_joint: torch.Tensor | float, particle_dim: int) -> torch.Tensor | float:
    """Log-sum-exp ``log_joint`` ``[E..., K, ...]`` over the enumeration dims left of ``particle_dim``."""
    if not torch.is_tensor(log_joint) or log_joint.dim() <= -particle_dim:
        return log_joint
    enum_dims = tuple(range(log_joint.dim() + particle_dim))
    return log_joint.logsumexp(enum_dims)


def particle_traces(model, guide, *args, num_particles: int = 1, max_plate_nesting: int = 1):
    """Traces of ``num_particles`` draws z_k ~ q(z | x) and of the model replayed on them, as one batched pass.

    Model and guide execute once inside a ``pyro.plate`` at dim ``-(max_plate_nesting + 1)``, to the
    left of the model's own plates. Model sites marked for parallel enumeration are enumerated at
    dims ``-(max_plate_nesting + 2)`` and further left (see the module docstring).

    Args:
        model: Pyro model ``model(*args)``; its data plate is the rightmost batch dimension.
        guide: Pyro guide with the same signature and latent site names (not enumerated).
        *args: the model's arguments, e.g. a batch ``x`` of shape ``[N, ...]``.
        num_particles: K, the number of draws per data point.
        max_plate_nesting: how many plates the model nests (1 for a single data plate).

    Returns:
        ``(guide_trace, model_trace, particle_dim)``.

    Raises:
        ValueError: an enumerated model site lies outside the data plate (see
            :func:`check_local_enumeration`).
    """
    particle_dim = -(max_plate_nesting + 1)
    enum_model = poutine.enum(model, first_available_dim=particle_dim - 1)
    with pyro.plate("particles", num_particles, dim=particle_dim):
        guide_trace = poutine.trace(guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(enum_model, trace=guide_trace)).get_trace(*args)
    check_local_enumeration(enumerated_sites(model_trace), particle_dim)
    return guide_trace, model_trace, particle_dim


def log_importance_weights(model, guide, *args, num_particles: int = 1, max_plate_nesting: int = 1) -> torch.Tensor:
    """log w_k(x_n) = log p(x_n, z_k) - log q(z_k | x_n) for ``num_particles`` draws z_k ~ q(z | x_n).

    The particles run as one batched pass (:func:`particle_traces`); enumerated model sites are
    summed out of p(x_n, z_k, c) per data point (see the module docstring). Site scales (minibatch
    subsampling) are not applied, so each entry is the weight of one data point. The arguments
    are those of :func:`particle_traces`, which also names what it raises.

    Returns:
        Tensor of shape ``[num_particles, N]`` (plates nested in the data plate are summed over).
    """
    guide_trace, model_trace, particle_dim = particle_traces(
        model, guide, *args, num_particles=num_particles, max_plate_nesting=max_plate_nesting)
    log_p: torch.Tensor | float = 0.0
    for site in sample_sites(model_trace):
        log_p = log_p + per_point(site["fn"].log_prob(site["value"]), particle_dim)
    log_w = sum_enumerated(log_p, particle_dim)
    for site in sample_sites(guide_trace):
        if not site["is_observed"]:
            log_w = log_w - per_point(site["fn"].log_prob(site["value"]), particle_dim)
    return log_w.flatten(-max_plate_nesting) if max_plate_nesting > 1 else log_w
