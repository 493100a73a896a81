"""Discrete latents summed out by enumeration, and auxiliary guide sites, against exact answers.

The known answer for enumeration is the Gaussian mixture's closed-form log-likelihood, computed
independently with ``torch.distributions.MixtureSameFamily``: with the component enumerated and
nothing left to sample (an empty guide), every objective and every importance weight is exact.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import distributions as td

from ppl_models.evaluate.likelihood import estimate_log_likelihood
from ppl_models.models.gmm import GMM, GMMConfig
from ppl_models.objectives import build_objective, log_importance_weights
from ppl_models.objectives.iwae import IWAE
from ppl_models.objectives.reparam_elbo import ReparamELBO


def empty_guide(x, batch_size=None):
    """Nothing to sample: the GMM's only latent is enumerated."""


def _gmm(components=4, seed=0):
    torch.manual_seed(seed)
    gmm = GMM(GMMConfig(components=components), torch.Size([8, 8]))
    with torch.no_grad():  # unequal weights and scales, so a wrong sum would show
        gmm.logits.copy_(torch.randn(components))
        gmm.raw_scale.add_(0.3 * torch.randn_like(gmm.raw_scale))
    gmm.guide = empty_guide
    return gmm


def exact_log_px(gmm, x):
    """log sum_c pi_c N(x | mu_c, sigma_c^2) per data point, from torch's mixture distribution."""
    mixture = td.MixtureSameFamily(td.Categorical(logits=gmm.logits), td.Independent(td.Normal(gmm.loc, gmm.scale), 1))
    return mixture.log_prob(x.reshape(x.shape[0], -1))


@pytest.fixture
def x(digits):
    return digits.train.x[:40]


def _param_grads(gmm, loss):
    return dict(zip(["logits", "loc", "raw_scale"],
                    torch.autograd.grad(loss, [gmm.logits, gmm.loc, gmm.raw_scale])))


@pytest.mark.parametrize("name", ["elbo", "elbo-analytic"])
@pytest.mark.parametrize("particles", [1, 3])
def test_elbo_sums_out_the_component_exactly(name, particles, x):
    gmm, objective = _gmm(), build_objective(name, particles)
    exact = exact_log_px(gmm, x).sum()
    for _ in range(2):  # the first call discovers the enumerated site, later calls go straight to TraceEnum_ELBO
        loss = objective.differentiable_loss(gmm.model, gmm.guide, x)
        torch.testing.assert_close(loss, -exact, rtol=1e-6, atol=1e-3)
    assert isinstance(objective._general, pyro.infer.TraceEnum_ELBO)
    ours, ref = _param_grads(gmm, loss), _param_grads(gmm, -exact)
    for n in ref:
        torch.testing.assert_close(ours[n], ref[n], rtol=1e-4, atol=1e-4)


def test_svi_on_digits_raises_the_log_likelihood(digits):
    torch.set_num_threads(1)
    x = digits.train.x[:300]
    gmm, objective = _gmm(components=5), build_objective("elbo")
    before = exact_log_px(gmm, x).mean().item()
    optimizer = torch.optim.Adam(gmm.parameters(), lr=0.05)
    for step in range(40):
        xb = x[(step % 3) * 100 : (step % 3 + 1) * 100]
        optimizer.zero_grad()
        objective.differentiable_loss(gmm.model, gmm.guide, xb).backward()
        optimizer.step()
    with torch.no_grad():
        after = exact_log_px(gmm, x).mean().item()
    assert after > before + 20, (before, after)  # nats per digit


