"""The 8x8 digits of scikit-learn (UCI optical recognition of handwritten digits); no files, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DataError, Dataset, permuted_splits
from .registry import register_dataset


@register_dataset("digits", "scikit-learn 8x8 digits (1797, values/16 in [0,1]) with labels, fixed "
                  "permutation (seed 0) into 1437/180/180; embedded, no download")
def load_digits_dataset(data_dir: Path, download: bool) -> Dataset:
    """Load ``sklearn.datasets.load_digits()`` scaled by 1/16; ``data_dir`` and ``download`` are unused."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images)
    if images.shape != (1797, 8, 8) or images.min() < 0 or images.max() > 16:
        raise DataError(f"sklearn digits: unexpected images {images.shape} in [{images.min()}, {images.max()}]")
    x = torch.from_numpy(images / 16.0).to(torch.float32)
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    train, valid, test = permuted_splits(x, y, (1437, 180, 180), seed=0)
    return Dataset("digits", train, valid, test, binary=False)
