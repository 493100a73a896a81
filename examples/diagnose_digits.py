"""Did inference work? Train a VAE on scikit-learn's digits and diagnose its posterior approximation.

    python examples/diagnose_digits.py --epochs 100 --out runs/diagnose-example

The same as `ppl train vae --data digits` followed by `ppl diagnose RUN --gaps --ais-steps 200`,
written out in Python: per-point Pareto k-hat and ESS, the inference gap split into its
approximation and amortization parts, AIS against importance sampling, active units, rate and
distortion; the report, figures and an ArviZ InferenceData go to OUT/diagnostics.
"""

from __future__ import annotations

import argparse

import pyro

from ppl_models.data import load_dataset
from ppl_models.diagnostics import DiagnoseConfig, GapSettings, diagnose, write_diagnostics
from ppl_models.registry import model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.run import RunConfig


def main(argv: list[str] | None = None) -> dict:
    """Run the example; return the diagnostics summary."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100, help="training epochs")
    ap.add_argument("--latent-dim", type=int, default=8, help="size of z")
    ap.add_argument("--samples", type=int, default=1000, help="guide draws per test image")
    ap.add_argument("--gap-steps", type=int, default=3000, help="step cap of the per-image fit of q*")
    ap.add_argument("--ais-steps", type=int, default=200, help="AIS annealing steps (0: no AIS)")
    ap.add_argument("--out", default="runs/diagnose-example", help="run directory")
    args = ap.parse_args(argv)

    data = load_dataset("digits")
    config = RunConfig("vae", model_config("vae", latent_dim=args.latent_dim, hidden=(200,), likelihood="gaussian"),
                       TrainConfig(data="digits", epochs=args.epochs), data.event_shape)
    run = RunDir(args.out)
    model = fit(run, config, data).eval()
    pyro.set_rng_seed(0)
    settings = DiagnoseConfig(samples=args.samples, gaps=True, gap=GapSettings(max_steps=args.gap_steps),
                              ais_steps=args.ais_steps, ais_points=50, bdmc_points=10)
    with pyro.validation_enabled(False):
        result = diagnose(model, data.test.x, data.test.y, config=settings, progress=True, model_kwargs={})
    paths = write_diagnostics(result, run.path / "diagnostics", model, data.event_shape)
    print(paths[1].read_text())
    return result.summary


if __name__ == "__main__":
    main()
