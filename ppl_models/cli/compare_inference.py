"""``ppl compare-inference``: train and evaluate several inference strategies on one model and dataset."""

from __future__ import annotations

import argparse

from ppl_models.cli.common import (add_data_dir, add_device, add_guide, add_model_settings, add_seed, add_user_data,
                                   guide_fields, parse_settings)

DEFAULT_STRATEGIES = "elbo,elbo-analytic,iwae:5,iwae:50,iwae:50:dreg,semi-amortized:10"


def add_parser(subparsers) -> None:
    """Register the ``compare-inference`` subcommand."""
    p = subparsers.add_parser(
        "compare-inference", help="compare inference strategies side by side", description=__doc__,
        epilog="strategies: elbo | elbo-analytic | elbo:K | iwae:K[:standard|stl|dreg] | semi-amortized:N | "
               "per-datapoint[:N] | amortized",
    )
    p.add_argument("--model", default="vae", help="registered model name (default vae) or path/to/my_model.py:NAME")
    p.add_argument("--data", default="binarized_mnist", help="dataset name (default binarized_mnist) or a data file")
    add_user_data(p)
    add_data_dir(p)
    p.add_argument("--strategies", default=DEFAULT_STRATEGIES, help=f"comma-separated specs (default {DEFAULT_STRATEGIES})")
    p.add_argument("--epochs", type=int, default=10, help="training epochs of every strategy (default 10)")
    p.add_argument("--batch-size", type=int, default=100, help="data points per step (default 100)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--latent-dim", type=int, default=None, help="size of z (model default if omitted)")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden widths (model default if omitted)")
    add_model_settings(p)
    add_guide(p)
    p.add_argument("--limit", type=int, default=None, help="cap every split at N evenly spread images (fast runs)")
    p.add_argument("--test-limit", type=int, default=None, help="cap the test split further at N images")
    p.add_argument("--nll-samples", type=int, default=5000, help="K of the test NLL (default 5000)")
    p.add_argument("--iwae-k", type=int, nargs="+", default=[5, 50], help="IWAE-k test bounds to report (default 5 50)")
    p.add_argument("--estimator-points", type=int, default=100,
                   help="test images for the prior-vs-guide log p(x) estimators (default 100; 0 skips)")
    p.add_argument("--estimator-samples", type=int, default=100, help="K of both estimators (default 100)")
    p.add_argument("--nuts-points", type=int, default=0, help="test images checked against NUTS (default 0)")
    p.add_argument("--gaps", action="store_true",
                   help="fit the best guide per test image: approximation and amortization gap columns")
    p.add_argument("--out", required=True, help="output directory (results.* and runs/)")
    p.add_argument("--resume", action="store_true", help="continue the strategies' runs in --out")
    add_device(p)
    add_seed(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the comparison, write the results and print the Markdown table."""
    from ppl_models.inference.compare import CompareConfig, compare_inference
    from ppl_models.inference.report import markdown, write_results

    model_fields = parse_settings(args.model_settings)
    if args.latent_dim is not None:
        model_fields["latent_dim"] = args.latent_dim
    if args.hidden is not None:
        model_fields["hidden"] = tuple(args.hidden)
    config = CompareConfig(
        model=args.model, data=args.data, valid_data=args.valid_data, test_data=args.test_data, strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
        limit=args.limit, test_limit=args.test_limit, nll_samples=args.nll_samples, iwae_k=tuple(args.iwae_k),
        estimator_points=args.estimator_points, estimator_samples=args.estimator_samples,
        nuts_points=args.nuts_points, gaps=args.gaps, model_fields=model_fields, guide_fields=guide_fields(args),
    )
    results = compare_inference(config, args.out, resume=args.resume, data_dir=args.data_dir,
                                progress=not args.no_progress)
    paths = write_results(results, args.out)
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
