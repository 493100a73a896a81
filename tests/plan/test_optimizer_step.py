"""The plan's direct fused-Adam step (``ppl_models.plan.optimizer_step``): bit-identical to
``optimizer.step()`` wherever it steps, and ``optimizer.step()`` itself wherever it cannot be exact."""

from __future__ import annotations

import pytest
import torch
import torch.optim.optimizer as torch_optimizer
from torch import nn

from ppl_models.plan.optimizer_step import DirectAdamStep, TorchStep, stepper


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))


def pair(**adam) -> tuple[nn.Module, torch.optim.Adam, nn.Module, torch.optim.Adam]:
    """Two equal networks, each with a fused Adam of the same settings (two groups: decay on the weights only)."""
    out = []
    for _ in range(2):
        m = net()
        groups = [{"params": [m[0].weight, m[2].weight], "weight_decay": 0.1}, {"params": [m[0].bias, m[2].bias]}]
        out += [m, torch.optim.Adam(groups, lr=0.05, fused=True, **adam)]
    return tuple(out)


def backward(m: nn.Module, seed: int) -> None:
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(seed))
    m(x).pow(2).sum().backward()


def same(a: nn.Module, b: nn.Module, oa: torch.optim.Optimizer, ob: torch.optim.Optimizer) -> bool:
    params = all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
    return params and sa.keys() == sb.keys() and all(
        torch.equal(sa[i][k], sb[i][k]) for i in sa for k in ("step", "exp_avg", "exp_avg_sq"))


def lockstep(a: nn.Module, oa: torch.optim.Optimizer, b: nn.Module, ob: torch.optim.Optimizer,
             direct: DirectAdamStep, batches) -> None:
    """Step ``a`` with ``oa.step()`` and ``b`` with ``direct`` on the same gradients; after each step both
    must hold the same parameters and optimizer state, bit for bit."""
    for i in batches:
        for m in (a, b):
            m.zero_grad(set_to_none=True)
            backward(m, i)
        oa.step()
        direct.step()
        assert same(a, b, oa, ob), f"step {i}"


def test_steps_are_bit_identical_to_optimizer_step_through_a_changed_learning_rate():
    a, oa, b, ob = pair()
    direct = DirectAdamStep.of(ob)
    assert direct is not None
    for i in range(6):
        if i == 3:  # a schedule changing the rate between steps (as ppl_models.train.schedules does)
            for o in (oa, ob):
                for g in o.param_groups:
                    g["lr"] *= 0.3
        for m, o, zero in ((a, oa, lambda: oa.zero_grad(set_to_none=True)), (b, ob, direct.zero_grad)):
            zero()
            assert all(p.grad is None for p in m.parameters())
            backward(m, i)
        oa.step()
        direct.step()
        assert same(a, b, oa, ob), f"step {i}"
    assert float(ob.state[b[0].weight]["step"]) == 6


def test_a_parameter_without_a_gradient_is_stepped_as_adam_steps_it():
    """Adam skips a parameter whose gradient is None; the direct step then hands the step to Adam."""
    a, oa, b, ob = pair()
    direct = DirectAdamStep.of(ob)
    lockstep(a, oa, b, ob, direct, range(2))
    for m in (a, b):
        m.zero_grad(set_to_none=True)
        backward(m, 2)
        m[2].bias.grad = None
    oa.step()
    direct.step()
    assert same(a, b, oa, ob)
    assert float(ob.state[b[2].bias]["step"]) == 2


def test_hooks_run_as_optimizer_step_runs_them_and_a_clipping_pre_hook_is_exact():
    a, oa, b, ob = pair()
    direct = DirectAdamStep.of(ob)
    calls = {id(oa): [], id(ob): []}

    def hooks(m: nn.Module, o: torch.optim.Optimizer) -> None:
        def pre(opt, args, kwargs):
            calls[id(opt)].append(("pre", len(args), args[0] is opt, kwargs))
            torch.nn.utils.clip_grad_norm_(list(m.parameters()), 0.5)  # in place, as the trainer's StepHooks

        def post(opt, args, kwargs):
            calls[id(opt)].append(("post", len(args), args[0] is opt, kwargs))
        o.register_step_pre_hook(pre)
        o.register_step_post_hook(post)

    hooks(a, oa)
    hooks(b, ob)
    lockstep(a, oa, b, ob, direct, range(3))
    assert calls[id(oa)] == calls[id(ob)] == [("pre", 1, True, {}), ("post", 1, True, {})] * 3


