"""Vectorized parser of ``.amat`` text matrices of binary values (the binarized MNIST format).

One row per line, values ``0`` or ``1`` separated by whitespace (space, tab, CR). Parsing works on
the raw bytes with numpy; there is no Python-level loop over lines or tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DataError

_WS = np.zeros(256, dtype=bool)
_WS[[ord(" "), ord("\t"), ord("\r"), ord("\n")]] = True
_ALLOWED = _WS.copy()
_ALLOWED[[ord("0"), ord("1")]] = True


def _token_at(data: np.ndarray, i: int) -> tuple[int, str]:
    """Return (1-based line number, the whitespace-delimited token) at byte index ``i``."""
    line = int(np.count_nonzero(data[:i] == 10)) + 1
    start = i
    while start > 0 and not _WS[data[start - 1]] and i - start < 40:
        start -= 1
    end = i
    while end < len(data) and not _WS[data[end]] and end - i < 40:
        end += 1
    return line, bytes(data[start:end]).decode("latin-1")


def parse_amat(raw: bytes, source: str | Path, ncols: int = 784, nrows: int | None = None) -> np.ndarray:
    """Parse ``.amat`` bytes into a uint8 array ``[rows, ncols]`` of 0/1 values.

    Args:
        raw: file content (already decompressed).
        source: file name used in error messages.
        ncols: values expected on every non-blank line.
        nrows: if given, the exact number of rows expected.

    Raises:
        DataError: naming ``source`` and the line and token for any value other than a lone ``0``
            or ``1``, any line with a wrong number of values, or a wrong or zero row count.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    is_digit = data >= ord("0")
    n_ok = np.count_nonzero(is_digit) + sum(np.count_nonzero(data == c) for c in b" \n\t\r")
    if n_ok != len(data) or (len(data) and data.max() > ord("1")):  # fast check; locate only on failure
        line, token = _token_at(data, int(np.flatnonzero(~_ALLOWED[data])[0]))
        raise DataError(f"{source}: line {line}: invalid value {token!r} (only 0 and 1 are allowed)")
    glued = np.flatnonzero(is_digit[:-1] & is_digit[1:])
    if glued.size:
        line, token = _token_at(data, int(glued[0]))
        raise DataError(f"{source}: line {line}: invalid value {token!r} (only 0 and 1 are allowed)")
    starts = np.concatenate(([0], np.flatnonzero(data == 10) + 1))
    starts = starts[starts < len(data)]
    counts = np.add.reduceat(is_digit, starts, dtype=np.int64) if len(data) else np.zeros(0, np.int64)
    wrong = np.flatnonzero((counts != 0) & (counts != ncols))
    if wrong.size:
        k = int(wrong[0])
        raise DataError(f"{source}: line {k + 1}: found {counts[k]} values, expected {ncols}")
    rows = int(np.count_nonzero(counts))
    if rows == 0:
        raise DataError(f"{source}: no data rows found")
    if nrows is not None and rows != nrows:
        raise DataError(f"{source}: found {rows} rows, expected {nrows} (truncated or wrong file?)")
    values = data[is_digit] - np.uint8(ord("0"))
    return values.reshape(rows, ncols)
