"""``ppl complete``: fill in the hidden part of test images with trained models, every applicable way
(latent inference, mean-field pixels, a CVAE trained for the mask, autoregressive sampling), and
measure the ways side by side: conditional NLL, pixel accuracy, class kept, time per image."""

from __future__ import annotations

import argparse

from ppl_models.cli.common import add_data_dir, add_device, add_seed


def add_parser(subparsers) -> None:
    """Register the ``complete`` subcommand."""
    from ppl_models.completion.masks import MASK_HELP
    from ppl_models.completion.method import CompletionSettings
    from ppl_models.completion.pixel_estimators import ESTIMATORS

    defaults = CompletionSettings()
    p = subparsers.add_parser("complete", help="complete hidden parts of images, several ways, side by side",
                              description=__doc__)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories; each method uses the runs it applies to")
    p.add_argument("--mask", dest="masks", action="append", required=True, metavar="MASK",
                   help=f"what is hidden (repeatable): {MASK_HELP}")
    p.add_argument("--method", dest="methods", action="append", default=None, metavar="METHOD",
                   help="latent | pixels | cvae | autoregressive | all (repeatable; default all)")
    p.add_argument("--limit", type=int, default=100, help="complete N evenly spread test images (default 100)")
    p.add_argument("--samples", type=int, default=defaults.samples, help=f"completions per image (default {defaults.samples})")
    p.add_argument("--nll-samples", type=int, default=defaults.num_particles,
                   help=f"K of the importance-sampled log p(x) and log p(x_observed) (default {defaults.num_particles})")
    p.add_argument("--svi-steps", type=int, default=defaults.svi_steps,
                   help=f"cap on per-point SVI steps of the latent method (default {defaults.svi_steps})")
    p.add_argument("--pixel-steps", type=int, default=defaults.pixel_steps,
                   help=f"steps fitting the pixels method's phi (default {defaults.pixel_steps})")
    p.add_argument("--pixel-estimator", default=defaults.pixel_estimator, choices=sorted(ESTIMATORS),
                   help="gradient estimator for phi: concrete (binary Concrete relaxation) or score (REINFORCE with a "
                        f"leave-one-out baseline) (default {defaults.pixel_estimator})")
    p.add_argument("--pixel-draws", type=int, default=defaults.pixel_draws,
                   help=f"draws of the hidden pixels per image and step for phi's gradient (default {defaults.pixel_draws})")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="split to complete (default test)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"images per pass (default {defaults.batch_size})")
    p.add_argument("--out", required=True, help="output directory (completion.json/.csv/.md, a PNG per mask)")
    add_data_dir(p)
    add_device(p, default="cpu")
    add_seed(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Complete, write the results and print the Markdown report."""
    from ppl_models.completion.method import CompletionSettings
    from ppl_models.completion.report import markdown
    from ppl_models.completion.run_complete import complete_runs

    settings = CompletionSettings(samples=args.samples, num_particles=args.nll_samples, batch_size=args.batch_size,
                                  svi_steps=args.svi_steps, pixel_steps=args.pixel_steps,
                                  pixel_estimator=args.pixel_estimator, pixel_draws=args.pixel_draws, seed=args.seed,
                                  progress=not args.no_progress)
    results, files = complete_runs(args.runs, args.masks, args.out, args.methods, args.split, args.limit, settings,
                                   args.data_dir, args.device)
    print(markdown(results))
    print("wrote " + ", ".join(str(p) for p in files))
