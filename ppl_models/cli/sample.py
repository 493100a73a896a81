"""``ppl sample RUN -n 64 --out grid.png|samples.npy|samples.pt``: samples from a trained model.

``.png`` is a picture of them: a grid for image data, a pairs plot (against the run's test data)
for vector data. ``.npy`` and ``.pt`` hold the samples themselves, shape ``[n, *event_shape]``.
"""

from __future__ import annotations

import argparse

from ppl_models.cli.common import add_data_dir, add_seed


def add_parser(subparsers) -> None:
    """Register the ``sample`` subcommand."""
    p = subparsers.add_parser("sample", help="save model samples: a PNG picture, or the samples as .npy/.pt",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="a run directory made by `ppl train`")
    p.add_argument("-n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True,
                   help="file to write: .png (an image grid, or a pairs plot for vector data), .npy or .pt")
    p.add_argument("--mean", action="store_true", help="decoder means E[x|z] instead of draws x ~ p(x|z)")
    add_data_dir(p)
    add_seed(p)
    p.set_defaults(run=run)


def _test_split(config, data_dir: str | None):
    """The run's test split, or None where it cannot be loaded."""
    from ppl_models.data import load_data

    try:
        return load_data(config.train.data, data_dir, config.train.valid_data, config.train.test_data).test
    except (ValueError, OSError):
        return None


def run(args: argparse.Namespace) -> None:
    """Load the run, sample and save the samples (or a picture of them)."""
    import pyro

    from ppl_models.data import load_data
    from ppl_models.evaluate.checks import at_least
    from ppl_models.evaluate.samples import grid_columns, sample_observations, sample_suffix, save_samples
    from ppl_models.models.protocol import check_event_shape
    from ppl_models.train import RunDir

    suffix = sample_suffix(args.out)
    at_least(args.n, "-n")
    config, model = RunDir(args.run_dir).load_model("cpu")
    data = None
    if hasattr(model, "sample_inputs"):  # e.g. the images a completion model completes
        data = load_data(config.train.data, args.data_dir, config.train.valid_data, config.train.test_data).test
        check_event_shape(data.x, config.event_shape, f"{config.train.data}/test",
                          f"the run {args.run_dir} was trained on")
    reference = None
    if suffix == ".png" and len(config.event_shape) == 1:  # a pairs plot, drawn against the test data
        test = data if data is not None else _test_split(config, args.data_dir)
        if test is not None and tuple(test.x.shape[1:]) == tuple(config.event_shape):
            reference = test.x
    pyro.set_rng_seed(args.seed)
    path = save_samples(sample_observations(model, args.n, mean=args.mean, data=data), args.out,
                        grid_columns(model), reference)
    print(f"saved {args.n} {'means' if args.mean else 'draws'} to {path}")
