"""Train the conditional VAE (Sohn et al. 2015) on scikit-learn's digits in both modes and save grids.

    python examples/cvae_digits.py --epochs 100 --out runs/example-cvae

``label`` mode: class-conditional samples, one row per class (``classes.png``), and the test
log p(x | y) with the true label against a wrong one (the model must use its condition).
``partial`` mode: completions of test images whose top half is visible (``completions.png``: rows
of originals, the visible halves, completed means and completed draws; the visible pixels are
pasted back by the model itself), and the test log p(x_bottom | x_top).

Training is a plain SVI loop over minibatches with labels bound per batch; it stands in for
``ppl_models.train.fit`` until the training loop binds labels (then ``train`` below becomes one
``fit(RunDir(out), RunConfig("cvae", config, TrainConfig(data="digits", epochs=...), (8, 8)), data)``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyro
import torch

from ppl_models.data import load_dataset
from ppl_models.evaluate import estimate_log_likelihood
from ppl_models.evaluate.samples import save_grid
from ppl_models.models.protocol import bind_labels
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config


def train(config, data, epochs: int, batch_size: int, lr: float, seed: int = 0) -> torch.nn.Module:
    """Fit a CVAE on ``data.train`` with the ``elbo`` objective and Adam; labels bound per batch."""
    pyro.set_rng_seed(seed)
    model = build_model("cvae", config, data.event_shape)
    objective = build_objective("elbo")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = data.train.x, data.train.y
    for _ in range(epochs):
        for idx in torch.randperm(x.shape[0]).split(batch_size):
            view = bind_labels(model, y[idx])  # the model itself when it takes no labels
            loss = objective.differentiable_loss(view.model, view.guide, x[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="label,partial", help="comma-separated: label, partial")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--latent-dim", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--likelihood", default="gaussian", help="bernoulli needs binary data; digits are grey")
    ap.add_argument("--samples", type=int, default=10, help="samples per class / completions per grid row")
    ap.add_argument("--nll-samples", type=int, default=1000)
    ap.add_argument("--out", default="runs/example-cvae")
    args = ap.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := sorted(set(modes) - set(MODES)):
        raise SystemExit(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")

    data = load_dataset("digits")
    out = Path(args.out)
    results = {}
    for mode in modes:
        config = model_config("cvae", condition=mode, latent_dim=args.latent_dim, hidden=(args.hidden,),
                              likelihood=args.likelihood)
        model = train(config, data, args.epochs, args.batch_size, args.lr)
        pyro.set_rng_seed(0)
        results[mode] = MODES[mode](model, data, args.samples, args.nll_samples, out)
    return results


if __name__ == "__main__":
    main()
