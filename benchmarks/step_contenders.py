"""The training steps the step benchmarks time side by side, for the MLP VAE and the conv VAE.

For one model (``vae``: 784-400-50; ``conv_vae``: the DCGAN-style networks of
``ppl_models.models.conv_vae``), objective and batch, every contender starts from the same weights
and steps the same batch:

- ``pyro_path``: ``ppl train`` without ``--compile`` (the objective through Pyro's handlers);
- ``plan`` / ``plan_compiled``: the execution plan, eager and with its loss under ``torch.compile``
  (``--compile plan`` / ``full``), built exactly as the trainer builds it;
- ``hand`` / ``hand_compiled``: the hand-written PyTorch loss of ``benchmarks/handwritten.py`` (the
  ELBO with analytic KL, or the IWAE bound of Burda et al. 2015) over copies of the same networks,
  eager and under ``torch.compile``;
- ``stock``: Pyro's ``SVI(model, guide, pyro.optim.Adam, loss).step`` (``benchmarks/stock_svi.py``)
  with ``TraceMeanField_ELBO`` (analytic KL, as ``elbo-analytic``) or ``RenyiELBO(alpha=0)`` (the
  IWAE bound, Li & Turner 2016) with vectorized particles.

All but ``stock`` use the same fused Adam (``ppl_models.inference.strategy.fused_adam``). Rounds
alternate between the contenders, in an order shuffled each round, so that drifting load and cache
effects hit them alike (:func:`time_rounds`); a ratio is the median over rounds of the per-round
paired ratio (:func:`paired`).
"""

from __future__ import annotations

import copy
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import pyro
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handwritten import HandWrittenVAE  # noqa: E402
from stock_svi import stock_svi  # noqa: E402

from ppl_models.inference.strategy import fused_adam, svi_step  # noqa: E402
from ppl_models.objectives import build_objective  # noqa: E402
from ppl_models.plan import ExecutionPlan  # noqa: E402
from ppl_models.plan.plan import ISOLATED  # noqa: E402
from ppl_models.registry import build_model, model_config  # noqa: E402

CONTENDERS = ("pyro_path", "plan", "plan_compiled", "hand", "hand_compiled", "stock")
EAGER = ("pyro_path", "plan", "hand", "stock")  # the contenders without torch.compile


def sync(device: torch.device) -> None:
    """Wait for the device's queued kernels (CUDA only; the CPU runs synchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def binary_batch(batch_size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """A fixed ``[batch_size, 28, 28]`` batch of binary pixels with MNIST's mean (0.13)."""
    x = torch.rand(batch_size, 28, 28, generator=torch.Generator().manual_seed(seed)) < 0.13
    return x.float().to(device)


class NetsVAE(HandWrittenVAE):
    """:class:`HandWrittenVAE`'s hand-written losses over given networks: ``encoder_net`` maps a
    flattened image ``[B, D]`` to ``[B, 2Z]``, ``decoder`` maps ``[..., Z]`` to logits ``[..., D]``
    (the conv VAE's networks do both, so its hand-written step is the MLP's, line for line)."""

    def __init__(self, encoder_net: nn.Module, decoder: nn.Module):
        nn.Module.__init__(self)
        self.encoder = nn.Module()
        self.encoder.net = encoder_net
        self.decoder = decoder


def hand_written(module: nn.Module) -> NetsVAE:
    """A hand-written VAE over copies of ``module``'s encoder network and decoder (same weights)."""
    return NetsVAE(copy.deepcopy(module.encoder.net), copy.deepcopy(module.decoder))


