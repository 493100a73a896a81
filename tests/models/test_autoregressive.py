"""The shared autoregressive core: the pixel likelihoods (normalized, against references), the
AutoregressiveImage distribution (shapes, broadcasting, conditional sampling), and a model without
latent sites through the objectives, the evaluator, the sampler, the diagnostics and the run config."""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample

from ppl_models.data import Dataset, Split
from ppl_models.diagnostics.diagnose import DiagnoseConfig, diagnose
from ppl_models.evaluate.likelihood import bounds_table, estimate_log_likelihood
from ppl_models.evaluate.samples import sample_observations
from ppl_models.models.autoregressive import PIXEL_LIKELIHOODS, AutoregressiveImage, get_pixel_likelihood
from ppl_models.models.pixel_likelihoods import LEVELS, discretized_logistic_log_prob
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config
from ppl_models.train import TrainConfig
from ppl_models.train.configure import new_run_config

ALL_LEVELS = torch.arange(LEVELS)


def tiny(likelihood="bernoulli", shape=(5, 4), **fields):
    torch.manual_seed(0)
    return build_model("pixelcnn", model_config("pixelcnn", channels=6, layers=2, likelihood=likelihood, **fields), shape)


def data_for(likelihood, n, shape=(5, 4), seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *shape, generator=g)
    return x.round() if likelihood == "bernoulli" else (x * 255).round() / 255


@pytest.mark.parametrize("loc,log_scale", [(0.5, -3.0), (0.0, -7.0), (1.0, 0.0), (-2.0, 1.5), (0.3, -9.0), (3.0, -5.0)])
def test_the_discretized_logistic_sums_to_one_over_the_256_bins(loc, log_scale):
    lp = discretized_logistic_log_prob(torch.tensor(loc, dtype=torch.float64),
                                       torch.tensor(log_scale, dtype=torch.float64).clamp(min=-7), ALL_LEVELS)
    assert torch.isfinite(lp).all()
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def test_the_discretized_logistic_is_the_cdf_difference_of_a_logistic():
    # reference: P(bin k) = F(c_k + h) - F(c_k - h), F the logistic CDF, the edge bins open (float64)
    loc, scale = torch.tensor(0.37, dtype=torch.float64), torch.tensor(0.08, dtype=torch.float64)
    cdf = torch.distributions.TransformedDistribution(
        torch.distributions.Uniform(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)),
        [torch.distributions.transforms.SigmoidTransform().inv,
         torch.distributions.transforms.AffineTransform(loc, scale)]).cdf
    edges = (torch.arange(LEVELS + 1, dtype=torch.float64) - 0.5) / 255
    upper = torch.cat([cdf(edges[1:-1]), torch.ones(1, dtype=torch.float64)])
    lower = torch.cat([torch.zeros(1, dtype=torch.float64), cdf(edges[1:-1])])
    expected = upper - lower
    got = discretized_logistic_log_prob(loc, scale.log(), ALL_LEVELS).exp()
    assert torch.allclose(got, expected, atol=1e-12)