@pytest.mark.parametrize("hook", ["new-arguments", "drops-a-gradient"])
def test_a_pre_hook_that_changes_the_step_gets_adam_s_own_step(hook):
    """A pre-hook may hand ``step`` new arguments (here a closure) or remove a gradient: then the fused kernel
    alone would not be ``Adam.step``, which runs instead, with every hook run once, as ``optimizer.step()``."""
    a, oa, b, ob = pair()
    direct = DirectAdamStep.of(ob)
    closures, posts = {id(oa): 0, id(ob): 0}, {id(oa): [], id(ob): []}

    def pre(opt, args, kwargs):
        if hook == "drops-a-gradient":
            if opt.state:  # from the second step on: the first creates every parameter's state
                opt.param_groups[1]["params"][1].grad = None
            return None

        def closure():
            closures[id(opt)] += 1
        return (*args, closure), kwargs

    for o in (oa, ob):
        o.register_step_pre_hook(pre)
        o.register_step_post_hook(lambda opt, args, kwargs: posts[id(opt)].append(len(args)))
    lockstep(a, oa, b, ob, direct, range(3))
    assert closures[id(oa)] == closures[id(ob)] == (3 if hook == "new-arguments" else 0)
    assert posts[id(oa)] == posts[id(ob)] == [2 if hook == "new-arguments" else 1] * 3


def test_a_state_loaded_from_a_checkpoint_is_the_one_stepped():
    a, oa, b, ob = pair()
    direct = DirectAdamStep.of(ob)
    lockstep(a, oa, b, ob, direct, range(2))
    saved = {k: v.clone() if torch.is_tensor(v) else v for k, v in b.state_dict().items()}, ob.state_dict()
    b.load_state_dict(saved[0])
    ob.load_state_dict(saved[1])  # new state tensors: a cached list would step the old ones
    lockstep(a, oa, b, ob, direct, range(2, 4))


def test_a_step_wrapped_on_the_instance_is_called():
    """As an LR scheduler wraps ``optimizer.step`` to count its calls: the wrapper must see every step."""
    a, oa, b, ob = pair()
    direct = DirectAdamStep.of(ob)
    counted, inner = [], ob.step

    def counting_step(*args, **kwargs):
        counted.append(1)
        return inner(*args, **kwargs)
    ob.step = counting_step
    lockstep(a, oa, b, ob, direct, range(3))
    assert len(counted) == 3


@pytest.mark.parametrize("make", [
    lambda p: torch.optim.SGD(p, lr=0.1),
    lambda p: torch.optim.Adam(p, lr=0.1),  # not fused
    lambda p: torch.optim.Adam(p, lr=0.1, fused=True, amsgrad=True),
    lambda p: torch.optim.Adam(p, lr=0.1, fused=True, maximize=True),
    lambda p: torch.optim.Adam(p, lr=torch.tensor(0.1), fused=True),
    lambda p: torch.optim.AdamW(p, lr=0.1, fused=True),
], ids=["sgd", "unfused", "amsgrad", "maximize", "tensor-lr", "adamw"])
def test_what_it_does_not_cover_keeps_the_optimizer_s_own_step(make):
    opt = make(net().parameters())
    assert DirectAdamStep.of(opt) is None
    assert isinstance(stepper(opt), TorchStep)


def test_stepper_takes_the_direct_step_only_when_asked():
    opt = torch.optim.Adam(net().parameters(), lr=0.1, fused=True)
    assert isinstance(stepper(opt), DirectAdamStep)
    assert isinstance(stepper(opt, direct=False), TorchStep)


@pytest.mark.parametrize("module, name", [(torch, "_fused_adam_"), (torch_optimizer, "_global_optimizer_pre_hooks")],
                         ids=["fused-kernel", "global-hooks"])
def test_a_torch_without_the_private_parts_it_calls_keeps_the_optimizer_s_own_step(module, name, monkeypatch):
    monkeypatch.delattr(module, name)
    assert isinstance(stepper(torch.optim.Adam(net().parameters(), lr=0.1, fused=True)), TorchStep)
