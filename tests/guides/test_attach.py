"""attach_guide: a model keeps its own guide or gets an automatic one, saved with the model; the
automatic guide under the IWAE objective and its STL/DReG estimators."""

import copy
import io

import pyro
import pytest
import torch
from pyro import poutine

from auto_guide_models import DATA_DIM, ConditionalModel, MixedModel
from guides import AmortizedGuide, GuideConfig, attach_guide
from guides.joint_families import JOINT_SITE
from linear_gaussian import LinearGaussian
from ppl_models.models.vae import VAE, VAEConfig
from ppl_models.objectives import build_objective

SHAPE = (8, 8)
SMALL = dict(hidden=(16,), flow_hidden=(16,))



def _vae(family: str, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return attach_guide(VAE(VAEConfig(latent_dim=4, hidden=(16,)), torch.Size(SHAPE)), SHAPE,
                        GuideConfig(family=family, **SMALL))


def _binary(n=6):
    return torch.bernoulli(torch.full((n, *SHAPE), 0.3), generator=torch.Generator().manual_seed(0))


def _guide_values(module, x, seed=7):
    pyro.set_rng_seed(seed)
    trace = poutine.trace(module.guide).get_trace(x)
    return {n: s["value"] for n, s in trace.nodes.items() if s["type"] == "sample"}


def test_default_keeps_the_models_own_guide():
    m = _vae("default")
    assert not hasattr(m, "auto_guide") and "guide" not in vars(m)
    assert m.guide.__func__ is VAE.guide
    assert not any(k.startswith("auto_guide.") for k in m.state_dict())


def test_default_without_a_guide_gets_the_normal_family():
    m = attach_guide(MixedModel(), (DATA_DIM,), GuideConfig(**SMALL))
    assert isinstance(m.auto_guide, AmortizedGuide) and m.auto_guide.family_name == "normal"
    assert set(_guide_values(m, torch.randn(3, DATA_DIM))) >= {"z1", "z2", "w"}


def test_iaf_replaces_the_vae_guide_and_is_part_of_the_module():
    m = _vae("iaf")
    assert m.guide.__self__ is m.auto_guide
    values = _guide_values(m, _binary())
    assert set(values) == {"data", JOINT_SITE, "z"} and values["z"].shape == (6, 4)
    keys = m.state_dict().keys()
    assert any(k.startswith("auto_guide.family.flows.0.") for k in keys)
    assert "auto_guide.family.flows.0.nn.permutation" in keys  # the flow's variable order is saved
    assert not any(k.startswith("guide.") for k in keys)  # the forwarding attribute holds no second copy
    own = {id(p) for p in m.parameters()}
    assert all(id(p) in own for p in m.auto_guide.parameters())
    loss = build_objective("elbo", 2).differentiable_loss(m.model, m.guide, _binary())
    loss.backward()
    assert m.auto_guide.trunk[0][0].weight.grad.abs().sum() > 0 and m.decoder[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["normal", "lowrank", "iaf"])
def test_state_dict_round_trip_gives_the_same_guide(family):
    a, b = _vae(family, seed=0), _vae(family, seed=1)
    x = _binary()
    assert not torch.allclose(_guide_values(a, x)["z"], _guide_values(b, x)["z"])
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(_guide_values(a, x)["z"], _guide_values(b, x)["z"])


def test_deepcopy_and_pickle_keep_the_guide_bound_to_the_copy():
    m = _vae("lowrank")
    for clone in (copy.deepcopy(m), _pickled(m)):
        assert clone.guide.__self__ is clone.auto_guide
        torch.testing.assert_close(_guide_values(clone, _binary())["z"], _guide_values(m, _binary())["z"])


def _pickled(module):
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_guide_takes_the_module_dtype():
    m = attach_guide(LinearGaussian(), (5,), GuideConfig(family="lowrank", hidden=(8,)))
    assert all(p.dtype == torch.float64 for p in m.auto_guide.parameters())
    loss = build_objective("elbo").differentiable_loss(m.model, m.guide, torch.randn(4, 5, dtype=torch.float64))
    assert loss.dtype == torch.float64 and torch.isfinite(loss)


def test_model_keyword_arguments_reach_the_trace_and_labels_are_accepted():
    with pytest.raises(AttributeError):  # the model needs y to run
        attach_guide(ConditionalModel(), (DATA_DIM,), GuideConfig(**SMALL))
    m = attach_guide(ConditionalModel(), (DATA_DIM,), GuideConfig(**SMALL), {"y": torch.zeros(2, dtype=torch.long)})
    x, y = torch.randn(5, DATA_DIM), torch.arange(5)
    loss = pyro.infer.Trace_ELBO().differentiable_loss(m.model, m.guide, x, y=y)
    assert torch.isfinite(loss)


def test_iwae_dreg_with_the_normal_family():
    m = attach_guide(MixedModel(), (DATA_DIM,), GuideConfig(family="normal", **SMALL))
    loss = build_objective("iwae", 5, "dreg").differentiable_loss(m.model, m.guide, torch.randn(6, DATA_DIM))
    loss.backward()
    assert torch.isfinite(loss)
    assert m.auto_guide.family.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["lowrank", "iaf"])
