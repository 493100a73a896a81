"""Diagnostics against known answers: PPCA with orthogonal loadings, whose exact posterior is a
diagonal Normal (so q* of a mean-field guide is exact), and a Gaussian mixture with exact log p(x)."""

import math
import sys
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from diagonal_gaussian import DiagonalGaussian  # noqa: E402

from ppl_models.diagnostics.diagnose import DiagnoseConfig, diagnose  # noqa: E402
from ppl_models.diagnostics.draws import draw_posterior  # noqa: E402
from ppl_models.diagnostics.gaps import GapSettings  # noqa: E402
from ppl_models.diagnostics.latents import site_usage  # noqa: E402
from ppl_models.objectives.reparam_elbo import ReparamELBO  # noqa: E402

GAPS = DiagnoseConfig(samples=500, gaps=True, gap=GapSettings(max_steps=500))


def data(model, n=40, seed=1):
    torch.manual_seed(seed)
    return model.marginal().sample((n,))


def test_exact_guide_has_full_ess_small_khat_and_no_gaps():
    m = DiagonalGaussian(guide_scale=1.0)
    x = data(m)
    pyro.set_rng_seed(0)
    d = diagnose(m, x, config=GAPS)
    np.testing.assert_allclose(d.per_point["ess"], 500, rtol=1e-9)  # constant weights: ESS = S
    assert (d.per_point["khat"] < 0.5).all()
    np.testing.assert_allclose(d.per_point["log_px_is"], m.marginal().log_prob(x).numpy(), atol=1e-9)
    np.testing.assert_allclose(d.per_point["log_px_psis"], d.per_point["log_px_is"], atol=1e-9)
    g = d.summary["gaps"]
    assert g["start"] == "encoder" and g["family_note"] is None
    for name in ("inference_gap", "approximation_gap", "amortization_gap"):
        assert abs(g[name]) < 0.02, (name, g[name])  # stated tolerance: 0.02 nats per point


def test_a_guide_ten_times_too_narrow_has_large_khat_and_an_amortization_gap():
    m = DiagonalGaussian(guide_scale=0.1)
    x = data(m)
    pyro.set_rng_seed(0)
    d = diagnose(m, x, config=GAPS)
    assert d.per_point["khat"].mean() > 0.7 and d.summary["khat"]["mean"] > 0.7
    assert d.summary["khat"]["bad"] >= 0.75 and len(d.summary["khat"]["worst"]) == 5
    assert d.per_point["ess"].mean() < 0.05 * 500
    g = d.summary["gaps"]
    assert g["amortization_gap"] > 1.0  # q* recovers the posterior's width
    assert abs(g["approximation_gap"]) < 0.1  # the posterior is in the family
    assert g["inference_gap"] == pytest.approx(g["approximation_gap"] + g["amortization_gap"], abs=1e-9)


def test_rate_is_the_closed_form_kl_and_distortion_matches_its_closed_form():
    m = DiagonalGaussian(guide_scale=0.7)
    x = data(m)
    pyro.set_rng_seed(0)
    draws = draw_posterior(m.model, m.guide, x, num_samples=2000)
    post = m.posterior(x)
    q = torch.distributions.Normal(post.loc, post.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt() * 0.7)
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    assert draws.rate_analytic
    torch.testing.assert_close(draws.rate, kl.detach(), atol=1e-10, rtol=0)
    per_point = -draws.log_likelihood.mean(0)
    stderr = (draws.log_likelihood.std(0) ** 2).mean().sqrt() / math.sqrt(2000 * x.shape[0])
    error = (per_point - m.expected_distortion(x).detach()).mean()
    assert abs(error) < 4 * stderr, (error, stderr)  # 4 standard errors of the mean over points
    torch.testing.assert_close(draws.kl_per_dim["z"].sum(-1), draws.rate, atol=1e-10, rtol=0)


def test_rate_plus_distortion_is_minus_the_closed_form_kl_elbo_of_the_same_draw():
    m = DiagonalGaussian(guide_scale=0.7)
    x = data(m, n=10)
    pyro.set_rng_seed(3)
    draws = draw_posterior(m.model, m.guide, x, num_samples=1)
    pyro.set_rng_seed(3)
    loss = ReparamELBO(analytic_kl=True).differentiable_loss(m.model, m.guide, x)
    total = (draws.rate - draws.log_likelihood[0]).sum()
    torch.testing.assert_close(total, loss.detach(), atol=1e-10, rtol=0)


