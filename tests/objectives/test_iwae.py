"""The importance-weighted ELBO and its gradient estimators, against exact answers.

Known answers come from probabilistic PCA (closed-form log p(x) and posterior, ``linear_gaussian``)
and from a conjugate model with a global latent mean.
"""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import LinearGaussian

from ppl_models.objectives import build_objective
from ppl_models.objectives.iwae import GRAD_ESTIMATORS, IWAE
from ppl_models.registry import build_model, model_config


def _grads(objective, module, fn_model, fn_guide, *args, seed=0):
    pyro.set_rng_seed(seed)
    module.zero_grad()
    loss = objective.differentiable_loss(fn_model, fn_guide, *args)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _small_vae():
    torch.manual_seed(0)
    return build_model("vae", model_config("vae", latent_dim=3, hidden=(16,)), (4, 4))


@pytest.mark.parametrize("estimator", GRAD_ESTIMATORS)
def test_k1_equals_the_elbo_in_value_and_model_gradient(estimator):
    vae, x = _small_vae(), torch.rand(6, 4, 4).round()
    ours = _grads(build_objective("iwae", 1, estimator), vae, vae.model, vae.guide, x, seed=3)
    elbo = _grads(build_objective("elbo", 1), vae, vae.model, vae.guide, x, seed=3)
    torch.testing.assert_close(ours[0], elbo[0])
    for name, g in elbo[1].items():
        if estimator == "standard" or name.startswith("decoder"):  # stl/dreg change only the guide's gradient
            torch.testing.assert_close(ours[1][name], g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 7, 100])
def test_exact_posterior_guide_gives_log_px_for_every_k(k):
    m, x = LinearGaussian(), torch.randn(8, 5, dtype=torch.float64)
    loss = IWAE(num_particles=k).differentiable_loss(m.model, m.guide, x)
    torch.testing.assert_close(-loss, m.marginal().log_prob(x).sum(), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_stl_and_dreg_guide_gradients_vanish_at_the_exact_posterior(estimator):
    # With q = p(z|x) the weights are constant, so the path gradient is exactly zero (Roeder et al. 2017).
    m, x = LinearGaussian(), torch.randn(8, 5, dtype=torch.float64)
    _, stopped = _grads(IWAE(num_particles=5, grad_estimator=estimator), m, m.model, m.guide, x)
    _, standard = _grads(IWAE(num_particles=5), m, m.model, m.guide, x)
    assert stopped["shift"].abs().item() < 1e-8 and stopped["log_widen"].abs().item() < 1e-8
    assert standard["shift"].abs().item() > 1e-3  # the score term: zero only in expectation


def test_bound_rises_with_k_and_approaches_log_px():
    # 40 data points repeated 50 times: the mean bound has a standard error we can test against.
    m = LinearGaussian(guide_shift=0.25, guide_widen=1.5)
    x = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).repeat(50, 1)
    log_px = m.marginal().log_prob(x)
    pyro.set_rng_seed(0)
    gaps, ses = [], []  # mean of log p(x_n) - IWAE_K(x_n) and its standard error
    with torch.no_grad():
        for k in (1, 5, 50, 500):
            log_w, _ = IWAE(num_particles=k).log_weights(m.model, m.guide, x)
            gap = log_px - (log_w.logsumexp(0) - math.log(k))
            gaps.append(gap.mean().item())
            ses.append(gap.std().item() / math.sqrt(gap.numel()))
    for i in range(3):
        assert gaps[i] - gaps[i + 1] > 3 * math.hypot(ses[i], ses[i + 1]), (gaps, ses)
    assert all(g > -3 * se for g, se in zip(gaps, ses))  # a lower bound
    assert gaps[-1] < 0.01, gaps  # K=500 is within 0.01 nats of log p(x)


def test_dreg_has_the_standard_expected_gradient_with_lower_variance():
    # Measured at 400 seeds: DReG's variance is about 60x lower here (Tucker et al. 2019, fig. 2).
    m = LinearGaussian(guide_shift=0.2, guide_widen=1.3)
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    draws = {}
    for estimator in ("standard", "dreg"):
        obj = IWAE(num_particles=10, grad_estimator=estimator)
        g = [_grads(obj, m, m.model, m.guide, x, seed=s)[1] for s in range(400)]
        draws[estimator] = torch.stack([torch.stack([d["shift"], d["log_widen"]]) for d in g])  # [seeds, 2]
    mean_s, mean_d = draws["standard"].mean(0), draws["dreg"].mean(0)
    se = (draws["standard"].var(0) / 400 + draws["dreg"].var(0) / 400).sqrt()
    assert ((mean_s - mean_d).abs() < 4 * se).all(), (mean_s, mean_d, se)
    assert (draws["dreg"].var(0) < 0.1 * draws["standard"].var(0)).all()


