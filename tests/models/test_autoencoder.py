"""The deterministic autoencoder: every objective is the reconstruction loss, eval reports the
reconstruction log-likelihood, and it still samples from N(0, I) codes."""

import pyro
import pytest
import torch
from pyro import poutine

from ppl_models.evaluate import estimate_log_likelihood
from ppl_models.models.likelihoods import observation
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config


def make(likelihood="gaussian", **fields):
    torch.manual_seed(0)
    config = model_config("autoencoder", likelihood=likelihood, **{"latent_dim": 3, "hidden": (16,), **fields})
    return build_model("autoencoder", config, (8, 8))


def reconstruction(ae, x):
    """log p(x | z = encoder(x)) per data point, straight from the networks."""
    out = ae.decoder(ae.encoder(x.reshape(x.shape[0], -1)))
    return observation(ae.likelihood, out, ae.event_shape, ae.config.obs_scale).log_prob(x)


def test_guide_is_the_encoders_point_mass_and_the_prior_is_masked(digits):
    ae = make()
    x = digits.train.x[:6]
    guide = poutine.trace(ae.guide).get_trace(x)
    model = poutine.trace(poutine.replay(ae.model, trace=guide)).get_trace(x)
    torch.testing.assert_close(guide.nodes["z"]["value"], ae.encoder(x.reshape(6, -1)))
    assert guide.nodes["z"]["fn"].event_shape == (3,) and guide.nodes["z"]["fn"].batch_shape == (6,)
    assert torch.equal(model.nodes["z"]["fn"].log_prob(guide.nodes["z"]["value"]), torch.zeros(6))
    assert torch.equal(guide.nodes["z"]["fn"].log_prob(guide.nodes["z"]["value"]), torch.zeros(6))


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian-learned", "bernoulli"])
@pytest.mark.parametrize("objective,particles", [("elbo", 1), ("elbo-analytic", 1), ("elbo", 3), ("iwae", 4)])
def test_every_objective_is_the_reconstruction_loss(digits, likelihood, objective, particles):
    ae = make(likelihood)
    x = digits.train.x[:8]
    if likelihood == "bernoulli":
        x = x.round()
    loss = build_objective(objective, particles).differentiable_loss(ae.model, ae.guide, x)
    torch.testing.assert_close(loss, -reconstruction(ae, x).sum())


def test_eval_reports_the_reconstruction_log_likelihood(digits):
    ae = make().eval()
    x = digits.test.x[:20]
    result = estimate_log_likelihood(ae, x, num_samples=7)
    expected = reconstruction(ae, x).mean().item()
    assert result.elbo == pytest.approx(expected, rel=1e-5)
    assert -result.nll == pytest.approx(expected, rel=1e-5)  # all K weights coincide
    assert ae.density_model is False
    assert getattr(build_model("vae", model_config("vae"), (8, 8)), "density_model", True) is True


def test_samples_decode_standard_normal_codes():
    ae = make()
    pyro.set_rng_seed(0)
    trace = poutine.trace(ae.model).get_trace(None, batch_size=500)
    z = trace.nodes["z"]["value"]
    assert trace.nodes["x"]["value"].shape == (500, 8, 8) and z.shape == (500, 3)
    assert z.mean().abs() < 0.1 and (z.std() - 1).abs() < 0.1


def test_training_lowers_the_reconstruction_error(digits):
    torch.set_num_threads(1)
    ae = make(latent_dim=8, hidden=(64,))
    x = digits.train.x[:500]
    before = ((ae.decoder(ae.encoder(x.reshape(500, -1))).reshape(x.shape) - x) ** 2).mean().item()
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    loss_fn = build_objective("elbo").differentiable_loss
    for _ in range(100):
        loss = loss_fn(ae.model, ae.guide, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = ((ae.decoder(ae.encoder(x.reshape(500, -1))).reshape(x.shape) - x) ** 2).mean().item()
    assert after < 0.5 * before, (before, after)