@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_iwae_stl_dreg_refuse_joint_guides(family, estimator):
    m = attach_guide(MixedModel(), (DATA_DIM,), GuideConfig(family=family, **SMALL))
    with pytest.raises(ValueError, match=f"grad_estimator='{estimator}' needs guide sites that do not condition on "
                                         f"each other: the guide derives its sites from the auxiliary site\\(s\\) "
                                         f"\\['{JOINT_SITE}'\\]"):
        build_objective("iwae", 5, estimator).differentiable_loss(m.model, m.guide, torch.randn(6, DATA_DIM))


# A joint guide over real latents has Delta sites of constant log-density, so the dependence test alone
# would pass it, and DReG would weight the model's path gradient by w~^3; the auxiliary site is refused.
@pytest.mark.parametrize("family", ["lowrank", "iaf"])
def test_iwae_dreg_refuses_joint_guides_over_real_latents(family):
    m = attach_guide(LinearGaussian(), (5,), GuideConfig(family=family, **SMALL))
    with pytest.raises(ValueError, match=JOINT_SITE):
        build_objective("iwae", 5, "dreg").differentiable_loss(m.model, m.guide, torch.randn(6, 5, dtype=torch.float64))


def test_the_automatic_guide_reads_labels_one_hot_when_the_model_declares_classes():
    from types import SimpleNamespace

    from pyro import poutine

    blind = attach_guide(ConditionalModel(), (DATA_DIM,), GuideConfig(**SMALL), {"y": torch.zeros(2, dtype=torch.long)})
    labelled = ConditionalModel()
    labelled.config = SimpleNamespace(classes=5)
    labelled = attach_guide(labelled, (DATA_DIM,), GuideConfig(**SMALL), {"y": torch.zeros(2, dtype=torch.long)})
    assert blind.auto_guide.classes is None and labelled.auto_guide.classes == 5
    x = torch.randn(4, DATA_DIM).expand(2, 4, DATA_DIM).reshape(8, DATA_DIM)  # the same 4 points twice

    def q_loc(module, y):
        fn = poutine.trace(module.guide).get_trace(x, y=y).nodes["z"]["fn"]
        return getattr(fn, "base_dist", fn).loc

    y_a, y_b = torch.zeros(8, dtype=torch.long), torch.arange(8) % 5
    assert torch.equal(q_loc(blind, y_a), q_loc(blind, y_b))  # label-blind
    assert not torch.allclose(q_loc(labelled, y_a), q_loc(labelled, y_b))  # q(z | x, y)
    hidden = torch.full((8,), -1)
    assert torch.isfinite(q_loc(labelled, hidden)).all() and torch.isfinite(q_loc(labelled, None)).all()
    loss = pyro.infer.Trace_ELBO().differentiable_loss(labelled.model, labelled.guide, x, y=y_b)
    assert torch.isfinite(loss)
