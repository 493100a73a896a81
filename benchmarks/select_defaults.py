"""Choose the VAE's default activation and learning rate by validation NLL on binarized MNIST.

Trains one run per candidate with the `ppl` CLI (same seed and epoch budget), evaluates each on
the validation split, and prints a Markdown table. Usage:

    PPL_DATA_DIR=../shared/data python benchmarks/select_defaults.py --epochs 10 --out benchmarks/out/select
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CANDIDATES = [("relu", 1e-3), ("softplus", 1e-3), ("tanh", 1e-3), ("relu", 3e-4), ("relu", 3e-3)]


def main() -> None:
    """Run every candidate and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--nll-samples", type=int, default=200)
    ap.add_argument("--limit", type=int, default=2000, help="validation images (evenly spread)")
    ap.add_argument("--out", default="benchmarks/out/select")
    args = ap.parse_args()
    rows = []
    for act, lr in CANDIDATES:
        run = Path(args.out) / f"{act}-lr{lr:g}"
        if not (run / "checkpoints").exists():
            subprocess.run([sys.executable, "-m", "ppl_models.cli.main", "train", "vae", "--data", "binarized_mnist",
                            "--epochs", str(args.epochs), "--activation", act, "--lr", str(lr), "--out", str(run),
                            "--no-progress"], check=True)
        out = subprocess.run([sys.executable, "-m", "ppl_models.cli.main", "eval", str(run), "--split", "valid",
                              "--nll-samples", str(args.nll_samples), "--limit", str(args.limit), "--json"],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out)
        rows.append((act, lr, r["elbo"], r["nll"]))
        print(f"{act} lr={lr:g}: valid ELBO {r['elbo']:.2f}  NLL {r['nll']:.2f}", flush=True)
    print(f"\n| activation | lr | valid ELBO | valid NLL (K={args.nll_samples}, n={args.limit}) |\n|---|---|---|---|")
    for act, lr, elbo, nll in sorted(rows, key=lambda r: r[3]):
        print(f"| {act} | {lr:g} | {elbo:.2f} | {nll:.2f} |")


if __name__ == "__main__":
    main()
