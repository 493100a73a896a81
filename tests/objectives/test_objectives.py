"""Every registered objective: equal to Pyro's reference ELBO in value and gradient, and usable."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_models.objectives import available_objectives, build_objective
from ppl_models.registry import build_model, model_config

# The Pyro class each objective must agree with.
REFERENCE = {"elbo": pyro.infer.Trace_ELBO, "elbo-analytic": pyro.infer.TraceMeanField_ELBO}
BOUNDS = {"iwae"}  # tested against exact answers in test_iwae.py


def test_every_objective_has_a_reference():
    assert set(available_objectives()) == set(REFERENCE) | BOUNDS


def loss_and_grads(objective, vae, x, seed):
    pyro.set_rng_seed(seed)
    vae.zero_grad()
    loss = objective.differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in vae.named_parameters()}


@pytest.mark.parametrize("name", list(REFERENCE))
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian-learned"])
@pytest.mark.parametrize("particles", [1, 3])
def test_value_and_gradient_equal_pyros(name, likelihood, particles):
    vae = build_model("vae", model_config("vae", likelihood=likelihood, latent_dim=3, hidden=(16,)), (4, 4))
    x = torch.rand(6, 4, 4).round()
    ours = loss_and_grads(build_objective(name, particles), vae, x, seed=1)
    ref_obj = REFERENCE[name](num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=1)
    ref = loss_and_grads(ref_obj, vae, x, seed=1)
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-5, atol=1e-4)
    for n in ref[1]:
        torch.testing.assert_close(ours[1][n], ref[1][n], rtol=1e-4, atol=1e-5)


def test_non_reparameterized_guides_fall_back_to_pyro():
    # A discrete latent needs score-function terms; the objective must hand over to Trace_ELBO.
    probs = torch.tensor(0.3, requires_grad=True)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Bernoulli(probs))

    x = torch.randn(5)
    objective = build_objective("elbo")
    objective.differentiable_loss(model, guide, x)  # the first call discovers the discrete site
    pyro.set_rng_seed(0)
    ours = objective.differentiable_loss(model, guide, x)
    pyro.set_rng_seed(0)
    ref = pyro.infer.Trace_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x)
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours, probs)
    assert g_ours != 0


@pytest.mark.parametrize("bad", [0, -2])
def test_particles_must_be_positive(bad):
    with pytest.raises(ValueError, match="particles must be at least 1"):
        build_objective("elbo", bad)
