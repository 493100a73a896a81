"""Statically binarized MNIST (Larochelle & Murray, 2011).

H. Larochelle and I. Murray, "The Neural Autoregressive Distribution Estimator", AISTATS 2011.
The fixed binarization used for likelihood benchmarks of VAEs, IWAEs and PixelCNNs: 50,000 train,
10,000 valid and 10,000 test images of 28x28 pixels, each 0 or 1, without labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .amat import parse_amat
from .base import Dataset, Split
from .cache import cached_bits
from .datadir import decompress, read_raw
from .download import obtain
from .registry import register_dataset

ROWS = {"train": 50_000, "valid": 10_000, "test": 10_000}
PIXELS = 28 * 28


def read_binarized_split(path: Path, nrows: int | None = None) -> np.ndarray:
    """Read one ``.amat`` or ``.amat.gz`` file into a uint8 0/1 array ``[rows, 784]`` (cached).

    Args:
        path: the file.
        nrows: exact number of rows expected, if known.

    Raises:
        DataError: naming the file for corrupt gzip data or malformed content.
    """
    raw = read_raw(path)
    bits = cached_bits(path, raw, PIXELS, lambda: parse_amat(decompress(raw, path), path, PIXELS, nrows))
    if nrows is not None and bits.shape[0] != nrows:  # only possible for a cache written without nrows
        bits = parse_amat(decompress(raw, path), path, PIXELS, nrows)
    return bits


def _verifier(nrows: int):
    """Content check of a downloaded split: shape and values, not a checksum (whitespace may differ)."""
    return lambda path: parse_amat(decompress(read_raw(path), path), path, PIXELS, nrows)


@register_dataset("binarized_mnist", "MNIST statically binarized by Larochelle & Murray (2011); 50k/10k/10k, "
                  "28x28 pixels in {0,1}, no labels")
def load_binarized_mnist(data_dir: Path, download: bool) -> Dataset:
    """Load binarized MNIST from ``data_dir/binarized_mnist/`` (``.amat`` or ``.amat.gz``), downloading if allowed."""
    directory = Path(data_dir) / "binarized_mnist"
    splits = {}
    for name, nrows in ROWS.items():
        fname = f"binarized_mnist_{name}.amat"
        path = obtain(directory, fname, download, _verifier(nrows), also=(fname + ".gz",))
        bits = read_binarized_split(path, nrows)
        splits[name] = Split(torch.from_numpy(bits).to(torch.float32).reshape(-1, 28, 28))
    return Dataset("binarized_mnist", splits["train"], splits["valid"], splits["test"], binary=True)
