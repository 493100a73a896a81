"""``ppl compare``: train PixelCNN, PixelRNN, a GAN and latent-variable models on the same data, and
measure them alike (test NLL, bits/dim, sample quality against the real-data floor, time, size)."""

from __future__ import annotations

import argparse

from ppl_models.cli.common import add_data_dir, add_device, add_seed, parse_settings

DEFAULT_MODELS = "vae,iwae,two_layer_vae,pixelcnn,pixelrnn,gan"


def add_parser(subparsers) -> None:
    """Register the ``compare`` subcommand."""
    p = subparsers.add_parser("compare", help="compare model families on the same data and metrics",
                              description=__doc__, epilog="models: iwae (the VAE on the IWAE bound, K=5) or any "
                                                          "registered model (ppl models)")
    p.add_argument("--data", default="binarized_mnist", help="dataset name (default binarized_mnist)")
    add_data_dir(p)
    p.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated contenders (default {DEFAULT_MODELS})")
    p.add_argument("--epochs", type=int, default=10, help="training epochs of every model (default 10)")
    p.add_argument("--batch-size", type=int, default=100, help="data points per step (default 100)")
    p.add_argument("--limit", type=int, default=None, help="cap every split at N evenly spread images (fast runs)")
    p.add_argument("--test-limit", type=int, default=None, help="cap the test split of the NLL further at N images")
    p.add_argument("--nll-samples", type=int, default=1000,
                   help="K of the importance-sampled NLL of latent-variable models (default 1000)")
    p.add_argument("--quality-samples", type=int, default=1000,
                   help="N samples per model, and N real images per reference and floor set (default 1000)")
    p.add_argument("--binarize", choices=["none", "dynamic"], default="none",
                   help="dynamic: every model trains on Bernoulli draws of grey data, evaluated on one fixed draw")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="MODEL.FIELD=VALUE",
                   help="a model config field of one contender, e.g. --set gan.channels=32 (repeatable)")
    p.add_argument("--out", required=True, help="output directory (results.*, samples/, runs/)")
    p.add_argument("--resume", action="store_true", help="continue the runs in --out; finished ones are only evaluated")
    add_device(p)
    add_seed(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Run the comparison, write the results and print the Markdown table."""
    from ppl_models.comparison import ModelComparisonConfig, compare_models
    from ppl_models.comparison.report import markdown, write_results

    settings: dict[str, dict] = {}
    for item in args.settings:
        name, dot, rest = item.partition(".")
        if not dot or "=" not in rest:
            raise ValueError(f"--set expects MODEL.FIELD=VALUE (e.g. gan.channels=32), got {item!r}")
        settings.setdefault(name, {}).update(parse_settings([rest]))
    config = ModelComparisonConfig(
        data=args.data, models=tuple(m.strip() for m in args.models.split(",") if m.strip()), epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, device=args.device, limit=args.limit, test_limit=args.test_limit,
        nll_samples=args.nll_samples, quality_samples=args.quality_samples, binarize=args.binarize, settings=settings)
    results = compare_models(config, args.out, resume=args.resume, data_dir=args.data_dir,
                             progress=not args.no_progress)
    paths = write_results(results, args.out)
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in paths))
