"""Gradient estimators for the ``pixels`` method's bound L(phi) = E_q[log p(x_obs, x_h)] + H(q).

q(x_h; phi) is a mean-field Bernoulli over the hidden pixels, so x_h is discrete and E_q[f] has no
reparameterized gradient. Two estimators, registered by name (``CompletionSettings.pixel_estimator``):

- ``concrete`` (the default): the binary Concrete relaxation (Maddison, Mnih & Teh 2017; Jang, Gu &
  Poole 2017, "Gumbel-softmax"). A draw is x~_i = sigmoid((logit_i + log u_i - log(1 - u_i)) / tau),
  u_i ~ U(0, 1), which tends to a Bernoulli(phi_i) draw as tau -> 0 and is differentiable in the logits,
  so each pixel's gradient comes from its own effect on log p(x) (the model is evaluated at the relaxed
  image: its Bernoulli log-density, -BCE with logits, is defined for values in [0, 1]). The gradient is
  biased for tau > 0, but has low variance: one signal per pixel instead of one per image.
- ``score``: the score function (REINFORCE, Williams 1992) with a leave-one-out baseline over the D
  draws of each image (Kool, van Hoof & Welling 2019, "Buy 4 REINFORCE samples, get a baseline for
  free!"): grad ~= 1/(D-1) sum_d (f_d - mean_j f_j) grad log q(x_h^(d)) + grad H(q). Unbiased, but
  one scalar advantage per image moves all of its hidden pixels at once, so it needs many steps when
  hundreds of pixels are hidden (28x28 MNIST: 392 under top-half).

Either way H(q) is in closed form, the trained model is frozen, and the bounds ``pixels`` reports are
estimated with discrete draws (``pixels.conditional_bound``), whatever trained phi.

Why not Pyro's TraceGraph_ELBO, which also gives score-function gradients with baselines: (1) for a
latent model our f = log p(x_obs, x_h) is an IWAE estimate from a separate, batched importance-sampling
pass of the model and its guide on the completed images, while TraceGraph_ELBO differentiates the
log-densities of one model trace replayed against one guide trace: z would have to become a site of the
guide (the joint fit of q(x_h) q(z) the ``pixels`` docstring argues against) or f enter as a pyro.factor
computed outside its traces; (2) its baselines are per-site decaying averages, fixed values or baseline
networks, and its particles share no leave-one-out baseline; (3) it estimates E_q[-log q] from the
draws, where we have H(q) in closed form. The few lines below are the estimators themselves.
"""

from __future__ import annotations

import math
from typing import Callable

import pyro
import torch
from torch.distributions import Bernoulli

from ppl_models.completion.method import paste
from ppl_models.objectives.log_weights import log_importance_weights

# An estimator: (module, x, hidden, logits, draws, particles, temperature) -> (surrogate [N], estimate [N]),
# where grad surrogate w.r.t. logits estimates grad L and estimate is the step's Monte Carlo value of L.
Estimator = Callable[..., tuple[torch.Tensor, torch.Tensor]]
ESTIMATORS: dict[str, Estimator] = {}  # name -> estimator, filled by @register_estimator


def register_estimator(name: str) -> Callable[[Estimator], Estimator]:
    """Function decorator: register a gradient estimator for L(phi) under ``name``."""

    def decorate(fn: Estimator) -> Estimator:
        if name in ESTIMATORS:
            raise ValueError(f"pixels estimator {name!r} is registered twice")
        ESTIMATORS[name] = fn
        return fn

    return decorate


def estimator(name: str) -> Estimator:
    """The estimator registered as ``name``; a ``ValueError`` lists the choices otherwise."""
    if name not in ESTIMATORS:
        raise ValueError(f"pixels completion: unknown estimator {name!r} (settings.pixel_estimator / "
                         f"--pixel-estimator); choose one of {', '.join(sorted(ESTIMATORS))}")
    return ESTIMATORS[name]


def _event_dims(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(-(x.dim() - 1), 0))


def log_joint(module: torch.nn.Module, x: torch.Tensor, values: torch.Tensor, hidden: torch.Tensor,
              particles: int) -> torch.Tensor:
    """log p(x_obs, x_h) = log p(``paste(x, values, hidden)``) for draws ``values`` ``[D, N, *event]``, ``[D, N]``.

    Exact for a model without latent sites (``exact_likelihood``); otherwise the IWAE estimate with
    ``particles`` draws from the model's guide on each completed image (Burda et al. 2016), a stochastic
    lower bound. Differentiable in ``values`` (relaxed values in [0, 1] are accepted: validation is off).
    One pass holds D * N * particles images.
    """
    completed = paste(x, values, hidden)
    flat = completed.reshape(-1, *x.shape[1:])
    with pyro.validation_enabled(False):
        if getattr(module, "exact_likelihood", False):
            log_p = log_importance_weights(module.model, module.guide, flat, num_particles=1)[0]
        else:
            log_w = log_importance_weights(module.model, module.guide, flat, num_particles=particles)
            log_p = log_w.logsumexp(0) - math.log(particles)
    return log_p.reshape(completed.shape[: -(x.dim() - 1)])


