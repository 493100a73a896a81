"""``ppl models``: list the registered models (with their config fields), objectives, strategies and guides."""

from __future__ import annotations

import argparse
import dataclasses


def add_parser(subparsers) -> None:
    """Register the ``models`` subcommand."""
    p = subparsers.add_parser("models", help="list the registered models, objectives, strategies and guides",
                              description=__doc__)
    p.add_argument("--fields", action="store_true", help="also list each model's config fields and defaults")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Print one line per registered model, then the objectives, strategies and guide families."""
    from guides.auto import available_guides
    from ppl_models.inference import available_strategies
    from ppl_models.objectives import available_objectives
    from ppl_models.registry import get_model, available_models

    for name, description in available_models().items():
        print(f"{name:16s} {description}")
        if args.fields:
            for f in dataclasses.fields(get_model(name).config_cls):
                print(f"{'':16s}   --set {f.name}={f.default!r}")
    for title, entries in (("objectives", available_objectives()), ("strategies", available_strategies()),
                           ("guides (--guide)", available_guides())):
        print(f"\n{title}:")
        for name, description in entries.items():
            print(f"  {name:14s} {description}")
