"""The importance-weighted ELBO (Burda et al. 2015) with three gradient estimators.

For K draws z_k ~ q(z | x_n) and log w_kn = log p(x_n, z_k) - log q(z_k | x_n),

    IWAE_K(x_n) = logsumexp_k log w_kn - log K   <=  log p(x_n),

equal to the ELBO at K=1 and non-decreasing in K. The particles run as one vectorized pass (a
``pyro.plate`` to the left of the model's plates), the log-sum-exp is taken per data point, and a
subsampled data plate's scale N/B multiplies the per-point bounds.

Gradient estimators for the guide's parameters phi (the model's parameters always get
sum_k w~_k grad log p(x, z_k), with w~ the self-normalized weights):

- ``standard``: autograd through the bound (Burda et al. 2015, eq. 14).
- ``stl``: "sticking the landing" (Roeder et al. 2017): log q is evaluated with its parameters
  stopped, dropping the score term E_q[grad_phi log q] whose expectation is zero.
- ``dreg``: doubly reparameterized (Tucker et al. 2019): stopped log q as in STL, and the path
  gradient through each z_k weighted by w~_k^2 instead of w~_k.

STL and DReG need the pieces of log w, so the guide's log-densities are computed here site by
site, from Pyro's distributions with detached parameters.

Model sites marked ``infer={"enumerate": "parallel"}`` (local discrete latents, e.g. a mixture's
component) are enumerated to the left of the particles and summed out of p(x_n, z_k, c) per data
point, as in :func:`ppl_models.objectives.log_weights.log_importance_weights`; with nothing left
to sample (an empty guide) every log w_k is the exact log p(x_n), so the bound is exact at every K.
STL and DReG change only the gradient of sampled guide sites, and refuse a guide without any.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import detach, scale_and_mask
from pyro.poutine.util import site_is_subsample

from ppl_models.objectives.differentiable import DifferentiableELBO
from ppl_models.objectives.log_weights import check_local_enumeration, enumerated_sites, sum_enumerated

GRAD_ESTIMATORS = ("standard", "stl", "dreg")


def _sample_sites(trace):
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]


def _in_data_plate(site: dict) -> bool:
    return any(frame.dim == -1 for frame in site["cond_indep_stack"])


class IWAE(DifferentiableELBO):
    """Negative importance-weighted bound as a differentiable loss, for any Pyro model/guide pair.

    Unlike Pyro's ``RenyiELBO`` it has a ``differentiable_loss`` (so a torch optimizer or an
    ``nn.Module`` can use it) and offers the STL and DReG gradient estimators.

    Args:
        num_particles: K, importance samples per data point, drawn in one vectorized pass.
        grad_estimator: ``standard``, ``stl`` or ``dreg`` (see the module docstring).
        max_plate_nesting: how many plates the model nests; the data plate is the rightmost (dim -1).
    """

    def __init__(self, num_particles: int = 1, grad_estimator: str = "standard", max_plate_nesting: int = 1):
        if grad_estimator not in GRAD_ESTIMATORS:
            raise ValueError(f"unknown grad_estimator {grad_estimator!r}; choose one of {', '.join(GRAD_ESTIMATORS)}")
        if num_particles < 1:
            raise ValueError(f"particles must be at least 1, got {num_particles}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting, vectorize_particles=True)
        self.model_plate_nesting = max_plate_nesting  # pyro.infer.ELBO adds 1 for vectorized particles
        self.grad_estimator = grad_estimator
        self._checked_guide = False

    @property
    def _particle_dim(self) -> int:
        return -(self.model_plate_nesting + 1)

    def _get_trace(self, model, guide, args, kwargs):
        """Guide trace and the model replayed against it, its enumerated sites to the left of the particles."""
        model = poutine.enum(model, first_available_dim=self._particle_dim - 1)
        with pyro.plate("particles", self.num_particles, dim=self._particle_dim):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        check_local_enumeration(enumerated_sites(model_trace), self._particle_dim)
        return model_trace, guide_trace

    def _check_guide(self, latent_sites: list[dict]) -> None:
        """STL/DReG stop the gradient through each site's parameters; refuse guides where a site's
        parameters depend on another latent's sample (the stop would also cut that path)."""
        if not latent_sites:
            raise ValueError(f"grad_estimator={self.grad_estimator!r} changes only the gradient of the guide's "
                             f"sampled sites, and this guide samples none (enumerated sites are summed out); "
                             f"use grad_estimator='standard'")
        auxiliary = [s["name"] for s in latent_sites if s["infer"].get("is_auxiliary")]
        if auxiliary:  # a joint guide (lowrank, iaf) derives every site from one auxiliary sample
            raise ValueError(f"grad_estimator={self.grad_estimator!r} needs guide sites that do not condition on each "
                             f"other: the guide derives its sites from the auxiliary site(s) {auxiliary}; "
                             f"use grad_estimator='standard' or --guide normal")
        if not latent_sites[0]["value"].requires_grad:
            raise ValueError(f"grad_estimator={self.grad_estimator!r} needs a reparameterized guide with parameters")
        for i, later in enumerate(latent_sites[1:], start=1):
            density = later["fn"].log_prob(later["value"].detach()).sum()
            if not density.requires_grad:
                continue
            earlier = [s["value"] for s in latent_sites[:i]]
            grads = torch.autograd.grad(density, earlier, allow_unused=True, retain_graph=True)
            for site, g in zip(latent_sites[:i], grads):
                if g is not None:
                    raise ValueError(
                        f"grad_estimator={self.grad_estimator!r} needs guide sites that do not condition on each "
                        f"other: q({later['name']}) depends on {site['name']}; use grad_estimator='standard'"
                    )
        self._checked_guide = True

    def log_weights(self, model, guide, *args, **kwargs) -> tuple[torch.Tensor, float]:
        """Differentiable log w of shape ``[K, N]`` (``[K, 1]`` if a latent site is global) and the
        data plate's scale; the guide's log q carries the estimator's stop-gradients."""
        return self.log_weights_from_traces(*self._get_trace(model, guide, args, kwargs))

    def log_weights_from_traces(self, model_trace, guide_trace) -> tuple[torch.Tensor, float]:
        """:meth:`log_weights` from a guide trace and the model trace replayed against it (also what the
        compiled execution plan, ``ppl_models.plan``, calls)."""
        latent = [s for s in _sample_sites(guide_trace) if not s["is_observed"]]
        if torch.is_grad_enabled():
            discrete = [s["name"] for s in latent if not s["fn"].has_rsample]
            if discrete:  # their gradient would need a score-function term (e.g. VIMCO), which this omits
                raise ValueError(f"iwae needs reparameterized guide sites, but the guide samples {discrete} "
                                 f"without rsample; train with --objective elbo (it sums such sites out when "
                                 f"they are marked infer={{'enumerate': 'parallel'}})")
        stop = self.grad_estimator != "standard"
        if stop and not self._checked_guide:
            self._check_guide(latent)
        model_sites = _sample_sites(model_trace)
        local = all(_in_data_plate(s) for s in model_sites + latent if not s["is_observed"])
        scales = {float(s["scale"]) for s in model_sites + latent}
        if len(scales) > 1:
            raise ValueError(f"iwae needs one scale for every site of a data point, got {sorted(scales)}: the model "
                             "weights some of its terms (as a beta-VAE's KL weight or M2's classification term "
                             "do), and the importance-weighted bound is defined for the unweighted joint "
                             "p(x, z); train with --objective elbo or elbo-analytic")
        scale = scales.pop() if scales else 1.0
        if not local and scale != 1.0:
            raise ValueError("iwae with a global latent site cannot subsample the data plate")

        K = self.num_particles
        log_w, enumerated = 0.0, 0.0  # the sites whose log-densities carry enumeration dims, summed apart
        for site in model_sites:
            log_p = scale_and_mask(site["fn"].log_prob(site["value"]), 1.0, site["mask"])
            if log_p.dim() > -self._particle_dim:
                enumerated = enumerated + log_p
            else:
                log_w = log_w + self._per_point(log_p, K, local)
        if torch.is_tensor(enumerated):  # log sum_c p(x_n, ..., c), point by point
            log_w = log_w + self._per_point(sum_enumerated(enumerated, self._particle_dim), K, local)
        for site in latent:
            fn = detach(site["fn"]) if stop else site["fn"]
            log_w = log_w - self._per_point(scale_and_mask(fn.log_prob(site["value"]), 1.0, site["mask"]), K, local)
        if self.grad_estimator == "dreg" and torch.is_grad_enabled():
            weights = torch.softmax(log_w.detach(), dim=0)
            for site in latent:  # the path gradient into z_k arrives times w~_k; make it w~_k^2
                if site["value"].requires_grad:
                    w = weights.reshape(weights.shape + (1,) * (site["value"].dim() - weights.dim()))
                    site["value"].register_hook(lambda g, w=w: g * w)
        return log_w, scale

    @staticmethod
    def _per_point(log_p: torch.Tensor, K: int, local: bool) -> torch.Tensor:
        # masked, not scaled: the scale is applied after the log-sum-exp
        log_p = log_p.reshape(K, -1) if log_p.dim() else log_p.expand(K, 1)
        return log_p if local else log_p.sum(-1, keepdim=True)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """Negative IWAE bound, summed over the data points (times the plate's scale); differentiable."""
        return self.loss_from_traces(*self._get_trace(model, guide, args, kwargs))

    def loss_from_traces(self, model_trace, guide_trace) -> torch.Tensor:
        """The negative IWAE bound from the traces of one vectorized pass (:meth:`log_weights_from_traces`)."""
        log_w, scale = self.log_weights_from_traces(model_trace, guide_trace)
        bound = log_w.logsumexp(0) - math.log(self.num_particles)
        return -scale * bound.sum()
