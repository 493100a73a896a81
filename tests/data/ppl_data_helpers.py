"""Helpers writing small synthetic data files for the data-layer tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Encode a uint8 array in the IDX format."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def amat_bytes(bits: np.ndarray) -> bytes:
    """Encode a 2-D 0/1 array as ``.amat`` text (single spaces, one row per line)."""
    return b"".join(b" ".join(b"1" if v else b"0" for v in row) + b"\n" for row in bits)


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    """Write ``data`` (gzip-compressed when ``gz``) to ``path``, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
