"""Latent completion (ppl_models/completion/latent.py) against known answers.

The closed forms come from probabilistic PCA (tests/linear_gaussian.py): x ~ N(b, W W^T + s^2 I), so
p(x_hidden | x_observed) is Gaussian conditioning. Properties that hold for any weights (nothing
hidden, observed pixels kept, no use of the true hidden values) run on untrained 8x8 VAEs.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from linear_gaussian import LinearGaussian

import ppl_models.completion.latent  # noqa: F401  (registers the method)
from ppl_models.completion.masks import parse_mask
from ppl_models.completion.method import METHODS, CompletionSettings
from ppl_models.registry import build_model, model_config

LATENT = METHODS["latent"]
VARIANTS = ["prior IS", "encoder IS, zero-filled", "encoder IS, imputed x3", "per-point SVI from encoder"]
FAST = CompletionSettings(samples=4, num_particles=40, batch_size=4, particle_chunk=16, svi_steps=10, progress=False)


def vae(seed=0):
    torch.manual_seed(seed)
    return build_model("vae", model_config("vae", latent_dim=4, hidden=(32,)), (8, 8))


def grey_digits(n):
    from ppl_models.data import load_dataset

    return load_dataset("digits").test.x[:n]


def binary_digits(n, seed=0):
    return torch.bernoulli(grey_digits(n), generator=torch.Generator().manual_seed(seed))


def ppca(widen):
    m = LinearGaussian(guide_widen=widen)
    m.observed_sites = ("x",)
    return m


def ppca_data(m, n, seed=1):
    torch.manual_seed(seed)
    return m.marginal().sample((n,))


def exact_log_p_hidden(m, x, hidden):
    """log p(x_h | x_o) = log N(x; b, C) - log N(x_o; b_o, C_oo) per row (Gaussian conditioning)."""
    marginal, out = m.marginal(), []
    for xi, hi in zip(x, hidden):
        o = ~hi
        c_oo = marginal.covariance_matrix[o][:, o]
        out.append(marginal.log_prob(xi) - dist.MultivariateNormal(m.b[o], covariance_matrix=c_oo).log_prob(xi[o]))
    return torch.stack(out)


def run(module, x, hidden, settings, seed=0):
    pyro.set_rng_seed(seed)
    rows = LATENT.complete(module, x, hidden, settings)
    assert [r.variant for r in rows] == VARIANTS
    return rows


def test_nothing_hidden_gives_zero_and_the_input_for_every_row():
    x = binary_digits(6)
    hidden = parse_mask("top-half", (8, 8)).per_image(6).clone()
    hidden[[0, 3]] = False  # images 0 and 3 hide nothing; the others share their batches with them
    for r in run(vae(), x, hidden, FAST):
        assert r.draws.shape == (4, 6, 8, 8) and r.mean.shape == (6, 8, 8) and r.log_p_hidden.shape == (6,)
        assert r.log_p_hidden[[0, 3]].tolist() == [0.0, 0.0], r.variant  # exactly
        assert bool((r.log_p_hidden[[1, 2, 4, 5]] < 0).all()), r.variant  # binary pixels: probabilities < 1
        assert torch.equal(r.draws[:, [0, 3]], x[[0, 3]].expand(4, 2, 8, 8)), r.variant
        assert torch.equal(r.mean[[0, 3]], x[[0, 3]]), r.variant
        assert r.nll_by == "log p(x) - log p(x_obs), IS K=40 each (log p(x): the model's guide on the full image)"


class FixedGuidePPCA(LinearGaussian):
    """PPCA whose guide ignores x: q(z) = N(0, 1.5^2 I), wider than the prior, so every weight
    p(z, x_obs) / q(z) with nothing observed is at most 1.5^2 = 2.25 and K = 4000 particles suffice."""

    observed_sites = ("x",)

    def guide(self, x, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros(self.latent_dim, dtype=torch.float64), 1.5).to_event(1))


def test_everything_hidden_draws_the_models_own_samples():
    m = FixedGuidePPCA()
    n, s = 40, 50
    x = ppca_data(m, n)
    hidden = torch.ones(n, 5, dtype=torch.bool)
    settings = CompletionSettings(samples=s, num_particles=4000, batch_size=n, particle_chunk=2000, progress=False)
    cov = m.marginal().covariance_matrix
    for r in run(m, x, hidden, settings):
        draws = r.draws.reshape(s * n, 5)
        # 2000 draws, std <= 1.9 per coordinate: the standard error of a mean is <= 0.043, of a covariance <= 0.11
        torch.testing.assert_close(draws.mean(0), m.b, atol=0.15, rtol=0, msg=r.variant)
        torch.testing.assert_close(draws.T.cov(), cov, atol=0.4, rtol=0, msg=r.variant)
        torch.testing.assert_close(r.mean, m.b.expand(n, 5), atol=0.15, rtol=0, msg=r.variant)  # E[x] = b
        assert r.extra["ess_fraction"] > 0.5, r.variant


def test_everything_hidden_gives_log_p_observed_zero_and_log_p_hidden_the_log_px():
    # the guide is the exact posterior given the full x, so IS gives log p(x) with zero variance
    m = ppca(widen=1.0)
    x = ppca_data(m, 10)
    hidden = torch.ones(10, 5, dtype=torch.bool)
    settings = CompletionSettings(samples=2, num_particles=50, batch_size=4, particle_chunk=20, progress=False)
    for r in run(m, x, hidden, settings):
        assert r.extra["log_p_observed"] == 0.0, r.variant  # exactly: nothing is observed
        torch.testing.assert_close(r.log_p_hidden, m.marginal().log_prob(x), atol=1e-8, rtol=0, msg=r.variant)
    images = binary_digits(4)
    rows = run(vae(), images, torch.ones(4, 8, 8, dtype=torch.bool), FAST)
    assert rows[0].extra["ess_fraction"] == pytest.approx(1.0, abs=1e-6)  # prior IS: every weight is p(nothing | z) = 1


def test_linear_gaussian_matches_gaussian_conditioning_for_every_row():
    # widen 3: the exact posterior given the full x is narrower than p(z | x_obs); IS needs a proposal at least as
    # wide. With coordinates 0 and 3 hidden every proposal covers p(z | x_obs) and K = 20000 gives errors <= 0.2
    # (the prior's, at ESS 6%) over seeds 0-2. Other masks (two coordinates of five chosen at random per point)
    # leave the encoder rows ~1 nat off at K = 20000 (a proposal narrower than its target misses mass), and the
    # diagonal SVI fit of a correlated p(z | x_obs) up to 0.4: a property of IS, not of this code.
    m = ppca(widen=3.0)
    x = ppca_data(m, 20)
    hidden = torch.zeros(20, 5, dtype=torch.bool)
    hidden[:, [0, 3]] = True
    exact = exact_log_p_hidden(m, x, hidden)
    assert float(exact.abs().min()) > 0.8  # so scoring the hidden coordinates too (giving 0) would fail by far
    settings = CompletionSettings(samples=4, num_particles=20000, batch_size=20, particle_chunk=5000, progress=False)
    cov, h, o = m.marginal().covariance_matrix, hidden[0], ~hidden[0]
    exact_mean = m.b[h] + (x[:, o] - m.b[o]) @ torch.linalg.solve(cov[o][:, o], cov[o][:, h])  # E[x_h | x_o]
    rows = run(m, x, hidden, settings)
    for r in rows:
        error = r.log_p_hidden - exact
        assert float(error.abs().max()) < 0.25, (r.variant, error)
        assert abs(float(error.mean())) < 0.03, (r.variant, error)
        # the conditional sd is 0.6; the weighted mean of 20000 particles is within 0.03 of E[x_h | x_o] (seeds 0-2)
        torch.testing.assert_close(r.mean[:, h], exact_mean, atol=0.08, rtol=0, msg=r.variant)
        torch.testing.assert_close(r.mean[:, o], x[:, o], atol=0, rtol=0)
    assert rows[3].extra["svi_start"].startswith("moments of 64 encoder draws")  # the guide is a full-covariance Normal
    assert rows[0].extra["ess_fraction"] < rows[3].extra["ess_fraction"]  # the fitted proposal beats the prior


@pytest.mark.parametrize("spec", ["top-half", "bottom-half", "left-half", "right-half", "quadrants:1", "quadrants:2",
                                  "quadrants:3", "random:0.3"])
def test_observed_pixels_are_never_changed(spec):
    x = binary_digits(5)
    hidden = parse_mask(spec, (8, 8), n=5, seed=3).per_image(5)
    for r in run(vae(), x, hidden, FAST):
        assert torch.equal(r.draws[:, ~hidden], x[~hidden].expand(4, -1)), (spec, r.variant)
        assert torch.equal(r.mean[~hidden], x[~hidden]), (spec, r.variant)
        assert bool(((r.draws == 0) | (r.draws == 1)).all())  # Bernoulli draws
        assert bool((r.draws[:, hidden] != x[hidden]).any()), (spec, r.variant)  # hidden pixels are drawn, not copied
        assert bool(((r.mean[hidden] > 0) & (r.mean[hidden] < 1)).all()), (spec, r.variant)  # means, not draws


def test_the_true_hidden_values_are_not_used_except_for_log_px():
    x = binary_digits(6)
    hidden = parse_mask("bottom-half", (8, 8)).per_image(6)
    other = torch.where(hidden, 1 - x, x)  # the same observed pixels, every hidden one flipped
    first, second = run(vae(), x, hidden, FAST), run(vae(), other, hidden, FAST)
    for a, b in zip(first, second):
        assert torch.equal(a.draws[:, hidden], b.draws[:, hidden]), a.variant
        assert torch.equal(a.mean, b.mean), a.variant
        assert a.extra["log_p_observed"] == b.extra["log_p_observed"], a.variant
        assert not torch.equal(a.log_p_hidden, b.log_p_hidden)


def test_the_rows_are_seeded():
    x, hidden = binary_digits(4), parse_mask("left-half", (8, 8)).per_image(4)
    first, second = run(vae(), x, hidden, FAST, seed=5), run(vae(), x, hidden, FAST, seed=5)
    for a, b in zip(first, second):
        assert torch.equal(a.draws, b.draws) and torch.equal(a.log_p_hidden, b.log_p_hidden)
        assert a.extra == b.extra
    assert first[3].extra["svi_start"] == "encoder"  # the VAE's encoder is a diagonal Normal: its own parameters


def test_not_applicable_names_the_reason():
    hidden = parse_mask("top-half", (8, 8)).per_image(2)
    pixelcnn = build_model("pixelcnn", model_config("pixelcnn", channels=8, layers=2), (8, 8))
    reason = LATENT.not_applicable(pixelcnn, hidden)
    assert reason.startswith("not applicable:") and "no latent variables" in reason
    assert "--method autoregressive" in reason
    gan = build_model("gan", model_config("gan"), (8, 8))  # observation="none": no likelihood
    assert "no likelihood" in LATENT.not_applicable(gan, hidden)
    cvae = build_model("cvae", model_config("cvae", condition="partial"), (8, 8))
    assert "--method cvae" in LATENT.not_applicable(cvae, hidden)
    labelled = build_model("cvae", model_config("cvae", condition="label"), (8, 8))
    assert "conditioned on labels" in LATENT.not_applicable(labelled, hidden)
    gmm = build_model("gmm", model_config("gmm"), (8, 8))
    assert "sums out its latent site(s) ['c']" in LATENT.not_applicable(gmm, hidden)
    assert LATENT.not_applicable(vae(), hidden) is None
    user = "examples/your_own_model.py:ink-vae"
    assert LATENT.not_applicable(build_model(user, model_config(user, latent_dim=2, hidden=8), (8, 8)), hidden) is None
    assert "the mask has shape [2, 8, 8]" in LATENT.not_applicable(ppca(1.0), hidden)
    assert LATENT.not_applicable(ppca(1.0), torch.zeros(2, 5, dtype=torch.bool)) is None


def test_a_user_model_with_a_positive_latent_completes():
    user = "examples/your_own_model.py:ink-vae"
    torch.manual_seed(0)
    module = build_model(user, model_config(user, latent_dim=2, hidden=8), (8, 8))
    x = grey_digits(4)
    hidden = parse_mask("top-half", (8, 8)).per_image(4)
    rows = run(module, x, hidden, FAST)
    for r in rows:
        assert torch.equal(r.draws[:, ~hidden], x[~hidden].expand(4, -1))
        assert bool(torch.isfinite(r.log_p_hidden).all()) and bool(torch.isfinite(r.draws).all())
    assert rows[3].extra["svi_start"] == "encoder"  # the automatic guide: Normal z, log-Normal ink


def test_a_discrete_latent_leaves_out_the_svi_row_and_says_why():
    torch.manual_seed(0)
    m2 = build_model("m2", model_config("m2", latent_dim=2, hidden=(16,), classifier_hidden=(16,)), (8, 8))
    assert LATENT.not_applicable(m2, parse_mask("top-half", (8, 8)).hidden) is None  # semi-supervised: y is a latent
    x, hidden = binary_digits(3), parse_mask("top-half", (8, 8)).per_image(3)
    pyro.set_rng_seed(0)
    rows = LATENT.complete(m2, x, hidden, FAST)
    assert [r.variant for r in rows] == VARIANTS[:3]
    for r in rows:
        assert r.extra["skipped"] == ("per-point SVI from encoder: latent site 'y' is discrete; per-data-point "
                                      "guides need continuous latents")
        assert torch.equal(r.draws[:, ~hidden], x[~hidden].expand(4, -1)) and bool(torch.isfinite(r.log_p_hidden).all())