def test_guide_side_enumeration_uses_trace_enum():
    # q(y | x) enumerated in the guide (as the semi-supervised M2 model): the objective is the exact
    # sum over y of q(y) [log p(x, y) - log q(y)].
    probs = torch.tensor([0.2, 0.5, 0.3], requires_grad=True)
    locs = torch.tensor([-1.0, 0.0, 2.0])

    def model(x):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(torch.ones(3) / 3))
            pyro.sample("x", dist.Normal(locs[y], 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(probs.expand(x.shape[0], 3)), infer={"enumerate": "parallel"})

    x = torch.tensor([0.3, -1.2, 2.5])
    log_joint = math.log(1 / 3) + dist.Normal(locs, 1.0).log_prob(x[:, None])  # [N, 3]
    expected = (probs * (log_joint - probs.log())).sum()
    for particles in (1, 4):
        loss = build_objective("elbo", particles).differentiable_loss(model, guide, x)
        torch.testing.assert_close(loss, -expected)


# --- auxiliary guide sites in analytic-KL mode ----------------------------------------------------

def _aux_model(x):
    with pyro.plate("data", x.shape[0]):
        a = pyro.sample("a", dist.Normal(0.0, 1.0))
        b = pyro.sample("b", dist.Normal(0.0, 2.0))
        pyro.sample("x", dist.Normal(a + b, 0.5), obs=x)


def _aux_guide(params, log_density):
    """A joint Normal over (a, b) at an auxiliary site, then Delta sites for the model's latents
    (the structure of Pyro's AutoLowRankMultivariateNormal)."""

    def guide(x):
        loc, raw_scale = params
        with pyro.plate("data", x.shape[0]):
            joint = pyro.sample("_auto_latent", dist.Normal(loc + 0.1 * x[:, None], raw_scale.exp()).to_event(1),
                                infer={"is_auxiliary": True})
            pyro.sample("a", dist.Delta(joint[..., 0], log_density=log_density * joint[..., 0]))
            pyro.sample("b", dist.Delta(joint[..., 1], log_density=torch.zeros_like(joint[..., 1])))

    return guide


def _loss_and_grads(objective, guide, x, params):
    pyro.set_rng_seed(5)  # the same draw of the auxiliary site for every objective
    loss = objective.differentiable_loss(_aux_model, guide, x)
    return loss.detach(), torch.autograd.grad(loss, params)


@pytest.mark.parametrize("particles", [1, 3])
@pytest.mark.parametrize("log_density", [0.0, 0.7])
def test_analytic_kl_keeps_the_auxiliary_site_and_delta_log_density(particles, log_density):
    params = [torch.tensor([0.3, -0.2], requires_grad=True), torch.tensor([-0.5, 0.1], requires_grad=True)]
    guide, x = _aux_guide(params, log_density), torch.tensor([0.4, -1.0, 2.0, 0.1])
    pyros = dict(num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=1)
    ref_loss, ref_grads = _loss_and_grads(pyro.infer.Trace_ELBO(**pyros), guide, x, params)
    others = [ReparamELBO(analytic_kl=True, num_particles=particles), ReparamELBO(num_particles=particles)]
    if log_density == 0.0:  # Pyro's KL(Delta || p) drops the log_density, so it agrees only without one
        others.append(pyro.infer.TraceMeanField_ELBO(**pyros))
    for objective in others:
        loss, grads = _loss_and_grads(objective, guide, x, params)
        torch.testing.assert_close(loss, ref_loss)
        for g, r in zip(grads, ref_grads):
            torch.testing.assert_close(g, r)


# --- log importance weights ------------------------------------------------------------------------

@pytest.mark.parametrize("particles", [1, 5])
def test_log_weights_are_the_exact_mixture_log_likelihood_for_every_particle(particles, x):
    gmm = _gmm()
    log_w = log_importance_weights(gmm.model, gmm.guide, x, num_particles=particles)
    assert log_w.shape == (particles, x.shape[0])
    torch.testing.assert_close(log_w, exact_log_px(gmm, x).expand(particles, -1), rtol=1e-6, atol=1e-4)


def test_log_weights_sum_a_plate_nested_in_the_data_plate_per_enumerated_value():
    # x's pixels in their own plate (max_plate_nesting=2): log p(x_n | c) sums over pixels before the sum over c.
    gmm = _gmm(components=3)
    pixel = torch.arange(64).unsqueeze(-1)  # [64, 1]: the pixel plate's dim

    def model(x):
        with pyro.plate("data", x.shape[0], dim=-1):
            c = pyro.sample("c", dist.Categorical(logits=gmm.logits), infer={"enumerate": "parallel"})
            with pyro.plate("pixels", 64, dim=-2):  # loc [..., 64, N] gathered for each pixel and c
                pyro.sample("x", dist.Normal(gmm.loc.T[pixel, c], gmm.scale.T[pixel, c]), obs=x.reshape(-1, 64).T)

    x = torch.rand(6, 8, 8)
    log_w = log_importance_weights(model, empty_guide, x, num_particles=2, max_plate_nesting=2)
    torch.testing.assert_close(log_w, exact_log_px(gmm, x).expand(2, -1), rtol=1e-6, atol=1e-4)


def test_estimated_log_likelihood_of_the_gmm_is_exact(x):
    gmm = _gmm()
    with torch.no_grad():
        exact = exact_log_px(gmm, x).mean().item()
    result = estimate_log_likelihood(gmm, x, num_samples=7, batch_size=16, particle_chunk=3)
    assert result.elbo == pytest.approx(exact, abs=1e-4) and -result.nll == pytest.approx(exact, abs=1e-4)


def test_a_global_enumerated_site_is_refused_by_name():
    def model(x):
        c = pyro.sample("switch", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    with pytest.raises(ValueError, match="enumerated site 'switch' is global"):
        log_importance_weights(model, empty_guide, torch.zeros(3), num_particles=2)
    with pytest.raises(ValueError, match="enumerated site 'switch' is global"):
        IWAE(num_particles=2).differentiable_loss(model, empty_guide, torch.zeros(3))


@pytest.mark.parametrize("model_annotates", [False, True])
def test_a_guide_site_marked_for_enumeration_is_sampled_in_log_weights(model_annotates):
    # The guide proposes y from the exact posterior p(y | x), so every weight is log p(x), whichever y it drew.
    locs, prior = torch.tensor([-2.0, 0.0, 3.0]), torch.tensor([0.5, 0.3, 0.2])
    infer = {"enumerate": "parallel"} if model_annotates else {}

    def model(x):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(prior), infer=infer)
            pyro.sample("x", dist.Normal(locs[y], 1.0), obs=x)

    x = torch.tensor([-1.0, 1.5, 0.2, 4.0])
    log_joint = prior.log() + dist.Normal(locs, 1.0).log_prob(x[:, None])  # [N, 3]
    posterior = log_joint.softmax(-1)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Categorical(posterior), infer={"enumerate": "parallel"})

    pyro.set_rng_seed(0)
    log_w = log_importance_weights(model, guide, x, num_particles=50)
    assert log_w.shape == (50, 4)
    torch.testing.assert_close(log_w, log_joint.logsumexp(-1).expand(50, -1))


# --- IWAE ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("particles", [1, 5, 20])
def test_iwae_on_the_gmm_is_the_exact_log_likelihood_at_every_k(particles, x):
    gmm = _gmm()
    exact = exact_log_px(gmm, x).sum()
    loss = build_objective("iwae", particles).differentiable_loss(gmm.model, gmm.guide, x)
    torch.testing.assert_close(loss, -exact, rtol=1e-6, atol=1e-3)
    ours, ref = _param_grads(gmm, loss), _param_grads(gmm, -exact)
    for n in ref:
        torch.testing.assert_close(ours[n], ref[n], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_stl_and_dreg_refuse_a_guide_that_samples_nothing(estimator, x):
    # They change only the gradient of sampled guide sites; with every latent enumerated there are none.
    gmm = _gmm()
    with pytest.raises(ValueError, match=f"grad_estimator='{estimator}'.*samples none.*'standard'"):
        build_objective("iwae", 3, estimator).differentiable_loss(gmm.model, gmm.guide, x)
