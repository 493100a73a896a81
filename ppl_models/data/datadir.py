"""Where data lives: resolving the data directory, the user cache directory, and reading files."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from .base import DataError

ENV_DATA_DIR = "PPL_DATA_DIR"


def user_cache_dir() -> Path:
    """The per-user cache root of ppl-models: ``($XDG_CACHE_HOME or ~/.cache)/ppl-models``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).expanduser() / "ppl-models"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the data directory to use.

    Args:
        data_dir: explicit directory; wins when given.

    Order: the argument, else the environment variable ``PPL_DATA_DIR``, else
    ``user_cache_dir() / "data"``. The directory is not created here.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "data"


def read_raw(path: Path) -> bytes:
    """Read the bytes of ``path`` as stored (no decompression); DataError if unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc}") from exc


def decompress(raw: bytes, path: Path) -> bytes:
    """Return ``raw`` gunzipped when ``path`` ends in ``.gz``, else unchanged.

    Raises:
        DataError: naming ``path`` for a truncated or corrupt gzip stream.
    """
    if not str(path).endswith(".gz"):
        return raw
    if raw[:2] != b"\x1f\x8b":
        raise DataError(f"{path}: not a gzip file (first bytes {raw[:2]!r}, expected b'\\x1f\\x8b')")
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: truncated or corrupt gzip data: {exc}") from exc
