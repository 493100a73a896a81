"""Time one training step of the MLP VAE six ways, interleaved, on the same batch and networks.

1. ``pyro_path``: what ``ppl train`` runs without ``--compile`` (the objective through Pyro's handlers);
2. ``plan``: the execution plan, eager (``--compile plan``);
3. ``plan_compiled``: the plan with its loss under ``torch.compile`` (``--compile full``);
4. ``hand``: the hand-written PyTorch step of ``benchmarks/handwritten.py`` with the same fused Adam;
5. ``hand_compiled``: that step with the hand-written loss under ``torch.compile``;
6. ``stock``: Pyro's ``SVI(..., pyro.optim.Adam, TraceMeanField_ELBO()).step`` (ELBO rows only).

The ELBO rows use the analytic-KL ELBO (``elbo-analytic``), as the hand-written loss does; the IWAE
rows the standard gradient. Rounds alternate between the contenders, in an order shuffled each round
(``step_contenders.time_rounds``), so drifting load and cache effects hit them alike;
each ratio is the median over rounds of the paired ratio to ``hand`` (and, for the plan, to
``hand_compiled``), with its interquartile range. Usage:

    OMP_NUM_THREADS=1 python benchmarks/plan_step.py --device cpu [--rounds 20] [--partitioner auto]
        [--optimizer-step direct|torch] [--cases 0 1] [--json]
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
from handwritten import HandWrittenVAE  # noqa: E402
from step_contenders import paired, time_rounds  # noqa: E402
from stock_svi import stock_svi  # noqa: E402

from ppl_models.inference.strategy import fused_adam, svi_step  # noqa: E402
from ppl_models.objectives import build_objective  # noqa: E402
from ppl_models.plan import ExecutionPlan, partition  # noqa: E402
from ppl_models.registry import build_model, model_config  # noqa: E402
from ppl_models.train.setup import resolve_device  # noqa: E402

CASES = [("elbo-analytic", 1, 16), ("elbo-analytic", 1, 100), ("elbo-analytic", 1, 1024), ("iwae", 5, 100),
         ("iwae", 50, 100)]  # (objective, particles K, batch)


def _hand_step(loss_fn, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    loss = loss_fn(x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def contenders(objective: str, particles: int, x: torch.Tensor, device: torch.device,
               partitioner: str = "auto", direct_step: bool = True) -> tuple[dict, str]:
    """name -> a function running one step, and how the compiled plan was built (its backward keeping the
    tensors ``partitioner`` chooses: ``ppl_models.plan.partition``; the plans' Adam stepped through
    ``ppl_models.plan.optimizer_step.DirectAdamStep`` with ``direct_step``, else ``optimizer.step()``)."""
    pyro.set_rng_seed(0)
    nets = [build_model("vae", model_config("vae"), (28, 28)).to(device) for _ in range(4)]
    hands = [HandWrittenVAE().to(device) for _ in range(2)]
    for hand in hands:
        hand.load_state_dict(nets[0].state_dict())
    for net in nets[1:]:
        net.load_state_dict(nets[0].state_dict())
    objectives = [build_objective(objective, particles) for _ in range(3)]
    optimizers = [fused_adam(m, 1e-3) for m in (*nets, *hands)]
    plan, _ = ExecutionPlan.build(objectives[1], nets[1], optimizers[1], x, direct_step=direct_step)
    compiled, how = ExecutionPlan.build(objectives[2], nets[2], optimizers[2], x, compiled=True,
                                        partitioner=partitioner, direct_step=direct_step)
    if particles == 1:
        hand_loss = hands[0].loss
    else:
        def hand_loss(xb, hand=hands[0]):
            return hand.iwae_loss(xb, particles)
    hand_compiled_loss = torch.compile(hands[1].loss if particles == 1 else
                                       (lambda xb, hand=hands[1]: hand.iwae_loss(xb, particles)))
    fns = {
        "pyro_path": lambda: svi_step(objectives[0], nets[0], optimizers[0], x),
        "plan": lambda: plan.step(x),
        "plan_compiled": lambda: compiled.step(x),
        "hand": lambda: _hand_step(hand_loss, optimizers[4], x),
        "hand_compiled": lambda: _hand_step(hand_compiled_loss, optimizers[5], x),
    }
    if particles == 1:
        svi = stock_svi(nets[3], pyro.infer.TraceMeanField_ELBO())
        fns["stock"] = lambda: svi.step(x)
    return fns, how


def bench(objective: str, particles: int, batch_size: int, device: torch.device, rounds: int, inner: int,
          partitioner: str = "auto", direct_step: bool = True) -> dict:
    """Median ms per step of each contender and the paired ratios, for one case."""
    x = (torch.rand(batch_size, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.13).float().to(device)
    with pyro.validation_enabled(False):
        fns, how = contenders(objective, particles, x, device, partitioner, direct_step)
        times = time_rounds(fns, device, rounds, inner)  # two warm-up rounds: compilation happens in the first

    ratios = {f"{n}/hand": paired(times, n, "hand") for n in fns if n != "hand"}
    ratios.update({f"{n}/hand_compiled": paired(times, n, "hand_compiled") for n in ("plan", "plan_compiled")})
    return {"objective": objective, "particles": particles, "batch_size": batch_size, "compiled_plan": how,
            "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()}, "ratios": ratios}


def main() -> None:
    """Parse flags, run every case, print a Markdown table or JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--inner", type=int, default=10, help="steps per timed block")
    ap.add_argument("--partitioner", default="auto", choices=partition.PARTITIONERS,
                    help="what the compiled plan's backward keeps (auto: saved on the CPU, min-cut on CUDA)")
    ap.add_argument("--optimizer-step", default="direct", choices=("direct", "torch"),
                    help="the plans' Adam step: the fused kernel called directly (the plan's default), or "
                         "optimizer.step() as the hand-written step calls it")
    ap.add_argument("--cases", type=int, nargs="*", help="indices into CASES to run (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    cases = CASES if not args.cases else [CASES[i] for i in args.cases]
    results = [bench(o, k, b, device, args.rounds, args.inner, args.partitioner, args.optimizer_step == "direct")
               for o, k, b in cases]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads, device {device}, "
          f"compiled plan's partitioner {partition.resolve(args.partitioner, device)}, plans' Adam step "
          f"{args.optimizer_step}")
    names = ["pyro_path", "plan", "plan_compiled", "hand", "hand_compiled", "stock"]
    print("| objective | K | batch | " + " | ".join(f"{n} (ms)" for n in names) +
          " | plan / hand | plan_compiled / hand | plan_compiled / hand_compiled | pyro_path / hand | stock / hand |")
    print("|---" * (3 + len(names) + 5) + "|")
    for r in results:
        m, q = r["median_ms"], r["ratios"]
        cells = [f"{m[n]:.3f}" if n in m else "—" for n in names]
        rat = [f"{q[k][0]:.3f} [{q[k][1]:.2f}, {q[k][2]:.2f}]" if k in q else "—" for k in
               ("plan/hand", "plan_compiled/hand", "plan_compiled/hand_compiled", "pyro_path/hand", "stock/hand")]
        print(f"| {r['objective']} | {r['particles']} | {r['batch_size']} | " + " | ".join(cells + rat) + " |")


if __name__ == "__main__":
    main()