def test_the_categorical_sums_to_one_and_reads_the_grey_level():
    lik = get_pixel_likelihood("categorical")
    out = torch.randn(3, LEVELS, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lp = lik.log_prob(out[:, None, :].expand(3, LEVELS, LEVELS), (ALL_LEVELS / 255).expand(3, LEVELS))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(lp, torch.log_softmax(out, -1), atol=1e-12)  # level k at x = k / 255


def test_the_bernoulli_pixel_is_torchs_bernoulli():
    lik = get_pixel_likelihood("bernoulli")
    out, x = torch.randn(50, 1), torch.rand(50).round()
    assert torch.allclose(lik.log_prob(out, x), torch.distributions.Bernoulli(logits=out[:, 0]).log_prob(x), atol=1e-6)


@pytest.mark.parametrize("name", list(PIXEL_LIKELIHOODS))
def test_draws_follow_the_pixel_probabilities_and_the_mean_is_their_expectation(name):
    # 40000 draws of one conditional: every level's frequency within 5 standard errors of its probability
    lik = get_pixel_likelihood(name)
    torch.manual_seed(0)
    out = {"bernoulli": torch.tensor([math.log(0.4 / 0.6)], dtype=torch.float64),  # P(1) = 0.4
           "categorical": torch.randn(LEVELS) * 2,
           "logistic": torch.tensor([0.6, math.log(0.02)])}[name].double()
    n = 40000
    levels = (lik.sample(out.expand(n, -1)) * 255).round().long()
    freq = torch.bincount(levels, minlength=LEVELS).double() / n
    probs = lik.log_prob(out.expand(LEVELS, -1), ALL_LEVELS.double() / 255).exp()
    if name == "bernoulli":
        probs = torch.zeros(LEVELS, dtype=torch.float64)  # the two levels 0 and 255 (x = 0 and 1)
        probs[[0, 255]] = lik.log_prob(out.expand(2, -1), torch.tensor([0.0, 1.0], dtype=torch.float64)).exp()
        assert probs[255].item() == pytest.approx(0.4, abs=1e-12)
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-12).all()
    assert lik.mean(out).item() == pytest.approx(float(probs @ (ALL_LEVELS.double() / 255)), abs=1e-9)


def test_log_prob_is_one_pass_broadcast_over_particles_and_checks_the_shape():
    m = tiny()
    x = data_for("bernoulli", 3)
    d = m.distribution(3)
    lp = d.log_prob(x)
    assert lp.shape == (3,) and d.event_shape == (5, 4) and d.batch_shape == (3,)
    assert torch.equal(d.expand((7, 3)).log_prob(x), lp.expand(7, 3))
    with pytest.raises(ValueError, match=r"event_shape: torch.Size\(\[3, 4, 5\]\) vs torch.Size\(\[5, 4\]\)"):
        d.log_prob(x.transpose(1, 2))  # torch's validation
    unchecked = AutoregressiveImage(m.net, m.likelihood, (3,), (5, 4), validate_args=False)
    with pytest.raises(ValueError, match=r"expected images of shape \[5, 4\], got a tensor of shape \[3, 4, 5\]"):
        unchecked.log_prob(x.transpose(1, 2))
    with pytest.raises(NotImplementedError, match="no closed-form mean"):
        d.mean
    with pytest.raises(ValueError, match="one-channel images"):
        AutoregressiveImage(m.net, m.likelihood, (3,), (20,))


def test_sampling_keeps_known_pixels_and_cropping_rows_changes_nothing():
    m = tiny("categorical")
    given = data_for("categorical", 4)
    known = torch.zeros(5, 4, dtype=torch.bool)
    known[:2] = True
    known[3, 1] = True
    d = m.distribution(4)
    torch.manual_seed(3)
    cropped = d.sample(given=given, known=known)
    assert torch.equal(cropped[:, known], given[:, known]) and not torch.equal(cropped, given)
    m.net.rows_above_only = False  # the full image every pass: the same draws from the same seed
    torch.manual_seed(3)
    assert torch.allclose(d.sample(given=given, known=known), cropped, atol=1e-6)
    assert d.sample((2,)).shape == (2, 4, 5, 4)
    with pytest.raises(ValueError, match="pass both"):
        d.sample(given=given)


