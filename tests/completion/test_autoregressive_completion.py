"""Completion with an autoregressive model against the exact answers of a tiny PixelCNN on 2x4 binary
images, where all 2^8 images can be enumerated: the conditional log-probability, the distribution of the
completions and the predictive mean, both when ancestral sampling is exact (observed pixels first) and
when it needs importance resampling; and on 8x8 images, that no mask of masks.py changes an observed pixel."""

import itertools

import pyro
import pytest
import torch

from ppl_models.completion.autoregressive import AutoregressiveCompletion, observed_first
from ppl_models.completion.masks import parse_mask
from ppl_models.completion.method import METHODS, CompletionSettings
from ppl_models.registry import build_model, model_config

H, W = 2, 4
DRAWS = 4000  # completions (and, for resampling, proposals) per image in the enumeration tests
BOTTOM = torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)  # observed pixels first: exact
TOP = ~BOTTOM  # observed pixels last: importance resampling
# chi-square critical value for 15 degrees of freedom (16 completions of 4 hidden pixels) at p = 0.001
CHI2_15_P001 = 37.70


def method() -> AutoregressiveCompletion:
    return METHODS["autoregressive"]


@pytest.fixture(scope="module")
def tiny():
    """A gated PixelCNN on 2x4 images (every earlier pixel in each receptive field), in float64, its
    random weights scaled by 3 so the conditionals are far from 1/2 and the pixels depend on each other;
    and every one of the 2^8 images with its exact log p(x)."""
    torch.manual_seed(0)
    config = model_config("pixelcnn", channels=8, layers=1, kernel=3, block_kernel=3, gated=True)
    module = build_model("pixelcnn", config, (H, W)).double()
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(3.0)
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=H * W)), dtype=torch.float64).reshape(-1, H, W)
    with torch.no_grad():
        log_p = module.distribution(len(images)).log_prob(images)
    assert abs(log_p.logsumexp(0).item()) < 1e-12  # a normalized distribution over the 256 images
    return module, images, log_p


def enumerated(tiny, x: torch.Tensor, hidden: torch.Tensor):
    """By enumeration: log p(x_h | x_obs), the completions consistent with x_obs, their posterior
    probabilities, and the posterior mean of every pixel."""
    _, images, log_p = tiny
    consistent = (images == x)[:, ~hidden].all(1)
    log_p_observed = log_p[consistent].logsumexp(0)
    this = (images == x).flatten(1).all(1)
    posterior = (log_p[consistent] - log_p_observed).exp()
    mean = (posterior[:, None, None] * images[consistent]).sum(0)
    return (log_p[this] - log_p_observed).item(), images[consistent], posterior, mean


