"""Why the non-saturating generator loss: the generator's gradient early in GAN training, measured.

    python examples/gan_generator_gradient.py --data binarized_mnist --out runs/gan-gradient

Trains the suite's GAN twice on the same data and seed (Algorithm 1 of Goodfellow et al. 2014, one
discriminator step per generator step, lr 2e-4, no instance noise unless ``--instance-noise``), once
with each generator loss. After every step it
measures, on a fixed batch of codes z and without disturbing training (no parameter, gradient,
batch-norm statistic or random stream changes), the norm of the generator's gradient under both
losses, and the mean D(G(z)). Early on D rejects the samples (D(G(z)) near 0), where
log(1 - D(G(z))) is flat: the minimax gradient vanishes while the non-saturating one is large.
The figure goes to OUT/generator_gradient.png, the numbers to OUT/generator_gradient.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ppl_models.atomic import atomic_savefig, atomic_write
from ppl_models.data import load_dataset
from ppl_models.objectives.adversarial import GENERATOR_LOSSES
from ppl_models.registry import model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.run import RunConfig


class GradientRecorder:
    """After each step: ||grad_G|| of every generator loss on fixed codes, and the mean D(G(z))."""

    def __init__(self, latent_dim: int, n: int, steps: int):
        self.z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(1234))
        self.steps = steps
        self.rows: list[dict] = []

    def __call__(self, step: int, model: torch.nn.Module) -> None:
        if step > self.steps:
            return
        buffers = [(b, b.detach().clone()) for b in model.buffers()]  # batch-norm statistics are put back
        params = list(model.generator.parameters())
        logits = model.discriminator(model.generator(self.z.to(params[0].device)))
        row = {"step": step, "d_of_g": torch.sigmoid(logits).mean().item()}
        for name, loss in GENERATOR_LOSSES.items():
            grads = torch.autograd.grad(loss(logits) / len(self.z), params, retain_graph=True)
            row[name] = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        self.rows.append(row)


def plot(runs: dict[str, list[dict]], path: Path) -> Path:
    """One panel per training run: both gradient norms (log scale) and D(G(z)) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), squeeze=False)
    for ax, (trained_with, rows) in zip(axes[0], runs.items()):
        steps = [r["step"] for r in rows]
        for name, style in zip(GENERATOR_LOSSES, ("-", "--")):
            ax.semilogy(steps, [max(r[name], 1e-12) for r in rows], style, label=f"||grad G|| under {name}")
        ax.set_xlabel("step")
        ax.set_ylabel("generator gradient norm (per sample)")
        ax.set_title(f"trained with the {trained_with} loss")
        twin = ax.twinx()
        twin.plot(steps, [r["d_of_g"] for r in rows], color="grey", alpha=0.6, label="mean D(G(z))")
        twin.set_ylim(0, 1)
        twin.set_ylabel("mean D(G(z))")
        lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper right")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    """Run both trainings; return the recorded rows per generator loss."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", default="binarized_mnist", help="dataset")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs per run")
    ap.add_argument("--record", type=int, default=300, help="steps measured from the start")
    ap.add_argument("--latent-dim", type=int, default=64, help="size of z")
    ap.add_argument("--channels", type=int, default=64, help="feature maps of both players")
    ap.add_argument("--instance-noise", type=float, default=0.0,
                    help="sd of the noise on what D sees (0: plain Algorithm 1, as in the paper's argument)")
    ap.add_argument("--seed", type=int, default=0, help="seed of both runs")
    ap.add_argument("--out", default="runs/gan-gradient", help="output directory (one run per loss inside)")
    args = ap.parse_args(argv)

    data = load_dataset(args.data)
    out = Path(args.out)
    runs = {}
    for loss in GENERATOR_LOSSES:
        config = RunConfig("gan", model_config("gan", latent_dim=args.latent_dim, channels=args.channels,
                                               instance_noise=args.instance_noise),
                           TrainConfig(data=args.data, epochs=args.epochs, seed=args.seed, lr=2e-4,
                                       strategy="adversarial", generator_loss=loss), data.event_shape)
        recorder = GradientRecorder(args.latent_dim, 256, args.record)
        fit(RunDir(out / loss), config, data, after_step=recorder)
        runs[loss] = recorder.rows
    figure = plot(runs, out / "generator_gradient.png")
    text = json.dumps(runs).encode()
    atomic_write(out / "generator_gradient.json", lambda f: f.write(text))
    for loss, rows in runs.items():
        first = rows[: max(1, len(rows) // 10)]
        mean = {k: sum(r[k] for r in first) / len(first) for k in ("d_of_g", *GENERATOR_LOSSES)}
        print(f"trained with {loss}: first {len(first)} steps: mean D(G(z)) {mean['d_of_g']:.3f}, "
              + ", ".join(f"||grad|| {k} {mean[k]:.3g}" for k in GENERATOR_LOSSES))
    print(f"figure: {figure}")
    return runs


if __name__ == "__main__":
    main()