class TwoSites(torch.nn.Module):
    """A positive and a real latent per point: the rate has no single closed form, so it is Monte Carlo."""

    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            s = pyro.sample("s", dist.LogNormal(torch.zeros(()), 1.0))
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z * s.unsqueeze(-1), 0.5).to_event(1), obs=x)

    def guide(self, x, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("s", dist.LogNormal(torch.zeros(x.shape[0]), 0.5))
            pyro.sample("z", dist.Normal(x / 2, 0.6).to_event(1))


def test_monte_carlo_rate_plus_distortion_is_minus_the_mean_log_weight_exactly():
    m = TwoSites()
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    pyro.set_rng_seed(0)
    draws = draw_posterior(m.model, m.guide, x, num_samples=300, particle_chunk=70)
    assert not draws.rate_analytic and draws.log_weights.shape == (300, 30)
    torch.testing.assert_close(draws.rate - draws.log_likelihood.mean(0), -draws.log_weights.mean(0), atol=1e-5, rtol=0)
    assert set(draws.latents) == {"s", "z"} and draws.latents["z"].shape == (100, 30, 2)
    assert set(draws.kl_per_dim) == {"s", "z"}  # both factorize: Monte Carlo KL per coordinate


def test_an_unused_latent_coordinate_is_inactive_and_flagged_as_collapsed():
    m = DiagonalGaussian(guide_scale=1.0, column_scales=(2.0, 0.0))
    x = data(m, n=200)
    pyro.set_rng_seed(0)
    (usage,) = site_usage(draw_posterior(m.model, m.guide, x, num_samples=50))
    assert usage.active_units == 1 and usage.activity[0] > 0.5 and usage.activity[1] < 1e-12
    assert usage.collapsed == [1] and usage.kl_per_dim[1] < 1e-12


class Mixture(torch.nn.Module):
    """A Gaussian mixture whose component is enumerated: nothing to guide, log p(x) exact."""

    def __init__(self):
        super().__init__()
        self.logits, self.locs = torch.tensor([0.0, 1.0, -1.0]), torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -3.0]])

    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(logits=self.logits), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(self.locs[c], 1.0).to_event(1), obs=x)

    def guide(self, x, batch_size=None):
        pass

    def exact(self, x):
        mix = dist.MixtureSameFamily(dist.Categorical(logits=self.logits), dist.Normal(self.locs, 1.0).to_event(1))
        return mix.log_prob(x)


def test_mixture_is_exact_and_gaps_say_why_they_do_not_apply():
    m = Mixture()
    x = torch.randn(25, 2, generator=torch.Generator().manual_seed(2)) * 2
    d = diagnose(m, x, config=DiagnoseConfig(samples=20, gaps=True))
    np.testing.assert_allclose(d.per_point["log_px_is"], m.exact(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(d.per_point["ess"], 20, rtol=1e-5)
    assert d.summary["gaps"].startswith("not applicable") and "'c'" in d.summary["gaps"]
    assert d.summary["latents"] == []


def test_a_model_without_a_density_is_reported_as_not_applicable():
    from ppl_models.registry import build_model, model_config

    ae = build_model("autoencoder", model_config("autoencoder", latent_dim=3, hidden=(8,)), (8, 8)).eval()
    x = torch.rand(12, 8, 8)
    d = diagnose(ae, x, config=DiagnoseConfig(samples=10, gaps=True, ais_steps=5))
    for key in ("khat", "ess", "gaps", "ais", "rate_distortion"):
        assert d.summary[key].startswith("not applicable")
    assert d.summary["latents"][0]["active_units"] is not None  # its codes still vary with x


def test_settings_are_checked_naming_the_flag():
    with pytest.raises(ValueError, match="--samples"):
        DiagnoseConfig(samples=1)
    with pytest.raises(ValueError, match="--ais-chains"):
        DiagnoseConfig(ais_chains=0)
