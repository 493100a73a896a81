"""The convolutional VAE and the conv builders of ppl_models.nets: sizes for any [H, W], the decoder's
pixel order, particle dimensions, bad shapes, and that SVI lowers the loss."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppl_models.models.likelihoods import LIKELIHOODS
from ppl_models.nets import conv_decoder, conv_encoder, conv_feature_shapes
from ppl_models.objectives import build_objective, log_importance_weights
from ppl_models.registry import build_model, get_model, model_config
from svi_helpers import svi_losses

SMALL = dict(latent_dim=3, channels=(4, 8), hidden=(16,))


def make(shape, **fields):
    return build_model("conv_vae", model_config("conv_vae", **{**SMALL, **fields}), shape)


@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (7, 9), (5, 4)])
def test_conv_builders_restore_any_image_shape(shape):
    torch.manual_seed(0)
    enc = conv_encoder(shape, (4, 8), (16,), 6)
    dec = conv_decoder(6, (16,), (4, 8), shape, 2)
    out = dec(enc(torch.rand(3, 1, *shape)))
    assert out.shape == (3, 2, *shape)
    # each stride-2 convolution halves a side, rounding down
    assert conv_feature_shapes(shape, 2) == [shape, (shape[0] // 2, shape[1] // 2), (shape[0] // 4, shape[1] // 4)]


def test_conv_builders_name_a_shape_that_is_too_small():
    with pytest.raises(ValueError, match=r"image shape \[3, 8\] is too small for 2 stride-2 convolutions"):
        conv_encoder((3, 8), (4, 8), (16,), 6)
    with pytest.raises(ValueError, match=r"2-D image shape \[H, W\], got \[64\]"):
        conv_feature_shapes((64,), 1)


@pytest.mark.parametrize("shape", [(8, 8), (28, 28)])
@pytest.mark.parametrize("likelihood", list(LIKELIHOODS))
def test_model_and_guide_sites_agree(shape, likelihood):
    vae = make(shape, likelihood=likelihood)
    x = torch.rand(5, *shape).round()
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)

    def sample_sites(trace):
        return {n for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)}

    assert {n for n in sample_sites(model_trace) if not model_trace.nodes[n]["is_observed"]} == {"z"}
    assert sample_sites(guide_trace) == {"z"} and vae.observed_sites == ("x",)
    assert model_trace.nodes["z"]["fn"].batch_shape == (5,) and model_trace.nodes["z"]["fn"].event_shape == (3,)
    assert model_trace.nodes["x"]["fn"].batch_shape == (5,) and model_trace.nodes["x"]["fn"].event_shape == shape
    assert torch.equal(model_trace.nodes["z"]["value"], guide_trace.nodes["z"]["value"])
    assert vae.likelihood is LIKELIHOODS[likelihood]


def test_decoder_output_is_in_pixel_order():
    # observation() reads the flat output as (H, W, k): pixel (i, j)'s location must be the
    # convolution's channel-0 output at (i, j) and its scale channel 1's, for a non-square image
    vae = make((7, 9), likelihood="gaussian-learned")
    z = torch.randn(4, 3)
    with torch.no_grad():
        maps = vae.decoder.net(z)  # [4, 2, 7, 9]
    with torch.no_grad():
        px = poutine.trace(poutine.condition(vae.model, data={"z": z})).get_trace(torch.rand(4, 7, 9)).nodes["x"]["fn"]
    assert px.event_shape == (7, 9)
    torch.testing.assert_close(px.base_dist.loc, maps[:, 0])
    torch.testing.assert_close(px.base_dist.scale, torch.nn.functional.softplus(maps[:, 1]) + 1e-3)


def test_particle_dimensions_are_batch_dimensions():
    torch.manual_seed(0)
    vae = make((8, 8))
    z = torch.randn(3, 5, 3)  # [K, N, latent]
    out = vae.decoder(z)
    assert out.shape == (3, 5, 64)
    torch.testing.assert_close(out[1], vae.decoder(z[1]))
    with torch.no_grad():
        lw = log_importance_weights(vae.model, vae.guide, torch.rand(5, 8, 8).round(), num_particles=4)
    assert lw.shape == (4, 5) and torch.isfinite(lw).all()


def test_event_shape_must_be_two_dimensional():
    assert get_model("conv_vae").cls.data_shape is None  # any [H, W]
    with pytest.raises(ValueError, match=r"conv_vae needs 2-D images \[H, W\], got observations of shape \[64\]"):
        make((64,))
    with pytest.raises(ValueError, match=r"\[3, 8\] is too small"):
        make((3, 8))


def test_prior_samples_have_data_shape():
    vae = make((28, 28), likelihood="bernoulli")
    trace = poutine.trace(vae.model).get_trace(None, batch_size=6)
    assert trace.nodes["x"]["value"].shape == (6, 28, 28)
    assert set(trace.nodes["x"]["value"].unique().tolist()) <= {0.0, 1.0}


def test_svi_steps_lower_the_loss(digits):
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    vae = make((8, 8), likelihood="gaussian", latent_dim=4, hidden=(32,))
    losses = svi_losses(vae, build_objective("elbo").differentiable_loss, digits.train.x[:300], steps=60)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
