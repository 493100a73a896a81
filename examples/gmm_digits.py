"""Fit a Gaussian mixture to scikit-learn's digits by exact maximum likelihood, and look at it.

    python examples/gmm_digits.py --epochs 100 --components 10 --out runs/gmm

The simplest latent-variable model (Bishop 2006, PRML ch. 9): each digit comes from one of C
diagonal Gaussians. The component is a discrete latent the objective sums out by enumeration
(``TraceEnum_ELBO``), so the "ELBO" being maximised is log p(x) itself and the test
log-likelihood is exact: importance weights with nothing left to sample are all log p(x). The
run saves ``means.png`` (the C component means, weight-ordered) and ``draws.png`` (x ~ p(x)).
"""

from __future__ import annotations

import argparse

import pyro
import torch

from ppl_models.data import load_dataset
from ppl_models.evaluate import estimate_log_likelihood
from ppl_models.evaluate.samples import sample_observations, save_grid
from ppl_models.registry import model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.run import RunConfig


def no_guide(x: torch.Tensor, batch_size: int | None = None) -> None:
    """The proposal for evaluation: the GMM's only latent is enumerated, so nothing is sampled."""


def main(argv: list[str] | None = None) -> dict:
    """Run the example; return the test-set results and the saved figures as a dict."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100, help="passes over the training digits")
    ap.add_argument("--components", type=int, default=10, help="mixture components")
    ap.add_argument("--min-scale", type=float, default=0.05, help="smallest component scale")
    ap.add_argument("--lr", type=float, default=0.02, help="Adam step size (the means move about lr per step)")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--samples", type=int, default=64, help="draws in the sample grid")
    ap.add_argument("--out", default="runs/gmm", help="run (or output) directory")
    args = ap.parse_args(argv)

    data = load_dataset("digits")
    config = RunConfig(
        model="gmm",
        model_config=model_config("gmm", components=args.components, min_scale=args.min_scale),
        train=TrainConfig(data="digits", epochs=args.epochs, lr=args.lr, seed=args.seed),
        event_shape=data.event_shape,
    )
    run = RunDir(args.out)
    model = fit(run, config, data)

    # One "importance sample" is exact here; the empty proposal makes that so whatever guide is attached.
    result = estimate_log_likelihood(model, data.test.x, num_samples=1, guide_for=lambda module, xb: no_guide)
    order = model.weights.argsort(descending=True)
    means = save_grid(model.component_means()[order], run.path / "means.png")
    pyro.set_rng_seed(args.seed)
    draws = save_grid(sample_observations(model, args.samples), run.path / "draws.png")
    weights = ", ".join(f"{w:.2f}" for w in model.weights[order].tolist())
    print(f"test log p(x) {-result.nll:.2f} nats per digit (exact, {result.n} digits); "
          f"weights {weights}; figures: {means}, {draws}")
    return {**result.to_json(), "log_px": -result.nll, "weights": model.weights[order].tolist(),
            "means_png": str(means), "draws_png": str(draws)}


if __name__ == "__main__":
    main()
