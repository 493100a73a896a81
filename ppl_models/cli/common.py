"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse


def add_data_dir(p: argparse.ArgumentParser) -> None:
    """``--data-dir``: where datasets are looked for and downloaded to."""
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $PPL_DATA_DIR, then the user cache)")


def add_device(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """``--device auto|cpu|cuda``."""
    p.add_argument("--device", default=default, help="auto (CUDA when present), cpu, cuda or cuda:N")


def add_seed(p: argparse.ArgumentParser, default: int | None = 0) -> None:
    """``--seed``."""
    p.add_argument("--seed", type=int, default=default, help="random seed; a CPU run repeats exactly")
