"""NUTS posteriors against the exact posterior of probabilistic PCA, and guide checks against them.

PPCA (``linear_gaussian``, float64, data_dim 5, latent 2) has a closed-form Gaussian posterior;
NUTS's draws must match its mean and covariance, and ``compare_with_guide`` must tell an exact
guide from a shifted or widened one. A tiny VAE checks the sampler runs on a neural model.
"""

import json
import math

import pytest
import torch
from linear_gaussian import LinearGaussian

from ppl_models.inference.nuts import compare_with_guide, frozen, nuts_posterior
from ppl_models.registry import build_model, model_config


@pytest.fixture(scope="module")
def ppca():
    """A PPCA model, two data points, and NUTS draws for them (one chain per point)."""
    m = LinearGaussian(data_dim=5, latent_dim=2)
    torch.manual_seed(1)
    x = m.marginal().sample((2,))
    return m, x, nuts_posterior(m, x, num_samples=300, warmup=150, seed=0)


def _check_against_exact(draws, posterior):
    """Tolerances for 300 draws (standard errors: mean ~0.06 std, std ratio ~0.04, correlation ~0.06):
    mean within 0.3 posterior std, std within 20%, correlation within 0.25, all about 5 standard errors."""
    mean, std = posterior.mean.detach(), posterior.stddev.detach()
    assert ((draws.mean(0) - mean).abs() / std).max() < 0.3
    ratio = draws.std(0) / std
    assert ((ratio > 0.8) & (ratio < 1.2)).all(), ratio
    exact_corr = posterior.covariance_matrix[:, 0, 1].detach() / (std[:, 0] * std[:, 1])
    corr = torch.stack([torch.corrcoef(draws[:, n].T)[0, 1] for n in range(draws.shape[1])])
    assert (corr - exact_corr).abs().max() < 0.25, (corr, exact_corr)


def test_nuts_matches_the_exact_posterior_and_leaves_the_parameters_alone(ppca):
    m, x, samples = ppca
    assert set(samples) == {"z"} and samples["z"].shape == (300, 2, 2) and samples["z"].dtype == torch.float64
    _check_against_exact(samples["z"], m.posterior(x))
    assert all(p.grad is None and p.requires_grad for p in m.parameters())


def test_one_joint_chain_also_matches_the_exact_posterior():
    m = LinearGaussian(data_dim=5, latent_dim=2)
    torch.manual_seed(2)
    x = m.marginal().sample((2,))
    samples = nuts_posterior(m, x, num_samples=300, warmup=150, seed=1, joint=True)
    assert samples["z"].shape == (300, 2, 2)
    _check_against_exact(samples["z"], m.posterior(x))


def test_frozen_restores_requires_grad_even_after_an_error():
    m = LinearGaussian()
    m.shift.requires_grad_(False)
    with pytest.raises(RuntimeError), frozen(m):
        assert not any(p.requires_grad for p in m.parameters())
        raise RuntimeError
    assert [p.requires_grad for p in m.parameters()] == [False, True]


def test_compare_with_guide_tells_exact_shifted_and_widened_guides_apart(ppca):
    m, x, samples = ppca
    exact = m.marginal().log_prob(x)
    checks = {
        name: compare_with_guide(guide, x, samples, log_px_samples=1000)
        for name, guide in (("exact", m), ("shifted", LinearGaussian(guide_shift=1.0)), ("wide", LinearGaussian(guide_widen=2.0)))
    }
    for name, results in checks.items():
        assert [c.index for c in results] == [0, 1]
        for c, truth in zip(results, exact.tolist()):
            json.dumps(c.to_json(), allow_nan=False)
            assert c.num_samples == 1000
            # a Gaussian fitted to the NUTS draws is a near-perfect proposal: gold-standard log p(x)
            assert c.log_px_nuts == pytest.approx(truth, abs=0.05), name
            if name == "exact":
                assert c.mean_distance < 0.25 and 0.85 < c.std_ratio < 1.15
                assert c.log_px_guide == pytest.approx(truth, abs=1e-8)
            elif name == "shifted":  # +1 in each coordinate is ~4-6 posterior standard deviations
                assert c.mean_distance > 3 and 0.85 < c.std_ratio < 1.15
                assert c.log_px_guide < truth - 3
            else:  # covariance doubled: std ratio sqrt(2)
                assert c.mean_distance < 0.25 and abs(c.std_ratio - math.sqrt(2)) < 0.2
    skipped = compare_with_guide(m, x, samples, log_px_samples=0)
    assert all(c.log_px_nuts is None and c.log_px_guide is None and c.num_samples == 0 for c in skipped)


def test_nuts_on_a_tiny_vae_runs_and_gives_finite_numbers():
    torch.manual_seed(0)
    vae = build_model("vae", model_config("vae", latent_dim=2, hidden=(16,)), (8, 8))
    x = torch.rand(2, 8, 8).round()
    samples = nuts_posterior(vae, x, num_samples=50, warmup=50, seed=0)
    assert samples["z"].shape == (50, 2, 2) and torch.isfinite(samples["z"]).all()
    assert all(p.grad is None and p.requires_grad for p in vae.parameters())
    checks = compare_with_guide(vae, x, samples, log_px_samples=200)
    assert len(checks) == 2
    for c in checks:
        assert all(math.isfinite(v) for v in (c.mean_distance, c.std_ratio, c.log_px_nuts, c.log_px_guide))
        assert c.std_ratio > 0