@pytest.mark.parametrize("estimator", GRAD_ESTIMATORS)
def test_model_gradient_is_the_same_for_every_estimator(estimator):
    vae, x = _small_vae(), torch.rand(6, 4, 4).round()
    ours = _grads(build_objective("iwae", 5, estimator), vae, vae.model, vae.guide, x, seed=4)[1]
    ref = _grads(build_objective("iwae", 5), vae, vae.model, vae.guide, x, seed=4)[1]
    for name in ref:
        if name.startswith("decoder"):
            torch.testing.assert_close(ours[name], ref[name])


def test_a_subsampled_plate_scales_the_bound():
    m = LinearGaussian(guide_shift=0.3)
    x = torch.randn(10, 5, dtype=torch.float64)
    idx = torch.tensor([1, 4, 7])

    def model_sub(x):
        with pyro.plate("data", 10, subsample=idx):
            z = pyro.sample("z", dist.Normal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ m.W.T + m.b, m.noise).to_event(1), obs=x[idx])

    def guide_sub(x):
        with pyro.plate("data", 10, subsample=idx):
            pyro.sample("z", m.posterior(x[idx]))

    obj = IWAE(num_particles=4)
    pyro.set_rng_seed(0)
    scaled = obj.differentiable_loss(model_sub, guide_sub, x)
    pyro.set_rng_seed(0)
    plain = obj.differentiable_loss(m.model, m.guide, x[idx])
    torch.testing.assert_close(scaled, plain * 10 / 3)


def test_a_global_latent_takes_one_log_sum_exp_over_the_whole_batch():
    # mu ~ N(0, 1), x_n ~ N(mu, 1): with the exact posterior of mu every weight equals log p(x_1..N).
    x = torch.randn(6, dtype=torch.float64)
    n = x.shape[0]

    def model(x):
        mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        with pyro.plate("data", n):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        pyro.sample("mu", dist.Normal(x.sum() / (n + 1), (1.0 / (n + 1)) ** 0.5))

    exact = dist.MultivariateNormal(torch.zeros(n, dtype=torch.float64), torch.eye(n, dtype=torch.float64) + 1).log_prob(x)
    torch.testing.assert_close(-IWAE(num_particles=9).differentiable_loss(model, guide, x), exact)


def test_dreg_refuses_a_guide_whose_sites_condition_on_each_other():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            a = pyro.sample("a", dist.Normal(0.0, 1.0))
            b = pyro.sample("b", dist.Normal(a, 1.0))
            pyro.sample("x", dist.Normal(b, 1.0), obs=x)

    loc = torch.zeros((), requires_grad=True)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            a = pyro.sample("a", dist.Normal(loc + x, 1.0))
            pyro.sample("b", dist.Normal(a, 1.0))

    with pytest.raises(ValueError, match="q\\(b\\) depends on a"):
        IWAE(num_particles=3, grad_estimator="dreg").differentiable_loss(model, guide, torch.randn(4))


def test_bad_names_are_rejected_with_the_valid_ones():
    with pytest.raises(ValueError, match="standard, stl, dreg"):
        build_objective("iwae", 5, "reinforce")
    with pytest.raises(ValueError, match="use --objective iwae"):
        build_objective("elbo", 1, "dreg")


def test_iwae_refuses_a_guide_with_discrete_sampled_sites():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Categorical(torch.ones(3) / 3))
            pyro.sample("x", dist.Normal(c.float(), 1.0), obs=x)

    logits = torch.zeros(3, requires_grad=True)

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("c", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})

    with pytest.raises(ValueError, match=r"reparameterized guide sites.*\['c'\].*--objective elbo"):
        IWAE(num_particles=4).differentiable_loss(model, guide, torch.zeros(5))
    with torch.no_grad():  # evaluation (no gradient) may still sample it
        assert torch.isfinite(IWAE(num_particles=4).differentiable_loss(model, guide, torch.zeros(5)))
