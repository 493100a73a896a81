"""The automatic amortized guide: its sites, shapes and supports match the model's, for every family.

Models are the small ones of ``auto_guide_models`` (every kind of support, a hierarchy, globals,
nested plates, discrete latents); known answers for the densities come from their change of
variables written out by hand.
"""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from auto_guide_models import (
    DATA_DIM, GLOBAL_SITES, LOCAL_SITES, DiscreteModel, DynamicSupportModel, MixedModel, NestedModel,
    PositiveBoundedModel, SequentialPlateModel, SubsampledModel,
)
from guides import FAMILIES, AmortizedGuide, GuideConfig, family_names
from guides.families import GLOBAL_INIT_SCALE, build_family
from guides.joint_families import JOINT_SITE
from guides.sites import find_latent_sites
from ppl_models.objectives import build_objective

AUTO = ("normal", "lowrank", "iaf")
SMALL = dict(hidden=(16,), flow_hidden=(16,))


@pytest.fixture(autouse=True)
def _seeded():
    pyro.set_rng_seed(0)


def _x(n=5, seed=1):
    return torch.randn(n, DATA_DIM, generator=torch.Generator().manual_seed(seed))


def _traces(model, guide, x, **kw):
    guide_trace = poutine.trace(guide).get_trace(x, **kw)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x, **kw)
    return guide_trace, model_trace


def _samples(trace, auxiliary=False):
    return {n: s for n, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)
            and bool(s["infer"].get("is_auxiliary")) == auxiliary}


def test_families_registry_matches_the_public_list():
    assert FAMILIES == ("default", *family_names()) == ("default", "normal", "lowrank", "iaf")


@pytest.mark.parametrize("family", AUTO)
def test_guide_sites_shapes_and_supports_match_the_model(family):
    m = MixedModel()
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family=family, **SMALL))
    x = _x()
    guide_trace, model_trace = _traces(m.model, guide, x)
    sites = _samples(guide_trace)
    assert set(sites) == set(LOCAL_SITES) | set(GLOBAL_SITES)
    for name, site in sites.items():
        fn = model_trace.nodes[name]["fn"]
        assert site["value"].shape == fn.batch_shape + fn.event_shape, name
        assert bool(fn.support.check(site["value"]).all()), f"{name} left its support"
        assert site["fn"].has_rsample
    frames = {n: {f.name for f in s["cond_indep_stack"]} for n, s in sites.items()}
    assert all(frames[n] == {"data"} for n in LOCAL_SITES) and all(not frames[n] for n in GLOBAL_SITES)
    aux = _samples(guide_trace, auxiliary=True)
    assert set(aux) == (set() if family == "normal" else {JOINT_SITE})
    if aux:  # z2, z1 (2), b, p (simplex of 3: 2 unconstrained), u: 7 numbers per data point
        assert aux[JOINT_SITE]["value"].shape == (5, 7)


@pytest.mark.parametrize("family", AUTO)
def test_elbo_is_finite_and_reaches_every_guide_parameter(family):
    m = MixedModel()
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family=family, **SMALL))
    loss = pyro.infer.Trace_ELBO().differentiable_loss(m.model, guide, _x())
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in guide.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), f"no gradient for {name}"


@pytest.mark.parametrize("family", AUTO)
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_repository_objectives_with_vectorized_particles(family, objective):
    m = MixedModel()
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family=family, **SMALL))
    loss = build_objective(objective, 3).differentiable_loss(m.model, guide, _x())
    loss.backward()
    assert torch.isfinite(loss) and guide.trunk[0][0].weight.grad.abs().sum() > 0


def test_normal_family_with_analytic_kl():
    m = MixedModel()
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family="normal", **SMALL))
    assert torch.isfinite(build_objective("elbo-analytic").differentiable_loss(m.model, guide, _x()))


@pytest.mark.parametrize("family", ["lowrank", "iaf"])
def test_joint_log_density_is_log_q_of_the_constrained_values(family):
    """Sum of the guide's log-densities = log q(u) - log|dz/du|, with u = (log z, logit b)."""
    m = PositiveBoundedModel()
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family=family, **SMALL))
    x = _x()
    trace = poutine.trace(guide).get_trace(x)
    trace.compute_log_prob()
    total = sum(s["log_prob"] for n, s in trace.nodes.items() if n in ("z", "b", JOINT_SITE))
    z, b = trace.nodes["z"]["value"], trace.nodes["b"]["value"]
    u = torch.cat([z.log(), torch.logit(b).unsqueeze(-1)], -1)
    log_q_u = trace.nodes[JOINT_SITE]["fn"].log_prob(u)
    expected = log_q_u - z.log().sum(-1) - (b * (1 - b)).log()
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(trace.nodes[JOINT_SITE]["value"], u, rtol=1e-5, atol=1e-5)