def stock_loss(objective: str, particles: int) -> pyro.infer.ELBO:
    """Pyro's own loss for ``objective``: ``TraceMeanField_ELBO`` (the analytic-KL ELBO) or
    ``RenyiELBO(alpha=0)`` with vectorized particles (the IWAE bound)."""
    if objective == "iwae":
        return pyro.infer.RenyiELBO(alpha=0, num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    if objective == "elbo-analytic" and particles == 1:
        return pyro.infer.TraceMeanField_ELBO()
    raise ValueError(f"no stock counterpart for objective {objective!r} with {particles} particles")


def _hand_step(loss_fn: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
               x: torch.Tensor) -> None:
    loss = loss_fn(x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def compile_mode(requested: str, device: torch.device) -> str:
    """``requested`` on CUDA; ``reduce-overhead`` (CUDA graphs) falls back to ``default`` elsewhere."""
    return requested if device.type == "cuda" or requested != "reduce-overhead" else "default"


def build(model_name: str, objective: str, particles: int, x: torch.Tensor, names: tuple[str, ...] = CONTENDERS,
          hand_compile_mode: str = "default", plan_compile_mode: str = "default", plan_partitioner: str = "auto"
          ) -> tuple[dict[str, Callable[[], object]], dict[str, str]]:
    """``{contender: one training step on x}`` and notes (how each plan was built, or why it is
    missing). The compiled plan uses ``plan_compile_mode`` (the trainer: ``default``; ``reduce-overhead``,
    CUDA graphs, on CUDA only) and keeps for its backward what ``plan_partitioner`` chooses
    (``ppl_models.plan.partition``); the compiled hand-written step uses ``hand_compile_mode``."""
    device = x.device
    pyro.set_rng_seed(0)
    base = build_model(model_name, model_config(model_name), (28, 28)).to(device)
    fns: dict[str, Callable[[], object]] = {}
    notes: dict[str, str] = {}

    def fresh() -> nn.Module:
        return copy.deepcopy(base)

    if "pyro_path" in names:
        net, obj = fresh(), build_objective(objective, particles)
        opt = fused_adam(net, 1e-3)
        fns["pyro_path"] = lambda: svi_step(obj, net, opt, x)
    for name, compiled in (("plan", False), ("plan_compiled", True)):
        if name in names:
            net = fresh()
            # built under the validation setting time_rounds steps it with: Dynamo guards on Pyro's and torch's
            # validation flags, and a plan compiled under the other setting recompiled at its first timed step
            with pyro.validation_enabled(False):
                plan, how = ExecutionPlan.build(build_objective(objective, particles), net, fused_adam(net, 1e-3), x,
                                                compiled=compiled, compile_mode=compile_mode(plan_compile_mode, device),
                                                partitioner=plan_partitioner)
            notes[name] = how if plan is not None else f"refused: {how}"
            if plan is not None and (not compiled or how == "torch.compile"):
                fns[name] = (lambda p: lambda: p.step(x))(plan)
    for name in ("hand", "hand_compiled"):
        if name in names:
            hand = hand_written(base)
            loss = hand.loss if particles == 1 and objective != "iwae" else (
                lambda xb, h=hand: h.iwae_loss(xb, particles))
            if name == "hand_compiled":
                mode = compile_mode(hand_compile_mode, device)
                # its own Dynamo entries, as each plan has: the cases share the loss's code (ExecutionPlan's ISOLATED)
                loss, notes[name] = torch.compile(loss, mode=mode, **ISOLATED), f"torch.compile(mode={mode!r})"
            opt = fused_adam(hand, 1e-3)
            fns[name] = (lambda f, o: lambda: _hand_step(f, o, x))(loss, opt)
    if "stock" in names:  # clears Pyro's param store: one stock contender is timed at a time
        svi = stock_svi(fresh(), stock_loss(objective, particles))
        fns["stock"] = lambda: svi.step(x)
    return fns, notes


def time_rounds(fns: dict[str, Callable[[], object]], device: torch.device, rounds: int, inner: int,
                warmup: int = 2, budget_s: float | None = None, min_rounds: int = 3) -> dict[str, list[float]]:
    """Seconds per step of each contender, one entry per round of ``inner`` steps each, rounds
    interleaved in an order shuffled each round (seeded): on the CPU the contender run right after
    another one measured up to 5% slower than in other positions (the caches hold the other's
    weights). ``warmup`` rounds (compilation, autotuning) are not recorded. With ``budget_s`` the
    rounds stop once that much time has passed and ``min_rounds`` were recorded."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    with pyro.validation_enabled(False):
        for r in range(warmup + rounds):
            order = list(fns.items())
            random.Random(r).shuffle(order)
            for name, fn in order:
                sync(device)
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                sync(device)
                if r >= warmup:
                    times[name].append((time.perf_counter() - t0) / inner)
            done = r + 1 - warmup
            if budget_s is not None and done >= min_rounds and time.perf_counter() - start > budget_s:
                break
    return times


def paired(times: dict[str, list[float]], name: str, reference: str) -> tuple[float, float, float] | None:
    """Median and quartiles of ``name / reference`` over the rounds, or None if either is missing."""
    if name not in times or reference not in times or not times[name]:
        return None
    ratios = sorted(a / b for a, b in zip(times[name], times[reference]))
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    q = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q[0], q[2]


def describe_device(device: torch.device) -> str:
    """torch, Pyro, the device and the CPU threads, in one line."""
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return (f"torch {torch.__version__}, pyro {pyro.__version__}, device {device} ({what}), "
            f"{torch.get_num_threads()} CPU threads")
