"""Naive Monte Carlo vs importance-sampled log p(x), against the closed form of probabilistic PCA.

PPCA (``linear_gaussian``, float64) has an exact log p(x) and posterior, so bias and spread are
measured against the truth; a briefly trained VAE shows the same ordering on binary data.
"""

import json
import math

import pyro
import pytest
import torch
from linear_gaussian import LinearGaussian

from ppl_models.inference.estimators import (
    compare_estimators,
    log_likelihood,
    log_mean_exp_chunked,
    prior_log_weights,
)
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config


def data(model, n=10, seed=1):
    torch.manual_seed(seed)
    return model.marginal().sample((n,))


def test_prior_log_weights_sum_the_observed_sites_per_particle_and_point():
    m = LinearGaussian()
    x = data(m, n=4)
    pyro.set_rng_seed(0)
    lw = prior_log_weights(m.model, x, num_particles=7)
    assert lw.shape == (7, 4) and lw.dtype == torch.float64 and torch.isfinite(lw).all()
    with pytest.raises(ValueError, match="no observed"):
        prior_log_weights(m.model, None, 4, num_particles=3)  # x=None: nothing is observed


def test_log_mean_exp_chunked_does_not_depend_on_the_chunking():
    w = torch.randn(23, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 10
    expected = w.logsumexp(0) - math.log(23)
    for chunk in (1, 4, 23, 100):
        rows = iter(w.split(chunk))
        got = log_mean_exp_chunked(lambda k: next(rows), 23, chunk)
        torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_both_estimators_are_consistent_with_many_samples():
    m = LinearGaussian(guide_shift=0.1, guide_widen=1.5)
    x = data(m)
    exact = m.marginal().log_prob(x)
    pyro.set_rng_seed(0)
    guide = log_likelihood(m, x, 20000, "guide", particle_chunk=5000)
    prior = log_likelihood(m, x, 20000, "prior", particle_chunk=5000)
    assert (guide - exact).abs().max() < 0.03, guide - exact
    # the prior is a poor proposal (posterior area ~5% of the prior's): noisier per point, still consistent
    assert (prior - exact).mean().abs() < 0.05 and (prior - exact).abs().max() < 0.5, prior - exact


def test_with_equal_small_k_the_guide_has_smaller_bias_and_spread_than_the_prior():
    m = LinearGaussian(guide_shift=0.1, guide_widen=1.5)
    x = data(m, n=20)
    exact = m.marginal().log_prob(x)
    guide, prior = compare_estimators(m, x, 10, repeats=10, reference=exact, seed=0)
    assert (guide.estimator, prior.estimator) == ("guide", "prior")
    assert guide.reference == pytest.approx(exact.mean().item()) and guide.reference_samples is None
    assert prior.bias < -1.0  # Jensen: log-mean-exp of few prior draws is far below log p(x)
    assert abs(guide.bias) < 0.1 * abs(prior.bias)
    assert guide.spread < 0.5 * prior.spread and guide.point_spread < 0.5 * prior.point_spread
    for r in (guide, prior):  # rmse^2 = bias^2 + (population) variance over repeats
        assert r.rmse**2 == pytest.approx(r.bias**2 + r.spread**2 * (r.repeats - 1) / r.repeats)
        assert r.seconds > 0 and r.n == 20 and r.num_samples == 10


def test_the_exact_posterior_as_guide_gives_zero_spread_whatever_the_chunking():
    m = LinearGaussian()  # guide = exact posterior: every weight equals p(x)
    x = data(m, n=7)
    exact = m.marginal().log_prob(x)
    for batch_size, chunk in ((100, 100), (3, 1), (2, 7)):
        got = log_likelihood(m, x, 10, "guide", batch_size=batch_size, particle_chunk=chunk)
        torch.testing.assert_close(got, exact, atol=1e-10, rtol=0)
    (guide,) = compare_estimators(m, x, [3], repeats=3, reference_samples=5, proposals=("guide",))
    assert abs(guide.bias) < 1e-10 and guide.spread < 1e-10 and guide.point_spread < 1e-10
    assert guide.reference == pytest.approx(exact.mean().item(), abs=1e-10) and guide.reference_samples == 5


def test_fixed_seed_repeats_exactly_and_the_callers_rng_is_restored():
    m = LinearGaussian(guide_shift=0.2)
    x = data(m, n=5)
    for proposal in ("guide", "prior"):
        pyro.set_rng_seed(3)
        a = log_likelihood(m, x, 20, proposal, particle_chunk=6)
        pyro.set_rng_seed(3)
        b = log_likelihood(m, x, 20, proposal, particle_chunk=6)
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.manual_seed(11)
    first = compare_estimators(m, x, [2, 5], repeats=2, reference_samples=50, seed=4)
    after = torch.rand(3)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.testing.assert_close(after, expected, atol=0, rtol=0)
    second = compare_estimators(m, x, [2, 5], repeats=2, reference_samples=50, seed=4)
    assert [(r.num_samples, r.estimator) for r in first] == [(2, "guide"), (2, "prior"), (5, "guide"), (5, "prior")]
    assert [r.to_json() | {"seconds": 0} for r in first] == [r.to_json() | {"seconds": 0} for r in second]


def test_bad_arguments_are_named():
    m = LinearGaussian()
    x = data(m, n=2)
    with pytest.raises(ValueError, match="proposal"):
        log_likelihood(m, x, 5, "posterior")
    with pytest.raises(ValueError, match="repeats"):
        compare_estimators(m, x, 5, repeats=1)


def test_vae_prior_estimator_is_biased_lower_than_the_guide_and_results_are_json_ready():
    torch.manual_seed(0)
    vae = build_model("vae", model_config("vae", latent_dim=2, hidden=(32,)), (8, 8))
    x = torch.rand(8, 8, 8).round()
    opt = torch.optim.Adam(vae.parameters(), lr=3e-2)
    loss = build_objective("elbo", 1).differentiable_loss
    for _ in range(50):  # a little training so that the posterior is narrower than the prior
        opt.zero_grad()
        loss(vae.model, vae.guide, x).backward()
        opt.step()
    guide, prior = compare_estimators(vae, x, 10, repeats=4, reference_samples=500, seed=0)
    for r in (guide, prior):
        values = r.to_json()
        json.dumps(values, allow_nan=False)
        assert all(math.isfinite(v) for v in values.values() if isinstance(v, float))
    assert prior.bias < guide.bias - 1.0, (prior, guide)
    assert prior.spread > guide.spread
