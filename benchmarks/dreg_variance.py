"""Gradient variance and signal-to-noise ratio of the IWAE gradient estimators, per K.

A small VAE (784-200-10 by default) is first trained for a few hundred steps with the ELBO, so the
gradients are measured at a realistic point and not at the initialization. Then, on one fixed
batch, S gradient samples (seeds 0..S-1, the same seeds for every estimator: common random numbers)
of the per-data-point loss ``build_objective("iwae", K, estimator).differentiable_loss(...) / B``
are drawn for each estimator (standard, stl, dreg) and each K, and reported:

- encoder (guide) parameters phi: total variance (trace of the gradient's covariance, summed over
  parameters) and mean SNR = |mean| / std averaged over the parameters whose gradient varies
  (an encoder weight of a pixel that is 0 in the whole batch has a gradient that is always 0);
- decoder (model) parameters theta: the same figures; every estimator gives theta the same gradient
  sum_k w~_k grad log p(x, z_k), so with common random numbers these agree across estimators.

Expected (Rainforth et al. 2018; Tucker et al. 2019): the encoder SNR of ``standard`` falls with K
(as 1/sqrt(K)), while ``dreg``'s rises; at K=1 ``dreg`` equals ``stl``. Writes a figure of the
encoder SNR against K (``dreg_variance.png``) and the figures as JSON (``dreg_variance.json``) under
``--out``. Usage:

    PPL_DATA_DIR=../shared/data python benchmarks/dreg_variance.py [--data binarized_mnist|digits]
        [--particles 1 5 10 50] [--samples 200] [--train-steps 500] [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import deque
from pathlib import Path

import pyro
import torch
from tqdm.auto import tqdm

from ppl_models.data import load_dataset
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config
from ppl_models.inference.strategy import svi_step
from ppl_models.train.setup import make_optimizer, resolve_device

ESTIMATORS = ("standard", "stl", "dreg")
DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def _binary_data(name: str, seed: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Training images of ``name`` in {0, 1}; grey-level data are binarized once, from ``seed``."""
    ds = load_dataset(name)
    x = ds.train.x
    if not ds.binary:
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))
    return x, ds.event_shape


def _pretrain(vae: torch.nn.Module, x: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int,
              progress: bool = True) -> float:
    """``steps`` Adam steps on the ELBO over shuffled minibatches; returns the last 50 steps' mean loss per point."""
    objective = build_objective("elbo")
    optimizer = make_optimizer(vae, lr)
    gen = torch.Generator().manual_seed(seed)
    perm, pos, recent = torch.randperm(len(x), generator=gen), 0, deque(maxlen=50)
    device = next(vae.parameters()).device
    with pyro.validation_enabled(False):
        bar = tqdm(range(steps), desc="pretrain (elbo)", unit="step", leave=False, disable=None if progress else True)
        for _ in bar:
            if pos + batch_size > len(x):
                perm, pos = torch.randperm(len(x), generator=gen), 0
            xb = x[perm[pos : pos + batch_size]].to(device)
            pos += batch_size
            recent.append(svi_step(objective, vae, optimizer, xb))
    return torch.stack(list(recent)).mean().item() / batch_size


