"""Canonical sources of data files, and verified, atomic downloads of missing ones."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .base import DataError

_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_BMNIST = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

#: file name -> URLs to try in order. The one table of download sources.
URLS: dict[str, tuple[str, ...]] = {
    **{f"binarized_mnist_{s}.amat": (f"{_BMNIST}binarized_mnist_{s}.amat",) for s in ("train", "valid", "test")},
    **{name: tuple(m + name for m in _MNIST_MIRRORS) for name in _MNIST_FILES},
}

#: file name -> md5 of the file as distributed (the standard MNIST checksums, also checked by torchvision).
MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

Verifier = Callable[[Path], None]


def check_md5(path: Path, raw: bytes, name: str | None = None) -> None:
    """Raise DataError if ``raw`` (the bytes of ``path``) does not match the known md5 of ``name``.

    Args:
        path: file the bytes came from (for the message).
        raw: the file's bytes as stored.
        name: key into ``MD5``; defaults to ``path.name``. Files without a known md5 pass.
    """
    expected = MD5.get(name or Path(path).name)
    if expected is None:
        return
    got = hashlib.md5(raw).hexdigest()
    if got != expected:
        raise DataError(f"{path}: md5 mismatch: got {got}, expected {expected} (corrupt or truncated file)")


def _fail(name: str, directory: Path, urls: tuple[str, ...], reason: str) -> DataError:
    where = " or ".join(urls) if urls else "(no known download URL)"
    return DataError(f"missing data file {name} in directory {directory}: {reason}. "
                     f"Download it from {where} and place it in {directory}")


def download_file(name: str, directory: Path, verify: Verifier, urls: tuple[str, ...] | None = None,
                  timeout: float = 30.0) -> Path:
    """Download ``name`` into ``directory`` from the first working URL, verify it, rename it into place.

    The bytes go to a temporary file in ``directory``; ``verify(tmp_path)`` must raise DataError on bad
    content (the temporary file keeps ``name`` as its suffix, so ``.gz`` detection works). Only a
    verified file is atomically renamed to ``directory / name``; a failed one is removed.

    Args:
        name: file name, a key of ``URLS`` unless ``urls`` is given.
        directory: target directory (created if needed).
        verify: content check of the downloaded file.
        urls: override of ``URLS[name]``.
        timeout: per-connection timeout in seconds.

    Raises:
        DataError: directory not writable, or every URL failed; names the file, directory and URLs.
    """
    urls = tuple(URLS.get(name, ())) if urls is None else tuple(urls)
    if not urls:
        raise _fail(name, directory, urls, "no download URL is known")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix="-" + name, dir=directory)
    except OSError as exc:
        raise _fail(name, directory, urls, f"the directory is not writable ({exc})") from exc
    tmp = Path(tmp_name)
    os.close(fd)
    errors = []
    try:
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                    shutil.copyfileobj(resp, out)
                verify(tmp)
                os.replace(tmp, directory / name)
                return directory / name
            except DataError as exc:
                errors.append(f"{url}: downloaded file rejected: {exc}")
            except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
                errors.append(f"{url}: {exc}")
    finally:
        tmp.unlink(missing_ok=True)
    raise _fail(name, directory, urls, "download failed (" + "; ".join(errors) + ")")


def obtain(directory: Path, name: str, download: bool, verify: Verifier, also: tuple[str, ...] = ()) -> Path:
    """Return the path of data file ``name`` (or one of the accepted variants ``also``) in ``directory``.

    If none exists and ``download`` is True, download ``name`` (see ``download_file``); otherwise
    raise DataError naming the file, the directory and the URL(s) to get it from.
    """
    for candidate in (name, *also):
        if (directory / candidate).is_file():
            return directory / candidate
    if not download:
        accepted = ", ".join((name, *also))
        raise _fail(name, directory, URLS.get(name, ()), f"not found (accepted names: {accepted}) and download=False")
    return download_file(name, directory, verify)
