"""``ppl models``: list the registered models."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    """Register the ``models`` subcommand."""
    p = subparsers.add_parser("models", help="list the registered models")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Print one line per registered model."""
    from ppl_models.registry import available_models

    for name, description in available_models().items():
        print(f"{name:16s} {description}")
