"""Datasets of ppl-models: loading, validation, download and a registry of named datasets.

>>> from ppl_models.data import load_dataset
>>> ds = load_dataset("digits")
>>> ds.event_shape, len(ds.train)
((8, 8), 1437)
"""

from .base import DataError, Dataset, Split
from .datadir import resolve_data_dir
from .registry import available_datasets, load_data, load_dataset, register_dataset
from .user_files import load_user_data, read_split

# Importing the loader modules registers their datasets.
from . import binarized_mnist, digits, mnist  # noqa: E402,F401  isort: skip

__all__ = ["DataError", "Dataset", "Split", "available_datasets", "load_data", "load_dataset", "load_user_data",
           "read_split", "register_dataset", "resolve_data_dir"]
