"""The original grey-level MNIST (LeCun et al., 1998) from its IDX files, and a t10k-only variant.

Files live in ``<data_dir>/mnist/``, gzip-compressed (md5-checked) or uncompressed (header and
sizes checked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DataError, Dataset, Split, permuted_splits
from .datadir import decompress, read_raw
from .download import check_md5, obtain
from .idx import parse_idx
from .registry import register_dataset

NUM_CLASSES = 10


def read_idx_file(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file (``.gz`` or not), checking the md5 of known ``.gz`` files and the header.

    Args:
        path: the file.
        ndim: number of dimensions required.
    """
    raw = read_raw(path)
    check_md5(path, raw)
    return parse_idx(decompress(raw, path), path, ndim)


def _obtain(directory: Path, stem: str, download: bool) -> Path:
    name = stem + ".gz"
    return obtain(directory, name, download, lambda p: check_md5(p, read_raw(p), name), also=(stem,))


def load_mnist_pair(directory: Path, prefix: str, count: int, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Load ``{prefix}-images`` and ``{prefix}-labels`` from ``directory``.

    Args:
        directory: the ``mnist/`` data directory.
        prefix: "train" or "t10k".
        count: number of examples the files must hold.
        download: fetch missing files.

    Returns:
        float32 images ``[count, 28, 28]`` in [0, 1] (uint8 / 255) and int64 labels ``[count]`` in 0..9.

    Raises:
        DataError: missing, corrupt or malformed files, a wrong count, or a label outside 0..9.
    """
    img_path = _obtain(directory, f"{prefix}-images-idx3-ubyte", download)
    lab_path = _obtain(directory, f"{prefix}-labels-idx1-ubyte", download)
    images = read_idx_file(img_path, 3)
    if images.dtype != np.uint8 or images.shape != (count, 28, 28):
        raise DataError(f"{img_path}: expected uint8 images of shape {(count, 28, 28)}, "
                        f"got {images.dtype} {images.shape}")
    labels = read_idx_file(lab_path, 1)
    if labels.dtype != np.uint8 or labels.shape != (count,):
        raise DataError(f"{lab_path}: expected {count} uint8 labels to match {img_path.name}, "
                        f"got {labels.dtype} {labels.shape}")
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise DataError(f"{lab_path}: label index {bad[0]} has value {labels[bad[0]]}, expected 0..9")
    x = torch.from_numpy(images.copy()).to(torch.float32).div_(255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


@register_dataset("mnist", "MNIST grey levels in [0,1] with labels; train/valid = first 50k/last 10k "
                  "of the train file, test = t10k")
def load_mnist(data_dir: Path, download: bool) -> Dataset:
    """Load MNIST from ``data_dir/mnist/``: train = first 50,000 train images, valid = last 10,000, test = t10k."""
    directory = Path(data_dir) / "mnist"
    x, y = load_mnist_pair(directory, "train", 60_000, download)
    xt, yt = load_mnist_pair(directory, "t10k", 10_000, download)
    valid = Split(x[50_000:], y[50_000:], torch.arange(50_000, 60_000))  # rows of the train file
    return Dataset("mnist", Split(x[:50_000], y[:50_000]), valid, Split(xt, yt), binary=False)


@register_dataset("mnist_t10k", "the 10k labelled MNIST test images only, split by a fixed permutation "
                  "(seed 0) into 8000/1000/1000")
def load_mnist_t10k(data_dir: Path, download: bool) -> Dataset:
    """Load only the t10k MNIST files, split by a fixed permutation (seed 0) into 8000/1000/1000."""
    x, y = load_mnist_pair(Path(data_dir) / "mnist", "t10k", 10_000, download)
    train, valid, test = permuted_splits(x, y, (8_000, 1_000, 1_000), seed=0)
    return Dataset("mnist_t10k", train, valid, test, binary=False)
