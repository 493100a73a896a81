"""The execution plan (``ppl_models.plan``): exact against the Pyro path for every registered model it
supports, a one-line reason for every one it does not, and the same training run bit for bit."""

from __future__ import annotations

from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn
from torch._dynamo.utils import counters

import ppl_models.api as api
from ppl_models.cli.main import main
from ppl_models.inference.strategy import fused_adam, svi_step
from ppl_models.objectives import build_objective
from ppl_models.plan import ExecutionPlan, unsupported
from ppl_models.plan import plan as plan_module
from ppl_models.registry import available_models, build_model, get_model, model_config
from ppl_models.train.config import TrainConfig

EVENT = (8, 8)
OBJECTIVES = [("elbo", 1, "standard"), ("elbo-analytic", 1, "standard"), ("elbo", 3, "standard"),
              ("iwae", 5, "standard"), ("iwae", 5, "stl"), ("iwae", 5, "dreg")]
# Registered models and why the plan refuses them (None: it runs them); labelled and adversarial models are
# refused by the trainer before the plan is built (see test_the_trainer_names_why_it_keeps_the_pyro_path).
EXPECTED = {"vae": None, "conv_vae": None, "two_layer_vae": None, "autoencoder": None, "pixelcnn": None,
            "pixelrnn": None, "beta_vae": "guide site 'z' has a scale (4.0)", "gmm": "the model has enumerated sites",
            "m2": "the model has enumerated sites"}
NOT_SVI = {"gan", "cvae"}  # adversarial training; cvae's default condition reads labels


def test_every_built_in_model_is_classified():
    """(User model files that other tests register come from elsewhere: their source is a path.)"""
    built_in = {name for name in available_models() if get_model(name).source.startswith("ppl_models.")}
    assert built_in == set(EXPECTED) | NOT_SVI


def batch(n: int = 16) -> torch.Tensor:
    return torch.bernoulli(torch.rand(n, *EVENT, generator=torch.Generator().manual_seed(1)))


def fresh(name: str, objective: tuple) -> tuple[nn.Module, object, torch.optim.Optimizer]:
    torch.manual_seed(0)
    module = build_model(name, model_config(name), EVENT)
    return module, build_objective(*objective), fused_adam(module, 1e-2)


def applicable(name: str, objective: tuple) -> bool:
    """The objective takes this model at all (STL and DReG need sampled, independent guide sites)."""
    return objective[2] == "standard" or name in ("vae", "conv_vae", "autoencoder")


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: "-".join(map(str, o)))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_plan_steps_equal_the_pyro_path_bit_for_bit(name, objective):
    """Three SVI steps through the eager plan (its direct Adam step included) end with exactly the parameters
    of three Pyro-path steps from the same seed; a model the plan does not support gets its reason."""
    if not applicable(name, objective):
        pytest.skip("the objective itself refuses this model")
    x = batch()
    with pyro.validation_enabled(False):
        module, obj, opt = fresh(name, objective)
        plan, reason = ExecutionPlan.build(obj, module, opt, x)
        if EXPECTED[name] is not None:
            assert plan is None and reason == EXPECTED[name]
            return
        assert plan is not None, reason
        assert type(plan.stepper).__name__ == "DirectAdamStep"  # steps 2 and 3 are its (1 creates Adam's state)
        torch.manual_seed(5)
        plan_losses = [plan.step(x)[0] for _ in range(3)]
        planned = {k: v.clone() for k, v in module.state_dict().items()}
        module, obj, opt = fresh(name, objective)
        torch.manual_seed(5)
        pyro_losses = [svi_step(obj, module, opt, x) for _ in range(3)]
    assert [float(a) for a in plan_losses] == [float(b) for b in pyro_losses]
    assert all(torch.equal(planned[k], v) for k, v in module.state_dict().items())


def test_the_compiled_plan_matches_the_pyro_path_within_its_tolerance():
    """Under torch.compile the loss and gradients agree within COMPILED_RTOL (verify() at build). DReG's
    gradient hooks do not survive compilation: verify() catches the wrong gradient and the plan runs eagerly."""
    with pyro.validation_enabled(False):
        module, obj, opt = fresh("vae", ("iwae", 5, "standard"))
        plan, reason = ExecutionPlan.build(obj, module, opt, batch(), compiled=True, check_every=2)
        assert plan is not None and reason == "torch.compile" and plan.compiled
        for _ in range(2):  # the second step re-verifies within the tolerance
            loss, why = plan.step(batch())
            assert why is None and torch.isfinite(loss)
        module, obj, opt = fresh("vae", ("iwae", 5, "dreg"))
        plan, reason = ExecutionPlan.build(obj, module, opt, batch(), compiled=True)
    assert plan is not None and not plan.compiled
    assert reason.startswith("eager; torch.compile was refused: the plan's gradient of"), reason


