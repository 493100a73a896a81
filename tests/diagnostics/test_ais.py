"""AIS and BDMC against known answers: closed-form PPCA, a quadrature, Gaussian mixtures."""

import math
import random

import pyro
import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import LinearGaussian
from torch import nn

from ppl_models.diagnostics.ais import ais_log_likelihood, beta_schedule
from ppl_models.diagnostics.bdmc import bdmc, bdmc_sandwich
from ppl_models.registry import build_model, model_config

F64 = torch.float64


class PPCA(LinearGaussian):
    """The linear-Gaussian test model with the protocol's ``observed_sites`` (BDMC reads it)."""

    observed_sites = ("x",)


class PositiveLatent(nn.Module):
    """z ~ LogNormal(0, 0.5), x_j | z ~ N(z, 0.3^2) for j = 1..3: a latent with positive support."""

    observed_sites = ("x",)
    prior = dist.LogNormal(torch.tensor(0.0, dtype=F64), 0.5)
    noise = 0.3

    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0] if x is not None else batch_size):
            z = pyro.sample("z", self.prior)
            return pyro.sample("x", dist.Normal(z.unsqueeze(-1).expand(*z.shape, 3), self.noise).to_event(1), obs=x)

    def quadrature(self, x):
        """log p(x_n) by the trapezoid rule on a fine grid of z."""
        z = torch.linspace(1e-6, 12.0, 40001, dtype=F64)
        log_lik = dist.Normal(z[:, None, None], self.noise).log_prob(x).sum(-1)  # [G, N]
        log_joint = self.prior.log_prob(z)[:, None] + log_lik
        log_dz = torch.full_like(z, math.log(z[1] - z[0]))
        log_dz[[0, -1]] -= math.log(2)
        return (log_joint + log_dz[:, None]).logsumexp(0)


class MixtureLatent(nn.Module):
    """c ~ Cat(pi) (enumerated), z ~ N(mu_c, 1), x ~ N(z, s^2): log p(x) = log sum_c pi_c N(x; mu_c, 1 + s^2)."""

    observed_sites = ("x",)
    pi = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
    mu = torch.tensor([-3.0, 0.0, 4.0], dtype=F64)
    noise = 0.5

    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0] if x is not None else batch_size):
            c = pyro.sample("c", dist.Categorical(self.pi), infer={"enumerate": "parallel"})
            z = pyro.sample("z", dist.Normal(self.mu[c], 1.0))
            return pyro.sample("x", dist.Normal(z, self.noise), obs=x)

    def exact(self, x):
        components = dist.Normal(self.mu, math.sqrt(1 + self.noise**2))
        return dist.MixtureSameFamily(dist.Categorical(self.pi), components).log_prob(x)


def mark_for_enumeration(name):
    """An ``infer_config`` function marking the site ``name`` for parallel enumeration."""
    return lambda site: {"enumerate": "parallel"} if site["name"] == name else {}


def simulated(model, n, seed=1):
    torch.manual_seed(seed)
    return pyro.poutine.trace(model).get_trace(None, batch_size=n).nodes["x"]["value"]


def test_beta_schedules_run_from_zero_to_one():
    for name in ("sigmoid", "linear"):
        betas = beta_schedule(50, name)
        assert len(betas) == 51 and betas[0] == 0.0 and betas[-1] == 1.0
        assert all(a < b for a, b in zip(betas, betas[1:]))
    sigmoid = beta_schedule(50)
    assert sigmoid[1] < 0.02 and sigmoid[25] == pytest.approx(0.5)  # small steps at the ends
    with pytest.raises(ValueError, match="schedule"):
        beta_schedule(10, "cosine")


def test_ais_matches_the_closed_form_ppca_likelihood_and_prior_sampling_does_not():
    m = PPCA()
    torch.manual_seed(1)
    x = m.marginal().sample((100,))
    exact = m.marginal().log_prob(x)
    result = ais_log_likelihood(m.model, x, steps=400, chains=16)
    assert result.log_weights.shape == (16, 100) and result.log_px.shape == (100,) and not result.exact
    error = result.log_px - exact
    # tolerance: 0.05 nats on the mean over 100 points (seeds 0-3 give |mean error| <= 0.007), 0.75 per point
    assert abs(error.mean().item()) < 0.05, error.mean()
    assert error.abs().max().item() < 0.75, error.abs().max()
    assert 0.5 < result.acceptance < 0.9, result.acceptance
    # the test can fail: with T = 1 (importance sampling from the prior) the error is several nats
    prior = ais_log_likelihood(m.model, x, steps=1, chains=16)
    assert (prior.log_px - exact).mean().item() < -1.0


def test_ais_on_a_positive_latent_matches_quadrature():
    m = PositiveLatent()
    x = simulated(m.model, 50)
    exact = m.quadrature(x)
    result = ais_log_likelihood(m.model, x, steps=200, chains=64)
    error = result.log_px - exact
    # tolerance: 0.03 nats on the mean over 50 points, 0.4 per point (seeds 0-3: 0.008 and 0.23 at most)
    assert abs(error.mean().item()) < 0.03, error.mean()
    assert error.abs().max().item() < 0.4, error.abs().max()


