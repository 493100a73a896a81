"""Latent completion: condition a model on the observed pixels only, infer z, decode the hidden ones.

For any model with latent variables z (user models included), p(x_hidden | x_observed) =
E_{p(z | x_observed)}[p(x_hidden | z)]. Each way of inferring z is one row (:mod:`.proposals`): a
proposal q(z), K draws z_k ~ q weighted by log w_k = log p(z_k, x_observed) - log q(z_k), where the
visible-only model (:func:`~.masked_likelihood.visible_model`) scores only the observed pixels. Then

- log p(x_observed) ~= logsumexp_k log w_k - log K (importance sampling; Burda et al. 2015, eq. 6);
- log p(x_hidden | x_observed) = log p(x) - log p(x_observed), log p(x) by importance sampling with
  the model's guide on the full true image (shared by every row);
- draws: sampling-importance-resampling (Rubin 1988; as MIWAE's multiple imputation, Mattei &
  Frellsen 2019): S particles drawn with probability w_k / sum w, by the Gumbel-max trick streamed
  over chunks of particles (per slot, the particle with the largest log w_k + Gumbel noise), then
  x ~ p(x | z) for each kept z;
- mean: sum_k w_k E[x | z_k] / sum_k w_k, streamed with a running log-sum-exp.

Observed pixels are pasted back exactly. Nothing here reads the true hidden values except log p(x):
every other pass sees the image with its hidden pixels set to 0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from tqdm.auto import tqdm

from ppl_models.completion.masked_likelihood import pixel_log_prob, visible_model
from ppl_models.completion.masks import check_mask
from ppl_models.completion.method import Completion, CompletionMethod, CompletionSettings, paste, register_method
from ppl_models.completion.proposals import (ModelRecorder, encoder_proposal, impute, observation_mean,
                                             prior_proposal, svi_proposal)
from ppl_models.evaluate.likelihood import per_datapoint_bounds
from ppl_models.inference.local_guide import latent_sites
from ppl_models.models.protocol import has_likelihood, label_use
from ppl_models.objectives.log_weights import log_importance_weights

PRIOR, ZERO_FILLED, SVI = "prior IS", "encoder IS, zero-filled", "per-point SVI from encoder"
# per-point SVI runs all settings.svi_steps steps: fit_local's tolerance is on the batch's summed one-sample loss,
# whose noise stopped it after 30 steps at 1e-3 on every batch we measured
SVI_TOL = 0.0


def imputed_variant(rounds: int) -> str:
    """The name of the row whose proposal is the encoder on the image imputed ``rounds`` times."""
    return f"encoder IS, imputed x{rounds}"


@dataclass(frozen=True)
class WeightedParticles:
    """What K weighted particles of one proposal give for a batch of B images."""

    log_p: torch.Tensor  # [B] logsumexp_k log w_k - log K: the estimate of log p(x_observed)
    ess: torch.Tensor  # [B] effective sample size (sum w)^2 / sum w^2, divided by K
    mean: torch.Tensor  # [B, *event] sum_k w_k E[x | z_k] / sum_k w_k
    kept: dict[str, torch.Tensor]  # site -> [S, B, ...] latent values of the S resampled particles


@torch.no_grad()
def weigh_particles(model: Callable, guide: Callable, x: torch.Tensor, site: str, num_particles: int, chunk: int,
                    samples: int) -> WeightedParticles:
    """Draw ``num_particles`` z_k ~ ``guide`` in chunks; weigh them under ``model``; resample ``samples``.

    Memory is bounded by ``chunk``: each chunk updates running log-sum-exps (of w and w^2), the
    weighted mean, and, per resampling slot, the best Gumbel-perturbed log weight and its latents.

    Args:
        model: the (visible-only) Pyro model, run on ``x``.
        guide: the proposal, run on ``x``.
        x: the batch ``[B, *event]`` (hidden pixels 0).
        site: the observed site.
        num_particles: K.
        chunk: particles per pass.
        samples: S, resampled particles per image.
    """
    b, event_dims = x.shape[0], x.dim() - 1
    lse = lse2 = mean = keys = None
    kept: dict[str, torch.Tensor] = {}
    for k0 in range(0, num_particles, chunk):
        c = min(chunk, num_particles - k0)
        recorder = ModelRecorder(site)
        lw = log_importance_weights(recorder(model), guide, x, num_particles=c)  # [c, B]
        means = observation_mean(recorder.fn, site).expand(c, *x.shape)
        new = lw.logsumexp(0) if lse is None else torch.logaddexp(lse, lw.logsumexp(0))
        part = ((lw - new).exp().reshape(c, b, *[1] * event_dims) * means).sum(0)
        mean = part if mean is None else mean * (lse - new).exp().reshape(b, *[1] * event_dims) + part
        lse = new
        lse2 = (2 * lw).logsumexp(0) if lse2 is None else torch.logaddexp(lse2, (2 * lw).logsumexp(0))
        # Gumbel-max: argmax_k (log w_k + G_k) is a draw with probability w_k / sum w (exp(1) draws E: -log E ~ Gumbel)
        best, index = (lw - torch.empty(samples, c, b, dtype=lw.dtype, device=lw.device).exponential_().log()).max(1)
        better = None if keys is None else best > keys
        keys = best if keys is None else torch.where(better, best, keys)
        for name, value in recorder.latents.items():
            value = value.expand(c, b, *value.shape[2:])[index, torch.arange(b, device=x.device)]  # [S, B, ...]
            kept[name] = value if better is None else torch.where(
                better.reshape(samples, b, *[1] * (value.dim() - 2)), value, kept[name])
    return WeightedParticles(lse - math.log(num_particles), (2 * lse - lse2).exp() / num_particles, mean, kept)


@torch.no_grad()
def decode_draws(module: torch.nn.Module, kept: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x ~ p(x | z) for each kept z ``[S, B, ...]``: the model conditioned on them, ``[S, B, *event]``."""
    site = module.observed_sites[0]
    samples = next(iter(kept.values())).shape[0]
    recorder = ModelRecorder(site)
    with pyro.plate("particles", samples, dim=-2):
        recorder(poutine.condition(module.model, data=kept))(x)
    return recorder.fn.sample().expand(samples, *x.shape)