@pytest.mark.parametrize("name", ["two_layer_vae", "autoencoder", "conv_vae"])
def test_every_model_s_compiled_plan_draws_the_pyro_path_s_random_numbers(name):
    """With two sampled layers, Inductor's own random lowering drew other numbers than eager (the two-layer
    VAE's loss was off by 2e-4 relative); the plan compiles with ATen's random ops, so every model passes."""
    with pyro.validation_enabled(False):
        module, obj, opt = fresh(name, ("elbo", 1))
        plan, reason = ExecutionPlan.build(obj, module, opt, batch(), compiled=True, check_every=1)
        assert reason == "torch.compile", reason
        loss, why = plan.step(batch())
        assert why is None and torch.isfinite(loss)


class SmallModel(nn.Module):
    """A user model: one latent, Bernoulli pixels; ``variant`` switches on a feature the plan refuses or handles."""

    observed_sites = ("x",)

    def __init__(self, variant: str = ""):
        super().__init__()
        self.variant = variant
        self.dec = nn.Linear(2, 64)
        self.enc = nn.Linear(64, 4)

    def model(self, x=None, batch_size=None):
        n = x.shape[0]
        size = n // 2 if self.variant == "subsample" else None
        with pyro.plate("data", n, subsample_size=size):
            z = pyro.sample("z", dist.Normal(torch.zeros(n if size is None else size, 2), 1.0).to_event(1))
            logits = self.dec(z).reshape(-1, *EVENT)
            if self.variant == "factor":
                pyro.factor("penalty", -(z ** 2).sum(-1))  # reached through pyro.primitives.sample
            obs = x if size is None else x[:size]
            mask = torch.ones(obs.shape[0], dtype=torch.bool) if self.variant == "mask" else None
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(2), obs=obs, obs_mask=mask)

    def guide(self, x=None, batch_size=None):
        n = x.shape[0]
        size = n // 2 if self.variant == "subsample" else None
        with pyro.plate("data", n, subsample_size=size):
            out = self.enc(x.reshape(n, -1))[: n if size is None else size]
            if self.variant == "discrete":
                pyro.sample("z", dist.Bernoulli(logits=out[:, :2]).to_event(1))
            else:
                pyro.sample("z", dist.Normal(out[:, :2], out[:, 2:].exp()).to_event(1))


@pytest.mark.parametrize("variant, reason", [
    ("subsample", "plate 'data' subsamples"),
    ("mask", "model site 'x_observed' has a mask"),  # Pyro splits an obs_mask site into x_observed + x_unobserved
    ("discrete", "guide site 'z' is not reparameterized"),
])
def test_what_the_plan_does_not_support_is_named(variant, reason):
    module = SmallModel(variant)
    with pyro.validation_enabled(False):
        found = unsupported(build_objective("elbo"), module, batch())
    assert found is not None and reason in found, found


def test_another_effect_handler_in_use_is_named():
    module = SmallModel()
    with pyro.validation_enabled(False), poutine.scale(scale=2.0):
        found = unsupported(build_objective("elbo"), module, batch())
    assert found == "effect handler(s) in use: ScaleMessenger"


def test_pyro_factor_in_a_user_model_is_planned_exactly():
    """pyro.factor calls pyro.primitives.sample, which the handler also replaces: the factor's term is in
    the plan's loss, and the plan verifies bit-identical (else build would return the difference)."""
    torch.manual_seed(0)
    module = SmallModel("factor")
    with pyro.validation_enabled(False):
        plan, reason = ExecutionPlan.build(build_objective("elbo"), module, fused_adam(module, 1e-2), batch())
        assert plan is not None, reason
        torch.manual_seed(3)
        with_factor = plan.loss(batch())
        module.variant = ""
        torch.manual_seed(3)
        without = plan.loss(batch())
    assert not torch.equal(with_factor, without)


def test_a_periodic_check_that_fails_hands_back_to_pyro():
    """With check_every=2, the second step re-verifies; a plan whose loss drifted returns the reason and
    steps nothing (the trainer then takes the Pyro path)."""
    torch.manual_seed(0)
    module = SmallModel()
    obj = build_objective("elbo")
    with pyro.validation_enabled(False):
        plan, _ = ExecutionPlan.build(obj, module, fused_adam(module, 1e-2), batch(), check_every=2)
        assert plan.step(batch())[1] is None
        real = plan._loss
        plan._loss = lambda x: real(x) + 1e-3  # the plan's loss drifts; the Pyro path's does not
        before = {k: v.clone() for k, v in module.state_dict().items()}
        loss, reason = plan.step(batch())
    assert loss is None and reason.startswith("check at plan step 2: the plan's loss")
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_a_compile_run_repeats_the_pyro_run_exactly(tmp_path):
    """ppl train with --compile plan ends with the parameters of the same run without it, and says so."""
    common = dict(data="digits", epochs=2, seed=0, latent_dim=4, progress=False)
    plain = api.train("vae", out=tmp_path / "plain", **common)
    planned = api.train("vae", out=tmp_path / "plan", compile="plan", **common)
    a, b = plain.model.state_dict(), planned.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    events = (tmp_path / "plan" / "events.log").read_text()
    assert "--compile plan: the execution plan (eager), verified against the Pyro path" in events


