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


def run(args: argparse.Namespace) -> None:
    """Load the run, sample and save the samples (or a picture of them): :meth:`ppl_models.api.Run.save_samples`."""
    from ppl_models.api import load
    from ppl_models.evaluate.checks import at_least
    from ppl_models.evaluate.samples import sample_suffix

    sample_suffix(args.out)  # a bad suffix is refused before the run is loaded
    at_least(args.n, "-n")
    path = load(args.run_dir, "cpu").save_samples(args.out, args.n, args.mean, args.seed, args.data_dir)
    print(f"saved {args.n} {'means' if args.mean else 'draws'} to {path}")