@register_method("latent", "condition the model on the observed pixels, infer z (prior, encoder, imputed encoder, "
                           "per-point SVI), decode the hidden pixels")
class LatentCompletion(CompletionMethod):
    """Latent completion, one :class:`Completion` row per proposal (see the module docstring).

    Rows: ``prior IS``, ``encoder IS, zero-filled``, ``encoder IS, imputed xR`` (R =
    ``settings.imputation_rounds``) and ``per-point SVI from encoder`` (``settings.svi_steps`` Adam
    steps at ``settings.svi_lr``, all of them: ``SVI_TOL`` is 0). A model whose latents are discrete or
    global has no per-point SVI row; the other rows then say why in ``extra["skipped"]``.

    Exact cases: an image with nothing hidden has log p(x_hidden | x_observed) = 0, and one with
    nothing observed has log p(x_observed) = 0, so its row gives log p(x) itself. Each row's
    ``seconds`` includes the shared log p(x) pass (and, for the SVI row, the imputation it starts
    from). The method draws from the global RNG in a fixed order and does not reseed.
    """

    def not_applicable(self, module: torch.nn.Module, hidden: torch.Tensor) -> str | None:
        """Why latent completion cannot run on ``module`` (a one-line reason), or None.

        Traces ``module.model(batch_size=2)`` (and the guide on what it drew) once, without gradients.
        """
        name = type(module).__name__
        if not has_likelihood(module):
            return f"not applicable: {name} has no likelihood, so the observed pixels cannot weigh its latents"
        if getattr(module, "density_model", True) is False:
            return f"not applicable: {name} is not a density model (density_model = False): no posterior to weigh"
        if label_use(module) == "condition":
            return f"not applicable: {name} is conditioned on labels, which completion does not have"
        if hasattr(module, "sample_inputs") and label_use(module) != "semi-supervised":
            return f"not applicable: {name} needs inputs to sample (a conditional model); use --method cvae"
        site = module.observed_sites[0]
        with torch.no_grad(), pyro.validation_enabled(False):
            trace = poutine.trace(module.model).get_trace(batch_size=2)
            latents = [s for s in trace.nodes.values() if s["type"] == "sample" and not s["is_observed"]
                       and s["name"] not in module.observed_sites and not site_is_subsample(s)]
            if not latents:
                return f"not applicable: {name} has no latent variables; use --method autoregressive"
            x = trace.nodes[site]["value"]
            if tuple(hidden.shape[hidden.dim() - (x.dim() - 1):]) != tuple(x.shape[1:]):
                return (f"not applicable: the mask has shape {list(hidden.shape)}, but {name}'s observations have "
                        f"shape {list(x.shape[1:])}")
            try:
                pixel_log_prob(trace.nodes[site]["fn"], x, site)
            except ValueError as e:
                return f"not applicable: {e}"
            guided = poutine.trace(module.guide).get_trace(x).nodes
        unguided = [s["name"] for s in latents if s["infer"].get("enumerate") == "parallel" and s["name"] not in guided]
        if unguided:
            return f"not applicable: {name} sums out its latent site(s) {unguided} by enumeration; its guide draws none"
        return None

    def complete(self, module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor,
                 settings: CompletionSettings) -> list[Completion]:
        """Complete ``x`` ``[N, *event]`` where ``hidden`` is True, one row per proposal (on ``x``'s device)."""
        check_mask(hidden, x.shape[1:], x.shape[0], where="latent completion")
        hidden = hidden.to(x.device).expand(x.shape)
        site, k, rounds = module.observed_sites[0], settings.num_particles, settings.imputation_rounds
        variants = [PRIOR, ZERO_FILLED, imputed_variant(rounds), SVI]
        skipped = None
        try:
            latent_sites(module, x[:2])
        except ValueError as e:
            variants.remove(SVI)
            skipped = f"{SVI}: {e}"
        rows = {v: {"draws": [], "mean": [], "log_p_obs": [], "ess": [], "seconds": 0.0, "steps": [], "start": ""}
                for v in variants}
        log_px = []
        for start in tqdm(range(0, x.shape[0], settings.batch_size), disable=None if settings.progress else True,
                          desc="latent", unit="batch"):
            xb, hb = x[start : start + settings.batch_size], hidden[start : start + settings.batch_size]
            x_fill = torch.where(hb, xb.new_zeros(()), xb)  # no pass but log p(x) sees the true hidden values
            clock = time.perf_counter()
            log_px.append(per_datapoint_bounds(module, xb, k, len(xb), settings.particle_chunk)[1])
            shared = time.perf_counter() - clock
            model = visible_model(module, ~hb)
            imputed, imputing = None, 0.0
            for variant in variants:
                clock = time.perf_counter()
                row = rows[variant]
                if variant == PRIOR:
                    guide = prior_proposal(module)
                elif variant == ZERO_FILLED:
                    guide = encoder_proposal(module, x_fill)
                elif variant == SVI:
                    guide, info = svi_proposal(module, hb, x_fill, imputed, settings.svi_steps, settings.svi_lr,
                                               SVI_TOL)
                    row["steps"].append(info["svi_steps"])
                    row["start"] = info["svi_start"]
                else:
                    with torch.no_grad():
                        imputed = impute(module, x_fill, hb, rounds)
                    imputing = time.perf_counter() - clock
                    guide = encoder_proposal(module, imputed)
                particles = weigh_particles(model, guide, x_fill, site, k, settings.particle_chunk, settings.samples)
                row["draws"].append(paste(xb, decode_draws(module, particles.kept, x_fill), hb).cpu())
                row["mean"].append(paste(xb, particles.mean, hb).cpu())
                row["log_p_obs"].append(particles.log_p.cpu())
                row["ess"].append(particles.ess.cpu())
                row["seconds"] += time.perf_counter() - clock + shared + (imputing if variant == SVI else 0.0)
        log_px = torch.cat(log_px).cpu()
        hidden = hidden.cpu().flatten(1)
        return [self._row(v, rows[v], log_px, hidden, k, rounds, skipped) for v in variants]

    def _row(self, variant: str, row: dict, log_px: torch.Tensor, hidden: torch.Tensor, k: int, rounds: int,
             skipped: str | None) -> Completion:
        # exact cases: nothing observed -> log p(x_obs) = 0; nothing hidden -> log p(x_hidden | x_obs) = 0
        log_p_obs = torch.where(hidden.all(1), 0.0, torch.cat(row["log_p_obs"]).to(log_px.dtype))
        log_p_hidden = torch.where(hidden.any(1), log_px - log_p_obs, 0.0)
        extra = {"num_particles": k, "ess_fraction": float(torch.cat(row["ess"]).mean()),
                 "log_p_observed": float(log_p_obs.mean())}
        if variant == imputed_variant(rounds):
            extra["imputation_rounds"] = rounds
        if variant == SVI:
            extra.update(svi_steps_mean=sum(row["steps"]) / len(row["steps"]), svi_steps_max=max(row["steps"]),
                         svi_start=row["start"])
        if skipped:
            extra["skipped"] = skipped
        return Completion("latent", variant, torch.cat(row["draws"], 1), torch.cat(row["mean"]), log_p_hidden,
                          f"log p(x) - log p(x_obs), IS K={k} each (log p(x): the model's guide on the full image)",
                          row["seconds"], extra)