def test_the_trainer_names_why_it_keeps_the_pyro_path(tmp_path):
    api.train("beta_vae", data="digits", epochs=1, seed=0, latent_dim=2, compile="full", progress=False,
              out=tmp_path / "beta")
    api.train("vae", data="digits", epochs=1, seed=0, latent_dim=2, compile="plan", strategy="semi-amortized",
              local_steps=2, progress=False, out=tmp_path / "semi")
    assert "--compile full: the Pyro path, because guide site 'z' has a scale" in (tmp_path / "beta" / "events.log").read_text()
    assert "the Pyro path, because strategy semi-amortized runs its own steps" in (tmp_path / "semi" / "events.log").read_text()


def test_the_compile_mode_and_partitioner_reach_the_plan_from_the_command_line(tmp_path):
    """``--compile-mode`` and ``--plan-partitioner`` (TrainConfig fields, resumable) are what the plan compiles
    with; the run's events say so. A value neither takes is refused by name."""
    args = ["train", "vae", "--data", "digits", "--epochs", "1", "--latent-dim", "2", "--hidden", "16",
            "--compile", "full", "--compile-mode", "reduce-overhead", "--plan-partitioner", "min-cut",
            "--no-progress", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    events = (tmp_path / "run" / "events.log").read_text()
    assert "the execution plan (torch.compile, mode reduce-overhead, partitioner min-cut), verified" in events
    with pytest.raises(ValueError, match="plan_partitioner must be one of auto, saved, min-cut, got 'fast'"):
        TrainConfig(plan_partitioner="fast")
    with pytest.raises(ValueError, match="compile_mode must be one of default, reduce-overhead, got 'max-autotune'"):
        TrainConfig(compile_mode="max-autotune")


SHORT_BATCH = str(Path(__file__).with_name("short_batch_model.py")) + ":short-batch"
ELBO = ("elbo", 1, "standard")


def short_batches() -> tuple[torch.Tensor, torch.Tensor]:
    """A full batch and a short one of the short-batch model (the short one reaches its sequential plate)."""
    short = model_config(SHORT_BATCH).short
    return batch(short + 14), batch(short - 1)


def test_a_site_reached_on_a_later_step_hands_that_step_to_pyro_untouched():
    """The plan builds on full batches; a short one reaches the sequential plate: step returns the reason
    naming it, with parameters, gradients, optimizer state and the random state as they were, so the Pyro
    path's step on it ends exactly where a run all on the Pyro path does."""
    full, short = short_batches()
    with pyro.validation_enabled(False):
        module, obj, opt = fresh(SHORT_BATCH, ELBO)
        plan, why = ExecutionPlan.build(obj, module, opt, full)
        assert plan is not None, why
        torch.manual_seed(5)
        assert all(plan.step(full)[1] is None for _ in range(2))
        params = {k: v.clone() for k, v in module.state_dict().items()}
        grads = [p.grad.clone() for p in module.parameters()]
        adam = {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(opt.state.values())}
        rng = torch.get_rng_state()
        loss, reason = plan.step(short)
        assert loss is None
        assert reason == ("the model reached an unsupported site at plan step 3: plate 'short' is used as a "
                          "sequential (iterated) plate")
        assert all(torch.equal(params[k], v) for k, v in module.state_dict().items())
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, module.parameters()))
        assert all(torch.equal(adam[i][k], v) for i, s in enumerate(opt.state.values()) for k, v in s.items())
        assert torch.equal(rng, torch.get_rng_state())
        svi_step(obj, module, opt, short)  # what the trainer does with that step
        mixed = {k: v.clone() for k, v in module.state_dict().items()}
        module, obj, opt = fresh(SHORT_BATCH, ELBO)
        torch.manual_seed(5)
        for xb in (full, full, short):
            svi_step(obj, module, opt, xb)
    assert all(torch.equal(mixed[k], v) for k, v in module.state_dict().items())


