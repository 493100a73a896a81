"""Time one IWAE training step, ours against a hand-written PyTorch step, interleaved.

1. ours: ``svi_step(build_objective("iwae", K, estimator), vae, make_optimizer(vae, 1e-3), x)``,
   exactly what ``ppl train --objective iwae`` runs (Pyro argument validation off, as in the loop);
2. hand-written: ``benchmarks/handwritten.py``'s ``iwae_loss`` (no Pyro; the same networks, weights
   copied with ``load_state_dict``, the same estimator) driven by the same fused
   ``torch.optim.Adam(..., fused=True)``, so the ratio isolates the objective and Pyro.

The 784-400-50 VAE runs on random binary 28x28 data (batch 100 by default) at K = 5 and 50.
Rounds alternate between the two so drifting machine load hits them alike; reported are median
seconds per step and the median over rounds of the paired ratio (ours / hand-written within one
round) with its interquartile range. Target: ours / hand <= 1.10. Usage:

    python benchmarks/iwae_step.py --device cpu [--particles 5 50] [--estimators standard dreg]
        [--batch-size 100] [--rounds 30] [--inner 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handwritten import HandWrittenVAE, iwae_step as hand_iwae_step  # noqa: E402

from ppl_models.objectives import build_objective  # noqa: E402
from ppl_models.registry import build_model, model_config  # noqa: E402
from ppl_models.inference.strategy import svi_step  # noqa: E402
from ppl_models.train.setup import make_optimizer, resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _paired(a: list[float], b: list[float]) -> tuple[float, tuple[float, float]]:
    """Median and interquartile range of the per-round ratios a / b."""
    ratios = sorted(x / y for x, y in zip(a, b))
    if len(ratios) == 1:
        return ratios[0], (ratios[0], ratios[0])
    q = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), (q[0], q[2])


def bench(particles: int, estimator: str, batch_size: int, device: torch.device, rounds: int, inner: int,
          warmup: int = 2) -> dict:
    """Median seconds per step of ours and of the hand-written step, and their paired ratio."""
    pyro.set_rng_seed(0)
    x = (torch.rand(batch_size, 28, 28) < 0.13).float().to(device)
    ours = build_model("vae", model_config("vae"), (28, 28)).to(device)
    hand = HandWrittenVAE().to(device)
    hand.load_state_dict(ours.state_dict())
    objective = build_objective("iwae", particles, estimator)
    opt_ours = make_optimizer(ours, lr=1e-3)
    opt_hand = torch.optim.Adam(hand.parameters(), lr=1e-3, fused=True)

    def run_ours() -> None:
        with pyro.validation_enabled(False):  # as in the training loop
            for _ in range(inner):
                svi_step(objective, ours, opt_ours, x)

    def run_hand() -> None:
        for _ in range(inner):
            hand_iwae_step(hand, opt_hand, x, particles, estimator)

    fns: dict[str, Callable[[], None]] = {"ours": run_ours, "hand_written": run_hand}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds + warmup):
        order = list(fns.items()) if r % 2 == 0 else list(reversed(fns.items()))  # alternate who goes first
        for name, fn in order:
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if r >= warmup:
                times[name].append((time.perf_counter() - t0) / inner)
    ratio, iqr = _paired(times["ours"], times["hand_written"])
    return {
        "particles": particles, "estimator": estimator, "batch_size": batch_size, "device": str(device),
        "rounds": rounds, "inner": inner,
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "ratio_ours_to_hand": ratio, "ratio_ours_to_hand_iqr": iqr,
    }


def main(argv: list[str] | None = None) -> dict:
    """Parse flags, run the benchmark, print a table (or JSON) and return the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--particles", type=int, nargs="+", default=[5, 50])
    ap.add_argument("--estimators", nargs="+", default=["standard", "dreg"], choices=["standard", "stl", "dreg"])
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--inner", type=int, default=5, help="steps per timed block")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    env = {"torch": torch.__version__, "pyro": pyro.__version__, "threads": torch.get_num_threads(),
           "device": str(device)}
    results = [bench(k, e, args.batch_size, device, args.rounds, args.inner, args.warmup)
               for k in args.particles for e in args.estimators]
    out = {"env": env, "results": results}
    if args.json:
        print(json.dumps(out, indent=2))
        return out
    print(f"torch {env['torch']}, pyro {env['pyro']}, {env['threads']} threads, device {device}, "
          f"batch {args.batch_size}, {args.rounds} rounds of {args.inner} steps")
    print("| K | estimator | ours (ms) | hand-written, fused Adam (ms) | ours / hand [IQR] |")
    print("|---|---|---|---|---|")
    for r in results:
        m, (lo, hi) = r["median_s"], r["ratio_ours_to_hand_iqr"]
        print(f"| {r['particles']} | {r['estimator']} | {m['ours'] * 1e3:.3f} | {m['hand_written'] * 1e3:.3f} | "
              f"{r['ratio_ours_to_hand']:.3f} [{lo:.2f}, {hi:.2f}] |")
    return out


if __name__ == "__main__":
    main()
