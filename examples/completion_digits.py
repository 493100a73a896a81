"""Complete digits whose top half is hidden, four ways, with your own model beside the built-in ones.

`sketch-vae` below is a user model: a Pyro program with Bernoulli pixels and a Laplace code, no
guide (the automatic one is attached). It completes by `latent` inference and by the `pixels`
method; a PixelCNN adds `autoregressive` completion and a CVAE trained to see the bottom half adds
`cvae`. The same as `ppl complete RUN ... --mask top-half --out OUT`."""
import argparse
from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch

import ppl_models as ppl
from ppl_models.nets import mlp


@dataclass(frozen=True)
class SketchVAEConfig:
    latent_dim: int = 8  # size of the code z
    hidden: int = 128  # width of the decoder's hidden layer


@ppl.register_model("sketch-vae", SketchVAEConfig, "VAE with a Laplace code and Bernoulli pixels")
class SketchVAE(torch.nn.Module):
    observed_sites = ("x",)

    def __init__(self, config: SketchVAEConfig, event_shape: torch.Size):
        super().__init__()
        self.config, self.event_shape = config, event_shape
        self.decoder = mlp([config.latent_dim, config.hidden, event_shape.numel()])
        self.register_buffer("zero", torch.zeros(config.latent_dim))

    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0] if x is not None else batch_size):
            z = pyro.sample("z", dist.Laplace(self.zero, 1.0).to_event(1))
            logits = self.decoder(z).reshape(*z.shape[:-1], *self.event_shape)
            return pyro.sample("x", dist.Bernoulli(logits=logits).to_event(len(self.event_shape)), obs=x)


def main(argv=None) -> dict:
    """Train the three models on binarized digits, complete OUT's test digits under --mask, print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100, help="training epochs of each model")
    ap.add_argument("--mask", default="top-half", help="what is hidden (see ppl complete --help)")
    ap.add_argument("--limit", type=int, default=50, help="test digits to complete")
    ap.add_argument("--nll-samples", type=int, default=1000, help="K of the importance-sampled likelihoods")
    ap.add_argument("--steps", type=int, default=200, help="SVI steps of the per-point and pixels fits")
    ap.add_argument("--out", default="runs/completion", help="output directory")
    args = ap.parse_args(argv)
    common = dict(data="digits", epochs=args.epochs, binarize="dynamic", progress=False)
    runs = [ppl.train(f"{__file__}:sketch-vae", out=f"{args.out}/sketch-vae", **common),
            ppl.train("pixelcnn", out=f"{args.out}/pixelcnn", **common),
            ppl.train("cvae", out=f"{args.out}/cvae", condition="partial", visible="bottom", **common)]
    report = runs[0].complete(args.mask, args.out, with_runs=[r.path for r in runs[1:]], limit=args.limit,
                              num_particles=args.nll_samples, svi_steps=args.steps, pixel_steps=args.steps,
                              progress=False)
    def show(value):
        return f"{value:.3f}" if isinstance(value, float) else value

    for row in report.rows:
        print(f"{row['method']:>14} {row['variant'] or '':<28} {row['model']:<28} -log p(x_hidden | x_obs) "
              f"{show(row['nll'])}  accuracy {show(row['accuracy'])}  class kept {show(row['class_kept'])}")
    print("table and figures in " + ", ".join(str(p) for p in report.files))
    return report.to_json()


if __name__ == "__main__":
    main()
