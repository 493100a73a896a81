"""What the execution plan gains for each registered model it takes: one SVI step of each model on the
same batch and weights, through the Pyro path (``ppl train`` without ``--compile``), the eager plan
(``--compile plan``) and the compiled plan (``--compile full``), with the trainer's default objective
(the Monte Carlo ELBO, one particle) and the same fused Adam. Rounds interleave the three in a
shuffled order (``step_contenders.time_rounds``); a ratio is the median of per-round paired ratios
[interquartile range]. Usage:

    OMP_NUM_THREADS=1 python benchmarks/plan_models.py [--device cpu] [--batch-size 32] [--rounds 10]
        [--inner 3] [--models vae conv_vae ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_contenders import binary_batch, build, describe_device, paired, time_rounds  # noqa: E402

from ppl_models.train.setup import resolve_device  # noqa: E402

MODELS = ("vae", "two_layer_vae", "autoencoder", "conv_vae", "pixelcnn", "pixelrnn")  # what the plan takes
NAMES = ("pyro_path", "plan", "plan_compiled")


def bench_model(model: str, batch_size: int, device, rounds: int, inner: int) -> dict:
    """Median ms per step of the three paths, the plan's ratios to the Pyro path and how each plan was built."""
    t0 = time.perf_counter()
    fns, notes = build(model, "elbo", 1, binary_batch(batch_size, device), NAMES)
    times = time_rounds(fns, device, rounds, inner)
    ratios = {f"{n}/pyro_path": r for n in NAMES[1:] if (r := paired(times, n, "pyro_path")) is not None}
    return {"model": model, "batch_size": batch_size, "notes": notes, "seconds": round(time.perf_counter() - t0, 1),
            "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()}, "ratios": ratios}


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse flags, time every model, print a Markdown table (or JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--inner", type=int, default=3, help="steps per timed block")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    results = [bench_model(m, args.batch_size, device, args.rounds, args.inner) for m in args.models]
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    print(describe_device(device))
    print("| model | batch | Pyro path (ms) | plan (ms) | compiled plan (ms) | plan / Pyro path "
          "| compiled plan / Pyro path | compiled plan built |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        m, q = r["median_ms"], r["ratios"]
        cells = [f"{m[n]:.3f}" if n in m else "—" for n in NAMES]
        cells += [f"{q[k][0]:.3f} [{q[k][1]:.2f}, {q[k][2]:.2f}]" if k in q else "—"
                  for k in ("plan/pyro_path", "plan_compiled/pyro_path")]
        print(f"| {r['model']} | {r['batch_size']} | " + " | ".join(cells) + f" | {r['notes'].get('plan_compiled', '')} |")
    return results


if __name__ == "__main__":
    main()
