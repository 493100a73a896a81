"""The beta-VAE: beta weights exactly the KL term while training, evaluation is the plain VAE's."""

import pyro
import pytest
import torch
from pyro import poutine
from torch.distributions import kl_divergence

from ppl_models.evaluate import estimate_log_likelihood
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config

FIELDS = dict(latent_dim=3, hidden=(16,), likelihood="gaussian")


def make(beta, **fields):
    torch.manual_seed(0)
    return build_model("beta_vae", model_config("beta_vae", beta=beta, **{**FIELDS, **fields}), (8, 8))


def reconstruction_and_kl(module, x, seed):
    """log p(x | z) and KL(q(z | x) || p(z)) summed over the batch, for the z the objectives draw with ``seed``."""
    pyro.set_rng_seed(seed)
    guide = poutine.trace(module.guide).get_trace(x)
    model = poutine.trace(poutine.replay(module.model, trace=guide)).get_trace(x)
    q, p = guide.nodes["z"]["fn"], model.nodes["z"]["fn"]
    z = guide.nodes["z"]["value"]
    recon = model.nodes["x"]["fn"].log_prob(x).sum()
    return recon, kl_divergence(q, p).sum(), (q.log_prob(z) - p.log_prob(z)).sum()


@pytest.mark.parametrize("beta", [0.5, 1.0, 4.0])
def test_training_loss_is_reconstruction_plus_beta_kl(digits, beta):
    vae = make(beta)
    assert vae.training  # a freshly built module trains, as fit() trains it
    x = digits.train.x[:20]
    recon, kl, log_ratio = reconstruction_and_kl(vae, x, seed=1)
    pyro.set_rng_seed(1)
    analytic = build_objective("elbo-analytic").differentiable_loss(vae.model, vae.guide, x)
    torch.testing.assert_close(analytic, -recon + beta * kl)
    pyro.set_rng_seed(1)
    monte_carlo = build_objective("elbo").differentiable_loss(vae.model, vae.guide, x)
    torch.testing.assert_close(monte_carlo, -recon + beta * log_ratio)
    assert kl > 1.0  # the KL term is not negligible, so a wrong weight would show


def test_eval_mode_is_the_plain_vae(digits):
    beta_vae = make(4.0).eval()
    vae = build_model("vae", model_config("vae", **FIELDS), (8, 8))
    vae.load_state_dict(beta_vae.state_dict())  # same parameter names: BetaVAE is a VAE
    vae.eval()
    x = digits.test.x[:30]
    recon, kl, _ = reconstruction_and_kl(beta_vae, x, seed=2)
    for objective in ("elbo", "elbo-analytic"):
        pyro.set_rng_seed(2)
        loss = build_objective(objective).differentiable_loss(beta_vae.model, beta_vae.guide, x)
        pyro.set_rng_seed(2)
        torch.testing.assert_close(loss, build_objective(objective).differentiable_loss(vae.model, vae.guide, x))
    pyro.set_rng_seed(2)
    analytic = build_objective("elbo-analytic").differentiable_loss(beta_vae.model, beta_vae.guide, x)
    torch.testing.assert_close(analytic, -recon + kl)
    pyro.set_rng_seed(3)
    ours = estimate_log_likelihood(beta_vae, x, num_samples=20)
    pyro.set_rng_seed(3)
    assert ours == estimate_log_likelihood(vae, x, num_samples=20)


def test_training_mode_switches_the_weight():
    vae = make(4.0)
    assert vae.kl_weight() == 4.0
    assert vae.eval().kl_weight() == 1.0
    assert vae.train().kl_weight() == 4.0


def test_large_beta_learns_a_smaller_kl(digits):
    # the point of beta: more weight on the KL term, posteriors closer to the prior
    torch.set_num_threads(1)
    x = digits.train.x[:500]
    kls = {}
    for beta in (1.0, 8.0):
        vae = make(beta, latent_dim=4, hidden=(32,))
        opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
        loss_fn = build_objective("elbo-analytic").differentiable_loss
        pyro.set_rng_seed(0)
        for _ in range(150):
            loss = loss_fn(vae.model, vae.guide, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            kls[beta] = reconstruction_and_kl(vae.eval(), x, seed=0)[1].item() / x.shape[0]
    assert kls[8.0] < 0.6 * kls[1.0], kls  # measured: 3.9 against 10.1 nats


def test_bad_beta_and_iwae_are_refused(digits):
    with pytest.raises(ValueError, match="beta must be positive, got 0"):
        model_config("beta_vae", beta=0)
    vae = make(4.0)
    with pytest.raises(ValueError, match="iwae needs one scale for every site"):
        build_objective("iwae", 3).differentiable_loss(vae.model, vae.guide, digits.train.x[:5])
