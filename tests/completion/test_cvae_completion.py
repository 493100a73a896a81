"""Completion with a conditional VAE (condition="partial"): it applies only to the mask it was trained for
and says why otherwise, keeps the observed pixels, draws in the model's support, and its log p(x_h | x_v)
is bounds_table's log_px (checked against sampling z from the prior), its mean the draws' average."""

import math

import pyro
import pytest
import torch
from pyro import poutine

from ppl_models.completion.conditional import ConditionalVAECompletion  # noqa: F401  (registers "cvae")
from ppl_models.completion.masks import parse_mask
from ppl_models.completion.method import METHODS, CompletionSettings
from ppl_models.evaluate.likelihood import bounds_table
from ppl_models.registry import build_model, model_config

EVENT = (8, 8)
N = 6


def method():
    return METHODS["cvae"]


def cvae(**fields):
    fields = {"condition": "partial", "visible": "bottom", "latent_dim": 4, "hidden": (32,), **fields}
    return build_model("cvae", model_config("cvae", **fields), EVENT)


@pytest.fixture(scope="module")
def module():
    """An untrained partial cvae that sees the bottom half, its decoder's weights doubled so that the
    hidden pixels' means spread over about [0.26, 0.71] and depend on z (the properties tested hold for
    any weights; the recognition network is left as built, a usable proposal)."""
    torch.manual_seed(0)
    m = cvae()
    with torch.no_grad():
        for p in m.decoder.parameters():
            p.mul_(2.0)
    return m


@pytest.fixture
def x(digits):
    return torch.bernoulli(digits.test.x[:N], generator=torch.Generator().manual_seed(0))


def mask(spec):
    return parse_mask(spec, EVENT, n=N, seed=0).per_image(N)


def test_applies_only_to_the_mask_it_was_trained_for(module):
    assert method().not_applicable(module, mask("top-half")) is None
    bottom = method().not_applicable(module, mask("bottom-half"))
    assert bottom == ("not applicable: this cvae was trained with visible='bottom' (it completes the mask top-half); "
                      "train one with --set visible=top for this mask")
    assert "--set visible=left (or quadrants:2)" in method().not_applicable(module, mask("right-half"))
    assert "--set visible=quadrants:3" in method().not_applicable(module, mask("quadrants:3"))
    random = method().not_applicable(module, mask("random:0.3"))
    assert "visible='bottom'" in random and "the mask differs between images" in random
    checker = (torch.arange(8)[:, None] + torch.arange(8)) % 2 == 0
    odd = method().not_applicable(module, checker.expand(N, *EVENT))
    assert "match no cvae visible region (top, bottom," in odd
    assert "for images [4, 4], this cvae's are [8, 8]" in method().not_applicable(module, torch.ones(N, 4, 4).bool())


def test_not_applicable_to_other_models():
    labelled = build_model("cvae", model_config("cvae", latent_dim=2, hidden=(8,)), EVENT)
    assert "conditioned on 'label'" in method().not_applicable(labelled, mask("top-half"))
    pixelcnn = build_model("pixelcnn", model_config("pixelcnn", channels=4, layers=1, kernel=3), EVENT)
    assert method().not_applicable(pixelcnn, mask("top-half")).startswith("not applicable: needs a cvae")
    with pytest.raises(ValueError, match="cvae completion: not applicable: this cvae was trained with "
                                         "visible='bottom'"):
        method().complete(cvae(), torch.zeros(N, *EVENT), mask("left-half"), CompletionSettings(progress=False))


def test_keeps_observed_pixels_and_draws_in_the_support(module, x):
    settings = CompletionSettings(samples=5, num_particles=30, batch_size=4, particle_chunk=7, progress=False)
    pyro.set_rng_seed(0)
    (c,) = method().complete(module, x, mask("top-half"), settings)
    hidden = mask("top-half")
    assert c.method == "cvae" and c.draws.shape == (5, N, *EVENT) and c.mean.shape == (N, *EVENT)
    assert bool((c.draws == x)[:, ~hidden].all()) and bool((c.mean == x)[~hidden].all())
    assert bool(((c.draws == 0) | (c.draws == 1)).all())  # Bernoulli pixels, binarized images
    assert bool(((c.mean > 0) & (c.mean < 1))[hidden].all())
    assert c.nll_by == "IS with the recognition network q(z | x_hidden, x_visible), K=30" and c.seconds > 0
    assert c.extra == {"visible": "bottom", "mean_particles": 30}


def test_log_p_hidden_is_bounds_tables_log_px(module, x):
    """Under the same seed, log_p_hidden is bounds_table's log_px exactly (to 1e-6); with K = 4000 it is
    within 0.1 nats of log mean_k p(x_h | z_k, c) over 40000 z_k ~ p(z | c) (measured: 0.02), so it is
    on log p(x_h | x_v) (the whole image's log p(x) would be about 22 nats lower)."""
    settings = CompletionSettings(samples=2, num_particles=200, batch_size=4, particle_chunk=50, progress=False)
    pyro.set_rng_seed(3)
    (c,) = method().complete(module, x, mask("top-half"), settings)
    pyro.set_rng_seed(3)
    expected = bounds_table(module, x, 200, batch_size=4, particle_chunk=50)["log_px"]
    torch.testing.assert_close(c.log_p_hidden, expected, rtol=0, atol=1e-6)

    pyro.set_rng_seed(0)
    big = CompletionSettings(samples=1, num_particles=4000, batch_size=N, particle_chunk=1000, progress=False)
    (c,) = method().complete(module, x, mask("top-half"), big)
    with torch.no_grad(), pyro.plate("particles", 40000, dim=-2):
        site = poutine.trace(module.model).get_trace(x).nodes["x"]  # z from the prior; x_h scored
    prior_estimate = site["fn"].log_prob(x).logsumexp(0) - math.log(40000)
    assert (c.log_p_hidden - prior_estimate).abs().max().item() < 0.1


def test_mean_is_the_average_over_z_of_the_decoders_mean(module, x):
    """The mean (K = 4000 draws of z) matches the average of 4000 completions within 0.05 at every hidden
    pixel (measured 0.025; each pixel's sd is below 0.008), while one z's decoder mean misses it by over 0.1."""
    settings = CompletionSettings(samples=4000, num_particles=4000, batch_size=N, particle_chunk=1000, progress=False)
    pyro.set_rng_seed(0)
    (c,) = method().complete(module, x, mask("top-half"), settings)
    hidden = mask("top-half")
    average = c.draws.mean(0)
    assert (average - c.mean)[hidden].abs().max().item() < 0.05
    one_z = CompletionSettings(samples=1, num_particles=1, batch_size=N, particle_chunk=1, progress=False)
    (single,) = method().complete(module, x, hidden, one_z)
    assert (average - single.mean)[hidden].abs().max().item() > 0.1
