"""Train the conditional VAE (Sohn et al. 2015) on scikit-learn's digits in both modes and save grids.

    python examples/cvae_digits.py --epochs 100 --out runs/example-cvae

``label`` mode: class-conditional samples, one row per class (``classes.png``), and the test
log p(x | y) with the true label against a wrong one (the model must use its condition).
``partial`` mode: completions of test images whose top half is visible (``completions.png``: rows
of originals, the visible halves, completed means and completed draws; the visible pixels are
pasted back by the model itself), and the test log p(x_bottom | x_top).

Each mode trains through the Python API (``ppl.train``) into ``OUT/<mode>``, a run directory that
``ppl eval``, ``ppl sample`` and ``ppl diagnose`` read as well.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro
import torch

import ppl_models as ppl
from ppl_models.data import load_dataset
from ppl_models.evaluate import estimate_log_likelihood
from ppl_models.evaluate.samples import save_grid


@torch.no_grad()
def label_mode(model, data, samples_per_class: int, nll_samples: int, out: Path) -> dict:
    """Class-conditional grid and test log p(x | y) under the true and a wrong label."""
    classes = model.config.classes
    y = torch.arange(classes).repeat_interleave(samples_per_class)
    means = pyro.poutine.trace(model.model).get_trace(y=y).nodes["x"]["fn"].mean
    save_grid(means.reshape(-1, *data.event_shape), out / "classes.png", nrow=samples_per_class)
    x, y = data.test.x, data.test.y
    wrong = (y + torch.randint(1, classes, y.shape)) % classes  # a uniformly drawn wrong class
    true_ll = estimate_log_likelihood(model, x, num_samples=nll_samples, y=y)
    wrong_ll = estimate_log_likelihood(model, x, num_samples=nll_samples, y=wrong)
    print(f"label: test log p(x | true y) {-true_ll.nll:.2f}, log p(x | wrong y) {-wrong_ll.nll:.2f} nats "
          f"(ELBO {true_ll.elbo:.2f} / {wrong_ll.elbo:.2f}, K={nll_samples}); grid {out / 'classes.png'}")
    return {"log_px_true_label": -true_ll.nll, "log_px_wrong_label": -wrong_ll.nll,
            "elbo_true_label": true_ll.elbo, "elbo_wrong_label": wrong_ll.elbo}


@torch.no_grad()
def partial_mode(model, data, completions: int, nll_samples: int, out: Path) -> dict:
    """Completion grid of evenly spread test images and the test log p(x_hidden | x_visible)."""
    inputs = model.sample_inputs(data.test, completions)
    site = pyro.poutine.trace(model.model).get_trace(**inputs).nodes["x"]
    originals = data.test.x[torch.linspace(0, len(data.test) - 1, completions).round().long()]
    rows = torch.cat([originals, inputs["visible"], site["fn"].mean, site["value"]])
    save_grid(rows, out / "completions.png", nrow=completions)
    ll = estimate_log_likelihood(model, data.test.x, num_samples=nll_samples)
    print(f"partial ({model.config.visible} visible): test log p(x_hidden | x_visible) {-ll.nll:.2f} nats "
          f"(ELBO {ll.elbo:.2f}, K={nll_samples}); grid {out / 'completions.png'}")
    return {"log_px_hidden_given_visible": -ll.nll, "elbo_hidden_given_visible": ll.elbo}


MODES = {"label": label_mode, "partial": partial_mode}


def main(argv: list[str] | None = None) -> dict:
    """Run the example; return each mode's test figures as a dict ``{mode: {...}}``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--modes", default="label,partial", help="comma-separated: label, partial")
    ap.add_argument("--epochs", type=int, default=100, help="passes over the training digits")
    ap.add_argument("--batch-size", type=int, default=100, help="images per step")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    ap.add_argument("--latent-dim", type=int, default=8, help="size of z")
    ap.add_argument("--hidden", type=int, default=256, help="hidden width")
    ap.add_argument("--likelihood", default="gaussian", help="bernoulli needs binary data; digits are grey")
    ap.add_argument("--samples", type=int, default=10, help="samples per class / completions per grid row")
    ap.add_argument("--nll-samples", type=int, default=1000, help="importance samples per test image")
    ap.add_argument("--out", default="runs/example-cvae", help="output directory (one run directory per mode)")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := sorted(set(modes) - set(MODES)):
        raise SystemExit(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")

    data = load_dataset("digits")
    out = Path(args.out)
    results = {}
    for mode in modes:
        run = ppl.train("cvae", data="digits", out=out / mode, epochs=args.epochs, batch_size=args.batch_size,
                        lr=args.lr, condition=mode, latent_dim=args.latent_dim, hidden=(args.hidden,),
                        likelihood=args.likelihood, progress=False)
        model = run.model
        pyro.set_rng_seed(0)
        results[mode] = MODES[mode](model, data, args.samples, args.nll_samples, out)
    return results


if __name__ == "__main__":
    main()
