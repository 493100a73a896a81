"""``pixels``: complete images by fitting a distribution over their missing pixels (the CS236 notes' example).

Under a fixed trained model p(x), the hidden pixels x_h of each image get a mean-field Bernoulli
q(x_h; phi) = prod_i Bernoulli(x_i; phi_i), one phi_i per hidden pixel, fitted by maximizing

    L(phi) = E_q[log p(x_obs, x_h)] + H(q) = log p(x_obs) - KL(q || p(x_h | x_obs)) <= log p(x_obs)

with stochastic variational inference (the notes' "learning via SVI", for phi alone; Hoffman et al.
2013). The notes' point: phi = 0.5 everywhere and phi = 1 everywhere give poor bounds, and the fitted
phi looks like the missing part of the digit.

log p(x_obs, x_h) is log p(x) at the completed image ``paste(x, x_h, hidden)``:

- a model without latent sites (PixelCNN, PixelRNN: ``exact_likelihood``) gives it exactly (one observed
  site, an empty guide: one importance weight is log p(x));
- for a latent-variable model we **marginalize z by importance sampling**: the K-particle IWAE estimate
  log (1/K) sum_k p(x, z_k) / q(z_k | x), z_k from the model's own guide on the completed image (Burda
  et al. 2016; K = ``settings.pixel_particles``). We chose this over fitting a q(z) jointly with q(x_h)
  because (a) a factorized q(x_h) q(z) cuts the dependence between the missing pixels and z (the digit's
  identity) that makes a completion coherent, and its gap KL(q(x_h) q(z) || p(x_h, z | x_obs)) exceeds the
  gap KL(q(x_h) || p(x_h | x_obs)) of the same q(x_h) by E_q(x_h)[KL(q(z) || p(z | x))] (chain rule);
  (b) the amortized guide was trained on complete images, so on each completed draw it already gives a
  fitted proposal at no optimization cost. Since E_z[log p_K(x)] <= log p(x) (Jensen), the estimated L
  is a stochastic lower bound on the exact L, hence still on log p(x_obs); it tightens as K grows.

Gradients: the sites are discrete, so grad E_q[log p] needs an estimator (``pixel_estimators.py``):
by default the binary Concrete relaxation (Maddison et al. 2017; Jang et al. 2017), a reparameterized
gradient per pixel; or (``pixel_estimator="score"``) the score function with a leave-one-out baseline
(Kool et al. 2019), unbiased but one signal per image. H(q) is in closed form; the model is frozen.
The bounds reported for the fitted phi, phi = 0.5 and phi = 1 are estimated with discrete draws.
"""

from __future__ import annotations

import time

import pyro
import torch
from pyro import poutine
from torch.distributions import Bernoulli, constraints
from tqdm.auto import tqdm

from ppl_models.completion.masks import require_hidden
from ppl_models.completion.method import Completion, CompletionMethod, CompletionSettings, paste, register_method
from ppl_models.completion.pixel_estimators import estimator, hidden_entropy, hidden_log_q, log_joint
from ppl_models.models.protocol import has_likelihood, label_use
from ppl_models.rng import restored_rng

BOUND_DRAWS = 64  # draws of x_h per image behind each bound reported in Completion.extra
VARIANTS = {"concrete": "mean-field Bernoulli, binary Concrete relaxation (tau={temperature:g})",  # estimator -> row
            "score": "mean-field Bernoulli, score function + leave-one-out baseline"}


