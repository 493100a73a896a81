"""Per-data-point guides: the local fit reaches the exact posterior, refinement raises the ELBO,
and latent sites of any continuous support are handled."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import LinearGaussian

from ppl_models.evaluate.likelihood import per_datapoint_bounds
from ppl_models.inference import fit_local, refine
from ppl_models.inference.local_guide import LocalGuide, guide_params, latent_sites, prior_init
from ppl_models.registry import build_model, model_config


def _diagonal_ppca():
    # Orthogonal columns make W^T W, and so the exact posterior covariance, diagonal: a diagonal
    # Normal q can match it exactly.
    m = LinearGaussian(data_dim=5, latent_dim=2, noise=0.5)
    q, _ = torch.linalg.qr(torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    m.W = q * torch.tensor([2.0, 1.0], dtype=torch.float64)
    return m


def test_local_fit_reaches_the_exact_posterior():
    m = _diagonal_ppca()
    x = m.marginal().sample((6,))
    sites = latent_sites(m, x)
    pyro.set_rng_seed(0)
    fitted, steps = fit_local(m, x, sites, prior_init(sites, 6, dtype=torch.float64), max_steps=500, lr=5e-2, tol=0.0)
    assert steps == 500
    fitted, _ = fit_local(m, x, sites, fitted, max_steps=1000, lr=2e-3, tol=0.0)  # warm start, finer steps
    exact = m.posterior(x)
    loc, log_scale = fitted["z"]
    # Within a tenth of the smaller posterior standard deviation (0.45): the noise floor of single-sample Adam.
    torch.testing.assert_close(loc, exact.mean, atol=0.045, rtol=0)
    torch.testing.assert_close(log_scale.exp(), exact.variance.sqrt(), atol=0.045, rtol=0)


def test_local_fit_stops_at_the_tolerance():
    m = _diagonal_ppca()
    x = m.marginal().sample((6,))
    sites = latent_sites(m, x)
    _, steps = fit_local(m, x, sites, prior_init(sites, 6, dtype=torch.float64), max_steps=1500, lr=5e-2, tol=1e-2)
    assert 20 <= steps < 1500 and steps % 10 == 0


def test_refinement_raises_the_elbo_and_trains_through():
    torch.manual_seed(0)
    vae = build_model("vae", model_config("vae", latent_dim=4, hidden=(32,)), (6, 6))
    x = (torch.rand(16, 6, 6) < 0.3).float()
    sites = latent_sites(vae, x)
    start = guide_params(vae, x, sites)
    pyro.set_rng_seed(1)
    refined = refine(vae, x, sites, start, steps=20, lr=0.1, create_graph=True)
    refined["z"][0].sum().backward()  # the refinement is differentiable back to the encoder
    assert all(p.grad is not None for p in vae.encoder.parameters())
    detached = {k: (a.detach(), b.detach()) for k, (a, b) in refined.items()}
    before = per_datapoint_bounds(vae, x, 500)[0].mean()
    after = per_datapoint_bounds(vae, x, 500, guide_for=lambda mod, xb: LocalGuide(sites, detached))[0].mean()
    assert after > before + 0.3, (before, after)  # measured +0.56 nats; the standard error is ~0.02


def test_a_non_normal_guide_cannot_be_refined():
    m = LinearGaussian()
    x = torch.randn(3, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="site 'z' is a MultivariateNormal; refining it needs a .*Normal guide"):
        guide_params(m, x, latent_sites(m, x))


def test_positive_latents_keep_their_support():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            rate = pyro.sample("rate", dist.Gamma(2.0, 1.0))
            pyro.sample("x", dist.Poisson(rate), obs=x)

    module = torch.nn.Module()
    module.model = model
    x = torch.tensor([0.0, 3.0, 10.0, 1.0])
    sites = latent_sites(module, x)
    fitted, _ = fit_local(module, x, sites, prior_init(sites, 4), max_steps=300, lr=5e-2, tol=0.0)
    draws = pyro.poutine.trace(LocalGuide(sites, fitted)).get_trace(x).nodes["rate"]["value"]
    assert (draws > 0).all()
    # Gamma(2 + x, 2) is the exact posterior: its mean orders the data the same way.
    assert fitted["rate"][0].argsort().tolist() == x.argsort().tolist()


@pytest.mark.parametrize("kind", ["global", "discrete"])
def test_latents_without_a_local_continuous_posterior_are_refused(kind):
    def model(x):
        if kind == "global":
            mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            if kind == "discrete":
                mu = pyro.sample("c", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    module = torch.nn.Module()
    module.model = model
    with pytest.raises(ValueError, match="outside the data plate" if kind == "global" else "is discrete"):
        latent_sites(module, torch.randn(4))
