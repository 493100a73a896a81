"""``ppl diagnose RUN``: did inference work? k-hat, ESS, gaps, AIS/BDMC, active units, rate and distortion."""

from __future__ import annotations

import argparse
import json

from ppl_models.cli.common import add_data_dir, add_device, add_seed


def add_parser(subparsers) -> None:
    """Register the ``diagnose`` subcommand."""
    p = subparsers.add_parser("diagnose", help="posterior diagnostics of a run: k-hat, gaps, AIS, active units",
                              description=__doc__)
    p.add_argument("run_dir", metavar="RUN", help="a run directory made by `ppl train`")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="which split (default test)")
    p.add_argument("--data", default=None, help="diagnose this .npy/.npz/.pt file instead of the run's own split")
    p.add_argument("--limit", type=int, default=None, help="diagnose a fixed, evenly spread subset of N points")
    p.add_argument("--samples", type=int, default=None, help="guide draws S per point (default 1000)")
    p.add_argument("--keep-draws", type=int, default=None, help="draws per point exported to ArviZ (default 100)")
    p.add_argument("--batch-size", type=int, default=None, help="data points per pass (default 100)")
    p.add_argument("--gaps", action="store_true", help="fit the best guide per point and split the inference gap")
    p.add_argument("--gap-steps", type=int, default=None, help="step cap of that fit (default 3000)")
    p.add_argument("--gap-lr", type=float, default=None, help="its Adam step size (default 0.05)")
    p.add_argument("--gap-tol", type=float, default=None, help="its relative tolerance per 50-step window (default 1e-5)")
    p.add_argument("--gap-particles", type=int, default=None, help="ELBO samples per step of that fit (default 10)")
    p.add_argument("--ais-steps", type=int, default=None, help="AIS annealing steps T (default 0: no AIS/BDMC)")
    p.add_argument("--ais-chains", type=int, default=None, help="AIS chains per point (default 8)")
    p.add_argument("--ais-leapfrog", type=int, default=None, help="leapfrog steps per HMC transition (default 10)")
    p.add_argument("--ais-points", type=int, default=None, help="evenly spread points that get AIS (default 100)")
    p.add_argument("--bdmc-points", type=int, default=None, help="simulated points for the BDMC sandwich (default 20)")
    p.add_argument("--out", default=None, help="output directory (default RUN/diagnostics)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_data_dir(p)
    add_device(p)
    add_seed(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Diagnose, write the report, and print its Markdown (or the JSON summary)."""
    from ppl_models.diagnostics.run_diagnose import config_from, diagnose_run

    config = config_from(samples=args.samples, keep_draws=args.keep_draws, batch_size=args.batch_size, gaps=args.gaps,
                         ais_steps=args.ais_steps, ais_chains=args.ais_chains, ais_leapfrog=args.ais_leapfrog,
                         ais_points=args.ais_points, bdmc_points=args.bdmc_points, seed=args.seed,
                         gap_max_steps=args.gap_steps, gap_lr=args.gap_lr, gap_tol=args.gap_tol,
                         gap_particles=args.gap_particles)
    result, paths = diagnose_run(args.run_dir, args.split, args.data, args.limit, args.out, config, args.data_dir,
                                 args.device, progress=not args.json)
    if args.json:
        print(json.dumps(json.loads(paths[0].read_text())))
        return
    print(paths[1].read_text())
    print(f"wrote {len(paths)} files into {paths[0].parent}")
