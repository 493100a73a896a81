"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse
import ast


def add_data_dir(p: argparse.ArgumentParser) -> None:
    """``--data-dir``: where datasets are looked for and downloaded to."""
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $PPL_DATA_DIR, then the user cache)")


def add_device(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """``--device auto|cpu|cuda``."""
    p.add_argument("--device", default=default, help="auto (CUDA when present), cpu, cuda or cuda:N")


def add_seed(p: argparse.ArgumentParser, default: int | None = 0) -> None:
    """``--seed``."""
    p.add_argument("--seed", type=int, default=default, help="random seed; a CPU run repeats exactly")


def add_guide(p: argparse.ArgumentParser) -> None:
    """``--guide FAMILY`` and the automatic guide's sizes (guides.auto.GuideConfig)."""
    p.add_argument("--guide", dest="guide_family", default=None,
                   help="default (the model's own guide, else normal), normal, lowrank or iaf: an automatic "
                        "amortized guide built from the model's latent sites")
    p.add_argument("--guide-hidden", type=int, nargs="+", default=None, help="automatic guide: encoder widths (400)")
    p.add_argument("--guide-rank", type=int, default=None, help="lowrank guide: rank of the covariance factor (2)")
    p.add_argument("--flows", type=int, default=None, help="iaf guide: number of autoregressive transforms (2)")


def guide_fields(args: argparse.Namespace) -> dict:
    """The GuideConfig fields given by :func:`add_guide`'s flags."""
    given = {"family": args.guide_family, "hidden": args.guide_hidden, "rank": args.guide_rank, "flows": args.flows}
    fields = {k: v for k, v in given.items() if v is not None}
    if "hidden" in fields:
        fields["hidden"] = tuple(fields["hidden"])
    return fields


def add_user_data(p: argparse.ArgumentParser) -> None:
    """``--valid-data`` and ``--test-data``: split files that go with a ``--data`` file."""
    p.add_argument("--valid-data", default=None, help="validation file (.npy/.npz/.pt) for a --data file")
    p.add_argument("--test-data", default=None, help="test file (.npy/.npz/.pt) for a --data file")


def add_model_settings(p: argparse.ArgumentParser) -> None:
    """``--set FIELD=VALUE``: any field of the model's config dataclass."""
    p.add_argument("--set", dest="model_settings", action="append", default=[], metavar="FIELD=VALUE",
                   help="a field of the model's config, e.g. --set beta=4 or --set hidden=200,200 (repeatable; "
                        "`ppl models --fields` lists each model's fields)")


def parse_settings(items: list[str]) -> dict:
    """``["beta=4", "hidden=200,200", "condition=label"]`` -> ``{"beta": 4, "hidden": (200, 200), ...}``:
    values are Python literals (lists become tuples), anything else a string."""
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out[name.strip().replace("-", "_")] = tuple(value) if isinstance(value, list) else value
    return out
