"""The compiled execution plan: an SVI step without Pyro's general machinery, checked against it.

Built on the first batch (:meth:`ExecutionPlan.build`):

1. **Trace** the model and guide once through Pyro's handlers, as the objective does, to learn the
   sites: names, distributions, shapes, plates, which are observed and which reparameterized.
   What the plan does not implement is refused with a one-line reason, and the run keeps the Pyro
   path: an objective without a plan, enumerated sites, non-reparameterized guide sites, subsample
   scales or masks, other effect handlers in use.
2. **Run** the same model and guide under :class:`~ppl_models.plan.handler.MinimalHandler` from the
   same random state, and require the same sites, values, loss and gradients, bit for bit; a
   difference is a reason too.
3. **Step** with the handler's traces fed to the objective's own ``loss_from_traces`` (the ELBO,
   the analytic-KL ELBO, IWAE with every gradient estimator: the same code as the Pyro path), then
   backward and the optimizer step; with ``compiled``, the loss (and with it its backward graph) runs
   under ``torch.compile`` as one graph. A fused Adam steps through
   :class:`~ppl_models.plan.optimizer_step.DirectAdamStep` (its kernel without ``Optimizer.step``'s
   per-step Python; bit-identical).

The model's Python code runs every step, so its control flow is respected; a changed batch shape
makes Dynamo recompile (its guards), never a wrong answer. With ``check_every = N`` the plan
re-verifies itself against the Pyro path every N steps (bit-identical eager, ``COMPILED_RTOL``
compiled) and falls back to Pyro, naming the difference, if it ever disagrees. A site the plan does
not support that the model reaches only on a later step (a branch that batch takes) hands that step to
the Pyro path too, with nothing stepped and the random state as it was.
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from pyro.poutine.runtime import _PYRO_STACK

from ppl_models.objectives.iwae import IWAE
from ppl_models.objectives.reparam_elbo import ReparamELBO, _enumerated, _sample_sites
from ppl_models.plan import partition
from ppl_models.plan.handler import Frame, MinimalHandler, UnsupportedSite, installed
from ppl_models.plan.optimizer_step import stepper
from ppl_models.rng import TorchRNG

MODES = ("off", "plan", "full")  # off: Pyro path; plan: the plan, eager; full: the plan under torch.compile
COMPILED_RTOL = 1e-4  # relative tolerance of a compiled step's loss and gradients against the Pyro path
BF16_COMPILED_RTOL = 1e-2  # the same under --precision bf16 (8 significant bits: relative spacing 2^-8 = 4e-3)
# Every plan compiles the same code (ExecutionPlan.loss), and Dynamo keeps one list of compiled entries per code
# object: without isolation the 9th plan in a process hit the recompile limit (8) and ran eagerly while reporting
# torch.compile. Newer torch (2.13 here) gives each torch.compile call its own entries; older torch has no option.
ISOLATED = {"isolate_recompiles": True} if "isolate_recompiles" in inspect.signature(torch.compile).parameters \
    else {}


class ExecutionPlan:
    """A model and guide's SVI step through the minimal handler; see the module docstring.

    Args:
        objective: the run's objective (``ReparamELBO`` or ``IWAE``).
        module: the model, an ``nn.Module`` with Pyro ``model`` and ``guide`` methods.
        optimizer: the optimizer the step runs.
        compiled: put the whole step under ``torch.compile``.
        check_every: re-verify against the Pyro path every this many steps (0: never).
        compiled_rtol: the relative tolerance of a compiled plan's checks.
        through: runs the step's loss as ``through(loss_fn, x)`` (DistributedDataParallel's forward, so
            that it all-reduces the gradients in ``backward``); ``None``: ``loss_fn(x)``.
        loss_scale: the factor on the loss before ``backward`` (the world size under DDP, which averages).
        compile_mode: ``torch.compile``'s mode with ``compiled``: ``default``, or ``reduce-overhead`` (CUDA graphs,
            CUDA only: each step marks a new graph replay and copies the loss out of the graph's memory).
        partitioner: which tensors the compiled backward keeps (:mod:`ppl_models.plan.partition`): ``auto``
            (``saved`` on the CPU, Inductor's ``min-cut`` on CUDA), ``saved`` or ``min-cut``; the attribute
            holds the resolved one (``None`` for an eager plan).
        direct_step: step a fused Adam through :class:`~ppl_models.plan.optimizer_step.DirectAdamStep`
            (bit-identical to ``optimizer.step()``); ``False``: ``optimizer.zero_grad`` and ``optimizer.step``.
    """

    def __init__(self, objective, module: torch.nn.Module, optimizer: torch.optim.Optimizer, compiled: bool = False,
                 check_every: int = 0, compiled_rtol: float = COMPILED_RTOL, through: Callable | None = None,
                 loss_scale: float = 1.0, compile_mode: str = "default", partitioner: str = "auto",
                 direct_step: bool = True):
        self.objective, self.module, self.optimizer = objective, module, optimizer
        self.stepper = stepper(optimizer, direct_step)
        self.compiled, self.check_every, self.compiled_rtol = compiled, check_every, compiled_rtol
        self.through, self.loss_scale = through, loss_scale
        self.graphs = compiled and compile_mode == "reduce-overhead"  # CUDA graphs replay into reused memory
        self.steps = 0
        # The loss is compiled (one graph; AOTAutograd compiles its backward with it). zero_grad, backward() and the
        # fused Adam step stay outside: Dynamo breaks the graph at each of them (it does not trace the fused optimizer).
        # fallback_random: the random ops run as ATen's, so the compiled loss draws the eager plan's numbers (with
        # Inductor's own random lowering the two-layer VAE's compiled loss differed from the Pyro path's by 2e-4).
        self.partitioner, self._loss = None, self.loss
        if compiled:  # (the options import Inductor, which an eager plan does not need)
            self.partitioner = partition.resolve(partitioner, _device(module))
            options = {**partition.compile_options(compile_mode, self.partitioner), "fallback_random": True}
            self._loss = torch.compile(self.loss, options=options, **ISOLATED)
        if self.graphs:
            self._compiled, self._loss = self._loss, self._graph_loss

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def build(cls, objective, module: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              compiled: bool = False, check_every: int = 0,
              compiled_rtol: float = COMPILED_RTOL, through: Callable | None = None,
              loss_scale: float = 1.0, compile_mode: str = "default",
              partitioner: str = "auto", direct_step: bool = True) -> tuple["ExecutionPlan | None", str]:
        """The plan for this model, guide and objective on batch ``x``, or ``None`` and the reason it
        cannot have one; the random state is left as it was (so the first real step is unchanged).
        ``compiled_rtol``: how close a compiled plan must come to the Pyro path (eager: bit for bit);
        ``through``, ``loss_scale``, ``compile_mode``, ``partitioner``, ``direct_step``: as the class takes
        them (the checks themselves run locally)."""
        reason = unsupported(objective, module, x)
        if reason is not None:
            return None, reason
        if compiled:  # what Dynamo gets wrong (e.g. DReG's gradient hooks) shows here; then the eager plan
            plan = cls(objective, module, optimizer, True, check_every, compiled_rtol, through, loss_scale,
                       compile_mode, partitioner, direct_step)
            try:
                why_not = plan.verify(x, exact=False)
            except Exception as e:  # noqa: BLE001 - a compiler failure is a reason to run eagerly, not to stop
                why_not = f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

            if why_not is None:
                return plan, "torch.compile"
        plan = cls(objective, module, optimizer, False, check_every, compiled_rtol, through, loss_scale,
                   direct_step=direct_step)
        reason = plan.verify(x, exact=True)
        if reason is not None:
            return None, reason
        return plan, "eager" if not compiled else f"eager; torch.compile was refused: {why_not}"

    def verify(self, x: torch.Tensor, exact: bool) -> str | None:
        """Compare the plan's loss and gradients with the Pyro path's from the same random state; the
        state is restored afterwards. Returns what differs, or ``None``."""
        state = TorchRNG.now()
        try:
            pyro_loss, pyro_grads = self._loss_and_grads(lambda: self.objective.differentiable_loss(
                self.module.model, self.module.guide, x))
            state.restore()
            plan_loss, plan_grads = self._loss_and_grads(lambda: self._loss(x))
        except UnsupportedSite as e:
            return str(e)
        finally:
            state.restore()
        rtol = 0.0 if exact else self.compiled_rtol
        if not _close(plan_loss, pyro_loss, rtol):
            return f"the plan's loss {plan_loss.item()!r} differs from the Pyro path's {pyro_loss.item()!r}"
        for name, a, b in zip(self._names(), plan_grads, pyro_grads):
            if (a is None) != (b is None) or (a is not None and not _close(a, b, rtol)):
                return f"the plan's gradient of {name} differs from the Pyro path's"
        return None

    def _names(self) -> list[str]:
        return [n for n, p in self.module.named_parameters() if p.requires_grad]

    def _loss_and_grads(self, loss_fn) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        params = [p for p in self.module.parameters() if p.requires_grad]
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return loss.detach(), list(grads)

    # -- stepping ---------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The objective's loss on batch ``x``, from the minimal handler's traces of guide and model."""
        handler = MinimalHandler()
        k = self.objective.num_particles
        vectorized = isinstance(self.objective, IWAE) or k > 1
        with installed(handler):
            if vectorized:  # the particle plate left of the model's plates, as the objective's _get_trace
                handler.frames.append(Frame("particles", -(self.objective.model_plate_nesting + 1), k))
            guide_trace = handler.run(self.module.guide, x)
            model_trace = handler.run(self.module.model, x, replay=guide_trace)
        return self.objective.loss_from_traces(model_trace, guide_trace)

    def _update(self, loss: torch.Tensor) -> torch.Tensor:
        """Backward through the plan's ``loss`` and step the optimizer; returns the loss detached."""
        self.stepper.zero_grad()
        (loss * self.loss_scale if self.loss_scale != 1.0 else loss).backward()
        self.stepper.step()
        return loss.detach()

    def step(self, x: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
        """One SVI step on ``x``: ``(loss, None)``, or ``(None, reason)`` when nothing was stepped and the
        caller takes the Pyro path: a periodic check found the plan disagreeing with it, or the model reached
        a site the plan does not support (a branch this batch took). The loss is computed before any
        gradient or optimizer state is touched; on such a site the torch random state is put back as it
        was, so the Pyro path's step draws exactly what it would have drawn."""
        self.steps += 1
        if self.check_every and self.steps % self.check_every == 0:
            reason = self.verify(x, exact=not self.compiled)
            if reason is not None:
                return None, f"check at plan step {self.steps}: {reason}"
        state = TorchRNG.now()
        try:
            loss = self._loss(x) if self.through is None else self.through(self._loss, x)
        except UnsupportedSite as e:
            state.restore()
            return None, f"the model reached an unsupported site at plan step {self.steps}: {e}"
        return self._update(loss), None

    def _graph_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The compiled loss under CUDA graphs: a new replay begins, and the loss leaves the graph's memory."""
        torch.compiler.cudagraph_mark_step_begin()
        return self._compiled(x).clone()


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters(), torch.empty(0)).device


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    if rtol == 0.0:
        return bool(torch.equal(a, b))
    return bool(torch.allclose(a, b, rtol=rtol, atol=rtol * float(b.abs().max().clamp_min(1.0))))


def unsupported(objective, module: torch.nn.Module, x: torch.Tensor) -> str | None:
    """Why the plan cannot run this step (one line), from Pyro's own traces of it; ``None`` if it can."""
    if not isinstance(objective, (ReparamELBO, IWAE)):
        return f"objective {type(objective).__name__} has no plan"
    if isinstance(objective, ReparamELBO) and objective._general is not None:
        return "the objective already handed this model to Pyro's general ELBO"
    if _PYRO_STACK:
        return f"effect handler(s) in use: {', '.join(type(m).__name__ for m in _PYRO_STACK)}"
    state = TorchRNG.now()
    try:
        model_trace, guide_trace = objective._get_trace(module.model, module.guide, (x,), {})
    finally:
        state.restore()
    if _enumerated(model_trace, guide_trace) or any("_enumerate_dim" in s["infer"] for _, s in _sample_sites(model_trace)):
        return "the model has enumerated sites"
    for trace, who in ((guide_trace, "guide"), (model_trace, "model")):
        for name, site in trace.nodes.items():
            if site["type"] != "sample":
                continue
            if type(site["fn"]).__name__ == "_Subsample":  # every plate records one; a full plate is fine
                if site["fn"].subsample_size is not None and site["fn"].subsample_size != site["fn"].size:
                    return f"{who} plate {name!r} subsamples"
                continue
            if who == "guide" and not site["is_observed"] and not site["fn"].has_rsample:
                return f"guide site {name!r} is not reparameterized"
            if not (isinstance(site["scale"], float) and site["scale"] == 1.0):
                return f"{who} site {name!r} has a scale ({site['scale']})"
            if site["mask"] is not None:
                return f"{who} site {name!r} has a mask"
    return None
