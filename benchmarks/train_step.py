"""Time one VAE training step three ways on the same batch and the same networks, interleaved.

1. ours: ``ppl_models.inference.strategy.svi_step`` with ``make_optimizer`` (the objective's
   differentiable_loss + torch's fused Adam), exactly what ``ppl train`` runs;
2. hand-written PyTorch (``benchmarks/handwritten.py``), weights copied from ours, with
   ``torch.optim.Adam`` as a user writes it (default implementation);
3. the same hand-written step given our fused Adam: ours / this isolates the cost of running the
   model as a Pyro program;
4. Pyro's stock ``SVI(model, guide, pyro.optim.Adam, Trace_ELBO()).step`` with Pyro's defaults.

Rounds alternate between the three so drifting machine load hits them alike. The ratio reported
is the median over rounds of the paired ratio (ours / hand-written within one round), with its
interquartile range, which cancels the drift a shared machine shows; median seconds per step are
given too. Usage:

    python benchmarks/train_step.py --device cpu [--batch-sizes 16 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handwritten import HandWrittenVAE, step as hand_step  # noqa: E402
from stock_svi import stock_svi  # noqa: E402

from ppl_models.objectives import build_objective  # noqa: E402
from ppl_models.registry import build_model, model_config  # noqa: E402
from ppl_models.inference.strategy import svi_step  # noqa: E402
from ppl_models.train.setup import make_optimizer, resolve_device  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(batch_size: int, objective: str, device: torch.device, rounds: int, inner: int) -> dict:
    """Median seconds per step of the three steps at one batch size."""
    pyro.set_rng_seed(0)
    x = (torch.rand(batch_size, 28, 28) < 0.13).float().to(device)
    ours = build_model("vae", model_config("vae"), (28, 28)).to(device)
    hand = HandWrittenVAE().to(device)
    hand.load_state_dict(ours.state_dict())
    hand_fused = HandWrittenVAE().to(device)
    hand_fused.load_state_dict(ours.state_dict())
    stock = build_model("vae", model_config("vae"), (28, 28)).to(device)
    elbo = build_objective(objective)
    opt_ours = make_optimizer(ours, lr=1e-3)
    opt_hand = torch.optim.Adam(hand.parameters(), lr=1e-3)
    opt_hand_fused = make_optimizer(hand_fused, lr=1e-3)
    svi = stock_svi(stock, pyro.infer.Trace_ELBO())

    def run_ours():
        with pyro.validation_enabled(False):  # as in the training loop
            for _ in range(inner):
                svi_step(elbo, ours, opt_ours, x)

    def run_hand():
        for _ in range(inner):
            hand_step(hand, opt_hand, x)

    def run_hand_fused():
        for _ in range(inner):
            hand_step(hand_fused, opt_hand_fused, x)

    def run_stock():
        for _ in range(inner):
            svi.step(x)

    fns = {"ours": run_ours, "hand_written": run_hand, "hand_written_fused_adam": run_hand_fused,
           "pyro_stock_svi": run_stock}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds + 2):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if r >= 2:  # two warm-up rounds
                times[name].append((time.perf_counter() - t0) / inner)
    med = {k: statistics.median(v) for k, v in times.items()}

    def paired(name, reference="hand_written"):
        ratios = sorted(a / b for a, b in zip(times[name], times[reference]))
        q = statistics.quantiles(ratios, n=4)
        return statistics.median(ratios), (q[0], q[2])

    (r_ours, iqr_ours), (r_stock, iqr_stock) = paired("ours"), paired("pyro_stock_svi")
    r_same, iqr_same = paired("ours", "hand_written_fused_adam")
    return {
        "batch_size": batch_size, "objective": objective, "device": str(device), "rounds": rounds,
        "median_s": med,
        "ratio_ours_to_hand": r_ours, "ratio_ours_to_hand_iqr": iqr_ours,
        "ratio_ours_to_hand_same_optimizer": r_same, "ratio_ours_to_hand_same_optimizer_iqr": iqr_same,
        "ratio_stock_to_hand": r_stock, "ratio_stock_to_hand_iqr": iqr_stock,
    }


def main() -> None:
    """Parse flags, run the benchmark, print a table or JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 100])
    ap.add_argument("--objectives", nargs="+", default=["elbo", "elbo-analytic"])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--inner", type=int, default=10, help="steps per timed block")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = resolve_device(args.device)
    results = [bench(b, o, device, args.rounds, args.inner) for b in args.batch_sizes for o in args.objectives]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads, device {device}")
    print("| batch | objective | ours (ms) | hand-written (ms) | hand-written, fused Adam (ms) | Pyro stock SVI (ms) "
          "| ours / hand [IQR] | ours / hand with same Adam [IQR] | stock / hand [IQR] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["median_s"]
        cells = [f"{r[k]:.3f} [{r[k + '_iqr'][0]:.2f}, {r[k + '_iqr'][1]:.2f}]" for k in
                 ("ratio_ours_to_hand", "ratio_ours_to_hand_same_optimizer", "ratio_stock_to_hand")]
        print(f"| {r['batch_size']} | {r['objective']} | {m['ours']*1e3:.3f} | {m['hand_written']*1e3:.3f} | "
              f"{m['hand_written_fused_adam']*1e3:.3f} | {m['pyro_stock_svi']*1e3:.3f} | {' | '.join(cells)} |")

if __name__ == "__main__":
    main()
