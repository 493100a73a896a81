"""Masks name what is hidden; bad masks are refused with a message that names them; the visible-only
likelihood scores exactly the observed pixels."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from ppl_models.completion.masked_likelihood import observe_visible, pixel_log_prob
from ppl_models.completion.masks import check_mask, parse_mask, require_hidden
from ppl_models.registry import build_model, model_config

SHAPE = (8, 8)


@pytest.mark.parametrize("spec, hidden_count, hidden_pixel, shown_pixel", [
    ("top-half", 32, (0, 0), (7, 0)),
    ("bottom-half", 32, (7, 7), (0, 7)),
    ("left-half", 32, (3, 0), (3, 7)),
    ("right-half", 32, (3, 7), (3, 0)),
    ("quadrants:1", 48, (0, 0), (7, 0)),  # Pyro's CVAE tutorial: one quadrant shown, the bottom-left
    ("quadrants:2", 32, (0, 7), (0, 0)),  # the left half shown
    ("quadrants:3", 16, (7, 7), (0, 7)),  # all but the bottom-right shown
])
def test_named_masks_hide_what_they_say(spec, hidden_count, hidden_pixel, shown_pixel):
    mask = parse_mask(spec, SHAPE)
    assert mask.hidden.dtype == torch.bool and tuple(mask.hidden.shape) == SHAPE
    assert int(mask.hidden.sum()) == hidden_count
    assert bool(mask.hidden[hidden_pixel]) and not bool(mask.hidden[shown_pixel])
    assert tuple(mask.per_image(3).shape) == (3, *SHAPE)


def test_random_mask_is_per_image_seeded_and_near_its_rate():
    a, b = parse_mask("random:0.3", SHAPE, n=200, seed=1), parse_mask("random:0.3", SHAPE, n=200, seed=1)
    assert torch.equal(a.hidden, b.hidden) and tuple(a.hidden.shape) == (200, *SHAPE)
    assert abs(a.hidden.float().mean().item() - 0.3) < 0.02  # 12,800 pixels: sd 0.004
    assert not torch.equal(a.hidden[0], a.hidden[1])


def test_mask_file_round_trip_and_bad_files(tmp_path):
    good = np.zeros((2, *SHAPE), dtype=bool)
    good[:, :3] = True
    np.save(tmp_path / "m.npy", good)
    assert torch.equal(parse_mask(str(tmp_path / "m.npy"), SHAPE, n=2).hidden, torch.from_numpy(good))
    np.save(tmp_path / "float.npy", good.astype(np.float32))
    with pytest.raises(ValueError, match=r"float.npy: a mask must be boolean .* got torch.float32"):
        parse_mask(str(tmp_path / "float.npy"), SHAPE)
    np.save(tmp_path / "shape.npy", np.zeros((7, 8), dtype=bool))
    with pytest.raises(ValueError, match=r"shape.npy: the mask has shape \[7, 8\], but the images need \[8, 8\]"):
        parse_mask(str(tmp_path / "shape.npy"), SHAPE)
    with pytest.raises(ValueError, match=r"m.npy: the mask has shape \[2, 8, 8\], but the images need \[8, 8\] or \[5, 8, 8\]"):
        parse_mask(str(tmp_path / "m.npy"), SHAPE, n=5)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy: not a plain NumPy array"):
        parse_mask(str(tmp_path / "obj.npy"), SHAPE)
    with pytest.raises(ValueError, match="missing.npy: no such file"):
        parse_mask(str(tmp_path / "missing.npy"), SHAPE)


@pytest.mark.parametrize("spec, message", [
    ("middle", "unknown mask 'middle'; choose one of top-half"),
    ("quadrants:4", "quadrants:N shows N = 1, 2 or 3 quadrants, got '4'"),
    ("random:0", r"random:P hides each pixel with probability P in \(0, 1\], got '0'"),
    ("random:x", r"random:P hides each pixel with probability P in \(0, 1\], got 'x'"),
])
def test_bad_mask_names_are_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_mask(spec, SHAPE, n=4)


def test_masks_need_images_and_something_hidden():
    with pytest.raises(ValueError, match=r"needs one-channel images \[H, W\], got observations of shape \[64\]"):
        parse_mask("top-half", (64,))
    with pytest.raises(ValueError, match="a mask must be boolean"):
        check_mask(torch.zeros(*SHAPE, dtype=torch.int64), SHAPE)
    check_mask(torch.zeros(5, dtype=torch.bool), (5,))  # vector data: any event shape
    with pytest.raises(ValueError, match="my mask hides nothing: pixels completion needs at least one hidden pixel"):
        require_hidden(torch.zeros(*SHAPE, dtype=torch.bool), "pixels", "my mask")


def _trace(module, x, visible=None):
    pyro.set_rng_seed(0)
    if visible is None:
        return poutine.trace(module.model).get_trace(x)
    with observe_visible(visible):
        return poutine.trace(module.model).get_trace(x)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_visible_likelihood_scores_exactly_the_observed_pixels(likelihood):
    torch.manual_seed(0)
    module = build_model("vae", model_config("vae", latent_dim=3, hidden=(16,), likelihood=likelihood), SHAPE)
    x = torch.bernoulli(torch.full((4, *SHAPE), 0.4))
    hidden = parse_mask("random:0.5", SHAPE, n=4).hidden
    full = _trace(module, x).nodes["x"]["fn"]
    per_pixel = pixel_log_prob(full, x)
    assert tuple(per_pixel.shape) == (4, *SHAPE)
    assert torch.allclose(per_pixel.sum((-2, -1)), full.log_prob(x), atol=1e-4)
    visible = _trace(module, x, ~hidden).nodes["x"]["fn"].log_prob(x)
    assert torch.allclose(visible, (per_pixel * ~hidden).sum((-2, -1)), atol=1e-5)
    # the same z (seeded): the hidden pixels do not count, whatever they hold
    changed = torch.where(hidden, 1 - x, x)
    assert torch.allclose(_trace(module, changed, ~hidden).nodes["x"]["fn"].log_prob(changed), visible, atol=1e-5)
    nothing = _trace(module, x, torch.zeros(SHAPE, dtype=torch.bool)).nodes["x"]["fn"].log_prob(x)
    assert torch.equal(nothing, torch.zeros(4))


def test_pixel_log_prob_refuses_a_density_that_does_not_split():
    mvn = dist.MultivariateNormal(torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match=r"site 'x' has a MultivariateNormal with event shape \[3\], whose log-density "
                                         r"does not split into one term per pixel"):
        pixel_log_prob(mvn, torch.zeros(3))
    independent = dist.Normal(torch.zeros(2, 3), 1.0).to_event(2)
    assert torch.allclose(pixel_log_prob(independent, torch.zeros(2, 3)), dist.Normal(0.0, 1.0).log_prob(torch.zeros(2, 3)))
