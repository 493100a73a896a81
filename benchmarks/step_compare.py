"""Figure 1: one training step of the MLP VAE, IWAE K=5 and K=50, and the conv VAE, six ways, per batch.

The contenders (``benchmarks/step_contenders.py``): the Pyro path, the execution plan eager and
compiled, the hand-written PyTorch step eager and under ``torch.compile`` with the same fused Adam,
and Pyro's stock ``SVI.step``. The ELBO rows use the analytic-KL ELBO (as the hand-written loss
does), the IWAE rows the standard gradient of the bound of Burda et al. (2015). Rounds alternate
between the contenders; each ratio is the median of per-round paired ratios [interquartile range].

Cases run batch 100 first (the targets: plan <= 1.0x hand-written eager, >= 3x faster than stock),
then 1024, then 16; with ``--budget-s`` each case gets an equal share of what is left, and cases
beyond the budget are reported as skipped. Usage:

    python benchmarks/step_compare.py --device cuda [--budget-s 170] [--json]
    python benchmarks/step_compare.py --device cpu --quick     # smoke test: batch 16, eager only
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_contenders import CONTENDERS, EAGER, binary_batch, build, describe_device, paired, time_rounds  # noqa: E402

from ppl_models.plan import partition  # noqa: E402
from ppl_models.train.setup import resolve_device  # noqa: E402

MODELS = [("vae", "elbo-analytic", 1), ("vae", "iwae", 5), ("vae", "iwae", 50), ("conv_vae", "elbo-analytic", 1)]
BATCHES = (100, 1024, 16)  # in order of priority
RATIOS = (("plan", "hand"), ("plan_compiled", "hand"), ("plan_compiled", "hand_compiled"), ("pyro_path", "hand"),
          ("stock", "hand"), ("stock", "plan"), ("stock", "plan_compiled"))


def bench_case(model: str, objective: str, particles: int, batch: int, device: torch.device, names: tuple[str, ...],
               rounds: int, inner: int, budget_s: float | None, hand_compile_mode: str,
               plan_compile_mode: str = "default", plan_partitioner: str = "auto") -> dict:
    """Medians (ms per step), paired ratios and notes of one case."""
    t0 = time.perf_counter()
    x = binary_batch(batch, device)
    fns, notes = build(model, objective, particles, x, names, hand_compile_mode, plan_compile_mode, plan_partitioner)
    build_s = time.perf_counter() - t0
    left = None if budget_s is None else max(budget_s - build_s, 0.0)
    times = time_rounds(fns, device, rounds, inner, budget_s=left)
    return {"model": model, "objective": objective, "particles": particles, "batch_size": batch,
            "compile_modes": {"plan": plan_compile_mode, "hand": hand_compile_mode},
            "plan_partitioner": partition.resolve(plan_partitioner, device),
            "rounds": len(next(iter(times.values()))), "notes": notes, "seconds": round(time.perf_counter() - t0, 1),
            "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
            "ratios": {f"{a}/{b}": r for a, b in RATIOS if (r := paired(times, a, b)) is not None}}


def figure_line(r: dict) -> str:
    """The ``[figure 1]`` line of a case: plan's ms, hand's ms, plan/hand and stock/plan."""
    m, q = r["median_ms"], r["ratios"]
    best = "plan_compiled" if "plan_compiled" in m else "plan"

    def ms(name: str) -> str:
        return f"{m[name]:.3f} ms" if name in m else "n/a"

    def ratio(key: str) -> str:
        return f"{q[key][0]:.3f}" if key in q else "n/a"

    modes = r.get("compile_modes", {})
    modes = "" if set(modes.values()) <= {"default"} else f" [compile modes: plan {modes['plan']}, hand {modes['hand']}]"
    if best == "plan_compiled":
        modes += f" [plan partitioner: {r['plan_partitioner']}]"
    compiled = (f"plan_compiled {ms('plan_compiled')}, hand_compiled {ms('hand_compiled')}, "
                if best == "plan_compiled" else "")
    extra = f", plan_compiled/hand {ratio('plan_compiled/hand')}" if best == "plan_compiled" else ""
    return (f"[figure 1] step {r['model']} {r['objective']} K={r['particles']} batch={r['batch_size']}: "
            f"plan {ms('plan')}, {compiled}hand {ms('hand')}, stock {ms('stock')}; "
            f"plan/hand {ratio('plan/hand')}{extra}, stock/{best} {ratio('stock/' + best)} ({r['rounds']} rounds)"
            f"{modes}")


def print_table(results: list[dict]) -> None:
    """A Markdown table of medians and ratios, cases in model then batch order."""
    names = [n for n in CONTENDERS if any(n in r["median_ms"] for r in results)]
    keys = [f"{a}/{b}" for a, b in RATIOS if any(f"{a}/{b}" in r["ratios"] for r in results)]
    print("| model | objective | K | batch | " + " | ".join(f"{n} (ms)" for n in names) + " | "
          + " | ".join(k.replace("/", " / ") for k in keys) + " |")
    print("|---" * (4 + len(names) + len(keys)) + "|")
    order = {m: i for i, m in enumerate(MODELS)}
    for r in sorted(results, key=lambda r: (order[(r["model"], r["objective"], r["particles"])], r["batch_size"])):
        m, q = r["median_ms"], r["ratios"]
        cells = [f"{m[n]:.3f}" if n in m else "—" for n in names]
        cells += [f"{q[k][0]:.3f} [{q[k][1]:.2f}, {q[k][2]:.2f}]" if k in q else "—" for k in keys]
        print(f"| {r['model']} | {r['objective']} | {r['particles']} | {r['batch_size']} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse flags, run the cases within the budget, print the table and the figure lines."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCHES), help="in order of priority")
    ap.add_argument("--rounds", type=int, default=20, help="timed rounds per case (fewer if the budget ends)")
    ap.add_argument("--inner", type=int, default=10, help="steps per timed block")
    ap.add_argument("--budget-s", type=float, default=None, help="wall-clock budget for all cases")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile contenders")
    ap.add_argument("--hand-compile-mode", default="default", choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile mode of the hand-written step (reduce-overhead: CUDA graphs, CUDA only)")
    ap.add_argument("--plan-compile-mode", default="default", choices=["default", "reduce-overhead", "max-autotune"],
                    help="torch.compile mode of the compiled plan (reduce-overhead: CUDA graphs, CUDA only)")
    ap.add_argument("--plan-partitioner", default="auto", choices=partition.PARTITIONERS,
                    help="what the compiled plan's backward keeps (auto: saved on the CPU, min-cut on CUDA)")
    ap.add_argument("--quick", action="store_true", help="smoke test: batch 16, 3 rounds of 2 steps, eager only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.rounds, args.inner, args.no_compile = [16], 3, 2, True
    device = resolve_device(args.device)
    names = EAGER if args.no_compile else CONTENDERS
    cases = [(*m, b) for b in args.batch_sizes for m in MODELS]
    print(describe_device(device), flush=True)
    start, results = time.perf_counter(), []
    for i, (model, objective, particles, batch) in enumerate(cases):
        share = None
        if args.budget_s is not None:
            left = args.budget_s - (time.perf_counter() - start)
            if left <= 0:
                print(f"[figure 1] step {model} {objective} K={particles} batch={batch}: skipped, budget spent")
                continue
            share = left / (len(cases) - i)
        r = bench_case(model, objective, particles, batch, device, names, args.rounds, args.inner, share,
                       args.hand_compile_mode, args.plan_compile_mode, args.plan_partitioner)
        results.append(r)
        print(figure_line(r), flush=True)
        for name, note in r["notes"].items():
            if note.startswith("refused") or "refused" in note:
                print(f"    {name}: {note}")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)
    print(f"step comparison: {len(results)} of {len(cases)} cases in {time.perf_counter() - start:.1f} s")
    assert all(math.isfinite(v) for r in results for v in r["median_ms"].values())
    return results


if __name__ == "__main__":
    main()