def test_ais_with_an_enumerated_component_and_a_continuous_latent_matches_the_closed_form():
    m = MixtureLatent()
    x = simulated(m.model, 50)
    result = ais_log_likelihood(m.model, x, steps=200, chains=64)
    assert not result.exact
    error = result.log_px - m.exact(x)
    # tolerance: 0.03 nats on the mean over 50 points, 0.4 per point (seeds 0-3: 0.01 and 0.26 at most)
    assert abs(error.mean().item()) < 0.03, error.mean()
    assert error.abs().max().item() < 0.4, error.abs().max()


def test_a_mixture_without_continuous_latents_is_exact():
    torch.manual_seed(0)
    gmm = build_model("gmm", model_config("gmm", components=3), (2,))
    x = torch.rand(10, 2)
    result = ais_log_likelihood(gmm.model, x, steps=5, chains=4)
    assert result.exact and math.isnan(result.acceptance)
    components = dist.Independent(dist.Normal(gmm.loc, gmm.scale), 1)
    expected = dist.MixtureSameFamily(dist.Categorical(logits=gmm.logits), components).log_prob(x)
    torch.testing.assert_close(result.log_px, expected.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(result.log_weights, expected.detach().expand(4, -1), rtol=0, atol=1e-5)


def test_bdmc_sandwiches_the_exact_likelihood_and_the_gap_shrinks_with_steps():
    m = PPCA()
    few, many = (bdmc(m.model, 100, steps=steps, chains=16) for steps in (10, 100))
    assert torch.equal(few.x, many.x)  # the same simulated data
    exact = m.marginal().log_prob(many.x).mean().item()
    for r in (few, many):
        # slack 0.05 nats on the means over 100 points (seeds 0-4: bounds cross exact by 0.01 at most)
        assert r.lower.mean().item() <= exact + 0.05 and r.upper.mean().item() >= exact - 0.05, (r.to_json(), exact)
    assert few.to_json()["gap"] > 0.5 and many.to_json()["gap"] < 0.3, (few.to_json(), many.to_json())
    assert set(many.to_json()) == {"lower", "upper", "gap", "steps", "chains", "points"}


def test_bdmc_sandwich_rows_repeat_bdmc_on_the_same_simulated_data():
    m = MixtureLatent()
    rows = bdmc_sandwich(m.model, 20, step_counts=(5, 50), chains=4)
    assert [r["steps"] for r in rows] == [5, 50]
    assert rows[1]["gap"] < rows[0]["gap"] and all(r["gap"] > -0.05 for r in rows)
    single = bdmc(m.model, 20, steps=5, chains=4).to_json()  # same seed: same data, same first run
    assert rows[0]["lower"] == pytest.approx(single["lower"]) and rows[0]["upper"] == pytest.approx(single["upper"])


def test_non_enumerated_discrete_and_global_latents_are_refused_by_name():
    def discrete(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("label", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def global_latent(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(w, 1.0), obs=x)

    x = torch.randn(4)
    with pytest.raises(ValueError, match="'label'.*enumerate"):
        ais_log_likelihood(discrete, x, steps=2)
    with pytest.raises(ValueError, match="'w'.*global"):
        ais_log_likelihood(global_latent, x, steps=2)


def test_seeded_runs_repeat_and_restore_the_callers_rng():
    m = PPCA()
    x = m.marginal().sample((5,))
    torch.manual_seed(123)
    random.seed(7)
    state, py_state = torch.get_rng_state(), random.getstate()
    a = ais_log_likelihood(m.model, x, steps=20, chains=4, seed=3)
    assert torch.equal(torch.get_rng_state(), state) and random.getstate() == py_state
    b = ais_log_likelihood(m.model, x, steps=20, chains=4, seed=3)
    c = ais_log_likelihood(m.model, x, steps=20, chains=4, seed=4)
    assert torch.equal(a.log_weights, b.log_weights) and not torch.equal(a.log_weights, c.log_weights)


def test_ais_on_a_small_vae_and_m2_is_finite_and_leaves_the_network_untouched():
    torch.manual_seed(0)
    vae = build_model("vae", model_config("vae", latent_dim=4, hidden=(16,), likelihood="bernoulli"), (8, 8))
    x = torch.bernoulli(torch.full((6, 8, 8), 0.3))
    result = ais_log_likelihood(vae.model, x, steps=50, chains=4)
    assert torch.isfinite(result.log_px).all() and 0.2 < result.acceptance < 0.95, result
    prior = ais_log_likelihood(vae.model, x, steps=1, chains=4)
    assert result.log_px.mean() > prior.log_px.mean() - 0.5  # AIS is no worse than prior sampling
    assert all(p.requires_grad and p.grad is None for p in vae.parameters())
    m2 = build_model("m2", model_config("m2", latent_dim=4, hidden=(16,), classifier_hidden=(16,), classes=3), (8, 8))
    with pytest.raises(ValueError, match="'y'"):  # M2's model does not mark its class for enumeration
        ais_log_likelihood(m2.model, x, steps=2)
    enumerate_y = pyro.poutine.infer_config(m2.model, mark_for_enumeration("y"))
    labelless = ais_log_likelihood(enumerate_y, x, steps=20, chains=4)  # y summed out, z annealed
    assert torch.isfinite(labelless.log_px).all() and not labelless.exact
