"""The ELBO for reparameterized guides, with as little per-step work as possible.

Pyro's ``Trace_ELBO`` and ``TraceMeanField_ELBO`` are general: they cache log-probabilities, prune
and check traces, and build score-function terms for non-reparameterizable sites. For the common
case, a guide whose every site has ``rsample``, the ELBO is only

    E_q[log p(x, z) - log q(z | x)]  ~=  sum_sites log p(site) - sum_guide_sites log q(site),

optionally with KL(q || p) in closed form for latent sites where torch knows it. This class
computes exactly that (same value and gradient as Pyro's classes, tested) and hands two cases to
Pyro, discovered from the traces of the first call (which then runs model and guide once more):

- a model or guide site marked ``infer={"enumerate": "parallel"}`` (a discrete latent summed out,
  e.g. the component of a Gaussian mixture): ``TraceEnum_ELBO``, in both modes (it has no
  closed-form KL; the sum over the enumerated values is exact);
- a guide with a non-reparameterized site: ``Trace_ELBO`` or ``TraceMeanField_ELBO``.

In analytic-KL mode, guide-only sites (auxiliary sites such as the joint latent vector of an
automatic low-rank or flow guide, followed by ``Delta`` sites for the model's latents) contribute
-log q, and a ``Delta`` site log_density - log p(z): its "KL" is no closed form (Pyro's
``KL(Delta || p) = -log p(z)`` drops the log_density), so analytic mode agrees with ``Trace_ELBO``
on such guides.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import ELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from ppl_models.objectives.differentiable import DifferentiableELBO


def _sample_sites(trace):
    return [(n, s) for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]


def _enumerated(*traces) -> bool:
    return any(site["infer"].get("enumerate") == "parallel" for trace in traces for _, site in _sample_sites(trace))


def _is_delta(fn) -> bool:
    while isinstance(fn, torch.distributions.Independent):
        fn = fn.base_dist
    return isinstance(fn, dist.Delta)


def _weighted_sum(value: torch.Tensor, site: dict) -> torch.Tensor:
    return scale_and_mask(value, site["scale"], site["mask"]).sum()


class ReparamELBO(DifferentiableELBO):
    """ELBO for fully reparameterized guides (Kingma & Welling 2014), with Monte Carlo or analytic KL;
    models with enumerated discrete sites go to ``TraceEnum_ELBO`` (exact sums over them).

    Args:
        analytic_kl: use KL(q || p) in closed form for each latent site (as ``TraceMeanField_ELBO``)
            instead of the Monte Carlo estimate log q(z) - log p(z) (as ``Trace_ELBO``). Guide-only
            (auxiliary) sites and ``Delta`` sites keep their Monte Carlo terms (see the module docstring).
        num_particles: samples per data point, drawn in one vectorized pass.
        max_plate_nesting: how many plates the model nests; particles go to the left of them.
    """

    def __init__(self, analytic_kl: bool = False, num_particles: int = 1, max_plate_nesting: int = 1):
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
                         vectorize_particles=num_particles > 1)
        self.model_plate_nesting = max_plate_nesting  # pyro.infer.ELBO adds 1 for vectorized particles
        self.analytic_kl = analytic_kl
        self._general: ELBO | None = None  # Pyro's class, once enumeration or score-function terms are needed

    def _get_trace(self, model, guide, args, kwargs):
        """Guide trace and model trace replayed against it, particles vectorized (pyro.infer.ELBO API)."""
        if self.num_particles > 1:
            with pyro.plate("particles", self.num_particles, dim=-(self.model_plate_nesting + 1)):
                guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
                model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        else:
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return model_trace, guide_trace

    def _general_elbo(self, enumerated: bool) -> ELBO:
        if enumerated:
            # Later calls may enumerate nothing (a semi-supervised model's labelled batches): no warning then.
            return TraceEnum_ELBO(num_particles=self.num_particles, max_plate_nesting=self.model_plate_nesting,
                                  vectorize_particles=self.vectorize_particles, strict_enumeration_warning=False)
        cls = TraceMeanField_ELBO if self.analytic_kl else Trace_ELBO
        return cls(num_particles=self.num_particles, max_plate_nesting=self.max_plate_nesting,
                   vectorize_particles=self.vectorize_particles)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The negative ELBO (summed over the batch, averaged over particles); differentiable."""
        if self._general is not None:
            return self._general.differentiable_loss(model, guide, *args, **kwargs)
        model_trace, guide_trace = self._get_trace(model, guide, args, kwargs)
        enumerated = _enumerated(model_trace, guide_trace)
        if enumerated or not all(site["fn"].has_rsample for _, site in _sample_sites(guide_trace)):
            self._general = self._general_elbo(enumerated)
            return self._general.differentiable_loss(model, guide, *args, **kwargs)
        return self.loss_from_traces(model_trace, guide_trace)

    def loss_from_traces(self, model_trace, guide_trace) -> torch.Tensor:
        """The negative ELBO from a guide trace and the model trace replayed against it (reparameterized
        sites, nothing enumerated); also what the compiled execution plan (``ppl_models.plan``) calls."""
        guide_sites = _sample_sites(guide_trace)
        elbo = 0.0
        for name, site in _sample_sites(model_trace):
            if self.analytic_kl and not site["is_observed"]:
                elbo = elbo - _weighted_sum(self._kl(guide_trace.nodes[name], site), site)
            else:
                elbo = elbo + _weighted_sum(site["fn"].log_prob(site["value"]), site)
        for name, site in guide_sites:  # analytic mode: only the auxiliary sites, absent from the model
            if not self.analytic_kl or name not in model_trace.nodes:
                elbo = elbo - _weighted_sum(site["fn"].log_prob(site["value"]), site)
        return -elbo / self.num_particles

    @staticmethod
    def _kl(guide_site: dict, model_site: dict) -> torch.Tensor:
        value = guide_site["value"]
        if _is_delta(guide_site["fn"]):  # a point mass set by an auxiliary site: log_density - log p(z)
            return guide_site["fn"].log_prob(value) - model_site["fn"].log_prob(value)
        try:
            return kl_divergence(guide_site["fn"], model_site["fn"])
        except NotImplementedError:  # no closed form: Monte Carlo for this site, as TraceMeanField_ELBO
            return guide_site["fn"].log_prob(value) - model_site["fn"].log_prob(value)
