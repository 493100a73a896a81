"""The dataset registry: loaders register under a name by decorator; ``load_dataset`` dispatches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import DataError, Dataset
from .datadir import resolve_data_dir

Loader = Callable[[Path, bool], Dataset]


@dataclass(frozen=True)
class _Entry:
    loader: Loader
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(name: str, description: str) -> Callable[[Loader], Loader]:
    """Decorator registering ``loader(data_dir: Path, download: bool) -> Dataset`` under ``name``.

    Args:
        name: the dataset name used by ``load_dataset``; must be new.
        description: a one-line description shown by ``available_datasets``.
    """

    def decorate(loader: Loader) -> Loader:
        if name in _REGISTRY:
            raise DataError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = _Entry(loader, description)
        return loader

    return decorate


def available_datasets() -> dict[str, str]:
    """Return ``{name: one-line description}`` of every registered dataset, sorted by name."""
    return {name: _REGISTRY[name].description for name in sorted(_REGISTRY)}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Load the registered dataset ``name``.

    Args:
        name: a key of ``available_datasets()``.
        data_dir: data directory; see ``resolve_data_dir`` for the default.
        download: fetch missing files from their canonical URLs; if False, a missing file is a DataError.

    Raises:
        DataError: unknown name (listing the valid names), or missing/corrupt files.
    """
    entry = _REGISTRY.get(name)
    if entry is None:
        raise DataError(f"unknown dataset {name!r}; available datasets: {', '.join(sorted(_REGISTRY))}")
    return entry.loader(resolve_data_dir(data_dir), download)


def load_data(
    data: str, data_dir: str | os.PathLike | None = None, valid: str | None = None, test: str | None = None,
    download: bool = True,
) -> Dataset:
    """Load a registered dataset by name, or a user's data file (``.npy``, ``.npz``, ``.pt``) by path.

    Args:
        data: a registered dataset name or the path of the training file.
        data_dir: data directory for registered datasets.
        valid, test: paths of separate validation and test files (user data only); a split not
            given is carved from the training file (see :mod:`ppl_models.data.user_files`).
        download: fetch a registered dataset's missing files.
    """
    from .user_files import is_data_file, load_user_data

    if is_data_file(data):
        return load_user_data(data, valid, test)
    if valid or test:
        raise DataError(f"--valid-data/--test-data go with a data file (.npy, .npz, .pt), not the registered "
                        f"dataset {data!r}, whose splits are fixed")
    return load_dataset(data, data_dir, download)
