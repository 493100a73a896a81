"""Figure 3: wall time of ``ppl eval RUN --nll-samples 5000`` over the 10,000 binarized-MNIST test images.

Runs :func:`ppl_models.evaluate.run_eval.evaluate_run`, what ``ppl eval`` runs, with its default pass
sizes (on a GPU sized to free memory, ``ppl_models.evaluate.chunking``; 100 x 100 on the CPU), and
reports its seconds (the estimate: proposal, probe, K importance samples per image, Burda et al.
2015) and the whole call's (model and data loading included), and image x samples per second.
With ``--baseline-limit M`` the fixed 100 x 100 passes are timed too, on M evenly spread test
images, for the throughput ratio. The run comes from ``--run`` (e.g. ``benchmarks/epoch_time.py
--out``); without one, a VAE is trained for ``--train-epochs`` into a temporary directory. Usage:

    PPL_DATA_DIR=../shared/data python benchmarks/nll_time.py --device cuda --run runs/bench-vae
    PPL_DATA_DIR=../shared/data python benchmarks/nll_time.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_contenders import describe_device  # noqa: E402

from ppl_models.evaluate.run_eval import evaluate_run  # noqa: E402
from ppl_models.train.setup import resolve_device  # noqa: E402


def timed_eval(run: Path, nll_samples: int, limit: int | None, device: str, data_dir: str | None,
               **sizes: int) -> dict:
    """One evaluation: its result, the whole call's seconds and the image x samples per second."""
    t0 = time.perf_counter()
    r = evaluate_run(run, "test", nll_samples, limit, data_dir, device, seed=0, progress=False, **sizes)
    call_s = time.perf_counter() - t0
    return {"nll": r["nll"], "n": r["n"], "k": nll_samples, "seconds": r["seconds"], "call_s": call_s,
            "chunks": r["chunks"], "rate": r["n"] * nll_samples / max(r["seconds"], 1e-9)}


def train_small(out: Path, device: str, epochs: int, data_dir: str | None, train_limit: int | None) -> Path:
    """A VAE trained briefly on binarized MNIST (the figure is a time; the model only has to be real)."""
    from epoch_time import bmnist

    from ppl_models.registry import model_config
    from ppl_models.train import RunDir, TrainConfig, fit
    from ppl_models.train.run import RunConfig

    dataset = bmnist(data_dir, train_limit, 100)
    config = RunConfig("vae", model_config("vae"), TrainConfig(data="binarized_mnist", epochs=epochs, device=device),
                       dataset.event_shape)
    fit(RunDir(out), config, dataset, progress=False, verbose=False)
    return out


def main(argv: list[str] | None = None) -> dict:
    """Parse flags, evaluate (and the baseline), print the table and the figure line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--run", default=None, help="a run directory of a model trained on binarized_mnist")
    ap.add_argument("--nll-samples", type=int, default=5000, help="K")
    ap.add_argument("--limit", type=int, default=None, help="test images (default all 10,000)")
    ap.add_argument("--baseline-limit", type=int, default=0,
                    help="also time fixed 100 x 100 passes on this many test images (0: not)")
    ap.add_argument("--train-epochs", type=int, default=1, help="without --run: epochs of the model trained here")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--quick", action="store_true", help="smoke test: K=50 on 200 images, baseline on 100")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    train_limit = None
    if args.quick:
        args.nll_samples, args.limit = 50, args.limit or 200
        args.baseline_limit, train_limit = args.baseline_limit or 100, 500
    device = str(resolve_device(args.device))
    print(describe_device(resolve_device(device)), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else train_small(Path(tmp) / "run", device, args.train_epochs, args.data_dir,
                                                          train_limit)
        rows = {"default": timed_eval(run, args.nll_samples, args.limit, device, args.data_dir)}
        if args.baseline_limit:
            rows["fixed 100 x 100"] = timed_eval(run, args.nll_samples, args.baseline_limit, device, args.data_dir,
                                                 batch_size=100, particle_chunk=100)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("| passes | images | K | points x samples a pass | estimate s | call s | image·samples/s | NLL |")
        print("|---|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            c = r["chunks"]
            print(f"| {name} ({c['how']}) | {r['n']} | {r['k']} | {c['batch_size']} x {c['particle_chunk']} | "
                  f"{r['seconds']:.2f} | {r['call_s']:.2f} | {r['rate']:.3g} | {r['nll']:.2f} |")
    r = rows["default"]
    print(f"[figure 3] NLL K={r['k']} over {r['n']} test images: {r['seconds']:.2f} s estimate, {r['call_s']:.2f} s "
          f"call, {r['rate']:.3g} image·samples/s, NLL {r['nll']:.2f} nats "
          f"(passes of {r['chunks']['batch_size']} x {r['chunks']['particle_chunk']}, {r['chunks']['how']})")
    if "fixed 100 x 100" in rows:
        b = rows["fixed 100 x 100"]
        print(f"[figure 3] fixed 100 x 100 passes on {b['n']} images: {b['rate']:.3g} image·samples/s; "
              f"default / fixed throughput {r['rate'] / b['rate']:.2f}x (fixed ran second, warm)")
    return rows


if __name__ == "__main__":
    main()
