"""The Gaussian mixture model: registration, config checks, sampling and parameters.

Its objectives (the enumerated component summed out exactly) are tested against the closed-form
mixture density in ``tests/objectives/test_enumeration.py``.
"""

import pyro
import pytest
import torch
from pyro import poutine

from ppl_models.evaluate.samples import sample_observations
from ppl_models.models.gmm import GMM, GMMConfig
from ppl_models.registry import available_models, get_model, model_config


def _gmm(components=3, event_shape=(8, 8), **fields):
    torch.manual_seed(0)
    return GMM(GMMConfig(components=components, **fields), torch.Size(event_shape))


def test_registered_with_its_config_and_without_a_guide():
    assert "gmm" in available_models()
    entry = get_model("gmm")
    assert entry.cls is GMM and entry.config_cls is GMMConfig
    assert model_config("gmm") == GMMConfig(components=10, likelihood="gaussian")
    assert "guide" not in vars(GMM)  # nothing to guide once c is enumerated
    gmm = _gmm()
    assert gmm.observed_sites == ("x",) and gmm.likelihood.name == "gaussian"


@pytest.mark.parametrize("fields, message", [
    ({"likelihood": "bernoulli"}, "likelihood must be 'gaussian'.*'bernoulli'"),
    ({"components": 0}, "components must be at least 1, got 0"),
    ({"min_scale": 0.0}, "min_scale must be positive, got 0.0"),
    ({"min_scale": 0.5}, "min_scale 0.5 must be below the initial scale"),
])
def test_bad_configs_name_the_problem(fields, message):
    with pytest.raises(ValueError, match=message):
        GMM(GMMConfig(**fields), torch.Size([8, 8]))


def test_parameters_have_the_documented_shapes_and_start():
    gmm = _gmm(components=4, event_shape=(2, 3))
    assert gmm.loc.shape == gmm.scale.shape == (4, 6) and gmm.logits.shape == (4,)
    torch.testing.assert_close(gmm.weights, torch.full((4,), 0.25))
    torch.testing.assert_close(gmm.scale, torch.full((4, 6), 0.3))
    assert gmm.component_means().shape == (4, 2, 3)
    assert 0.0 < gmm.loc.min() and gmm.loc.max() < 1.0  # Normal(0.5, 0.1): 24 draws within 5 sd
    assert not torch.equal(gmm.loc[0], gmm.loc[1])  # the spread breaks the symmetry
    torch.testing.assert_close(_gmm(components=4, event_shape=(2, 3)).loc, gmm.loc)  # seeded: repeatable


def test_scale_never_falls_below_the_floor():
    gmm = _gmm(min_scale=0.02)
    with torch.no_grad():
        gmm.raw_scale.fill_(-50.0)
    assert torch.all(gmm.scale >= 0.02) and torch.allclose(gmm.scale, torch.tensor(0.02))


def test_sampling_draws_components_by_weight_and_points_around_their_means():
    gmm = _gmm(components=3, event_shape=(2, 2))
    with torch.no_grad():
        gmm.logits.copy_(torch.tensor([0.6, 0.3, 0.1]).log())
        gmm.loc.copy_(torch.tensor([[0.0] * 4, [5.0] * 4, [-5.0] * 4]))
        gmm.raw_scale.fill_(0.0)  # sigma = softplus(0) + 0.05
    pyro.set_rng_seed(0)
    trace = poutine.trace(gmm.model).get_trace(None, batch_size=6000)
    c, x = trace.nodes["c"]["value"], trace.nodes["x"]["value"]
    assert c.shape == (6000,) and x.shape == (6000, 2, 2)
    freq = torch.bincount(c, minlength=3).float() / 6000
    torch.testing.assert_close(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.02, rtol=0)  # sd of freq < 0.007
    z = (x.reshape(6000, 4) - gmm.loc[c]) / gmm.scale[c]
    torch.testing.assert_close(z.mean(), torch.tensor(0.0), atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(), torch.tensor(1.0), atol=0.02, rtol=0)


def test_sample_observations_mean_is_the_drawn_components_mean():
    gmm = _gmm(components=5)
    pyro.set_rng_seed(1)
    means = sample_observations(gmm, 20, mean=True)
    assert means.shape == (20, 8, 8)
    flat = gmm.loc.detach()
    matches = (means.reshape(20, 1, 64) == flat).all(-1)  # each mean is exactly one component's mean
    assert torch.all(matches.sum(-1) == 1)
