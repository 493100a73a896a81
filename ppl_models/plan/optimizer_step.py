"""The plan's optimizer step: the fused Adam kernel called directly, without ``Optimizer.step``'s Python.

``torch.optim.Adam(fused=True).step()`` runs one kernel over all parameters (``torch._fused_adam_``),
but first, every step, Python that re-derives what does not change between steps: the profiler
context, ``_init_group``'s per-parameter checks and lists, grouping the tensors by device and dtype.
For the MLP VAE's 8 parameters that is about 47 us of a 386 us step on this CPU, and 11 us more in
``zero_grad``; the compiled plan's whole batch-16 step measured 3-9% faster with the direct step
(``benchmarks/optimizer_step.py``; ``benchmarks/RESULTS.md``, "The plan's optimizer step"). Dynamo cannot compile the
fused step, and the compiled single-tensor Adam measured 2.3x slower on the CPU, so the plan does what
compiling it would: :class:`DirectAdamStep` makes the same two calls ``Adam.step`` ends in
(``torch._foreach_add_`` on the step counts, then ``torch._fused_adam_``), with the same arguments, on
the optimizer's own state tensors. The parameters and state are bit-identical to ``optimizer.step()``'s
(``tests/plan/test_optimizer_step.py``), checkpoints hold the same state, and the optimizer's step
hooks (the trainer's gradient clipping and non-finite checks) run as ``step()`` runs them.

A step it cannot take exactly is ``optimizer.step()``'s: the first (Adam creates its state there), a
parameter without a gradient (Adam skips it), parameters on several devices or dtypes, a ``step``
replaced on the instance (an LR scheduler's counting wrapper); after a pre-hook that returned new
arguments or removed a gradient, ``Adam.step``'s own body runs (the hooks do not run twice).
"""

from __future__ import annotations

from itertools import chain

import torch
import torch.optim.optimizer as torch_optimizer

_FIXED = {"amsgrad": False, "maximize": False, "capturable": False, "differentiable": False, "fused": True}
# The private parts of torch this relies on (torch 2.13 has them all); without any of them, no direct step.
_TORCH_NEEDS = ((torch, "_fused_adam_"), (torch_optimizer, "_global_optimizer_pre_hooks"),
                (torch_optimizer, "_global_optimizer_post_hooks"))
_OPTIMIZER_NEEDS = ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks", "_optimizer_step_code")


class DirectAdamStep:
    """``zero_grad(set_to_none=True)`` and ``step()`` of a fused ``torch.optim.Adam``; see the module docstring.

    Build it with :meth:`of`, which returns ``None`` for an optimizer it does not cover (another
    class, or Adam without ``fused=True``, with ``amsgrad``, ``maximize``, ``capturable``, ``differentiable``
    or a tensor learning rate); the caller then uses the optimizer itself.

    Args:
        optimizer: the fused Adam it steps; hyperparameters are read from its ``param_groups`` each step,
            so a changed learning rate takes effect as it does for ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Adam):
        self.optimizer = optimizer

    @classmethod
    def of(cls, optimizer: torch.optim.Optimizer) -> "DirectAdamStep | None":
        """The direct step for ``optimizer``, or ``None`` where it is not a fused Adam it can step exactly."""
        if type(optimizer) is not torch.optim.Adam or not all(hasattr(m, a) for m, a in _TORCH_NEEDS):
            return None
        if not all(hasattr(optimizer, a) for a in _OPTIMIZER_NEEDS):
            return None
        if not hasattr(type(optimizer).step, "__wrapped__"):  # Adam.step's body, under Optimizer's hook wrapper
            return None
        for group in optimizer.param_groups:
            if any(group.get(k) != v for k, v in _FIXED.items()) or group.get("decoupled_weight_decay", False):
                return None
            if isinstance(group["lr"], torch.Tensor) or any(isinstance(b, torch.Tensor) for b in group["betas"]):
                return None
        return cls(optimizer)

    def zero_grad(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)``: every parameter's gradient becomes ``None``."""
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """One Adam step, bit-identical to ``optimizer.step()``: its pre-hooks, the fused kernel (or, where a
        hook changed what the kernel would see, ``Adam.step``'s own body), its post-hooks."""
        opt = self.optimizer
        if "step" in vars(opt) or not self._ready():  # something wrapped this optimizer's step, or see _ready
            opt.step()
            return
        args, kwargs = (opt,), {}  # what Optimizer.step hands its hooks: the call's arguments, self included
        hooked = False
        for hook in chain(torch_optimizer._global_optimizer_pre_hooks.values(),
                          opt._optimizer_step_pre_hooks.values()):
            hooked = True
            result = hook(opt, args, kwargs)
            if result is not None:  # as Optimizer.step: the hook's arguments replace the call's
                args, kwargs = result
        if len(args) == 1 and not kwargs and (not hooked or self._ready()):
            self._fused()
        else:  # a closure to run, or a gradient a hook removed: Adam.step's body, whose hooks have run
            type(opt).step.__wrapped__(*args, **kwargs)
        opt._optimizer_step_code()  # the profilers' marker, as Optimizer.step calls it
        for hook in chain(opt._optimizer_step_post_hooks.values(),
                          torch_optimizer._global_optimizer_post_hooks.values()):
            hook(opt, args, kwargs)

    def _fused(self) -> None:
        """The two calls ``Adam.step`` ends in, per parameter group, on the optimizer's own state."""
        state = self.optimizer.state
        with torch.no_grad():  # as Adam.step runs (its _use_grad)
            for group in self.optimizer.param_groups:
                params = group["params"]
                if not params:
                    continue
                st = [state[p] for p in params]
                steps = [s["step"] for s in st]
                beta1, beta2 = group["betas"]
                torch._foreach_add_(steps, 1)
                torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in st],
                                   [s["exp_avg_sq"] for s in st], [], steps, amsgrad=False, lr=group["lr"],
                                   beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                   maximize=False, grad_scale=None, found_inf=None)

    def _ready(self) -> bool:
        """Whether ``Adam.step`` would run just the fused kernel over every parameter: each has its state
        (Adam creates it on the first step) and a dense gradient (Adam skips a parameter without one), and
        each group's parameters share one device and dtype and are real."""
        state = self.optimizer.state
        for group in self.optimizer.param_groups:
            params = group["params"]
            if not params:
                continue
            for p in params:
                if p.grad is None or p.grad.is_sparse or p not in state:
                    return False
            if len({(p.device, p.dtype) for p in params}) != 1 or torch.is_complex(params[0]):
                return False
        return True


class TorchStep:
    """The optimizer's own ``zero_grad(set_to_none=True)`` and ``step()`` (any optimizer).

    Args:
        optimizer: the optimizer it steps.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer

    def zero_grad(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)``."""
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """``optimizer.step()``."""
        self.optimizer.step()


def stepper(optimizer: torch.optim.Optimizer, direct: bool = True) -> DirectAdamStep | TorchStep:
    """How the plan zeroes gradients and steps ``optimizer``: :class:`DirectAdamStep` for a fused Adam it
    covers when ``direct``, else :class:`TorchStep`."""
    return (DirectAdamStep.of(optimizer) if direct else None) or TorchStep(optimizer)
