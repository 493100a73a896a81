"""Your own model in one file: write the Pyro program, get an amortized guide, train, evaluate, sample.

    ppl train examples/your_own_model.py:ink-vae --data digits --epochs 50 --out runs/ink
    python examples/your_own_model.py --epochs 50 --out runs/ink

No guide is written: the registry builds an amortized one from the model's latent sites (a Normal
on the real line for ``z``, mapped into (0, inf) for the positive ``ink``).
"""
import argparse
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppl_models import register_model
from ppl_models.nets import mlp


@dataclass(frozen=True)
class InkVAEConfig:
    latent_dim: int = 8  # size of the shape code z
    hidden: int = 200  # width of the decoder's hidden layer


@register_model("ink-vae", InkVAEConfig, "VAE with a Laplace shape code and a positive per-image ink level")
class InkVAE(nn.Module):
    observed_sites = ("x",)

    def __init__(self, config: InkVAEConfig, event_shape: torch.Size):
        super().__init__()
        self.config, self.event_shape = config, event_shape
        self.decoder = mlp([config.latent_dim, config.hidden, event_shape.numel()])
        self.register_buffer("zero", torch.zeros(config.latent_dim))

    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0] if x is not None else batch_size):
            z = pyro.sample("z", dist.Laplace(self.zero, 1.0).to_event(1))
            ink = pyro.sample("ink", dist.LogNormal(self.zero[0], 0.5))
            shape = torch.sigmoid(self.decoder(z)).reshape(*z.shape[:-1], *self.event_shape)
            mean = shape * ink.reshape(*ink.shape, *[1] * len(self.event_shape))
            return pyro.sample("x", dist.Normal(mean, 0.1).to_event(len(self.event_shape)), obs=x)


def main(argv=None) -> dict:
    """Train ``ink-vae`` on digits, print its test log-likelihood and save sample grids."""
    from ppl_models.data import load_data
    from ppl_models.evaluate import estimate_log_likelihood
    from ppl_models.evaluate.samples import save_sample_grids
    from ppl_models.train import RunDir, TrainConfig, fit
    from ppl_models.train.configure import new_run_config

    ap = argparse.ArgumentParser(description="train, evaluate and sample the ink-vae")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--out", default="runs/ink")
    args = ap.parse_args(argv)
    data = load_data("digits")  # the run records this file, so `ppl eval/sample RUN` find the model
    config = new_run_config(f"{__file__}:ink-vae", {}, TrainConfig(data="digits", epochs=args.epochs), data)
    model = fit(RunDir(args.out), config, data)
    result = estimate_log_likelihood(model, data.test.x, num_samples=500)
    save_sample_grids(model, f"{args.out}/samples")
    print(f"test ELBO {result.elbo:.2f}, NLL {result.nll:.2f} nats; samples in {args.out}/samples")
    return result.to_json()


if __name__ == "__main__":
    main()
