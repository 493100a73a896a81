"""``ppl sample RUN -n 64 --out grid.png``: a PNG grid of samples from a trained model."""

from __future__ import annotations

import argparse

from ppl_models.cli.common import add_data_dir, add_seed


def add_parser(subparsers) -> None:
    """Register the ``sample`` subcommand."""
    p = subparsers.add_parser("sample", help="save a PNG grid of model samples", description=__doc__)
    p.add_argument("run_dir", metavar="RUN", help="a run directory made by `ppl train`")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--mean", action="store_true", help="decoder means E[x|z] instead of draws x ~ p(x|z)")
    add_data_dir(p)
    add_seed(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Load the run, sample and save the grid."""
    import pyro

    from ppl_models.data import load_data
    from ppl_models.evaluate.checks import at_least
    from ppl_models.evaluate.samples import as_images, grid_columns, sample_observations, save_grid
    from ppl_models.models.protocol import check_event_shape
    from ppl_models.train import RunDir

    at_least(args.n, "-n")
    config, model = RunDir(args.run_dir).load_model("cpu")
    data = None
    if hasattr(model, "sample_inputs"):  # e.g. the images a completion model completes
        data = load_data(config.train.data, args.data_dir, config.train.valid_data, config.train.test_data).test
        check_event_shape(data.x, config.event_shape, f"{config.train.data}/test",
                          f"the run {args.run_dir} was trained on")
    pyro.set_rng_seed(args.seed)
    path = save_grid(as_images(sample_observations(model, args.n, mean=args.mean, data=data)), args.out,
                     grid_columns(model))
    print(f"saved {args.n} {'means' if args.mean else 'draws'} to {path}")
