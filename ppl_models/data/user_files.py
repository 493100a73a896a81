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

from pathlib import Path

import numpy as np
import torch

from .base import DataError, Dataset, Split, permuted_splits

SUFFIXES = (".npy", ".npz", ".pt")
HELD_OUT_FRACTION = 0.1  # share of the training file carved out for each split not given as a file
SPLIT_SEED = 0  # seed of the permutation that carves those splits
UNKNOWN_LABEL = -1  # a hidden label, as ppl_models.models.protocol.UNKNOWN_LABEL (the data layer imports no models)


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
        if value.layout != torch.strided or value.device.type == "meta":
            raise DataError(f"{path}: {field} is a {value.layout} tensor on device {value.device.type}; "
                            f"expected a dense tensor with data")
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise DataError(f"{path}: {field} has dtype {value.dtype}; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")))
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
    except Exception as e:  # noqa: BLE001  any failure of numpy's or torch's readers on a malformed file
        raise DataError(f"{path}: cannot read the file: {type(e).__name__}: {e}") from e
    x = _as_tensor(raw_x, path, "x")
    if x.dim() >= 1 and x.shape[0] == 0:
        raise DataError(f"{path}: the file holds no data points: x has shape {tuple(x.shape)}; "
                        f"a split needs at least one")
    if x.dim() < 2:
        raise DataError(f"{path}: x must have shape [N, ...] with at least one dimension after N "
                        f"(one row per data point), got {tuple(x.shape)}")
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
        below = (y < UNKNOWN_LABEL).nonzero()
        if below.numel():
            i = int(below[0])
            raise DataError(f"{path}: y[{i}] is {int(y[i])}; labels are classes 0, 1, ... (or {UNKNOWN_LABEL}: hidden)")
    try:
        return Split(x, y)
    except DataError as e:
        raise DataError(f"{path}: {e}") from e


def load_user_data(train: str | Path, valid: str | Path | None = None, test: str | Path | None = None) -> Dataset:
    """The dataset made of a user's files: ``train``, and ``valid``/``test`` if given, else carved
    from ``train`` by a fixed permutation (``HELD_OUT_FRACTION`` each; ``Split.rows`` records
    which rows of the training file each carved split holds).

    Args:
        train: path of the training file (``.npy``, ``.npz`` or ``.pt``).
        valid: path of the validation file, or None.
        test: path of the test file, or None.

    Raises:
        DataError: naming the file, the field and the problem (unreadable, empty, wrong shape or
            dtype, non-finite value, label count, too few rows to carve a split, observations of
            another shape than the training file's, labels in some files only).
    """
    train_split = read_split(train)
    files = {"train": train, "valid": valid, "test": test}
    given = {name: read_split(files[name]) if files[name] else None for name in ("valid", "test")}
    for name, split in given.items():
        if split is not None and split.x.shape[1:] != train_split.x.shape[1:]:
            raise DataError(f"{files[name]}: observations have shape {tuple(split.x.shape[1:])}, but the training "
                            f"file {train} has shape {tuple(train_split.x.shape[1:])}")
        if split is not None and (split.y is None) != (train_split.y is None):
            has, lacks = (train, files[name]) if split.y is None else (files[name], train)
            raise DataError(f"{lacks}: has no labels y, but {has} has; give labels in every file or in none")
    missing = [name for name, split in given.items() if split is None]
    if missing:
        n = len(train_split)
        held = max(1, round(HELD_OUT_FRACTION * n))
        sizes = (n - held * len(missing), *[held] * len(missing))
        if sizes[0] < 1:
            raise DataError(f"{train}: {n} rows are too few to carve {' and '.join(missing)} split(s) from; "
                            f"pass --valid-data and --test-data")
        train_split, *parts = permuted_splits(train_split.x, train_split.y, sizes, seed=SPLIT_SEED)
        given.update(zip(missing, parts))
    binary = all(bool(((s.x == 0) | (s.x == 1)).all()) for s in (train_split, *given.values()))
    return Dataset(str(train), train_split, given["valid"], given["test"], binary=binary)