@pytest.mark.parametrize("likelihood", list(PIXEL_LIKELIHOODS))
def test_every_bound_is_the_exact_log_likelihood(likelihood):
    m = tiny(likelihood)
    x = data_for(likelihood, 6)
    exact = m.distribution(6).log_prob(x).detach()
    for name, particles in (("elbo", 1), ("elbo", 3), ("elbo-analytic", 2), ("iwae", 5)):
        loss = build_objective(name, particles).differentiable_loss(m.model, m.guide, x)
        assert loss.item() == pytest.approx(-exact.sum().item(), rel=1e-6), (name, particles)
    pyro_loss = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1).loss(m.model, m.guide, x)
    assert pyro_loss == pytest.approx(-exact.sum().item(), rel=1e-6)
    table = bounds_table(m, x, 7, iwae_k=(3,), particle_chunk=4)  # one draw: every weight is log p(x)
    drawn = bounds_table(m, x, 7, iwae_k=(3,), particle_chunk=4, keep_log_weights=True)  # all 7 drawn
    assert drawn["log_weights"].shape == (7, 6) and torch.allclose(drawn["log_weights"], exact.expand(7, 6), rtol=1e-6)
    for column in ("elbo", "log_px", "iwae_3"):
        assert torch.allclose(table[column], exact, rtol=1e-6) and torch.allclose(drawn[column], exact, rtol=1e-6), column
    r = estimate_log_likelihood(m, x, 10)
    assert r.elbo == pytest.approx(-r.nll, rel=1e-6) and r.nll == pytest.approx(-exact.mean().item(), rel=1e-6)
    assert r.bits_per_dim == pytest.approx(r.nll / (20 * math.log(2)), rel=1e-9)


def test_there_are_no_latent_sites_and_the_mean_sample_is_the_conditional_mean_along_the_draw():
    m = tiny("logistic")
    trace = poutine.trace(m.model).get_trace(data_for("logistic", 2))
    assert [n for n, s in trace.nodes.items()
            if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)] == []
    assert [s for s in poutine.trace(m.guide).get_trace(data_for("logistic", 2)).nodes.values() if s["type"] == "sample"] == []
    pyro.set_rng_seed(4)
    means = sample_observations(m, 3, mean=True)
    pyro.set_rng_seed(4)
    draws = sample_observations(m, 3)
    assert torch.allclose(means, m.distribution(3).conditional_mean(draws))
    assert means.shape == (3, 5, 4) and not torch.equal(means, draws)


def test_diagnose_reports_the_exact_log_likelihood_and_why_nothing_else_applies():
    m = tiny().eval()
    x = data_for("bernoulli", 5)
    with pyro.validation_enabled(False):
        d = diagnose(m, x, config=DiagnoseConfig(samples=10, ais_steps=3, gaps=True))
    why = "not applicable: PixelCNN has no latent variables; log p(x) is exact"
    assert all(d.summary[k] == why for k in ("khat", "ess", "gaps", "ais", "rate_distortion"))
    assert d.summary["latents"] == []
    exact = m.distribution(5).log_prob(x).detach().double()
    assert d.summary["log_px"]["exact"] == pytest.approx(exact.mean().item(), rel=1e-6)
    assert torch.allclose(torch.from_numpy(d.per_point["log_px_exact"]), exact, rtol=1e-6)


def _dataset(binary: bool) -> Dataset:
    x = torch.rand(4, 5, 4)
    split = Split(x.round() if binary else x, None)
    return Dataset("toy", split, split, split, binary=binary)


@pytest.mark.parametrize("binary,binarize,expected", [(True, "none", "bernoulli"), (False, "none", "categorical"),
                                                      (False, "dynamic", "bernoulli")])
def test_a_new_run_takes_the_familys_default_likelihood(binary, binarize, expected):
    config = new_run_config("pixelcnn", {}, TrainConfig(data="toy", binarize=binarize), _dataset(binary))
    assert config.model_config.likelihood == expected
    assert new_run_config("vae", {}, TrainConfig(data="toy"), _dataset(False)).model_config.likelihood == "gaussian"


def test_the_registry_checks_likelihood_names_against_the_familys_own():
    assert model_config("pixelcnn", likelihood="logistic").likelihood == "logistic"
    with pytest.raises(ValueError, match="unknown pixel likelihood 'gaussian'; choose one of bernoulli, categorical, logistic"):
        model_config("pixelcnn", likelihood="gaussian")
    with pytest.raises(ValueError, match="unknown likelihood 'categorical'"):
        model_config("vae", likelihood="categorical")
