"""Does flushing denormal numbers to zero speed up CPU training, and what does it change?

After some hundred steps a few of Adam's second-moment estimates (``exp_avg_sq``) of rarely active
weights decay into the denormal range (below 1.2e-38 in float32), where x86 arithmetic is many
times slower. ``torch.set_flush_denormal(True)`` (FTZ/DAZ) treats them as zero instead. This script
trains the same seeded MLP VAE on binarized MNIST with the setting off and on, alternating, through
``ppl_models.api.train`` (what ``ppl train`` runs), and reports per-epoch seconds (from metrics.csv),
the validation ELBO, how many optimizer-state values are denormal at the end, and how far the two
runs' parameters end apart. Usage:

    OMP_NUM_THREADS=1 PPL_DATA_DIR=../shared/data python benchmarks/denormals.py [--epochs 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from ppl_models.api import train
from ppl_models.train.checkpoint import load_latest
from ppl_models.train.metrics import MetricsLog

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


def denormal_count(state: dict) -> tuple[int, int]:
    """(denormal values, all values) in an optimizer state dict's tensors."""
    bad = total = 0
    for per_param in state["state"].values():
        for value in per_param.values():
            if torch.is_tensor(value) and value.is_floating_point() and value.dim():
                bad += int(((value != 0) & (value.abs() < TINY)).sum())
                total += value.numel()
    return bad, total


def one_run(flush: bool, epochs: int, out: Path, seed: int) -> dict:
    """Train with the flush setting given; return epoch times, validation ELBOs and the final state."""
    torch.set_flush_denormal(flush)
    try:
        run = train("vae", data="binarized_mnist", out=out, epochs=epochs, seed=seed, device="cpu", progress=False)
    finally:
        torch.set_flush_denormal(False)
    rows = MetricsLog.read(out / "metrics.csv")
    state = load_latest(out / "checkpoints")[1]
    return {"epoch_s": [float(r["epoch_time_s"]) for r in rows], "valid_elbo": [float(r["valid_elbo"]) for r in rows],
            "denormal": denormal_count(state["optimizer"]), "params": state["model"], "path": run.path}


def main() -> None:
    """Parse flags, run the pairs, print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2, help="pairs of runs (off, on), alternating the order")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not torch.set_flush_denormal(True):
        raise SystemExit("this CPU has no flush-to-zero mode (torch.set_flush_denormal needs SSE3)")
    torch.set_flush_denormal(False)
    runs: dict[bool, list[dict]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for flush in ((False, True) if r % 2 == 0 else (True, False)):
                runs[flush].append(one_run(flush, args.epochs, Path(tmp) / f"{flush}-{r}", args.seed))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MLP VAE on binarized_mnist, batch 100, "
          f"seed {args.seed}, {args.repeats} runs each")
    print("| flush denormals | " + " | ".join(f"epoch {e + 1} s (median)" for e in range(args.epochs)) +
          " | valid ELBO, last epoch | denormal Adam-state values at the end |")
    print("|---" * (args.epochs + 3) + "|")
    for flush, rs in runs.items():
        times = [statistics.median(r["epoch_s"][e] for r in rs) for e in range(args.epochs)]
        elbo = rs[0]["valid_elbo"][-1]
        repeat = all(r["valid_elbo"] == rs[0]["valid_elbo"] for r in rs)
        bad, total = rs[0]["denormal"]
        print(f"| {'on' if flush else 'off'} | " + " | ".join(f"{t:.2f}" for t in times) +
              f" | {elbo:.4f}{'' if repeat else ' (runs differ!)'} | {bad} of {total} |")
    off, on = runs[False][0]["params"], runs[True][0]["params"]
    diff = max(float((off[k] - on[k]).abs().max()) for k in off)
    scale = max(float(off[k].abs().max()) for k in off)
    ratios = [statistics.median(b["epoch_s"][e] / a["epoch_s"][e] for a, b in zip(runs[False], runs[True]))
              for e in range(args.epochs)]
    print(f"on / off epoch time (paired median): " + ", ".join(f"epoch {e + 1} {x:.3f}" for e, x in enumerate(ratios)))
    print(f"largest parameter difference after {args.epochs} epochs: {diff:.3g} (largest parameter {scale:.3g}); "
          f"valid ELBO off {runs[False][0]['valid_elbo'][-1]:.4f}, on {runs[True][0]['valid_elbo'][-1]:.4f}")


if __name__ == "__main__":
    main()
