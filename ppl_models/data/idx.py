"""Parser of the IDX binary format of the MNIST files (http://yann.lecun.com/exdb/mnist/).

Header: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per
dimension; the data follow, big-endian, and must fill the rest of the file exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .base import DataError

#: IDX type code -> numpy dtype (big-endian).
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def parse_idx(raw: bytes, source: str | Path, ndim: int | None = None) -> np.ndarray:
    """Parse IDX bytes into a numpy array (a read-only view of ``raw`` in native byte order for uint8).

    Args:
        raw: file content (already decompressed).
        source: file name used in error messages.
        ndim: if given, the number of dimensions required.

    Raises:
        DataError: naming ``source`` and the field for a wrong magic, unknown type code, wrong
            number of dimensions, or dimensions that do not match the number of data bytes.
    """
    if len(raw) < 4:
        raise DataError(f"{source}: IDX header truncated: {len(raw)} bytes, need at least 4")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{source}: bad IDX magic: bytes 0-1 are {raw[:2].hex()}, expected 0000")
    code, nd = raw[2], raw[3]
    if code not in IDX_TYPES:
        raise DataError(f"{source}: bad IDX magic: unknown type code 0x{code:02x} (byte 2)")
    if nd == 0 or (ndim is not None and nd != ndim):
        expected = ndim if ndim is not None else ">= 1"
        raise DataError(f"{source}: bad IDX magic: {nd} dimensions (byte 3), expected {expected}")
    header = 4 + 4 * nd
    if len(raw) < header:
        raise DataError(f"{source}: IDX header truncated: {len(raw)} bytes, need {header} for {nd} dimensions")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd))
    dtype = IDX_TYPES[code]
    expected_bytes = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected_bytes:
        raise DataError(f"{source}: IDX dimensions {dims} need {expected_bytes} data bytes, "
                        f"found {len(raw) - header} (truncated or corrupt file)")
    if expected_bytes == 0:
        return np.zeros(dims, dtype=dtype)
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
