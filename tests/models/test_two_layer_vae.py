"""The two-stochastic-layer VAE: sites, the paper's sizes, the hierarchical guide, and the IWAE estimators."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config
from svi_helpers import svi_losses

SMALL = dict(latent_dims=(4, 2), hidden=(16, 8), likelihood="gaussian")


def make(**fields):
    torch.manual_seed(0)
    return build_model("two_layer_vae", model_config("two_layer_vae", **{**SMALL, **fields}), (8, 8))


def test_model_and_guide_sites_agree():
    vae = make()
    x = torch.rand(5, 8, 8)
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)

    def sample_sites(trace):
        return [n for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]

    assert sample_sites(guide_trace) == ["z1", "z2"]
    assert sample_sites(model_trace) == ["z2", "z1", "x"] and vae.observed_sites == ("x",)
    for name, size in (("z1", 4), ("z2", 2)):
        fn = model_trace.nodes[name]["fn"]
        assert fn.batch_shape == (5,) and fn.event_shape == (size,)
        assert torch.equal(model_trace.nodes[name]["value"], guide_trace.nodes[name]["value"])
    assert model_trace.nodes["x"]["fn"].event_shape == (8, 8)
    assert poutine.trace(vae.model).get_trace(None, batch_size=7).nodes["x"]["value"].shape == (7, 8, 8)


def test_defaults_are_burda_et_al_section_5():
    config = model_config("two_layer_vae")
    assert (config.latent_dims, config.hidden, config.depth, config.activation) == ((100, 50), (200, 100), 2, "tanh")
    vae = build_model("two_layer_vae", config, (28, 28))
    widths = lambda net: [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert widths(vae.q_z1) == [(784, 200), (200, 200), (200, 200)]  # loc and scale of 100 units
    assert widths(vae.q_z2) == [(100, 100), (100, 100), (100, 100)]  # loc and scale of 50 units
    assert widths(vae.p_z1) == [(50, 100), (100, 100), (100, 200)]
    assert widths(vae.decoder) == [(100, 200), (200, 200), (200, 784)]


def test_the_guide_z2_depends_on_the_sampled_z1():
    vae = make()
    x = torch.rand(3, 8, 8)
    means = []
    for value in (torch.zeros(3, 4), torch.ones(3, 4)):
        trace = poutine.trace(poutine.condition(vae.guide, data={"z1": value})).get_trace(x)
        assert torch.equal(trace.nodes["z1"]["value"], value)
        means.append(trace.nodes["z2"]["fn"].mean)
    assert not torch.allclose(means[0], means[1])
    # and the model's z1 depends on z2 the same way
    trace = poutine.trace(poutine.condition(vae.model, data={"z2": torch.ones(3, 2)})).get_trace(x)
    trace0 = poutine.trace(poutine.condition(vae.model, data={"z2": torch.zeros(3, 2)})).get_trace(x)
    assert not torch.allclose(trace.nodes["z1"]["fn"].mean, trace0.nodes["z1"]["fn"].mean)


def test_iwae_standard_trains_and_equals_the_elbo_at_one_particle(digits):
    vae = make()
    x = digits.train.x[:10]
    pyro.set_rng_seed(0)
    iwae1 = build_objective("iwae", 1).differentiable_loss(vae.model, vae.guide, x)
    pyro.set_rng_seed(0)
    torch.testing.assert_close(iwae1, build_objective("elbo").differentiable_loss(vae.model, vae.guide, x))
    loss = build_objective("iwae", 5).differentiable_loss(vae.model, vae.guide, x)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all() for p in vae.parameters())


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_stl_and_dreg_refuse_the_hierarchical_guide(digits, estimator):
    vae = make()
    with pytest.raises(ValueError, match=rf"grad_estimator='{estimator}' .*q\(z2\) depends on z1"):
        build_objective("iwae", 3, estimator).differentiable_loss(vae.model, vae.guide, digits.train.x[:5])


def test_config_checks_its_sizes():
    with pytest.raises(ValueError, match=r"latent_dims must be two positive sizes .*got \(4,\)"):
        model_config("two_layer_vae", latent_dims=(4,))
    with pytest.raises(ValueError, match="depth must be at least 1"):
        model_config("two_layer_vae", depth=0)


def test_svi_steps_lower_the_loss(digits):
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    vae = make(hidden=(64, 32))
    losses = svi_losses(vae, build_objective("elbo").differentiable_loss, digits.train.x[:300], steps=80)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
