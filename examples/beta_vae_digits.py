"""Train a beta-VAE on scikit-learn's digits, evaluate it, and save sample grids.

    python examples/beta_vae_digits.py --epochs 100 --beta 4 --out runs/beta_vae

The `beta_vae` model (Higgins et al. 2017) trains on E_q[log p(x | z)] - beta * KL(q || p): beta > 1
pushes the posteriors towards the prior, at the cost of reconstruction. Evaluation runs in eval
mode, where the programs are the plain VAE's, so the reported ELBO and NLL bound log p(x) and can
be compared with `examples/vae_digits.py`. The mean KL(q(z | x) || p(z)) on the test set shows
the price beta puts on the code.
"""

from __future__ import annotations

import argparse

import pyro
import torch
from pyro import poutine
from torch.distributions import kl_divergence

from ppl_models.data import load_dataset
from ppl_models.evaluate import estimate_log_likelihood
from ppl_models.evaluate.samples import save_sample_grids
from ppl_models.registry import model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.run import RunConfig


@torch.no_grad()
def mean_kl(model, x: torch.Tensor) -> float:
    """Mean over ``x`` of KL(q(z | x) || p(z)), in nats, from the guide's and the model's ``z`` sites."""
    guide = poutine.trace(model.guide).get_trace(x)
    prior = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
    return kl_divergence(guide.nodes["z"]["fn"], prior.nodes["z"]["fn"]).mean().item()


def main(argv: list[str] | None = None) -> dict:
    """Run the example; return the test-set results (and the mean KL) as a dict."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100, help="passes over the training digits")
    ap.add_argument("--beta", type=float, default=4.0, help="weight of the KL term while training")
    ap.add_argument("--latent-dim", type=int, default=8, help="size of z")
    ap.add_argument("--hidden", type=int, default=400, help="hidden width")
    ap.add_argument("--nll-samples", type=int, default=1000, help="importance samples per test image")
    ap.add_argument("--out", default="runs/beta_vae", help="run (or output) directory")
    args = ap.parse_args(argv)

    data = load_dataset("digits")
    architecture = model_config("beta_vae", beta=args.beta, latent_dim=args.latent_dim, hidden=(args.hidden,),
                                likelihood="gaussian")
    config = RunConfig("beta_vae", architecture, TrainConfig(data="digits", epochs=args.epochs), data.event_shape)
    run = RunDir(args.out)
    model = fit(run, config, data)  # returned in eval mode: the bounds below are on log p(x)
    pyro.set_rng_seed(0)
    result = estimate_log_likelihood(model, data.test.x, num_samples=args.nll_samples)
    kl = mean_kl(model, data.test.x)
    grids = save_sample_grids(model, run.path / "samples")
    print(f"beta_vae (beta={args.beta}): test ELBO {result.elbo:.2f} nats, NLL {result.nll:.2f} nats "
          f"(K={result.nll_samples}), KL(q || p) {kl:.2f} nats; grids: {', '.join(map(str, grids))}")
    return {**result.to_json(), "beta": args.beta, "kl": kl}


if __name__ == "__main__":
    main()