def test_normal_family_sites_are_independent():
    """Each site of the normal family is its own Normal: its density reads no other site's value."""
    m = MixedModel()
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family="normal", **SMALL))
    trace = poutine.trace(guide).get_trace(_x())
    values = [trace.nodes[n]["value"] for n in LOCAL_SITES]
    for name in LOCAL_SITES:
        density = trace.nodes[name]["fn"].log_prob(trace.nodes[name]["value"].detach()).sum()
        grads = torch.autograd.grad(density, values, allow_unused=True, retain_graph=True)
        assert all(g is None for g in grads), name


def test_global_sites_get_free_parameters():
    m = MixedModel()
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family="lowrank", **SMALL))
    globals_ = {g.site.name: g for g in guide.globals}
    assert set(globals_) == set(GLOBAL_SITES)
    assert globals_["w"].loc.shape == (DATA_DIM,) and globals_["sigma"].loc.shape == ()
    scale = torch.nn.functional.softplus(globals_["w"].raw_scale)
    torch.testing.assert_close(scale, torch.full((DATA_DIM,), GLOBAL_INIT_SCALE), rtol=1e-4, atol=1e-4)
    # sigma ~ HalfNormal(1): the location starts near log(median) = log(0.674) in the unconstrained space
    assert abs(float(globals_["sigma"].loc.detach()) - (-0.39)) < 0.6
    # q(w) does not read x: the same random draw gives the same w for different data
    draws = []
    for x in (_x(seed=1), 10 * _x(seed=2)):
        pyro.set_rng_seed(3)
        draws.append(poutine.trace(guide).get_trace(x).nodes["w"]["value"])
    torch.testing.assert_close(draws[0], draws[1])


def test_nested_plate_inside_the_data_plate():
    m = NestedModel()
    for family in AUTO:
        guide = AmortizedGuide(m.model, _x(2), GuideConfig(family=family, hidden=(8,), flow_hidden=(8,)))
        elbo = pyro.infer.Trace_ELBO(num_particles=2, vectorize_particles=True, max_plate_nesting=2)
        assert torch.isfinite(elbo.differentiable_loss(m.model, guide, _x()))
        guide_trace, model_trace = _traces(m.model, guide, _x())
        z = guide_trace.nodes["z"]
        assert z["value"].shape == (3, 5, 2) and bool((z["value"] > 0).all())
        assert {(f.name, f.dim) for f in z["cond_indep_stack"]} == {("data", -1), ("parts", -2)}


def test_unenumerated_discrete_latent_is_an_error_naming_the_site():
    with pytest.raises(ValueError, match=r"'c' is discrete \(Categorical\).*enumerate.*parallel"):
        AmortizedGuide(DiscreteModel(enumerate=False).model, _x(2), GuideConfig())


def test_enumerated_discrete_latent_is_skipped_and_summed_out():
    m = DiscreteModel(enumerate=True)
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(**SMALL))
    x = _x()
    trace = poutine.trace(guide).get_trace(x)
    assert not [n for n, s in trace.nodes.items() if s["type"] == "sample"]  # no latent and no plate site
    loss = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(m.model, guide, x)
    mixture = dist.MixtureSameFamily(dist.Categorical(logits=torch.zeros(3)),
                                     dist.Normal(m.mu, 1.0).to_event(1))
    torch.testing.assert_close(loss, -mixture.log_prob(x).sum())


@pytest.mark.parametrize("family", AUTO)
def test_enumerated_discrete_next_to_a_continuous_latent(family):
    m = DiscreteModel(enumerate=True, continuous=True)
    guide = AmortizedGuide(m.model, _x(2), GuideConfig(family=family, **SMALL))
    assert guide.site_names == ["z"]
    loss = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(m.model, guide, _x())
    assert torch.isfinite(loss)


@pytest.mark.parametrize("model, message", [
    (DynamicSupportModel(), r"support of latent site 'z1'.*depends on another latent"),
    (SequentialPlateModel(), r"'z_0' sits in the sequential plate 'parts'"),
    (SubsampledModel(), r"'w' sits in the subsampled plate 'components' \(size 3 of 10\)"),
])
def test_unsupported_models_are_named_errors(model, message):
    with pytest.raises(ValueError, match=message):
        AmortizedGuide(model.model, _x(2), GuideConfig())


def test_config_errors():
    with pytest.raises(ValueError, match="unknown guide family 'flowy'; choose one of default, normal, lowrank, iaf"):
        GuideConfig(family="flowy")
    with pytest.raises(ValueError, match="choose one of normal, lowrank, iaf"):
        build_family("flowy", [], 3, GuideConfig())
    with pytest.raises(ValueError, match="rank must be at least 1, got 0"):
        GuideConfig(rank=0)
    with pytest.raises(ValueError, match="activation 'swish'"):
        GuideConfig(activation="swish")
    assert GuideConfig(hidden=[8, 4]).hidden == (8, 4)  # JSON lists become tuples
    with pytest.raises(ValueError, match=r"flow_hidden width must be at least the joint latent size 7"):
        AmortizedGuide(MixedModel().model, _x(2), GuideConfig(family="iaf", flow_hidden=(6,)))


def test_finding_sites_does_not_move_the_global_random_stream():
    m, x = MixedModel(), _x(2)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    find_latent_sites(m.model, x)
    torch.testing.assert_close(torch.rand(3), expected)
