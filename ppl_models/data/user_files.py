"""A user's own data: arrays in ``.npy``, ``.npz`` or ``.pt`` files, split into train/valid/test.

A file holds float observations of shape ``[N, ...]`` and, optionally, integer labels ``[N]``:

- ``.npy``: one array, the observations (no labels);
- ``.npz``: the observations under ``x`` and the labels under ``y`` (a file with a single array
  holds the observations under any name);
- ``.pt``: a tensor, or a dict with ``"x"`` and optionally ``"y"``; read with
  ``torch.load(weights_only=True)``, so a file cannot run code.

No file is ever unpickled: ``.npy``/``.npz`` load with ``allow_pickle=False``. The splits come
from separate files, or, for any split not given, from a fixed permutation of the training file
(10% each for validation and test), so the same files always give the same splits.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from .base import DataError, Dataset, Split, permuted_splits

SUFFIXES = (".npy", ".npz", ".pt")
HELD_OUT_FRACTION = 0.1  # share of the training file carved out for each split not given as a file
SPLIT_SEED = 0  # seed of the permutation that carves those splits


def is_data_file(name: str) -> bool:
    """Whether ``name`` names a user data file (by its suffix) rather than a registered dataset."""
    return Path(name).suffix.lower() in SUFFIXES


def _read(path: Path) -> tuple[object, object]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if "x" in names:
                return archive["x"], archive["y"] if "y" in names else None
            if len(names) == 1:
                return archive[names[0]], None
            raise DataError(f"{path}: an .npz file needs an array 'x' (and optionally 'y'); it holds {names}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        if "x" not in obj:
            raise DataError(f"{path}: a .pt dict needs a key 'x' (and optionally 'y'); it has {sorted(map(str, obj))}")
        return obj["x"], obj.get("y")
    return obj, None


def _as_tensor(value: object, path: Path, field: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise DataError(f"{path}: {field} has dtype {value.dtype}; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise DataError(f"{path}: {field} is a {type(value).__name__}, expected an array")


def read_split(path: str | Path) -> Split:
    """Read one user data file into a :class:`Split`, with errors naming the file and the field.

    Observations become float32 (bool and integer arrays are converted); labels must be integers.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: unsupported data file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    try:
        raw_x, raw_y = _read(path)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, RuntimeError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise DataError(f"{path}: cannot read the file: {e}") from e
    x = _as_tensor(raw_x, path, "x")
    if x.dim() < 2 or x.shape[0] == 0:
        raise DataError(f"{path}: x must have shape [N, ...] with N >= 1 and at least one more dimension, "
                        f"got {tuple(x.shape)}")
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.bool, torch.uint8, torch.int8,
                                                                   torch.int16, torch.int32, torch.int64)):
        raise DataError(f"{path}: x has dtype {x.dtype}; expected real numbers")
    x = x.to(torch.float32)
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise DataError(f"{path}: x{list(index)} is {x[index].item()}; observations must be finite")
    y = None
    if raw_y is not None:
        y = _as_tensor(raw_y, path, "y")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise DataError(f"{path}: labels y have dtype {y.dtype}; expected integers")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{path}: labels y have shape {tuple(y.shape)} but x has {x.shape[0]} rows; "
                            f"expected shape [{x.shape[0]}]")
        y = y.to(torch.int64)
    try:
        return Split(x, y)
    except DataError as e:
        raise DataError(f"{path}: {e}") from e


def load_user_data(train: str | Path, valid: str | Path | None = None, test: str | Path | None = None) -> Dataset:
    """The dataset made of a user's files: ``train``, and ``valid``/``test`` if given, else carved
    from ``train`` by a fixed permutation (``HELD_OUT_FRACTION`` each).

    Args:
        train: path of the training file (``.npy``, ``.npz`` or ``.pt``).
        valid: path of the validation file, or None.
        test: path of the test file, or None.

    Raises:
        DataError: naming the file, the field and the problem (unreadable, wrong shape or dtype,
            non-finite value, label count, too few rows to carve a split, mismatched shapes).
    """
    train_split = read_split(train)
    given = {"valid": read_split(valid) if valid else None, "test": read_split(test) if test else None}
    missing = [name for name, split in given.items() if split is None]
    if missing:
        n = len(train_split)
        held = max(1, round(HELD_OUT_FRACTION * n))
        sizes = [n - held * len(missing)] + [held] * len(missing)
        if sizes[0] < 1:
            raise DataError(f"{train}: {n} rows are too few to carve {' and '.join(missing)} split(s) from; "
                            f"pass --valid-data and --test-data")
        parts = permuted_splits(train_split.x, train_split.y, (*sizes, *([0] * (2 - len(missing)))), seed=SPLIT_SEED)
        train_split = parts[0]
        for name, part in zip(missing, parts[1:]):
            given[name] = part
    labelled = {name: s.y is not None for name, s in (("train", train_split), *given.items())}
    if len(set(labelled.values())) > 1:
        raise DataError(f"{train}: some splits have labels and some do not: {labelled}")
    binary = all(bool(((s.x == 0) | (s.x == 1)).all()) for s in (train_split, *given.values()))
    return Dataset(str(train), train_split, given["valid"], given["test"], binary=binary)