def _flat_grads(params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def _summary(total: torch.Tensor, total_sq: torch.Tensor, n: int) -> dict:
    """Total variance and mean SNR from running sums of a gradient (float64) over ``n`` samples."""
    mean = total / n
    var = ((total_sq - n * mean.pow(2)) / (n - 1)).clamp_min(0.0)
    std = var.sqrt()
    # Entries whose gradient never varies (an encoder weight of a pixel that is 0 in the whole batch has
    # gradient 0 in every draw) have no SNR; the threshold absorbs rounding in the float64 sums.
    varies = (std > 1e-6 * mean.abs()) & (std > 0)
    snr = mean[varies].abs() / std[varies]
    return {
        "total_variance": var.sum().item(),
        "mean_snr": snr.mean().item() if snr.numel() else float("nan"),
        "median_snr": snr.median().item() if snr.numel() else float("nan"),
        "mean_sq_norm_of_mean": mean.pow(2).sum().item(),
        "params": mean.numel(),
        "params_with_variance": int(varies.sum()),
    }


def gradient_stats(vae: torch.nn.Module, x: torch.Tensor, particles: int, estimator: str, samples: int,
                   progress: bool = True) -> dict:
    """Encoder and decoder gradient statistics over ``samples`` seeds of one estimator at one K."""
    objective = build_objective("iwae", particles, estimator)
    enc = [p for p in vae.encoder.parameters()]
    dec = [p for p in vae.decoder.parameters()]
    sums: dict[str, list[torch.Tensor]] = {}
    bounds = []
    with pyro.validation_enabled(False):
        for s in tqdm(range(samples), desc=f"K={particles} {estimator}", unit="grad", leave=False,
                      disable=None if progress else True):
            pyro.set_rng_seed(s)
            vae.zero_grad(set_to_none=True)
            loss = objective.differentiable_loss(vae.model, vae.guide, x) / x.shape[0]
            loss.backward()
            bounds.append(-loss.detach())
            for name, params in (("encoder", enc), ("decoder", dec)):
                g = _flat_grads(params).double()
                if name not in sums:
                    sums[name] = [torch.zeros_like(g), torch.zeros_like(g)]
                sums[name][0] += g
                sums[name][1] += g * g
    b = torch.stack(bounds).double()
    out = {"particles": particles, "estimator": estimator, "samples": samples,
           "bound_mean": b.mean().item(), "bound_std": b.std().item() if samples > 1 else 0.0}
    for name, (total, total_sq) in sums.items():
        out[name] = _summary(total.cpu(), total_sq.cpu(), samples)
    return out


def _plot(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for est in ESTIMATORS:
        rows = sorted((r for r in results if r["estimator"] == est), key=lambda r: r["particles"])
        if not rows:
            continue
        ks = [r["particles"] for r in rows]
        axes[0].plot(ks, [r["encoder"]["mean_snr"] for r in rows], marker="o", label=est)
        axes[1].plot(ks, [r["encoder"]["total_variance"] for r in rows], marker="o", label=est)
    axes[0].set(xscale="log", xlabel="K (particles)", ylabel="mean SNR, |mean| / std", title="encoder gradient SNR")
    axes[1].set(xscale="log", yscale="log", xlabel="K (particles)", ylabel="trace of covariance",
                title="encoder gradient variance")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Parse flags, pretrain, measure, print a table, write the JSON and the figure; return the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="binarized_mnist", help="binarized_mnist, or digits (no files; binarized once)")
    ap.add_argument("--particles", type=int, nargs="+", default=[1, 5, 10, 50])
    ap.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS)
    ap.add_argument("--samples", type=int, default=200, help="gradient draws (seeds) per estimator and K")
    ap.add_argument("--batch-size", type=int, default=100, help="the fixed batch's size and the pretraining's")
    ap.add_argument("--latent-dim", type=int, default=10)
    ap.add_argument("--hidden", type=int, nargs="+", default=[200])
    ap.add_argument("--train-steps", type=int, default=500, help="ELBO steps before measuring (0: at initialization)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.samples < 2:
        ap.error("--samples must be at least 2")
    device = resolve_device(args.device)
    t0 = time.perf_counter()

    x, event_shape = _binary_data(args.data, args.seed)
    pyro.set_rng_seed(args.seed)
    vae = build_model("vae", model_config("vae", latent_dim=args.latent_dim, hidden=tuple(args.hidden)),
                      event_shape).to(device)
    train_loss = _pretrain(vae, x, args.train_steps, args.batch_size, args.lr, args.seed,
                           not args.no_progress) if args.train_steps else None
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed + 1))[: args.batch_size]
    batch = x[idx].to(device)

    runs = [(k, e) for k in args.particles for e in args.estimators]
    results = []
    for k, e in tqdm(runs, desc="estimators x K", unit="run", disable=True if args.no_progress else None):
        results.append(gradient_stats(vae, batch, k, e, args.samples, progress=not args.no_progress))

    # Common random numbers: theta's gradient is the same for every estimator, draw by draw.
    decoder_agreement = {}
    for k in args.particles:
        rows = [r for r in results if r["particles"] == k]
        tv = [r["decoder"]["total_variance"] for r in rows]
        decoder_agreement[k] = (max(tv) - min(tv)) / max(max(tv), 1e-30)

    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    out = {"config": config, "event_shape": list(event_shape), "pretrain_loss_per_point": train_loss,
           "results": results, "decoder_total_variance_rel_spread": decoder_agreement,
           "snr_noise_floor": math.sqrt(2 / (math.pi * args.samples)),
           "torch": torch.__version__, "pyro": pyro.__version__, "wall_s": None}
    args.out.mkdir(parents=True, exist_ok=True)
    title = (f"{args.data}, VAE {math.prod(event_shape)}-{'-'.join(map(str, args.hidden))}-{args.latent_dim}, "
             f"{args.train_steps} ELBO steps, batch {args.batch_size}, {args.samples} draws")
    _plot(results, args.out / "dreg_variance.png", title)
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    (args.out / "dreg_variance.json").write_text(json.dumps(out, indent=2))

    print(title + (f"; pretraining loss {train_loss:.2f} nats/point" if train_loss is not None else ""))
    print(f"(a parameter whose true SNR is 0 reads about sqrt(2 / (pi S)) = {out['snr_noise_floor']:.3f} "
          f"at S = {args.samples})")
    print("| K | estimator | IWAE bound (mean ± sd) | encoder total var | encoder mean SNR | encoder median SNR "
          "| decoder total var | decoder mean SNR |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        e, d = r["encoder"], r["decoder"]
        print(f"| {r['particles']} | {r['estimator']} | {r['bound_mean']:.2f} ± {r['bound_std']:.2f} | "
              f"{e['total_variance']:.4g} | {e['mean_snr']:.4f} | {e['median_snr']:.4f} | "
              f"{d['total_variance']:.4g} | {d['mean_snr']:.4f} |")
    print(f"wrote {args.out / 'dreg_variance.json'} and {args.out / 'dreg_variance.png'} ({out['wall_s']} s)")
    return out


if __name__ == "__main__":
    main()
