"""``ppl probe RUN``: linear-probe accuracy of a run's posterior means on its dataset's labels."""

from __future__ import annotations

import argparse
import json

from ppl_models.cli.common import add_data_dir, add_seed


def add_parser(subparsers) -> None:
    """Register the ``probe`` subcommand."""
    p = subparsers.add_parser("probe", help="linear-probe accuracy of a run's posterior means", description=__doc__)
    p.add_argument("run_dir", metavar="RUN", help="a run directory made by `ppl train` on a labelled dataset")
    p.add_argument("--limit", type=int, default=None, help="use a fixed, evenly spread subset of N points per split")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_data_dir(p)
    add_seed(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Fit the probe on the train split, score it on the test split, and print the result."""
    from ppl_models.evaluate.probe import probe_run

    r = probe_run(args.run_dir, args.limit, args.data_dir, args.seed)
    if args.json:
        print(json.dumps(r))
        return
    print(f"{r['data']}  {r['model']}  train n={r['n_train']}  test n={r['n_test']}  features={r['feature_dim']}")
    print(f"  linear probe accuracy  {r['accuracy']:.4f}   (chance {r['chance']:.4f})")
