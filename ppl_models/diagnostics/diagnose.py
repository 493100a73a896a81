"""Did inference work? Every diagnostic of a trained model on a set of data points, in one call.

:func:`diagnose` draws S samples per data point from the guide once and reads off them the
Pareto k-hat, the ESS and the plain and PSIS estimates of log p(x) (:mod:`.weights`), the active
units, the KL per dimension, the rate and the distortion (:mod:`.latents`). On request it runs AIS
on the real points and BDMC on simulated ones to cross-check log p(x) (:mod:`.ais`, :mod:`.bdmc`),
and fits the best guide per point to split the inference gap (:mod:`.gaps`), measured from the
tightest estimate of log p(x) each point has (IS with the guide, IS with q*, AIS where it ran). A diagnostic that cannot apply to the
model (a deterministic autoencoder has no density; a discrete site has no posterior mean) is
reported with the reason instead of a number (so is every diagnostic of a model without
likelihood, e.g. a GAN's generator); a model without latent sites (an autoregressive
model) gets its exact log p(x) and that reason for every diagnostic of inference.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from tqdm.auto import tqdm

from ppl_models.diagnostics.draws import PosteriorDraws, concatenate, draw_posterior
from ppl_models.diagnostics.gaps import GapResult, GapSettings, inference_gaps
from ppl_models.diagnostics.latents import per_point_rate_distortion, rate_distortion, site_usage
from ppl_models.diagnostics.weights import summarize_khat, weight_diagnostics
from ppl_models.evaluate.checks import at_least
from ppl_models.evaluate.likelihood import evenly_spaced_indices
from ppl_models.models.protocol import NO_LIKELIHOOD, bind_labels, has_likelihood


@dataclass(frozen=True)
class DiagnoseConfig:
    """What to compute, and with how many draws and steps."""

    samples: int = 1000  # S, guide draws per data point (k-hat, ESS, IS log p(x), rate, distortion)
    keep_draws: int = 100  # draws per data point kept for the ArviZ export
    batch_size: int = 100  # data points per pass
    gaps: bool = False  # fit q* per point and split the inference gap
    gap: GapSettings = field(default_factory=GapSettings)  # how q* is fitted
    ais_steps: int = 0  # AIS annealing steps T (0: no AIS, no BDMC)
    ais_chains: int = 8  # AIS chains per data point
    ais_leapfrog: int = 10  # leapfrog steps per HMC transition
    ais_points: int = 100  # evenly spread data points that get AIS
    bdmc_points: int = 20  # points simulated from the model for the BDMC sandwich (0: skip)
    seed: int = 0  # seeds every draw

    def __post_init__(self) -> None:
        """Check the settings, naming the flag."""
        for flag, value, low in (("--samples", self.samples, 2), ("--keep-draws", self.keep_draws, 1),
                                 ("--batch-size", self.batch_size, 1), ("--ais-steps", self.ais_steps, 0),
                                 ("--ais-chains", self.ais_chains, 1), ("--ais-leapfrog", self.ais_leapfrog, 1),
                                 ("--ais-points", self.ais_points, 1), ("--bdmc-points", self.bdmc_points, 0),
                                 ("--gap-steps", self.gap.max_steps, 1), ("--gap-particles", self.gap.particles, 1)):
            at_least(value, flag, low)

    def bdmc_step_counts(self) -> tuple[int, ...]:
        """The step counts of the BDMC sandwich: about T/25, T/5 and T (distinct, at least 1)."""
        return tuple(sorted({max(1, self.ais_steps // 25), max(1, self.ais_steps // 5), self.ais_steps}))


@dataclass
class Diagnostics:
    """The results: ``summary`` (JSON-ready), per-point arrays ``[N]`` and the draws they came from."""

    summary: dict[str, Any]  # everything the report shows
    per_point: dict[str, np.ndarray]  # k-hat, ESS, ELBO, log p(x), rate, distortion, gaps, AIS (NaN: not computed)
    draws: PosteriorDraws | None  # the guide draws (None for a model without a density)
    x: torch.Tensor  # the diagnosed data points
    y: torch.Tensor | None  # their labels
    rows: np.ndarray  # their rows in the source data


def _draws(module, x, y, config: DiagnoseConfig, guide_for, progress) -> PosteriorDraws:
    parts = []
    for start in tqdm(range(0, x.shape[0], config.batch_size), disable=not progress, desc="guide draws", unit="batch"):
        xb = x[start : start + config.batch_size]
        view = bind_labels(module, None if y is None else y[start : start + config.batch_size], evaluation=True)
        guide = view.guide if guide_for is None else guide_for(view, xb)
        parts.append(draw_posterior(view.model, guide, xb, config.samples, config.keep_draws))
    return concatenate(parts)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _ais(module, x, y, log_px_is: np.ndarray, config: DiagnoseConfig, progress, model_kwargs) -> dict:
    from ppl_models.diagnostics.ais import ais_log_likelihood
    from ppl_models.diagnostics.bdmc import bdmc_sandwich

    keep = evenly_spaced_indices(x.shape[0], config.ais_points)
    view = bind_labels(module, None if y is None else y[keep], evaluation=True)
    result = ais_log_likelihood(view.model, x[keep], steps=config.ais_steps, chains=config.ais_chains,
                                leapfrog=config.ais_leapfrog, seed=config.seed, progress=progress)
    ais = _numpy(result.log_px)
    out = {"points": keep.tolist(), "log_px": ais, "summary": {
        "steps": config.ais_steps, "chains": config.ais_chains, "leapfrog": config.ais_leapfrog,
        "n": len(keep), "acceptance": result.acceptance, "exact": result.exact,
        "log_px_ais": float(ais.mean()), "log_px_is_same_points": float(log_px_is[keep.numpy()].mean()),
        "is_minus_ais": float((log_px_is[keep.numpy()] - ais).mean())}}
    if config.bdmc_points and model_kwargs is not None:
        try:
            out["summary"]["bdmc"] = bdmc_sandwich(
                module.model, config.bdmc_points, config.bdmc_step_counts(), chains=config.ais_chains,
                leapfrog=config.ais_leapfrog, seed=config.seed, progress=progress, **model_kwargs)
        except (ValueError, RuntimeError) as e:
            out["summary"]["bdmc"] = f"not applicable: {e}"
    return out


def diagnose(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, rows: np.ndarray | None = None,
             config: DiagnoseConfig = DiagnoseConfig(), guide_for: Callable | None = None, progress: bool = False,
             model_kwargs: dict | None = None) -> Diagnostics:
    """Diagnose the posterior approximation of a trained ``module`` on the data points ``x``.

    Args:
        module: the model (Pyro ``model`` and ``guide``), in eval mode.
        x: data points ``[N, ...]`` on the module's device.
        y: their labels, for a model that uses them.
        rows: their rows in the source data (for the report); default ``0..N-1``.
        config: what to compute.
        guide_for: ``guide_for(view, x_batch)`` gives the proposal (an inference strategy's guide);
            default: the module's own guide.
        progress: show progress bars.
        model_kwargs: inputs ``module.model(None, batch_size=n, **model_kwargs)`` needs to simulate
            data for BDMC (None: skip BDMC).
    """
    t0 = time.perf_counter()
    rows = np.arange(x.shape[0]) if rows is None else np.asarray(rows)
    summary: dict[str, Any] = {"model": type(module).__name__, "n": int(x.shape[0]), "samples": config.samples,
                               "config": asdict(config)}
    per_point: dict[str, np.ndarray] = {}
    implicit = not has_likelihood(module)
    if implicit or not getattr(module, "density_model", True):
        why = (f"not applicable: {type(module).__name__} has {NO_LIKELIHOOD} (an implicit model)" if implicit else
               f"not applicable: {type(module).__name__} is not a density model (its guide is deterministic)")
        summary.update(khat=why, ess=why, gaps=why, ais=why, rate_distortion=why)
        draws = _draws(module, x, y, DiagnoseConfig(samples=2, keep_draws=1, batch_size=config.batch_size),
                       guide_for, progress)
        summary["latents"] = [u.to_json() for u in site_usage(draws)]
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        return Diagnostics(summary, per_point, draws, x, y, rows)

    if not latent_site_names(module, x, y):  # an autoregressive model: nothing to infer, log p(x) exact
        return _exact(module, x, y, rows, config, guide_for, progress, summary, t0)

    draws = _draws(module, x, y, config, guide_for, progress)
    w = weight_diagnostics(draws.log_weights)
    elbo = draws.log_weights.double().mean(0)
    rate, distortion = per_point_rate_distortion(draws)
    per_point.update(khat=w.khat, ess=w.ess, log_px_is=w.log_px_is, log_px_psis=w.log_px_psis, elbo=_numpy(elbo),
                     rate=_numpy(rate), distortion=_numpy(distortion))
    summary["khat"] = summarize_khat(w, rows).to_json()
    summary["ess"] = {"mean": float(w.ess.mean()), "min": float(w.ess.min()), "fraction_of_s": float(w.ess.mean() / w.num_samples)}
    summary["log_px"] = {"is": float(w.log_px_is.mean()), "psis": float(w.log_px_psis.mean()), "elbo": float(elbo.mean())}
    summary["rate_distortion"] = rate_distortion(draws).to_json()
    summary["latents"] = [u.to_json() for u in site_usage(draws)]
    if draws.global_sites:
        summary["global_sites"] = list(draws.global_sites)
    best = w.log_px_is.copy()  # the tightest log p(x) estimate per point, for the gaps
    if config.ais_steps:
        try:
            ais = _ais(module, x, y, w.log_px_is, config, progress, model_kwargs)
            per_point["log_px_ais"] = np.full(x.shape[0], np.nan)
            per_point["log_px_ais"][ais["points"]] = ais["log_px"]
            best[ais["points"]] = np.maximum(best[ais["points"]], ais["log_px"])
            summary["ais"] = ais["summary"]
        except ValueError as e:
            summary["ais"] = f"not applicable: {e}"
    if config.gaps:
        summary["gaps"] = _gaps(module, x, y, elbo, best, config, progress, per_point)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return Diagnostics(summary, per_point, draws, x, y, rows)


def latent_site_names(module, x: torch.Tensor, y: torch.Tensor | None = None) -> list[str]:
    """The latent sample sites of ``module.model`` on the first data point of ``x`` (none for an autoregressive model)."""
    view = bind_labels(module, None if y is None else y[:1], evaluation=True)
    with torch.no_grad():
        trace = poutine.trace(view.model).get_trace(x[:1])
    return [name for name, s in trace.nodes.items()
            if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)]


def _exact(module, x, y, rows, config: DiagnoseConfig, guide_for, progress, summary: dict, t0: float) -> Diagnostics:
    # Without latent sites every importance weight is log p(x) itself: one pass gives it, and no
    # diagnostic of the weights, the posterior or the gaps has anything to measure.
    why = f"not applicable: {type(module).__name__} has no latent variables; log p(x) is exact"
    summary.update(khat=why, ess=why, gaps=why, ais=why, rate_distortion=why, latents=[])
    draws = _draws(module, x, y, DiagnoseConfig(samples=2, keep_draws=1, batch_size=config.batch_size),
                   guide_for, progress)
    log_px = draws.log_weights[0].double()
    summary["log_px"] = {"exact": float(log_px.mean()), "is": float(log_px.mean()), "elbo": float(log_px.mean())}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return Diagnostics(summary, {"log_px_exact": _numpy(log_px)}, draws, x, y, rows)


def _gaps(module, x, y, elbo, log_px: np.ndarray, config: DiagnoseConfig, progress, per_point) -> dict | str:
    try:
        gaps: GapResult = inference_gaps(module, x, elbo, torch.from_numpy(log_px).to(x.device), config.samples,
                                         config.gap, y, config.batch_size, progress)
    except ValueError as e:
        return f"not applicable: {e}"
    per_point.update(elbo_optimal=_numpy(gaps.elbo_optimal), inference_gap=_numpy(gaps.inference),
                     approximation_gap=_numpy(gaps.approximation), amortization_gap=_numpy(gaps.amortization))
    return gaps.summary()
