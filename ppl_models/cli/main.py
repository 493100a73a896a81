"""Entry point of the ``ppl`` command: dispatches to one small module per subcommand."""

from __future__ import annotations

import argparse
import sys
import warnings

from ppl_models.cli import compare as compare_cmd
from ppl_models.cli import compare_inference as compare_inference_cmd
from ppl_models.cli import complete as complete_cmd
from ppl_models.cli import diagnose as diagnose_cmd
from ppl_models.cli import eval as eval_cmd
from ppl_models.cli import models as models_cmd
from ppl_models.cli import probe as probe_cmd
from ppl_models.cli import sample as sample_cmd
from ppl_models.cli import train as train_cmd
from ppl_models.train.checkpoint import CheckpointWarning
from ppl_models.train.signals import TrainingStopped

SUBCOMMANDS = [train_cmd, eval_cmd, sample_cmd, probe_cmd, diagnose_cmd, compare_inference_cmd, compare_cmd,
               complete_cmd, models_cmd]

# Errors that carry a message meant for the user; anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, TypeError)


def build_parser() -> argparse.ArgumentParser:
    """The full ``ppl`` argument parser."""
    parser = argparse.ArgumentParser(prog="ppl", description="Deep generative models as Pyro programs.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def _show_warnings_plainly(command: str) -> None:
    """Print the project's own warnings (e.g. a skipped corrupt checkpoint) as ``ppl CMD: warning: ...``."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CheckpointWarning):
            print(f"ppl {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Run ``ppl`` with ``argv`` (default: the process arguments); return the exit status."""
    args = build_parser().parse_args(argv)
    _show_warnings_plainly(args.command)
    try:
        args.run(args)
    except USER_ERRORS as e:
        print(f"ppl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:
        if e.writer:  # under torchrun, rank 0 (which wrote the checkpoint) speaks for every rank
            print(f"ppl {args.command}: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(f"ppl {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