def hidden_log_q(q: Bernoulli, values: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """log q(x_h) of ``values`` ``[..., N, *event]``: log Bernoulli summed over the hidden pixels only, ``[..., N]``."""
    lp = q.log_prob(values)
    return torch.where(hidden, lp, lp.new_zeros(())).sum(_event_dims(hidden))


def hidden_entropy(q: Bernoulli, hidden: torch.Tensor) -> torch.Tensor:
    """H(q) in closed form, summed over the hidden pixels of each image, ``[N]``."""
    h = q.entropy()
    return torch.where(hidden, h, h.new_zeros(())).sum(_event_dims(hidden))


@register_estimator("score")
def score_function(module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor, logits: torch.Tensor,
                   draws: int, particles: int, temperature: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The score-function surrogate with a leave-one-out baseline (Kool et al. 2019) and the step's L, each ``[N]``.

    Its gradient with respect to ``logits`` is an unbiased estimate of grad L plus the closed-form
    gradient of H(q); the model is evaluated under ``no_grad``.

    Args:
        module: the frozen model.
        x: binary images ``[N, *event]``.
        hidden: ``[N, *event]`` bool, True = missing.
        logits: phi's logits ``[N, *event]`` (requires grad); observed pixels' entries get no gradient.
        draws: D >= 2 draws per image.
        particles: K, importance samples of z per completed image (latent models).
        temperature: unused (the signature every estimator shares).
    """
    if draws < 2:
        raise ValueError(f"pixels completion: the leave-one-out baseline needs at least 2 draws per image "
                         f"(settings.pixel_draws), got {draws}")
    q = Bernoulli(logits=logits)
    values = q.sample((draws,))  # [D, N, *event], no gradient
    with torch.no_grad():
        f = log_joint(module, x, values, hidden, particles)  # [D, N]
    advantage = (f - f.mean(0)) * (draws / (draws - 1))  # f_d - mean of the other draws' f
    entropy = hidden_entropy(q, hidden)
    surrogate = (advantage * hidden_log_q(q, values, hidden)).mean(0) + entropy
    return surrogate, f.mean(0) + entropy.detach()


def relaxed_bernoulli(logits: torch.Tensor, draws: int, temperature: float) -> torch.Tensor:
    """``draws`` binary Concrete draws ``[draws, *logits.shape]`` in (0, 1), differentiable in ``logits``.

    x~ = sigmoid((logit + log u - log(1 - u)) / tau), u ~ U(0, 1) (Maddison et al. 2017, eq. 21): the logistic
    noise makes x~ > 1/2 exactly when a Bernoulli(sigmoid(logit)) draw is 1, at every temperature.
    """
    u = torch.rand((draws, *logits.shape), dtype=logits.dtype, device=logits.device)
    u = u.clamp(torch.finfo(u.dtype).tiny, 1 - torch.finfo(u.dtype).eps)
    return torch.sigmoid((logits + u.log() - (-u).log1p()) / temperature)


@register_estimator("concrete")
def concrete(module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor, logits: torch.Tensor,
             draws: int, particles: int, temperature: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """The binary Concrete relaxation of L (Maddison et al. 2017; Jang et al. 2017) and its value, each ``[N]``.

    surrogate = mean_d log p(x_obs, x~^(d)) + H(q) with relaxed draws x~ at ``temperature``; its gradient
    flows through the model (and, for a latent model, through the guide's proposal) into ``logits``.
    The value is that of the relaxed objective, not of L; ``pixels.conditional_bound`` estimates L.

    Args:
        module: the frozen model (its parameters get no gradient).
        x: binary images ``[N, *event]``.
        hidden: ``[N, *event]`` bool, True = missing.
        logits: phi's logits ``[N, *event]`` (requires grad).
        draws: D >= 1 relaxed draws per image.
        particles: K, importance samples of z per completed image (latent models).
        temperature: tau > 0 of the relaxation; smaller is closer to Bernoulli draws and noisier.
    """
    if draws < 1 or not temperature > 0:
        raise ValueError(f"pixels completion: the concrete estimator needs draws >= 1 and temperature > 0 "
                         f"(settings.pixel_draws, settings.pixel_temperature), got {draws} and {temperature}")
    relaxed = relaxed_bernoulli(logits, draws, temperature)  # [D, N, *event]
    f = log_joint(module, x, relaxed, hidden, particles)  # [D, N]
    entropy = hidden_entropy(Bernoulli(logits=logits), hidden)
    surrogate = f.mean(0) + entropy
    return surrogate, surrogate.detach()