def check_binary(x: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the first element of ``x`` that is neither 0 nor 1."""
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"pixels completion: x{list(index)} is {float(x[index])!r}, but a Bernoulli over the hidden "
                         f"pixels needs binary images (0 or 1); binarize them first, e.g. torch.bernoulli(x)")


@torch.no_grad()
def completed_log_joint(module: torch.nn.Module, x: torch.Tensor, values: torch.Tensor, hidden: torch.Tensor,
                        particles: int) -> torch.Tensor:
    """:func:`pixel_estimators.log_joint` without gradients: log p(x_obs, x_h) for draws ``[D, N, *event]``, ``[D, N]``."""
    return log_joint(module, x, values, hidden, particles)


@torch.no_grad()
def conditional_bound(module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor, phi: torch.Tensor | float,
                      draws: int = BOUND_DRAWS, particles: int = CompletionSettings.pixel_particles,
                      batch_size: int = 100, draw_chunk: int = 16) -> torch.Tensor:
    """The Monte Carlo estimate of L(phi) = E_q[log p(x_obs, x_h)] + H(q) per image, ``[N]`` on the CPU.

    Args:
        module: the trained model.
        x: binary images ``[N, *event]`` on the model's device.
        hidden: ``[N, *event]`` bool, True = missing (observed pixels are not variables).
        phi: Bernoulli probabilities, ``[N, *event]`` or broadcastable (e.g. 0.5); only hidden pixels count.
        draws: draws of x_h per image.
        particles: K, importance samples of z for a latent-variable model (ignored for an exact model).
        batch_size: images per pass.
        draw_chunk: draws per pass (memory ~ batch_size * draw_chunk * particles images).

    Raises:
        ValueError: ``phi`` outside [0, 1], or ``x`` not binary.
    """
    check_binary(x)
    phi = torch.as_tensor(phi, dtype=x.dtype, device=x.device).expand_as(x)
    if bool(((phi < 0) | (phi > 1) | phi.isnan()).any()):
        raise ValueError(f"conditional_bound: phi must lie in [0, 1], got values from {float(phi.min())} to "
                         f"{float(phi.max())}")
    hidden = hidden.to(x.device).expand_as(x)
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb, hb = x[start:start + batch_size], hidden[start:start + batch_size]
        q = Bernoulli(probs=phi[start:start + batch_size])
        total = torch.zeros(xb.shape[0], dtype=x.dtype, device=x.device)
        for d0 in range(0, draws, draw_chunk):
            values = q.sample((min(draw_chunk, draws - d0),))
            total += completed_log_joint(module, xb, values, hb, particles).sum(0)
        out.append(total / draws + hidden_entropy(q, hb))
    return torch.cat(out).cpu()


def fit_logits(module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor, settings: CompletionSettings,
               desc: str = "pixels") -> torch.Tensor:
    """phi's logits ``[N, *event]`` maximizing L for one batch: start at 0 (phi = 0.5), then ``settings.pixel_steps``
    Adam steps of size ``settings.pixel_lr`` on the surrogate of ``settings.pixel_estimator``."""
    surrogate_of = estimator(settings.pixel_estimator)
    logits = torch.zeros_like(x, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=settings.pixel_lr)
    steps = tqdm(range(settings.pixel_steps), desc=desc, unit="step", disable=None if settings.progress else True)
    for _ in steps:
        surrogate, _ = surrogate_of(module, x, hidden, logits, settings.pixel_draws, settings.pixel_particles,
                                    settings.pixel_temperature)
        optimizer.zero_grad(set_to_none=True)
        # a sum: each image's logits get that image's own gradient; only the logits, the model stays frozen
        (-surrogate.sum()).backward(inputs=[logits])
        optimizer.step()
    return logits.detach()


def _data_are_binary(module: torch.nn.Module) -> bool:
    likelihood = getattr(module, "likelihood", None)
    if likelihood is not None and hasattr(likelihood, "binary_data"):
        return bool(likelihood.binary_data)
    with torch.no_grad(), pyro.validation_enabled(False):
        trace = poutine.trace(module.model).get_trace(batch_size=2)
    support = trace.nodes[module.observed_sites[0]]["fn"].support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.boolean


@register_method("pixels", "fit a mean-field Bernoulli q(x_hidden; phi) under the model by SVI (CS236 notes)")
class PixelsCompletion(CompletionMethod):
    """Mean-field Bernoulli posterior over the hidden pixels, fitted by maximizing the conditional bound L(phi)
    with the gradient estimator ``settings.pixel_estimator`` (``pixel_estimators.py``; module docstring).

    ``draws`` are S draws from the fitted q pasted into x; ``mean`` is the fitted phi at the hidden pixels
    (the picture of phi); ``log_p_hidden`` is log q_phi(x_h true), exact. ``extra`` holds the mean bound L
    for the fitted phi, for phi = 0.5 and for phi = 1 (``BOUND_DRAWS`` draws each).
    """

    needs_hidden = True  # phi is fitted to the hidden pixels

    def not_applicable(self, module: torch.nn.Module, hidden: torch.Tensor) -> str | None:
        """A reason when the model has no likelihood, is conditioned on labels, needs inputs to sample, or
        does not model binary pixels; else None."""
        name = type(module).__name__
        if not has_likelihood(module):
            return f"not applicable: {name} has no likelihood, so log p(x_obs, x_hidden) has no value to fit phi to"
        if label_use(module) == "condition":
            return f"not applicable: {name} is conditioned on labels (p(x | y)); pixels completion needs p(x)"
        if hasattr(module, "sample_inputs"):
            return f"not applicable: {name} needs inputs to sample (sample_inputs); pixels completion needs p(x)"
        if not _data_are_binary(module):
            return (f"not applicable: {name} does not model binary pixels; a Bernoulli q over the hidden pixels "
                    f"needs a model of {{0, 1}} images")
        return None

    def complete(self, module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor,
                 settings: CompletionSettings) -> list[Completion]:
        """Fit phi per image in batches of ``settings.batch_size``; draw, average and score (class docstring)."""
        require_hidden(hidden, "pixels")
        estimator(settings.pixel_estimator)  # an unknown name is refused before any work
        check_binary(x)
        start_time = time.perf_counter()
        hidden = hidden.to(x.device).expand_as(x)
        particles = settings.pixel_particles
        draws, means, log_q, fitted, half, one = [], [], [], [], [], []
        with restored_rng(settings.seed):
            for start in range(0, x.shape[0], settings.batch_size):
                xb, hb = x[start:start + settings.batch_size], hidden[start:start + settings.batch_size]
                logits = fit_logits(module, xb, hb, settings, desc=f"pixels {start}/{x.shape[0]}")
                q = Bernoulli(logits=logits)
                draws.append(paste(xb, q.sample((settings.samples,)), hb).cpu())
                means.append(paste(xb, q.probs, hb).cpu())
                log_q.append(hidden_log_q(q, xb, hb).cpu())
                for out, phi in ((fitted, q.probs), (half, 0.5), (one, 1.0)):
                    out.append(conditional_bound(module, xb, hb, phi, BOUND_DRAWS, particles, xb.shape[0],
                                                 settings.pixel_draws))
        exact = getattr(module, "exact_likelihood", False)
        extra = {
            "bound_fitted": torch.cat(fitted).mean().item(),  # mean L(phi) for the fitted phi, nats per image
            "bound_phi_half": torch.cat(half).mean().item(),  # mean L for phi = 0.5 at every hidden pixel
            "bound_phi_one": torch.cat(one).mean().item(),  # mean L for phi = 1 at every hidden pixel
            "bound_draws": BOUND_DRAWS,  # draws of x_hidden per image behind each bound
            "bound_particles": 1 if exact else particles,  # importance samples of z per draw (1: exact log p(x))
            "log_joint": "exact" if exact else f"IWAE K={particles}",  # how log p(x_obs, x_hidden) was computed
            "steps": settings.pixel_steps,  # Adam steps per image batch
            "draws_per_step": settings.pixel_draws,  # D, draws per image per step
            "lr": settings.pixel_lr,  # Adam step size for phi's logits
            "estimator": settings.pixel_estimator,  # the gradient estimator of pixel_estimators.py
        }
        nll_by = "log q_phi(x_hidden) of the fitted mean-field Bernoulli, exact"
        variant = VARIANTS[settings.pixel_estimator].format(temperature=settings.pixel_temperature)
        return [Completion("pixels", variant, torch.cat(draws, 1), torch.cat(means), torch.cat(log_q), nll_by,
                           time.perf_counter() - start_time, extra)]
