"""Where does the bound lose? The inference gap split into approximation and amortization gaps.

Cremer, Li and Duvenaud (2018), "Inference Suboptimality in Variational Autoencoders":

    inference gap      log p(x) - ELBO(q_encoder)       = approximation + amortization
    approximation gap  log p(x) - ELBO(q*)              what the guide family cannot express
    amortization gap   ELBO(q*) - ELBO(q_encoder)       what the encoder leaves on the table

q* is the best member of the guide's family for each data point on its own, found here with the
per-data-point SVI of :mod:`ppl_models.inference.per_datapoint` (free ``(loc, log_scale)`` per
point, model frozen), started from the encoder's output and run until its stopping rule says it
has converged; where the fit ends below the encoder's own q (noise in the last steps), the encoder's
q is kept, since it is a member of the family too. Log p(x) is the tightest estimate each point
has: importance sampling with the encoder and with q* as proposals, and AIS where the caller ran
it. Each is a stochastic lower bound that a poor proposal makes loose, so the largest is the best.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from ppl_models.evaluate.likelihood import bounds_table
from ppl_models.inference.local_guide import LatentSite, LocalGuide, guide_params, latent_sites, prior_init
from ppl_models.inference.per_datapoint import fit_local
from ppl_models.models.protocol import bind_labels


@dataclass(frozen=True)
class GapSettings:
    """How q* is fitted for each data point."""

    max_steps: int = 3000  # cap on Adam steps per batch of data points
    lr: float = 5e-2  # Adam's first step size
    tol: float = 1e-5  # a window whose mean loss improves by less than this (relative) makes no progress
    particles: int = 10  # ELBO samples per step (less noise in the stopping rule)
    window: int = 50  # steps per convergence check
    halvings: int = 3  # windows without progress that halve the step size before the fit stops

    def rule(self) -> str:
        """The stopping rule, in words, for the report."""
        return (f"Adam (lr {self.lr}) on each batch's {self.particles}-sample ELBO, closed-form KL, from the "
                f"encoder's output; a window of {self.window} steps whose mean loss improves on the previous "
                f"window's by less than {self.tol:g} (relative) halves the step size, the {self.halvings + 1}th "
                f"such window ends the fit; at most {self.max_steps} steps")


@dataclass(frozen=True)
class GapResult:
    """Per-data-point gaps (tensors ``[N]``) and how q* was found."""

    log_px: torch.Tensor  # the log p(x) estimate the gaps are measured from (the larger IS estimate)
    elbo_encoder: torch.Tensor  # ELBO of the run's guide
    elbo_optimal: torch.Tensor  # ELBO of q*
    log_px_optimal: torch.Tensor  # IS estimate of log p(x) with q* as proposal (a second estimate)
    steps: list[int]  # Adam steps each batch took
    capped: int  # batches that stopped at max_steps rather than by the tolerance
    start: str  # "encoder" or "prior": where q* started
    family_note: str | None  # set when q*'s family differs from the run's guide
    settings: GapSettings = field(default_factory=GapSettings)  # how q* was fitted

    @property
    def inference(self) -> torch.Tensor:
        """log p(x) - ELBO(encoder), per point."""
        return self.log_px - self.elbo_encoder

    @property
    def approximation(self) -> torch.Tensor:
        """log p(x) - ELBO(q*), per point."""
        return self.log_px - self.elbo_optimal

    @property
    def amortization(self) -> torch.Tensor:
        """ELBO(q*) - ELBO(encoder), per point."""
        return self.elbo_optimal - self.elbo_encoder

    def summary(self) -> dict:
        """Mean gaps, the ELBOs, and the stopping rule and its outcome, JSON-ready."""
        mean = lambda t: t.double().mean().item()  # noqa: E731
        return {
            "inference_gap": mean(self.inference), "approximation_gap": mean(self.approximation),
            "amortization_gap": mean(self.amortization), "log_px": mean(self.log_px),
            "elbo_encoder": mean(self.elbo_encoder), "elbo_optimal": mean(self.elbo_optimal),
            "log_px_optimal": mean(self.log_px_optimal), "fit_steps": self.steps, "fit_capped_batches": self.capped,
            "start": self.start, "family_note": self.family_note, "stopping_rule": self.settings.rule(),
            "settings": asdict(self.settings),
        }


def optimal_guides(sites: list[LatentSite], settings: GapSettings, record: dict) -> Callable:
    """A ``guide_for(view, x)`` that fits q* over ``sites`` for each batch (see the module docstring).

    ``record`` collects the steps per batch, where q* started and a note when its family (a
    diagonal Normal per site) is not the guide's own.
    """

    def guide_for(view, x: torch.Tensor):
        try:
            start = {k: (a.detach(), b.detach()) for k, (a, b) in guide_params(view, x, sites).items()}
            record.setdefault("start", "encoder")
        except ValueError as e:
            start = prior_init(sites, x.shape[0], x.device, x.dtype)
            record["start"] = "prior"
            record["family_note"] = (f"q* is a diagonal Normal per site, not the guide's own family ({e}); the "
                                     f"amortization gap then also holds the difference between the families")
        params, steps = fit_local(view, x, sites, start, settings.max_steps, settings.lr, settings.tol,
                                  settings.particles, settings.window, settings.halvings)
        record.setdefault("steps", []).append(steps)
        return LocalGuide(sites, params)

    return guide_for


def inference_gaps(module, x: torch.Tensor, elbo_encoder: torch.Tensor, log_px: torch.Tensor, num_samples: int,
                   settings: GapSettings = GapSettings(), y: torch.Tensor | None = None, batch_size: int = 100,
                   progress: bool = False) -> GapResult:
    """Fit q* for every data point of ``x`` and measure the three gaps against ``log_px``.

    Args:
        module: the model, with Pyro ``model`` and ``guide``.
        x: the data points ``[N, ...]``.
        elbo_encoder: the run's guide's ELBO per point ``[N]``.
        log_px: the best estimate of log p(x) so far per point ``[N]`` (IS with the run's guide, or
            AIS where it is higher); the IS estimate with q* as proposal is taken where higher still.
        num_samples: draws per point for ELBO(q*) and its IS estimate.
        settings: how q* is fitted.
        y: labels, for a model conditioned on them.
        batch_size: data points fitted together.
        progress: show a progress bar.

    Raises:
        ValueError: the model has a discrete or global latent site (per-data-point guides need
            continuous local latents), naming it.
    """
    head = bind_labels(module, None if y is None else y[:2], evaluation=True)
    sites = latent_sites(head, x[:2])  # refuses a discrete or global latent before any work
    record: dict = {}
    table = bounds_table(module, x, num_samples, (), batch_size, progress=progress,
                         guide_for=optimal_guides(sites, settings, record), y=y)
    steps = record.get("steps", [])
    best = torch.maximum(log_px.double(), table["log_px"].double())
    start = record.get("start", "encoder")
    elbo_optimal = table["elbo"].double()
    if start == "encoder":  # the encoder's q is in the family too: q* is the better of the two
        elbo_optimal = torch.maximum(elbo_optimal, elbo_encoder.double())
    return GapResult(best, elbo_encoder, elbo_optimal, table["log_px"], steps,
                     sum(s >= settings.max_steps for s in steps), start,
                     record.get("family_note"), settings)
