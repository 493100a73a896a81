"""Whole-process cost: `ppl train vae` against the hand-written PyTorch script, same data and epochs.

Each repetition runs both as fresh processes, alternating which goes first; the report gives the
median wall time of each and their ratio. Usage:

    PPL_DATA_DIR=../shared/data python benchmarks/train_process.py --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> float:
    """Wall seconds of one command, which must succeed."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    """Run the comparison and print a table or JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="binarized_mnist")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ppl-bench-"))
    hand = [sys.executable, str(HERE / "handwritten_train.py"), "--data", args.data, "--epochs", str(args.epochs)]
    times: dict[str, list[float]] = {"ppl_train": [], "hand_written": []}
    try:
        timed(hand)  # warm the page cache and the parsed-data cache for both
        for r in range(args.repeats):
            ours = [sys.executable, "-m", "ppl_models.cli.main", "train", "vae", "--data", args.data,
                    "--epochs", str(args.epochs), "--out", str(tmp / f"run{r}"), "--no-progress"]
            order = [("ppl_train", ours), ("hand_written", hand)]
            for name, cmd in order if r % 2 == 0 else reversed(order):
                times[name].append(timed(cmd))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"data": args.data, "epochs": args.epochs, "seconds": times, "median_s": med,
              "ratio": med["ppl_train"] / med["hand_written"]}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.data}, {args.epochs} epochs, {args.repeats} repeats: `ppl train` {med['ppl_train']:.2f} s, "
              f"hand-written {med['hand_written']:.2f} s, ratio {result['ratio']:.3f}")


if __name__ == "__main__":
    main()
