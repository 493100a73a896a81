"""What the fault-tolerant training loop costs per step, against a bare SVI loop in the same process.

    python benchmarks/loop_overhead.py [--device cuda] [--epochs 20] [--batch-size 20]

``fit`` adds to each step: the device-side loss sums, the optimizer hooks (grad clipping, careful
checks), the signal flag; and per interval one read-back of the loss and an all-finite flag of the
parameters; per epoch a validation ELBO; and checkpoints. The reference is a plain loop of
``svi_step`` over the same batches with the same model, objective and optimizer, with nothing read
back until the end. The ratio (fit / bare) is the figure; both include the same work per step.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import pyro
import torch

from ppl_models.data import load_dataset
from ppl_models.objectives import build_objective
from ppl_models.registry import model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.inference.strategy import svi_step
from ppl_models.train.setup import make_optimizer, resolve_device
from ppl_models.train.run import RunConfig


def bare_loop(config: RunConfig, x: torch.Tensor) -> float:
    """Seconds for ``epochs`` passes of plain SVI steps over ``x`` (one read-back at the end)."""
    tc = config.train
    device = resolve_device(tc.device)
    pyro.set_rng_seed(tc.seed)
    model = config.build().to(device)
    optimizer, objective = make_optimizer(model, tc.lr), build_objective(tc.objective, tc.particles)
    x = x.to(device)
    total = torch.zeros((), device=device)
    start = time.perf_counter()
    with pyro.validation_enabled(False):
        for _ in range(tc.epochs):
            for idx in torch.randperm(x.shape[0]).to(device).split(tc.batch_size):
                total += svi_step(objective, model, optimizer, x.index_select(0, idx))
    total.item()
    return time.perf_counter() - start


def fit_loop(config: RunConfig, dataset) -> float:
    """Seconds for ``fit`` of the same config, in a temporary run directory."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        fit(RunDir(Path(tmp) / "run"), config, dataset, progress=False)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    """Time both loops (best of ``--repeats``) and print the ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    digits = load_dataset("digits")
    config = RunConfig("vae", model_config("vae", latent_dim=8, hidden=(200,), likelihood="gaussian"),
                       TrainConfig(data="digits", epochs=args.epochs, batch_size=args.batch_size, device=args.device),
                       (8, 8))
    steps = args.epochs * -(-len(digits.train) // args.batch_size)
    bare = min(bare_loop(config, digits.train.x) for _ in range(args.repeats))
    ours = min(fit_loop(config, digits) for _ in range(args.repeats))
    result = {"steps": steps, "bare_ms_per_step": 1e3 * bare / steps, "fit_ms_per_step": 1e3 * ours / steps,
              "ratio": ours / bare}
    print(f"{steps} steps: bare SVI loop {result['bare_ms_per_step']:.3f} ms/step, fit {result['fit_ms_per_step']:.3f} "
          f"ms/step, ratio {result['ratio']:.3f}")
    return result


if __name__ == "__main__":
    main()
