"""Figure 4: how the training step's time grows with the IWAE's K and with the batch size, as a PNG.

The MLP VAE (784-400-50) steps a fixed binary batch: against K (the IWAE bound of Burda et al. 2015,
standard gradient) at batch ``--k-batch``, and against the batch size with the analytic-KL ELBO, for
the execution plan (eager), the hand-written PyTorch step with the same fused Adam, and Pyro's stock
``SVI.step`` (``benchmarks/step_contenders.py``). Each point is the median of interleaved rounds;
points beyond ``--budget-s`` are left out (and said so). Usage:

    python benchmarks/step_scaling.py --device cuda --out benchmarks/figures/step_scaling.png
    python benchmarks/step_scaling.py --device cpu --quick --out /tmp/step_scaling.png
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_contenders import binary_batch, build, describe_device, time_rounds  # noqa: E402

from ppl_models.train.setup import resolve_device  # noqa: E402

NAMES = ("plan", "hand", "stock")
KS = (1, 2, 5, 10, 20, 50, 100, 200)
BATCHES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)


def point(objective: str, particles: int, batch: int, device: torch.device, rounds: int, inner: int,
          budget_s: float | None, names: tuple[str, ...]) -> dict[str, float]:
    """Median ms per step of each contender at one (objective, K, batch)."""
    fns, notes = build("vae", objective, particles, binary_batch(batch, device), names)
    for name, note in notes.items():
        if "refused" in note:
            print(f"    {name} at K={particles}, batch {batch}: {note}")
    times = time_rounds(fns, device, rounds, inner, warmup=1, budget_s=budget_s, min_rounds=2)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def span(first: dict, last: dict, name: str) -> str:
    """``name``'s ms at the first and last point of a sweep."""
    if name not in first or name not in last:
        return f"{name} n/a"
    return f"{name} {first[name]:.3f} -> {last[name]:.3f} ms"


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (1: linear growth, 0: flat)."""
    lx, ly = [math.log(v) for v in xs], [math.log(v) for v in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    den = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / den if den > 0 else float("nan")


def sweep(axis: str, values: tuple[int, ...], k_batch: int, device: torch.device, rounds: int, inner: int,
          deadline: float, names: tuple[str, ...]) -> list[dict]:
    """One row per value of K (``axis="K"``) or of the batch size, until the deadline."""
    rows = []
    for i, v in enumerate(values):
        left = deadline - time.perf_counter()
        if left <= 0:
            print(f"    {axis}={v} and beyond: skipped, budget spent")
            break
        objective, particles, batch = ("iwae", v, k_batch) if axis == "K" else ("elbo-analytic", 1, v)
        ms = point(objective, particles, batch, device, rounds, inner, left / (len(values) - i) / 2, names)
        rows.append({"axis": axis, "value": v, "objective": objective, "particles": particles, "batch": batch, **ms})
        print(f"    {axis}={v}: " + ", ".join(f"{n} {ms[n]:.3f} ms" for n in names if n in ms), flush=True)
    return rows


def plot(rows: list[dict], names: tuple[str, ...], out: Path, title: str) -> None:
    """Two log-log panels: ms per step against K and against the batch size."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, axis, label in ((axes[0], "K", "IWAE particles K"), (axes[1], "batch", "batch size (ELBO)")):
        part = [r for r in rows if r["axis"] == axis]
        for n in names:
            pts = [(r["value"], r[n]) for r in part if n in r]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=n)
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="ms per step")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse flags, sweep K and the batch size, save the figure, print the table and figure lines."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--ks", type=int, nargs="+", default=list(KS))
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=list(BATCHES))
    ap.add_argument("--k-batch", type=int, default=100, help="batch size of the K sweep")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=60.0, help="wall-clock budget of both sweeps")
    ap.add_argument("--no-stock", action="store_true", help="leave out Pyro's stock SVI")
    ap.add_argument("--out", default="step_scaling.png", help="the PNG to write")
    ap.add_argument("--quick", action="store_true", help="smoke test: K 1 5, batch 16 64, 2 rounds of 2 steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.ks, args.batch_sizes, args.k_batch, args.rounds, args.inner = [1, 5], [16, 64], 16, 2, 2
    device = resolve_device(args.device)
    names = tuple(n for n in NAMES if not (args.no_stock and n == "stock"))
    print(describe_device(device), flush=True)
    start = time.perf_counter()
    deadline = start + args.budget_s
    rows = sweep("K", tuple(args.ks), args.k_batch, device, args.rounds, args.inner,
                 start + args.budget_s / 2, names)
    rows += sweep("batch", tuple(args.batch_sizes), args.k_batch, device, args.rounds, args.inner, deadline, names)
    out = Path(args.out)
    plot(rows, names, out, f"MLP VAE training step: {describe_device(device)}")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print("| sweep | value | " + " | ".join(f"{n} (ms)" for n in names) + " |")
        print("|---" * (2 + len(names)) + "|")
        for r in rows:
            cells = [f"{r[n]:.3f}" if n in r else "—" for n in names]
            print(f"| {r['axis']} | {r['value']} | " + " | ".join(cells) + " |")
    for axis in ("K", "batch"):
        part = [r for r in rows if r["axis"] == axis]
        if len(part) >= 2:
            fits = ", ".join(f"{n} {slope([r['value'] for r in part], [r[n] for r in part]):.2f}"
                             for n in names if all(n in r for r in part))
            first, last = part[0], part[-1]
            print(f"[figure 4] step time against {axis} {first['value']}..{last['value']}: "
                  f"{span(first, last, 'plan')}, {span(first, last, 'hand')}; log-log slope {fits}")
    print(f"[figure 4] scaling figure: {out} ({len(rows)} points, {time.perf_counter() - start:.1f} s)")
    return rows


if __name__ == "__main__":
    main()
