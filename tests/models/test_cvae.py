"""The conditional VAE: sites, sampling, that the label condition matters and that a partial
image's visible pixels are left out of its likelihood."""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppl_models.models.protocol import LabelledModel, label_use
from ppl_models.objectives import build_objective
from ppl_models.objectives.log_weights import log_importance_weights
from ppl_models.registry import available_models, build_model, model_config

EVENT = torch.Size((8, 8))



def cvae(**fields):
    fields = {"latent_dim": 3, "hidden": (16,), "likelihood": "gaussian", **fields}
    return build_model("cvae", model_config("cvae", **fields), EVENT)


def sample_sites(trace):
    return {n: s for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)}


def traces(module, x, **kwargs):
    guide_trace = poutine.trace(module.guide).get_trace(x, **kwargs)
    model_trace = poutine.trace(poutine.replay(module.model, trace=guide_trace)).get_trace(x, **kwargs)
    return model_trace, guide_trace


@pytest.mark.parametrize("prior", ["network", "standard"])
@pytest.mark.parametrize("condition", ["label", "partial"])
def test_model_and_guide_sites_agree(condition, prior):
    module = cvae(condition=condition, prior=prior)
    x = torch.rand(5, 8, 8)
    kwargs = {"y": torch.tensor([0, 3, 9, 3, 1])} if condition == "label" else {}
    model_trace, guide_trace = traces(module, x, **kwargs)
    model_sites, guide_sites = sample_sites(model_trace), sample_sites(guide_trace)
    assert {n for n, s in model_sites.items() if not s["is_observed"]} == set(guide_sites) == {"z"}
    assert model_sites["x"]["is_observed"] and module.observed_sites == ("x",)
    assert model_sites["z"]["fn"].batch_shape == (5,) and model_sites["z"]["fn"].event_shape == (3,)
    assert model_sites["x"]["fn"].batch_shape == (5,) and model_sites["x"]["fn"].event_shape == (8, 8)
    assert label_use(module) == ("condition" if condition == "label" else None)


def test_label_mode_draws_y_as_a_latent_site_without_labels_and_guide_needs_them():
    module = cvae(condition="label")
    trace = poutine.trace(module.model).get_trace(batch_size=6)
    y = trace.nodes["y"]
    assert not y["is_observed"] and y["value"].shape == (6,) and trace.nodes["x"]["value"].shape == (6, 8, 8)
    with_labels = poutine.trace(module.model).get_trace(y=torch.arange(6))
    assert "y" not in with_labels.nodes  # a condition, not a site: the bounds are on log p(x | y)
    with pytest.raises(ValueError, match="guide q\\(z \\| x, y\\) needs the labels y"):
        module.guide(torch.rand(6, 8, 8))
    with pytest.raises(ValueError, match="int64 classes in 0..9"):
        module.model(torch.rand(2, 8, 8), y=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="batch sizes of its inputs disagree"):
        module.model(torch.rand(2, 8, 8), y=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="takes no 'visible'"):
        module.model(batch_size=2, visible=torch.rand(2, 8, 8))


def test_sample_inputs_give_classes_in_order_and_evenly_spread_partial_images(digits):
    assert torch.equal(cvae(condition="label").sample_inputs(None, 12)["y"], torch.arange(12) % 10)
    module = cvae(condition="partial", visible="top")
    visible = module.sample_inputs(digits.test, 5)["visible"]
    index = torch.tensor([0, 45, 90, 134, 179])  # evenly spread over the 180 test images
    assert torch.equal(visible[:, :4], digits.test.x[index, :4]) and bool((visible[:, 4:] == 0).all())
    with pytest.raises(ValueError, match="needs a data split"):
        module.sample_inputs(None, 5)
    with pytest.raises(ValueError, match="takes no 'y'"):
        module.model(torch.rand(2, 8, 8), y=torch.tensor([0, 1]))


@pytest.mark.parametrize("visible", ["top", "bottom", "left", "right", "top-left", "quadrants:1", "quadrants:2",
                                     "quadrants:3"])
