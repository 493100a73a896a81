"""A bit-packed binary cache of parsed 0/1 matrices, keyed by the md5 of the source file's bytes.

Cache files live under ``user_cache_dir() / "parsed"`` (never in the data directory, which may be
shared or read-only). A changed source has a different md5 and so a different cache file. Cache
problems are never fatal: an unreadable or unwritable cache only means parsing again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from ppl_models.atomic import atomic_write

from .datadir import user_cache_dir

_VERSION = "v1"


def cache_path(source: Path, raw: bytes) -> Path:
    """Cache file for ``source`` whose stored bytes are ``raw``."""
    digest = hashlib.md5(raw).hexdigest()
    return user_cache_dir() / "parsed" / f"{Path(source).name}.{digest}.{_VERSION}.npy"


def cached_bits(source: Path, raw: bytes, ncols: int, parse: Callable[[], np.ndarray]) -> np.ndarray:
    """Return the uint8 0/1 matrix ``[rows, ncols]`` of ``source``, from the cache or from ``parse()``.

    Args:
        source: the data file (its name goes into the cache file name).
        raw: its bytes as stored, hashed for the cache key.
        ncols: number of columns (to unpack the bits).
        parse: called on a cache miss; must return the validated uint8 0/1 matrix.
    """
    path = cache_path(source, raw)
    try:
        packed = np.load(path, allow_pickle=False)
        if packed.dtype == np.uint8 and packed.ndim == 2 and packed.shape[1] == (ncols + 7) // 8:
            return np.unpackbits(packed, axis=1, count=ncols)
    except Exception:  # noqa: BLE001  an empty, truncated or foreign cache file (EOFError, ValueError, ...)
        pass
    bits = parse()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda out: np.save(out, np.packbits(bits, axis=1), allow_pickle=False))
    except OSError:
        pass
    return bits
