"""Figure 2: seconds per epoch of ``ppl train vae`` on binarized MNIST, and the time to a validation NLL.

Trains the MLP VAE (784-400-50, Bernoulli, Adam 1e-3, batch 100) with ``ppl_models.train.fit``, the
function ``ppl train`` runs, with ``--compile`` (default ``full``: the execution plan with its loss
under ``torch.compile``) on ``--device``. After each epoch's last step a callback stops the clock,
estimates the validation NLL by importance sampling (K = ``--nll-k`` draws per image, Burda et al.
2015; the pass sizes of ``ppl eval``, ``ppl_models.evaluate.chunking``), and starts the clock again:

- seconds per epoch: the training process's wall time per epoch (steps, its validation ELBO and its
  checkpoints), the evaluation excluded; the first epoch (which builds and compiles the plan) apart;
- time to NLL: training wall time from ``fit``'s start (setup and compilation included) to the end
  of the first epoch whose validation NLL is at most ``--target-nll``.

Training stops once the target is reached and ``--min-epochs`` are done, after ``--max-epochs``, or
when ``--budget-s`` of training time has passed. Usage:

    PPL_DATA_DIR=../shared/data python benchmarks/epoch_time.py --device cuda [--out runs/bench-vae]
    PPL_DATA_DIR=../shared/data python benchmarks/epoch_time.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_contenders import describe_device, sync  # noqa: E402

from ppl_models.data import load_dataset  # noqa: E402
from ppl_models.data.base import Dataset  # noqa: E402
from ppl_models.evaluate.chunking import eval_chunks  # noqa: E402
from ppl_models.evaluate.likelihood import estimate_log_likelihood, evenly_spaced_indices  # noqa: E402
from ppl_models.registry import model_config  # noqa: E402
from ppl_models.rng import restored_rng  # noqa: E402
from ppl_models.train import RunDir, TrainConfig, fit  # noqa: E402
from ppl_models.train.run import RunConfig  # noqa: E402
from ppl_models.train.setup import resolve_device  # noqa: E402


class Enough(Exception):
    """Raised from the callback to end training (after the epoch that met the stopping rule was saved)."""


class EpochClock:
    """``after_step`` callback: per-epoch training time, and the validation NLL after each epoch.

    Args:
        steps_per_epoch: optimizer steps in one epoch.
        valid_x: validation images on the training device.
        nll_k: importance samples per image.
        target: the validation NLL (nats) whose first reaching is timed.
        min_epochs, max_time_s: stop once the target is reached and this many epochs are done, or
            once this much training time has passed.
    """

    def __init__(self, steps_per_epoch: int, valid_x: torch.Tensor, nll_k: int, target: float, min_epochs: int,
                 max_time_s: float):
        self.steps, self.valid_x, self.nll_k, self.target = steps_per_epoch, valid_x, nll_k, target
        self.min_epochs, self.max_time_s = min_epochs, max_time_s
        self.start = time.perf_counter()
        self.paused = 0.0  # seconds spent evaluating, off the clock
        self.rows: list[dict] = []  # per epoch: epoch, train_s (cumulative), epoch_s, valid_nll, eval_s
        self.reached: dict | None = None
        self.stop_after: int | None = None

    def training_time(self) -> float:
        """Seconds since ``fit`` started, minus the evaluations."""
        return time.perf_counter() - self.start - self.paused

    def __call__(self, step: int, model: torch.nn.Module) -> None:
        if self.stop_after is not None and step > self.stop_after:
            raise Enough
        if step % self.steps:
            return
        sync(self.valid_x.device)
        now = self.training_time()
        t0 = time.perf_counter()
        with restored_rng(seed=0), torch.no_grad():  # the training's random streams are left as they were
            chunks = eval_chunks(model, self.valid_x, self.nll_k)
            nll = estimate_log_likelihood(model, self.valid_x, self.nll_k, chunks.batch_size,
                                          chunks.particle_chunk).nll
        eval_s = time.perf_counter() - t0
        self.paused += eval_s
        previous = self.rows[-1]["train_s"] if self.rows else 0.0
        row = {"epoch": len(self.rows) + 1, "train_s": now, "epoch_s": now - previous, "valid_nll": nll,
               "eval_s": eval_s}
        self.rows.append(row)
        if self.reached is None and nll <= self.target:
            self.reached = row
        if (self.reached is not None and row["epoch"] >= self.min_epochs) or now > self.max_time_s:
            self.stop_after = step  # the next step raises: this epoch's checkpoint is written first


def bmnist(data_dir: str | None, train_limit: int | None, valid_limit: int | None) -> Dataset:
    """Binarized MNIST, the training and validation splits cut to evenly spread subsets if asked."""
    full = load_dataset("binarized_mnist", data_dir)
    train = full.train.subset(evenly_spaced_indices(len(full.train), train_limit))
    valid = full.valid.subset(evenly_spaced_indices(len(full.valid), valid_limit))
    return Dataset(full.name, train, valid, full.test, full.binary)


def plan_events(run: RunDir) -> list[str]:
    """The lines of events.log about ``--compile`` (which path the steps took, and why)."""
    if not run.events_path.exists():
        return []
    return [line.strip() for line in run.events_path.read_text().splitlines() if "--compile" in line]


def main(argv: list[str] | None = None) -> dict:
    """Parse flags, train, print the per-epoch table and the figure lines; return the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compile", default="full", choices=["off", "plan", "full"], help="TrainConfig.compile")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="TrainConfig.precision")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--min-epochs", type=int, default=4, help="epochs to time even after the target is reached")
    ap.add_argument("--budget-s", type=float, default=90.0, help="training time after which no new epoch starts")
    ap.add_argument("--target-nll", type=float, default=100.0, help="validation NLL (nats) to time the reaching of")
    ap.add_argument("--nll-k", type=int, default=100, help="importance samples per validation image")
    ap.add_argument("--train-limit", type=int, default=None, help="train on an evenly spread subset")
    ap.add_argument("--valid-limit", type=int, default=None, help="evaluate on an evenly spread validation subset")
    ap.add_argument("--out", default=None, help="keep the run directory here (default: a temporary one)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1000 training and 200 validation images, 2 epochs, K=20, eager plan")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_limit, args.valid_limit, args.nll_k = args.train_limit or 1000, args.valid_limit or 200, 20
        args.max_epochs, args.min_epochs, args.compile = 2, 2, "plan" if args.compile == "full" else args.compile
    device = resolve_device(args.device)
    print(describe_device(device), flush=True)
    t0 = time.perf_counter()
    dataset = bmnist(args.data_dir, args.train_limit, args.valid_limit)
    load_s = time.perf_counter() - t0
    tc = TrainConfig(data="binarized_mnist", epochs=args.max_epochs, batch_size=args.batch_size,
                     compile=args.compile, precision=args.precision, device=str(device), seed=0)
    config = RunConfig("vae", model_config("vae"), tc, dataset.event_shape)
    steps = -(-len(dataset.train) // args.batch_size)
    clock = EpochClock(steps, dataset.valid.x.to(device), args.nll_k, args.target_nll, args.min_epochs, args.budget_s)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(args.out or Path(tmp) / "run")
        clock.start = time.perf_counter()
        try:
            fit(run, config, dataset, progress=False, after_step=clock, verbose=False)
        except Enough:
            pass
        events = plan_events(run)
    rows = clock.rows
    later = [r["epoch_s"] for r in rows[1:]]
    result = {"device": str(device), "compile": args.compile, "precision": args.precision, "train_images": len(dataset.train),
              "valid_images": len(dataset.valid), "steps_per_epoch": steps, "data_load_s": load_s, "epochs": rows,
              "first_epoch_s": rows[0]["epoch_s"] if rows else None,
              "epoch_s_median": statistics.median(later) if later else (rows[0]["epoch_s"] if rows else None),
              "target_nll": args.target_nll, "nll_k": args.nll_k, "reached": clock.reached, "plan_events": events}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("| epoch | train s (cumulative) | epoch s | valid NLL (IS) | eval s |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['epoch']} | {r['train_s']:.2f} | {r['epoch_s']:.3f} | {r['valid_nll']:.2f} | "
                  f"{r['eval_s']:.2f} |")
    for line in events:
        print(f"    {line}")
    which = "median of epochs 2+" if later else "epoch 1 only"
    print(f"[figure 2] epoch time binarized_mnist vae batch={args.batch_size} compile={args.compile} precision={args.precision} "
          f"({len(dataset.train)} images): {result['epoch_s_median']:.3f} s/epoch ({which}); "
          f"first epoch {result['first_epoch_s']:.3f} s; data load {load_s:.2f} s")
    nlls = ", ".join(f"{r['valid_nll']:.2f}" for r in rows)
    if clock.reached is not None:
        r = clock.reached
        print(f"[figure 2] time to valid NLL <= {args.target_nll:g} nats (IS, K={args.nll_k}, "
              f"{len(dataset.valid)} images): {r['train_s']:.2f} s (epoch {r['epoch']}, NLL {r['valid_nll']:.2f})")
    else:
        print(f"[figure 2] time to valid NLL <= {args.target_nll:g} nats (IS, K={args.nll_k}): not reached in "
              f"{len(rows)} epochs, {rows[-1]['train_s'] if rows else 0.0:.2f} s (NLL per epoch: {nlls})")
    return result


if __name__ == "__main__":
    main()
