"""Which latent dimensions does the model use? Active units, KL per dimension, rate and distortion.

- **Active units** (Burda et al. 2015, section 5.2): dimension u is active when
  A_u = Cov_x(E_{q(u | x)}[u]) > 0.01, i.e. the posterior mean moves with the data.
- **KL per dimension:** E_x KL(q(z_u | x) || p(z_u)); a dimension whose KL is near zero carries no
  information about x (posterior collapse).
- **Rate and distortion** (Alemi et al. 2018, "Fixing a broken ELBO"; the sender's message length
  and the receiver's reconstruction error of the CS236 notes): R = E KL(q(z | x) || p(z)),
  D = -E_q log p(x | z), so that R + D = -ELBO.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ppl_models.diagnostics.draws import PosteriorDraws

ACTIVE_THRESHOLD = 0.01  # Burda et al.'s threshold on Cov_x(E_q[u])
COLLAPSED_KL = 0.01  # nats: a dimension with less mean KL than this is flagged as collapsed


@dataclass(frozen=True)
class SiteUsage:
    """How one latent site's coordinates are used, over the diagnosed points."""

    site: str  # the latent site
    dims: int  # its number of coordinates per data point
    active_units: int | None  # coordinates with Cov_x(E_q[u]) > 0.01 (None: not applicable)
    activity: list[float] | None  # Cov_x(E_q[u]) per coordinate
    kl_per_dim: list[float] | None  # mean KL per coordinate (None: q or p does not factorize)
    collapsed: list[int] | None  # coordinates whose mean KL < 0.01 nats
    note: str | None  # why a figure is missing

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def site_usage(draws: PosteriorDraws) -> list[SiteUsage]:
    """Active units and KL per dimension of every latent site of ``draws``."""
    out = []
    for site, values in draws.latents.items():
        dims = int(values[0, 0].numel())
        if site in draws.discrete_sites:
            out.append(SiteUsage(site, dims, None, None, None, None,
                                 "discrete site: no posterior mean, so no active units or KL per dimension"))
            continue
        mean = draws.posterior_mean.get(site)
        activity = None
        if mean is not None and mean.shape[0] > 1:
            activity = mean.reshape(mean.shape[0], -1).double().var(0).tolist()
        kl = draws.kl_per_dim.get(site)
        kl_dims = None if kl is None else kl.reshape(kl.shape[0], -1).double().mean(0).tolist()
        notes = []
        if mean is None:
            notes.append("the guide proposes no value for this site, so no active units")
        elif mean.shape[0] < 2:
            notes.append("active units need at least two data points")
        if kl is None:
            notes.append(f"no KL per dimension: {draws.kl_per_dim_missing.get(site, 'not computed')}")
        out.append(SiteUsage(
            site, dims, None if activity is None else sum(a > ACTIVE_THRESHOLD for a in activity), activity,
            kl_dims, None if kl_dims is None else [i for i, v in enumerate(kl_dims) if v < COLLAPSED_KL],
            "; ".join(notes) or None,
        ))
    return out


@dataclass(frozen=True)
class RateDistortion:
    """Rate and distortion in nats per data point; rate + distortion = -ELBO."""

    rate: float  # E_x KL(q(z | x) || p(z))
    distortion: float  # -E_x E_q log p(x | z)
    elbo: float  # -(rate + distortion)
    rate_analytic: bool  # the rate is the closed-form KL (else Monte Carlo, from the same draws)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def per_point_rate_distortion(draws: PosteriorDraws) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-data-point rate and distortion, each ``[N]``."""
    return draws.rate, -draws.log_likelihood.mean(0)


def rate_distortion(draws: PosteriorDraws) -> RateDistortion:
    """Mean rate and distortion over the data points of ``draws``."""
    rate, distortion = (v.double().mean().item() for v in per_point_rate_distortion(draws))
    return RateDistortion(rate, distortion, -(rate + distortion), draws.rate_analytic)
