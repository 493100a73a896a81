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
        rows: int64 ``[N]``, the row of each example in the data it was taken from (a file, or the
            whole dataset before it was split), so errors can name the row a user would look up;
            ``None`` when example ``i`` is row ``i``.

    At least one example: an empty split is refused.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    rows: torch.Tensor | None = None

    def __post_init__(self) -> None:
        x, y = self.x, self.y
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.dim() < 2:
            desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise DataError(f"Split.x must be a float32 tensor of shape [N, ...] (at least 2-D), got {desc}")
        if x.shape[0] == 0:
            raise DataError(f"the split is empty: x has shape {tuple(x.shape)}; a split needs at least one example")
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
        rows = self.rows
        if rows is not None and (not isinstance(rows, torch.Tensor) or rows.dtype != torch.int64
                                 or tuple(rows.shape) != (x.shape[0],)):
            desc = f"{rows.dtype} {tuple(rows.shape)}" if isinstance(rows, torch.Tensor) else type(rows).__name__
            raise DataError(f"Split.rows must be an int64 tensor of shape [{x.shape[0]}], got {desc}")

    def __len__(self) -> int:
        """Number of examples in the split."""
        return int(self.x.shape[0])

    def subset(self, index: torch.Tensor) -> "Split":
        """The examples at ``index`` (a 1-D int64 tensor), keeping track of their source rows."""
        return Split(self.x[index].contiguous(), None if self.y is None else self.y[index].contiguous(),
                     self.source_rows()[index].contiguous())

    def source_rows(self) -> torch.Tensor:
        """``rows``, or ``0..N-1`` when the split is its own source."""
        return torch.arange(len(self)) if self.rows is None else self.rows


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
    x: torch.Tensor, y: torch.Tensor | None, sizes: tuple[int, ...], seed: int = 0
) -> tuple[Split, ...]:
    """Split examples into train/valid/test (or any number of parts) by a fixed permutation drawn
    from ``seed``; each part records the rows of ``x`` its examples came from (``Split.rows``).

    Args:
        x: images ``[N, H, W]``; y: labels ``[N]`` or None.
        sizes: the parts' sizes, e.g. (train, valid, test), each at least 1, summing to N.
        seed: seed of the ``torch.Generator`` that draws the permutation (deterministic across runs).
    """
    n = x.shape[0]
    if sum(sizes) != n or min(sizes) < 1:
        raise DataError(f"split sizes {tuple(sizes)} must be at least 1 each and add up to the {n} examples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    whole = Split(x, y)
    return tuple(whole.subset(idx) for idx in perm.split(list(sizes)))
