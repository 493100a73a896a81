"""The VAE and its encoder guide: site agreement, shapes, and that SVI lowers the loss."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppl_models.models.likelihoods import LIKELIHOODS, check_support
from ppl_models.registry import available_models, build_model, get_model, model_config
from svi_helpers import svi_losses


@pytest.mark.parametrize("likelihood", list(LIKELIHOODS))
def test_model_and_guide_sites_agree(likelihood):
    vae = build_model("vae", model_config("vae", likelihood=likelihood, latent_dim=3, hidden=(16,)), (8, 8))
    x = torch.rand(5, 8, 8).round()
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    def sample_sites(trace):
        return {n for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)}

    latent = {n for n in sample_sites(model_trace) if not model_trace.nodes[n]["is_observed"]}
    proposed = sample_sites(guide_trace)
    assert latent == proposed == {"z"}
    assert model_trace.nodes["x"]["is_observed"] and vae.observed_sites == ("x",)
    # the data plate covers dim -1, the event dims are .to_event()'d
    assert model_trace.nodes["z"]["fn"].batch_shape == (5,) and model_trace.nodes["z"]["fn"].event_shape == (3,)
    assert model_trace.nodes["x"]["fn"].batch_shape == (5,) and model_trace.nodes["x"]["fn"].event_shape == (8, 8)
    assert torch.equal(model_trace.nodes["z"]["value"], guide_trace.nodes["z"]["value"])


@pytest.mark.parametrize("likelihood", list(LIKELIHOODS))
def test_prior_samples_have_data_shape(likelihood):
    vae = build_model("vae", model_config("vae", likelihood=likelihood, latent_dim=3, hidden=(16,)), (8, 8))
    trace = poutine.trace(vae.model).get_trace(None, batch_size=7)
    assert trace.nodes["x"]["value"].shape == (7, 8, 8)
    assert trace.nodes["x"]["fn"].mean.shape == (7, 8, 8)


@pytest.mark.parametrize("objective_cls", [pyro.infer.Trace_ELBO, pyro.infer.TraceMeanField_ELBO])
def test_svi_steps_lower_the_loss(digits, objective_cls):
    pyro.set_rng_seed(0)
    vae = build_model("vae", model_config("vae", likelihood="gaussian", latent_dim=4, hidden=(64,)), (8, 8))
    losses = svi_losses(vae, objective_cls().differentiable_loss, digits.train.x[:500], steps=100)
    assert all(torch.isfinite(torch.tensor(losses)))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)


def test_registry_lists_vae_and_rejects_unknown_names():
    assert "vae" in available_models()
    with pytest.raises(ValueError, match="registered models: .*vae"):
        get_model("nope")
    with pytest.raises(ValueError, match="no config field"):
        model_config("vae", latent_dims=3)


def test_check_support_names_the_bad_element():
    bernoulli = LIKELIHOODS["bernoulli"]
    x = torch.zeros(3, 2, 2)
    x[1, 0, 1] = 0.5
    with pytest.raises(ValueError, match=r"mnist/train: .*element \(1, 0, 1\) is 0.5"):
        check_support(bernoulli, x, "mnist/train")
    x[1, 0, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        check_support(LIKELIHOODS["gaussian"], x, "d")
    check_support(bernoulli, x.nan_to_num(0.0), "d")  # binary data pass
