"""Core types of the data layer: the error type, a split of images and a dataset of three splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")


class DataError(ValueError):
    """Any problem with input data: a missing, unreadable, corrupt or malformed file, or a bad name.

    Messages name the file (or dataset), the field, line or index at fault and the offending value.
    """


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    Args:
        x: float32 observations of shape ``[N, ...]`` (images ``[N, H, W]`` with values in ``[0, 1]``
            for the built-in datasets), all finite. Whether the values suit a model is checked
            against its likelihood's support when training or evaluating.
        y: int64 labels of shape ``[N]`` (``-1`` marks a hidden label), or ``None`` for unlabelled data.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.dim() < 2:
            desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"Split.x must be a float32 tensor of shape [N, ...] (at least 2-D), got {desc}")
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            index = tuple(int(i) for i in bad.nonzero()[0])
            raise DataError(f"Split.x must be finite, but element {index} is {x[index].item()}")
        if y is not None:
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
                desc = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
                raise DataError(f"Split.y must be an int64 tensor of shape [N], got {desc}")
            if y.shape[0] != x.shape[0]:
                raise DataError(f"Split has {x.shape[0]} images but {y.shape[0]} labels")

    def __len__(self) -> int:
        """Number of examples in the split."""
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A named dataset with train/valid/test splits of equally shaped images.

    Args:
        name: registry name of the dataset.
        train, valid, test: the three splits.
        binary: True when every pixel is exactly 0 or 1 (statically binarized data); checked.
    """

    name: str
    train: Split
    valid: Split
    test: Split
    binary: bool

    def __post_init__(self) -> None:
        shapes = {name: tuple(self.split(name).x.shape[1:]) for name in SPLIT_NAMES}
        if len(set(shapes.values())) != 1:
            raise DataError(f"dataset {self.name!r}: splits have different image shapes {shapes}")
        if self.binary:
            for name in SPLIT_NAMES:
                x = self.split(name).x
                if not bool(((x == 0) | (x == 1)).all()):
                    raise DataError(f"dataset {self.name!r}: binary=True but split {name!r} has non-binary pixels")

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one image, e.g. ``(28, 28)``."""
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split:
        """Return the split called ``name`` ("train", "valid" or "test").

        Raises:
            DataError: for any other name; the message lists the valid names.
        """
        if name not in SPLIT_NAMES:
            raise DataError(f"unknown split {name!r} of dataset {self.name!r}; valid splits: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)


def permuted_splits(
    x: torch.Tensor, y: torch.Tensor | None, sizes: tuple[int, int, int], seed: int = 0
) -> tuple[Split, Split, Split]:
    """Split examples into train/valid/test by a fixed permutation drawn from ``seed``.

    Args:
        x: images ``[N, H, W]``; y: labels ``[N]`` or None.
        sizes: (train, valid, test) sizes, summing to N.
        seed: seed of the ``torch.Generator`` that draws the permutation (deterministic across runs).
    """
    n = x.shape[0]
    if sum(sizes) != n:
        raise DataError(f"split sizes {sizes} do not add up to the {n} examples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out = []
    start = 0
    for size in sizes:
        idx = perm[start : start + size]
        out.append(Split(x[idx].contiguous(), None if y is None else y[idx].contiguous()))
        start += size
    return out[0], out[1], out[2]