def test_under_torch_compile_the_site_still_reaches_step():
    """Dynamo retraces the loss for the short batch's shape and meets the plate: the error still reaches
    step as UnsupportedSite, which hands the step back with the random state as it was."""
    full, short = short_batches()
    with pyro.validation_enabled(False):
        module, obj, opt = fresh(SHORT_BATCH, ELBO)
        plan, how = ExecutionPlan.build(obj, module, opt, full, compiled=True)
        assert plan is not None and how == "torch.compile", how
        assert plan.step(full)[1] is None
        rng = torch.get_rng_state()
        loss, reason = plan.step(short)
    assert loss is None and reason.endswith("at plan step 2: plate 'short' is used as a sequential (iterated) plate")
    assert torch.equal(rng, torch.get_rng_state())


def test_training_goes_back_to_the_pyro_path_at_the_short_batch_and_repeats_the_pyro_run(tmp_path):
    """digits: 1437 training images in batches of 100, the last one 37 (short): the plan runs the first 14
    steps, the 15th goes to the Pyro path, and the run ends exactly where the run without --compile does."""
    common = dict(data="digits", epochs=2, seed=0, batch_size=100, progress=False)
    plain = api.train(SHORT_BATCH, out=tmp_path / "plain", **common)
    planned = api.train(SHORT_BATCH, out=tmp_path / "plan", compile="plan", **common)
    a, b = plain.model.state_dict(), planned.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    events = (tmp_path / "plan" / "events.log").read_text()
    assert "--compile plan: the execution plan (eager), verified against the Pyro path" in events
    assert ("--compile plan: back to the Pyro path: the model reached an unsupported site at plan step 15: "
            "plate 'short' is used as a sequential (iterated) plate") in events


def test_a_changed_batch_shape_recompiles_and_every_step_still_agrees_with_pyro(tmp_path):
    # digits: 1437 training points at batch 100, so every epoch ends with a batch of 37. Checking every step
    # compares each compiled step, before and after the recompilation, with the Pyro path (within 1e-4).
    torch._dynamo.reset()  # else Dynamo may compile the first graph dynamic, having seen another plan's shapes change
    before = counters["stats"]["unique_graphs"]
    run = api.train("vae", out=tmp_path / "run", epochs=2, seed=0, compile="full", plan_check_every=1, device="cpu",
                    progress=False)
    events = (run.path / "events.log").read_text()
    assert "the execution plan (torch.compile, mode default, partitioner saved), verified" in events
    assert "back to the Pyro path" not in events
    assert counters["stats"]["unique_graphs"] - before >= 2  # the batch of 37 got a graph of its own


def test_the_cuda_graph_mode_steps_and_rechecks_on_the_cpu_too():
    # reduce-overhead is CUDA graphs; on CPU tensors Inductor compiles without graphs, so this covers the plan's
    # own part of the mode (a replay marked each step, the loss copied out), not the graphs themselves.
    with pyro.validation_enabled(False):
        module, obj, opt = fresh("vae", ("elbo", 1))
        plan, reason = ExecutionPlan.build(obj, module, opt, batch(), compiled=True, check_every=2,
                                           compile_mode="reduce-overhead")
        assert plan is not None and reason == "torch.compile" and plan.graphs
        for _ in range(2):
            loss, why = plan.step(batch())
            assert why is None and torch.isfinite(loss)


@pytest.mark.skipif(not plan_module.ISOLATED, reason="this torch cannot isolate one torch.compile call's entries")
def test_every_compiled_plan_in_a_process_compiles_its_own_graph(monkeypatch):
    """All plans compile the same code (``ExecutionPlan.loss``); Dynamo's recompile limit (here 1) must count
    per plan, or a later plan would run eagerly while reporting torch.compile."""
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    with pyro.validation_enabled(False):
        for seed in range(3):
            torch.manual_seed(seed)
            module, obj, opt = fresh("vae", ("elbo", 1))
            before = counters["stats"]["unique_graphs"]
            plan, reason = ExecutionPlan.build(obj, module, opt, batch(), compiled=True)
            assert reason == "torch.compile" and plan.step(batch())[1] is None
            assert counters["stats"]["unique_graphs"] > before, f"plan {seed + 1} compiled no graph"


def test_a_compiler_failure_falls_back_to_the_eager_plan(monkeypatch):
    def broken(fn, options=None, **kwargs):
        def run(*args, **kwargs):
            raise RuntimeError("backend exploded\nsecond line")
        return run

    monkeypatch.setattr("ppl_models.plan.plan.torch.compile", broken)
    with pyro.validation_enabled(False):
        module, obj, opt = fresh("vae", ("elbo", 1))
        plan, reason = ExecutionPlan.build(obj, module, opt, batch(), compiled=True)
    assert plan is not None and not plan.compiled
    assert reason == "eager; torch.compile was refused: torch.compile failed: RuntimeError: backend exploded"