def counts_of(draws: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """How often each image of ``support`` [C, H, W] occurs among ``draws`` [S, H, W]."""
    match = (draws.reshape(-1, 1, H * W) == support.reshape(1, -1, H * W)).all(-1)
    assert bool(match.any(1).all()), "a draw outside the completions consistent with the observed pixels"
    return torch.bincount(match.double().argmax(1), minlength=len(support)).double()


def run(module, x, hidden, samples=DRAWS, pool=DRAWS, batch_size=100, seed=0):
    pyro.set_rng_seed(seed)
    settings = CompletionSettings(samples=samples, autoregressive_pool=pool, batch_size=batch_size, progress=False)
    (completion,) = method().complete(module, x, hidden, settings)
    return completion


def test_observed_first_tells_exact_masks_apart():
    masks = torch.stack([BOTTOM, TOP, torch.zeros(H, W, dtype=torch.bool), torch.ones(H, W, dtype=torch.bool),
                         torch.tensor([[0, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)])
    assert observed_first(masks).tolist() == [True, False, True, True, False]


def test_exact_case_matches_enumeration(tiny):
    """Bottom row hidden: log p(x_h | x_obs) equals the enumerated value to 1e-9 (float64); the 4000
    completions of each image pass a chi-square test against the enumerated conditional (15 df, below
    the p = 0.001 critical value 37.7); the Rao-Blackwellized mean is within 0.01 of the exact one."""
    module, images, _ = tiny
    x = images[[37, 200]]
    c = run(module, x, BOTTOM.expand(2, H, W))
    assert c.variant == "exact" and c.nll_by.startswith("exact")
    assert c.draws.shape == (DRAWS, 2, H, W) and c.mean.shape == (2, H, W) and c.log_p_hidden.shape == (2,)
    for j in range(2):
        log_p, support, posterior, mean = enumerated(tiny, x[j], BOTTOM)
        assert c.log_p_hidden[j].item() == pytest.approx(log_p, abs=1e-9)
        counts = counts_of(c.draws[:, j], support)
        chi2 = ((counts - DRAWS * posterior) ** 2 / (DRAWS * posterior)).sum().item()
        assert len(support) == 16 and chi2 < CHI2_15_P001
        assert (c.mean[j] - mean).abs().max().item() < 0.01


def test_resampling_case_matches_enumeration(tiny):
    """Top row hidden (observed pixels after the hidden ones): with a pool of M = 4000 proposals, the
    estimate of log p(x_h | x_obs) is within 0.02 nats of the enumerated value, the 4000 resampled
    completions are within total variation 0.05 of the enumerated conditional, and the mean within
    0.03 (the conditional means of the prior, weighted, would miss it by up to 0.12 here: the weight
    depends on the hidden pixel through the observed pixels after it)."""
    module, images, _ = tiny
    x = images[[37, 200]]
    c = run(module, x, TOP.expand(2, H, W))
    assert c.variant == f"importance resampling, M={DRAWS}" and "IS" in c.nll_by
    assert c.extra["resampled_images"] == 2 and 0 < c.extra["ess_min"] <= DRAWS
    for j in range(2):
        log_p, support, posterior, mean = enumerated(tiny, x[j], TOP)
        assert c.log_p_hidden[j].item() == pytest.approx(log_p, abs=0.02)
        empirical = counts_of(c.draws[:, j], support) / DRAWS
        assert 0.5 * (empirical - posterior).abs().sum().item() < 0.05
        assert (c.mean[j] - mean).abs().max().item() < 0.03


def test_per_image_masks_mix_exact_resampled_and_nothing_hidden(tiny):
    """One call with a different mask per image: bottom row (exact), top row and a checkerboard
    (resampled), everything hidden (exact: log p(x)) and nothing hidden (exactly 0, unchanged);
    in chunks of one image (batch_size=1), the exact values equal those of one big chunk."""
    module, images, log_p = tiny
    checker = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool)
    masks = torch.stack([BOTTOM, TOP, checker, torch.ones(H, W, dtype=torch.bool), torch.zeros(H, W, dtype=torch.bool)])
    x = images[[37, 200, 91, 154, 13]]
    c = run(module, x, masks, samples=50, batch_size=1)
    assert c.extra["exact_images"] == 2 and c.extra["resampled_images"] == 2 and c.extra["nothing_hidden"] == 1
    assert "exact" in c.variant and "resampling" in c.variant
    for j, tol in zip(range(4), (1e-9, 0.02, 0.02, 1e-9)):
        assert c.log_p_hidden[j].item() == pytest.approx(enumerated(tiny, x[j], masks[j])[0], abs=tol)
    assert c.log_p_hidden[3].item() == pytest.approx(log_p[154].item(), abs=1e-9)
    assert c.log_p_hidden[4].item() == 0.0
    assert torch.equal(c.draws[:, 4], x[4].expand(50, H, W)) and torch.equal(c.mean[4], x[4])
    big = run(module, x, masks, samples=50, batch_size=100, seed=1)
    assert torch.allclose(big.log_p_hidden[[0, 3, 4]], c.log_p_hidden[[0, 3, 4]], atol=1e-12, rtol=0)


def test_nothing_hidden_gives_zero_and_the_input(tiny):
    module, images, _ = tiny
    x = images[[5, 6, 7]]
    c = run(module, x, torch.zeros(3, H, W, dtype=torch.bool), samples=3)
    assert torch.equal(c.log_p_hidden, torch.zeros(3, dtype=c.log_p_hidden.dtype))
    assert torch.equal(c.draws, x.expand(3, 3, H, W)) and torch.equal(c.mean, x)
    assert c.nll_by == "exact: nothing hidden"


MASKS = ["top-half", "bottom-half", "left-half", "right-half", "quadrants:1", "quadrants:2", "quadrants:3",
         "random:0.3"]


@pytest.fixture(scope="module")
def pixelcnn8():
    torch.manual_seed(1)
    return build_model("pixelcnn", model_config("pixelcnn", channels=4, layers=1, kernel=3), (8, 8))


@pytest.mark.parametrize("spec", MASKS)
def test_observed_pixels_are_never_changed(pixelcnn8, digits, spec):
    """8x8 binarized digits, float32: the draws and the mean keep every observed pixel exactly, the hidden
    draws are binary, the means lie in [0, 1]; only the bottom-half mask is exact."""
    x = torch.bernoulli(digits.test.x[:3], generator=torch.Generator().manual_seed(0))
    hidden = parse_mask(spec, (8, 8), n=3, seed=2).per_image(3)
    c = run(pixelcnn8, x, hidden, samples=2, pool=4, batch_size=1)
    assert c.draws.shape == (2, 3, 8, 8) and c.draws.dtype == x.dtype
    assert bool((c.draws == x)[:, ~hidden].all()) and bool((c.mean == x)[~hidden].all())
    assert bool(((c.draws == 0) | (c.draws == 1)).all())
    assert bool(((c.mean >= 0) & (c.mean <= 1)).all()) and bool(torch.isfinite(c.log_p_hidden).all())
    assert c.variant == ("exact" if spec == "bottom-half" else "importance resampling, M=4")
    assert c.seconds > 0


def test_not_applicable_to_a_latent_variable_model(pixelcnn8):
    vae = build_model("vae", model_config("vae", latent_dim=2, hidden=(8,)), (8, 8))
    reason = method().not_applicable(vae, torch.ones(8, 8, dtype=torch.bool))
    assert reason.startswith("not applicable: needs an autoregressive model (pixelcnn, pixelrnn)") and "VAE" in reason
    assert method().not_applicable(pixelcnn8, torch.ones(8, 8, dtype=torch.bool)) is None
    with pytest.raises(ValueError, match="autoregressive completion: not applicable: needs an autoregressive model"):
        method().complete(vae, torch.zeros(2, 8, 8), torch.ones(2, 8, 8, dtype=torch.bool),
                          CompletionSettings(progress=False))
