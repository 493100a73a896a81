"""Compare inference strategies on digits through the Python API: ELBO, IWAE with DReG gradients,
semi-amortized and per-data-point SVI, side by side.

    python examples/iwae_dreg_digits.py --epochs 50 --out runs/example-compare

The same as `ppl compare-inference --data digits ...`, written out: one CompareConfig, one call
that trains and evaluates every strategy, and the report files.
"""

from __future__ import annotations

import argparse

from ppl_models.inference.compare import CompareConfig, compare_inference
from ppl_models.inference.report import markdown, write_results


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; return its results (rows, curves, estimator check)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50, help="passes over the training digits")
    ap.add_argument("--strategies", default="elbo,iwae:10,iwae:10:dreg,semi-amortized:5,per-datapoint",
                    help="comma-separated strategy specs (see ppl compare-inference --help)")
    ap.add_argument("--latent-dim", type=int, default=8, help="size of z")
    ap.add_argument("--nll-samples", type=int, default=1000, help="importance samples per test image")
    ap.add_argument("--out", default="runs/example-compare", help="run (or output) directory")
    args = ap.parse_args(argv)

    config = CompareConfig(
        model="vae", data="digits", strategies=tuple(args.strategies.split(",")), epochs=args.epochs,
        nll_samples=args.nll_samples, iwae_k=(5,), estimator_samples=min(100, args.nll_samples),
        model_fields={"latent_dim": args.latent_dim},
    )
    results = compare_inference(config, args.out)
    write_results(results, args.out)
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
