"""Joint posterior families: one distribution over all local latent sites of a data point.

As Pyro's ``AutoContinuous``: the unconstrained values of every local site, flattened per data
point and concatenated, form one vector u ``[N, D]``, sampled at the auxiliary site
:data:`JOINT_SITE` (``infer={"is_auxiliary": True}``, so the model never sees it). Each model site
then gets ``Delta(biject_to(support)(u_site), log_density=-log|det J|)``: the guide's log-densities
sum to log q(z | x), and correlations between sites are kept.
"""

from __future__ import annotations

import warnings

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN
from torch import nn

from guides.config import GuideConfig
from guides.families import LOCAL_INIT_SCALE, Family, inverse_softplus, positive_scale
from guides.registry import register_family
from guides.sites import DATA_PLATE, LatentSite, inside
from ppl_models.nets import activation


JOINT_SITE = "_auto_latent"  # the auxiliary site holding the joint unconstrained vector


class JointFamily(Family):
    """Base of the joint families: subclasses give :meth:`joint`, q(u | x) with batch ``[N]`` and
    event ``[D]``."""

    def joint(self, h: torch.Tensor) -> dist.TorchDistribution:
        """q(u | x) for features ``h`` ``[N, H]``."""
        raise NotImplementedError

    def forward(self, h: torch.Tensor, plates: dict[str, pyro.plate]) -> dict[str, torch.Tensor]:
        """Sample u at :data:`JOINT_SITE`, then every local site as a Delta at its slice of u."""
        data = next(f for f in self.sites[0].frames if f.name == DATA_PLATE)
        with plates[data.name]:
            u = pyro.sample(JOINT_SITE, self.joint(h), infer={"is_auxiliary": True})
        values = {}
        for site, u_site in zip(self.sites, u.split(self.sizes, dim=-1)):
            value, log_density = site.constrain(site.unpack(u_site))
            if poutine.get_mask() is False:  # log-densities are not needed (as AutoContinuous)
                log_density = 0.0
            with inside(site, plates):
                delta = dist.Delta(value, log_density=log_density, event_dim=len(site.event_shape))
                values[site.name] = pyro.sample(site.name, delta)
        return values


@register_family("lowrank")
class LowRankFamily(JointFamily):
    """q(u | x) = Normal(mu(x), F(x) F(x)^T + diag(d(x))): a Gaussian over all local sites whose
    covariance has a rank-``config.rank`` factor, all given by the encoder per data point (the
    amortized counterpart of Pyro's ``AutoLowRankMultivariateNormal``)."""

    description = "one low-rank-plus-diagonal Normal over all local sites (--guide-rank)"

    def __init__(self, sites: list[LatentSite], features: int, config: GuideConfig):
        super().__init__(sites, features, config)
        self.rank = config.rank
        self.head = nn.Linear(features, self.dim * (2 + self.rank))
        with torch.no_grad():  # the factor starts at the default init: small next to the diagonal's scale
            self.head.bias[: self.dim] = self.init_loc()
            self.head.bias[-self.dim :] = inverse_softplus(LOCAL_INIT_SCALE)

    def params(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loc`` ``[N, D]``, ``cov_factor`` ``[N, D, rank]`` and ``cov_diag`` (variances) ``[N, D]``."""
        out = self.head(h)
        loc, factor, raw = out.split([self.dim, self.dim * self.rank, self.dim], dim=-1)
        return {"loc": loc, "cov_factor": factor.reshape(*factor.shape[:-1], self.dim, self.rank),
                "cov_diag": positive_scale(raw) ** 2}

    def joint(self, h: torch.Tensor) -> dist.TorchDistribution:
        """The low-rank multivariate Normal per data point."""
        return dist.LowRankMultivariateNormal(**self.params(h))


@register_family("iaf")
class IAFFamily(JointFamily):
    """Inverse autoregressive flow (Kingma et al. 2016, "Improved Variational Inference with Inverse
    Autoregressive Flow"): the encoder gives a diagonal Normal base and a context h(x) per data
    point; ``config.flows`` affine autoregressive transforms, each a MADE network of widths
    ``config.flow_hidden`` that reads u and the context (as in the paper), map it to u.

    The transforms are Pyro's ``ConditionalAffineAutoregressive`` in its numerically stable gated
    form (the paper's eq. 14: u <- sigma * u + (1 - sigma) * m, sigma = sigmoid(s + 2), so each
    starts near the identity); each draws its own random variable order (a buffer, saved in the
    state dict), so stacked flows do not share one ordering.
    """

    description = "a Normal pushed through --flows x-conditioned IAF transforms (Kingma et al. 2016)"

    def __init__(self, sites: list[LatentSite], features: int, config: GuideConfig):
        super().__init__(sites, features, config)
        narrow = [w for w in config.flow_hidden if w < self.dim]
        if narrow:
            raise ValueError(f"iaf: every flow_hidden width must be at least the joint latent size {self.dim} "
                             f"(the local sites {[s.name for s in sites]}), got {list(config.flow_hidden)}")
        self.head = nn.Linear(features, 2 * self.dim)
        with torch.no_grad():
            self.head.bias[: self.dim] = self.init_loc()
            self.head.bias[self.dim :] = inverse_softplus(LOCAL_INIT_SCALE)
        with warnings.catch_warnings():
            # D = 1: Pyro suggests a plain affine map; conditioned on h(x) it is still an x-dependent one
            warnings.filterwarnings("ignore", message="ConditionalAutoRegressiveNN input_dim = 1")
            self.flows = nn.ModuleList(
                ConditionalAffineAutoregressive(
                    ConditionalAutoRegressiveNN(self.dim, features, list(config.flow_hidden),
                                                nonlinearity=activation(config.activation)),
                    stable=True,
                )
                for _ in range(config.flows)
            )

    def params(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The base Normal's ``loc`` and ``scale``, each ``[N, D]``, and the flows' ``context`` ``[N, H]``."""
        loc, raw = self.head(h).split(self.dim, dim=-1)
        return {"loc": loc, "scale": positive_scale(raw), "context": h}

    def joint(self, h: torch.Tensor) -> dist.TorchDistribution:
        """The base Normal pushed through the flows conditioned on ``h``."""
        p = self.params(h)
        base = dist.Normal(p["loc"], p["scale"]).to_event(1)
        return dist.TransformedDistribution(base, [flow.condition(h) for flow in self.flows])
