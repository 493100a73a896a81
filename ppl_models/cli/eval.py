"""``ppl eval RUN``: test-set ELBO and importance-sampled log-likelihood of a trained run, and with
``--sample-quality`` its samples' Fréchet distance, precision/recall and label entropies beside the
real-data floor."""

from __future__ import annotations

import argparse
import json

from ppl_models.cli.common import add_data_dir, add_device, add_seed


def add_parser(subparsers) -> None:
    """Register the ``eval`` subcommand."""
    p = subparsers.add_parser("eval", help="ELBO and importance-sampled NLL of a run", description=__doc__)
    p.add_argument("run_dir", metavar="RUN", help="a run directory made by `ppl train`")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="which split (default test)")
    p.add_argument("--data", default=None, help="evaluate on this .npy/.npz/.pt file instead of the run's own split")
    p.add_argument("--nll-samples", type=int, default=1000, help="importance samples K per data point (default 1000)")
    p.add_argument("--limit", type=int, default=None, help="evaluate a fixed, evenly spread subset of N data points")
    p.add_argument("--batch-size", type=int, default=None,
                   help="data points per pass (default 100 on the CPU; on a GPU sized to its free memory)")
    p.add_argument("--particle-chunk", type=int, default=None, metavar="P",
                   help="importance samples per pass; memory ~ batch x P (default 100 on the CPU; on a GPU sized "
                        "to its free memory)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--checkpoint", default="best",
                   help="best (default: RUN/checkpoints/best.pt, the epoch with the best validation bound, else the "
                        "newest), latest (the newest) or a checkpoint file")
    p.add_argument("--strategy", default=None,
                   help="test-time inference instead of the run's: amortized, semi-amortized or per-datapoint")
    p.add_argument("--local-steps", type=int, default=None, help="refinement steps / step cap of that strategy")
    p.add_argument("--local-lr", type=float, default=None, help="its step size")
    p.add_argument("--local-tol", type=float, default=None, help="per-datapoint convergence tolerance")
    p.add_argument("--sample-quality", action="store_true",
                   help="also score N model samples (FD, precision/recall k=3, label entropies) against N valid "
                        "images, beside the floor: N held-out real images")
    p.add_argument("--quality-samples", type=int, default=None, metavar="N",
                   help="N of --sample-quality (default 1000; cut to what the valid/test splits hold)")
    add_data_dir(p)
    add_device(p)
    add_seed(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Evaluate and print a table or a JSON object."""
    from ppl_models.evaluate.run_eval import evaluate_run
    from ppl_models.evaluate.sample_quality import quality_lines
    from ppl_models.inference import check_strategy

    if args.quality_samples is not None and not args.sample_quality:
        raise ValueError("--quality-samples sets N of --sample-quality; add --sample-quality (or drop it)")
    inference = {k: getattr(args, k) for k in ("strategy", "local_steps", "local_lr", "local_tol")
                 if getattr(args, k) is not None}
    if "strategy" in inference:
        check_strategy(inference["strategy"])
    r = evaluate_run(args.run_dir, args.split, args.nll_samples, args.limit, args.data_dir, args.device, args.seed,
                     args.batch_size, progress=not args.json, inference=inference, data=args.data,
                     checkpoint=args.checkpoint, sample_quality=args.sample_quality,
                     quality_samples=1000 if args.quality_samples is None else args.quality_samples,
                     particle_chunk=args.particle_chunk)
    if args.json:
        print(json.dumps(r))
        return
    if r["has_likelihood"]:
        where = r["data"] if r["split"] is None else f"{r['data']}/{r['split']}"
        print(f"{where}  n={r['n']}  K={r['nll_samples']}  {r['strategy']} guide  ({r['seconds']}s)")
        print(f"  {r['checkpoint_note']}")
        if r["chunks"]["how"] == "sized to free memory":
            c = r["chunks"]
            print(f"  passes of {c['batch_size']} points x {c['particle_chunk']} samples, sized to "
                  f"{c['free_bytes'] / 2**30:.1f} GiB free at {c['bytes_per_unit'] / 2**10:.1f} KiB per point x sample")
        print(f"  ELBO          {r['elbo']:10.3f} nats")
        print(f"  NLL (IS, K)   {r['nll']:10.3f} nats   {r['bits_per_dim']:.4f} bits/dim")
    else:
        print(f"{r['run']}  {r['checkpoint_note']}")
        print(f"  ELBO          {r['elbo']:>10}")
        print(f"  NLL           {r['nll']:>10}")
        if "sample_quality" not in r:
            print("  (its samples can still be scored: add --sample-quality)")
    if r["has_likelihood"] and not r["density_model"]:
        print("  (this model is not a density model: these are reconstruction log-likelihoods, not bounds on log p(x))")
    if "sample_quality" in r:
        print("\n".join(quality_lines(r["sample_quality"])))
    print(f"  written to {r['file']}")
