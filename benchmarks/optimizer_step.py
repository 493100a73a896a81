"""What the plan's direct Adam step (``ppl_models.plan.optimizer_step.DirectAdamStep``) saves, side by side.

1. **The optimizer step alone**, on the MLP VAE's parameters with fixed gradients: ``optimizer.step()``
   against ``DirectAdamStep.step()`` (the same fused kernel), and ``optimizer.zero_grad(set_to_none=True)``
   against the direct ``zero_grad`` (each timed with putting the gradients back, the same for both).
2. **The whole training step** of the MLP VAE (analytic-KL ELBO): the hand-written eager step
   (``benchmarks/handwritten.py``, ``optimizer.step()``), the compiled plan as the trainer runs it
   (``direct``) and the same plan stepping with ``optimizer.step()`` (``torch_step``), in one process.

Rounds are interleaved in a shuffled order (``step_contenders.time_rounds``); a ratio is the median of
per-round paired ratios [interquartile range]. Usage:

    OMP_NUM_THREADS=1 python benchmarks/optimizer_step.py [--device cpu] [--batch-sizes 16 100]
        [--rounds 60] [--inner 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_contenders import binary_batch, build, describe_device, paired, time_rounds  # noqa: E402

from ppl_models.inference.strategy import fused_adam  # noqa: E402
from ppl_models.objectives import build_objective  # noqa: E402
from ppl_models.plan import ExecutionPlan  # noqa: E402
from ppl_models.plan.optimizer_step import DirectAdamStep  # noqa: E402
from ppl_models.registry import build_model, model_config  # noqa: E402
from ppl_models.train.setup import resolve_device  # noqa: E402


def _vae(device: torch.device) -> torch.nn.Module:
    pyro.set_rng_seed(0)
    return build_model("vae", model_config("vae"), (28, 28)).to(device)


def optimizer_alone(device: torch.device, rounds: int, inner: int) -> dict:
    """Median us of each optimizer call and the paired ratios direct / torch."""
    nets = [_vae(device) for _ in range(2)]
    grads = [torch.randn_like(p) * 1e-3 for p in nets[0].parameters()]
    opts = [fused_adam(net, 1e-3) for net in nets]
    for net, opt in zip(nets, opts):
        for p, g in zip(net.parameters(), grads):
            p.grad = g.clone()
        opt.step()  # Adam creates its state on the first step
    direct = DirectAdamStep.of(opts[1])

    def regrad(net: torch.nn.Module) -> None:
        for p, g in zip(net.parameters(), grads):
            p.grad = g

    fns = {"step": opts[0].step, "direct_step": direct.step,
           "zero_grad": lambda: (opts[0].zero_grad(set_to_none=True), regrad(nets[0])),
           "direct_zero_grad": lambda: (direct.zero_grad(), regrad(nets[1]))}
    times = time_rounds(fns, device, rounds, inner)
    return {"median_us": {k: statistics.median(v) * 1e6 for k, v in times.items()},
            "ratios": {"direct_step/step": paired(times, "direct_step", "step"),
                       "direct_zero_grad/zero_grad": paired(times, "direct_zero_grad", "zero_grad")}}


def whole_step(batch_size: int, device: torch.device, rounds: int, inner: int) -> dict:
    """Median ms of the hand-written step and the compiled plan with each optimizer step, and paired ratios."""
    x = binary_batch(batch_size, device)
    fns, notes = build("vae", "elbo-analytic", 1, x, names=("hand",))  # the hand-written step, optimizer.step()
    with pyro.validation_enabled(False):  # as time_rounds steps them (Dynamo guards on the setting)
        for name, direct in (("direct", True), ("torch_step", False)):
            net = _vae(device)
            plan, how = ExecutionPlan.build(build_objective("elbo-analytic", 1), net, fused_adam(net, 1e-3), x,
                                            compiled=True, direct_step=direct)
            notes[name] = f"{how}; {type(plan.stepper).__name__}"
            fns[name] = (lambda p: lambda: p.step(x))(plan)
    times = time_rounds(fns, device, rounds, inner)
    return {"batch_size": batch_size, "notes": notes,
            "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
            "ratios": {"direct/hand": paired(times, "direct", "hand"),
                       "torch_step/hand": paired(times, "torch_step", "hand"),
                       "direct/torch_step": paired(times, "direct", "torch_step")}}


def _ratio(q: tuple[float, float, float]) -> str:
    return f"{q[0]:.3f} [{q[1]:.2f}, {q[2]:.2f}]"


def main(argv: list[str] | None = None) -> dict:
    """Parse flags, time both parts, print Markdown tables (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 100])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--inner", type=int, default=5, help="calls per timed block")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    out = {"optimizer": optimizer_alone(device, args.rounds, 4 * args.inner),
           "steps": [whole_step(b, device, args.rounds, args.inner) for b in args.batch_sizes]}
    if args.json:
        print(json.dumps(out, indent=2))
        return out
    print(describe_device(device))
    o = out["optimizer"]
    print("| call | torch (us) | direct (us) | direct / torch |\n|---|---|---|---|")
    for call in ("step", "zero_grad"):
        m = o["median_us"]
        ratio = _ratio(o["ratios"][f"direct_{call}/{call}"])
        print(f"| {call} | {m[call]:.1f} | {m['direct_' + call]:.1f} | {ratio} |")
    print("\n| batch | hand (ms) | compiled plan, direct (ms) | compiled plan, optimizer.step (ms) | direct / hand "
          "| optimizer.step / hand | direct / optimizer.step |\n|---|---|---|---|---|---|---|")
    for r in out["steps"]:
        m, q = r["median_ms"], r["ratios"]
        print(f"| {r['batch_size']} | {m['hand']:.3f} | {m['direct']:.3f} | {m['torch_step']:.3f} | "
              f"{_ratio(q['direct/hand'])} | {_ratio(q['torch_step/hand'])} | {_ratio(q['direct/torch_step'])} |")
    return out


if __name__ == "__main__":
    main()
