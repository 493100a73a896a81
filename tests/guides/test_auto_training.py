"""Training the automatic guides against known answers.

- PPCA (``linear_gaussian``) with strongly correlated latents: its posterior is Gaussian with a
  known covariance, so the best ELBO of each family is known. A Gaussian with a full covariance
  (lowrank with rank = latent size, or iaf) reaches log p(x); the best mean-field Normal falls short
  by exactly 1/2 (sum log diag(P) - log det P) per data point, P the posterior precision.
- A global mean with a conjugate Normal prior: the free global Normal is the exact family.
"""

import pyro
import pytest
import torch

from auto_guide_models import DATA_DIM, GlobalMeanModel, MixedModel
from guides import GuideConfig, attach_guide
from linear_gaussian import LinearGaussian
from ppl_models.objectives import build_objective

N = 32  # data points of the PPCA data set



def _correlated_ppca() -> LinearGaussian:
    """PPCA with latent_dim 2 whose two loading columns nearly align: a strongly correlated posterior."""
    m = LinearGaussian(data_dim=5, latent_dim=2, noise=0.5)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, generator=g, dtype=torch.float64)
    m.W = torch.stack([w, 0.9 * w + 0.25 * torch.randn(5, generator=g, dtype=torch.float64)], 1)
    return m


def _mean_field_gap(m: LinearGaussian) -> float:
    precision = m.W.T @ m.W / m.noise**2 + torch.eye(2, dtype=torch.float64)
    return float(0.5 * (precision.diagonal().log().sum() - torch.logdet(precision)))


def _fit(module, x, steps: int, lr: float, particles: int = 8):
    """SVI with Adam on the guide's parameters, the learning rate decaying linearly to 0."""
    params = list(module.auto_guide.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)
    objective = build_objective("elbo", particles)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = objective.differentiable_loss(module.model, module.guide, x)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def _elbo(module, x, particles: int = 2000) -> float:
    with torch.no_grad():
        return -float(build_objective("elbo", particles).differentiable_loss(module.model, module.guide, x))


@pytest.fixture(scope="module")
def ppca_data():
    m = _correlated_ppca()
    torch.manual_seed(5)
    x = m.marginal().sample((N,))
    return x, float(m.marginal().log_prob(x).sum()), _mean_field_gap(m)


def test_the_ppca_posterior_is_strongly_correlated(ppca_data):
    _, _, gap = ppca_data
    assert gap > 0.25  # nats per data point between the best mean-field and the exact posterior


# Tolerances in nats per data point, measured over seeds: after 200 steps the lowrank and iaf gaps
# are 0.002-0.01 and the normal family is within 0.005 of its optimum; 2000 particles estimate the
# ELBO to about 0.003 per point.
TOL = 0.03


@pytest.mark.parametrize("family", ["lowrank", "iaf"])
def test_full_covariance_families_reach_log_evidence(ppca_data, family):
    x, log_px, gap = ppca_data
    pyro.set_rng_seed(0)
    m = attach_guide(_correlated_ppca(), (5,), GuideConfig(family=family, hidden=(), rank=2, flow_hidden=(8,)))
    _fit(m, x, steps=200, lr=0.1)
    elbo = _elbo(m, x)
    assert elbo <= log_px + TOL * N  # a bound (up to Monte Carlo error)
    assert (log_px - elbo) / N < TOL, f"{family}: ELBO {elbo:.3f} vs log p(x) {log_px:.3f}"
    assert (log_px - elbo) / N < gap / 4  # far closer than any mean-field guide can get


def test_normal_family_reaches_the_mean_field_optimum(ppca_data):
    x, log_px, gap = ppca_data
    pyro.set_rng_seed(0)
    m = attach_guide(_correlated_ppca(), (5,), GuideConfig(family="normal", hidden=()))
    _fit(m, x, steps=200, lr=0.1)
    per_point_gap = (log_px - _elbo(m, x)) / N
    assert per_point_gap == pytest.approx(gap, abs=TOL)


def test_global_latent_reaches_its_exact_posterior():
    m = GlobalMeanModel()
    x = 1.5 + torch.randn(20, DATA_DIM, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    attach_guide(m, (DATA_DIM,), GuideConfig(family="normal", hidden=(4,)))
    assert m.auto_guide.family is None and len(m.auto_guide.globals) == 1  # no local latent: no encoder head
    pyro.set_rng_seed(0)
    _fit(m, x, steps=300, lr=0.05)
    loc, scale = m.exact_posterior(x)
    q = m.auto_guide.globals[0]
    torch.testing.assert_close(q.loc.detach(), loc, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.nn.functional.softplus(q.raw_scale.detach()), scale, atol=0.03, rtol=0)


@pytest.mark.parametrize("family", ["normal", "lowrank", "iaf"])
def test_training_a_model_with_constrained_and_hierarchical_latents(family):
    """Model and guide trained together on data from the model: the loss falls and stays finite."""
    torch.manual_seed(0)
    m = MixedModel()
    with torch.no_grad():
        x = pyro.poutine.trace(m.model).get_trace(batch_size=64).nodes["x"]["value"]
    torch.manual_seed(1)
    m = attach_guide(MixedModel(), (DATA_DIM,), GuideConfig(family=family, hidden=(32,), flow_hidden=(16,)))
    opt = torch.optim.Adam(m.parameters(), lr=0.02)
    objective = build_objective("elbo", 2)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = objective.differentiable_loss(m.model, m.guide, x)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:15]) / 15, sum(losses[-15:]) / 15
    assert last < 0.8 * first, f"{family}: loss {first:.1f} -> {last:.1f}"  # measured: a factor 0.35-0.57
