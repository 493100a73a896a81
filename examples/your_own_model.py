"""Your own model in one file: the Pyro program alone; the amortized guide is built from its sites.
Run it, or `ppl train examples/your_own_model.py:ink-vae --data digits --epochs 50 --out runs/ink`."""
import argparse
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

import ppl_models as ppl
from ppl_models.nets import mlp


@dataclass(frozen=True)
class InkVAEConfig:
    latent_dim: int = 8  # size of the shape code z
    hidden: int = 200  # width of the decoder's hidden layer


@ppl.register_model("ink-vae", InkVAEConfig, "VAE with a Laplace shape code and a positive per-image ink level")
class InkVAE(torch.nn.Module):
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
    """Train ``ink-vae`` on digits, print its test log-likelihood; sample grids go to OUT/samples."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50, help="passes over the training digits")
    ap.add_argument("--out", default="runs/ink", help="run directory")
    args = ap.parse_args(argv)
    run = ppl.train(f"{__file__}:ink-vae", data="digits", epochs=args.epochs, out=args.out)  # records this file
    result = run.evaluate(nll_samples=500, progress=False)
    print(f"test ELBO {result.elbo:.2f}, NLL {result.nll:.2f} nats; samples in {run.path}/samples")
    return result.to_json()


if __name__ == "__main__":
    main()