def test_partial_samples_paste_the_visible_pixels_back(digits, visible):
    module = cvae(condition="partial", visible=visible)
    mask = module.cond.visible_mask
    assert int(mask.sum()) == {"top-left": 16, "quadrants:1": 16, "quadrants:3": 48}.get(visible, 32)
    inputs = module.sample_inputs(digits.test, 7)
    site = poutine.trace(module.model).get_trace(**inputs).nodes["x"]
    for images in (site["value"], site["fn"].mean):
        assert images.shape == (7, 8, 8)
        assert torch.equal(images[:, mask], inputs["visible"][:, mask])
        assert not torch.equal(images[:, ~mask], inputs["visible"][:, ~mask])  # the hidden part is drawn
    with pytest.raises(ValueError, match="pass the `visible` images"):
        module.model(batch_size=3)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_partial_likelihood_scores_only_the_hidden_pixels(likelihood):
    pyro.set_rng_seed(0)
    module = cvae(condition="partial", visible="top", likelihood=likelihood)
    x = torch.rand(4, 8, 8).round()
    z = torch.randn(4, 3)

    def log_px(images, condition):
        trace = poutine.trace(poutine.condition(module.model, {"z": z})).get_trace(images, visible=condition)
        site = trace.nodes["x"]
        return site["fn"].log_prob(site["value"])

    changed_top, changed_bottom = x.clone(), x.clone()
    changed_top[:, :4] = 1 - changed_top[:, :4]
    changed_bottom[:, 4:] = 1 - changed_bottom[:, 4:]
    assert torch.equal(log_px(changed_top, x), log_px(x, x))  # c fixed: visible pixels of x do not count
    assert not torch.allclose(log_px(changed_bottom, x), log_px(x, x))
    # known answer: the sum over the bottom half of the per-pixel log-densities of the decoder's output
    out = module.decoder(torch.cat([z, x[:, :4].reshape(4, -1)], -1)).reshape(4, 8, 8)
    pixel = torch.distributions.Bernoulli(logits=out) if likelihood == "bernoulli" else torch.distributions.Normal(out, 0.1)
    assert torch.allclose(log_px(x, x), pixel.log_prob(x)[:, 4:].sum((-1, -2)), rtol=1e-5, atol=1e-4)
    # the guide reads only hidden pixels and c, so whole importance weights ignore x's visible pixels too
    weights = []
    for images in (x, changed_top):
        pyro.set_rng_seed(1)
        weights.append(log_importance_weights(lambda v: module.model(v, visible=x), lambda v: module.guide(v, visible=x),
                                              images, num_particles=3))
    assert torch.equal(*weights)


def test_label_condition_matters_after_brief_training(digits):
    """Measured: after 3 epochs (45 steps), the mean of log p(x | true y) - log p(x | wrong y) over the
    180 test images is 21-30 nats (K=20, seeds 0-3; a model ignoring y would give 0); the test asks for 5."""
    pyro.set_rng_seed(0)
    module = cvae(condition="label", latent_dim=4, hidden=(32,))
    objective = build_objective("elbo")
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    x, y = digits.train.x, digits.train.y
    for _ in range(3):
        for idx in torch.randperm(x.shape[0]).split(100):
            view = LabelledModel(module, y[idx])
            loss = objective.differentiable_loss(view.model, view.guide, x[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        x, y = digits.test.x, digits.test.y
        wrong = (y + torch.randint(1, 10, y.shape)) % 10

        def log_px(labels):
            view = LabelledModel(module, labels)
            return (log_importance_weights(view.model, view.guide, x, num_particles=20).logsumexp(0) - torch.tensor(20.0).log())

        gap = (log_px(y) - log_px(wrong)).mean().item()
    assert gap > 5.0, gap


def test_registry_lists_cvae_and_rejects_bad_settings():
    assert "cvae" in available_models()
    with pytest.raises(ValueError, match="unknown cvae condition 'colour'; choose one of label, partial"):
        cvae(condition="colour")
    with pytest.raises(ValueError, match="unknown visible region 'middle'"):
        cvae(condition="partial", visible="middle")
    with pytest.raises(ValueError, match="unknown cvae prior"):
        cvae(prior="flat")
    with pytest.raises(ValueError, match=r"needs grey images \[H, W\], got event shape \(64,\)"):
        build_model("cvae", model_config("cvae", condition="partial"), (64,))
