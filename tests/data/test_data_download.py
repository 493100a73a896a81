"""Downloads: offline errors, file:// downloads, rejection of corrupt downloads, unwritable dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ppl_data_helpers import amat_bytes, write

from ppl_models.data import DataError, load_dataset
from ppl_models.data import download as dl
from ppl_models.data.amat import parse_amat

UNREACHABLE = "http://127.0.0.1:9/"


def _verify_amat(path: Path) -> None:
    parse_amat(path.read_bytes(), path, ncols=4)


def test_offline_error_names_file_dir_and_url(monkeypatch, tmp_path):
    url = UNREACHABLE + "binarized_mnist_train.amat"
    monkeypatch.setitem(dl.URLS, "binarized_mnist_train.amat", (url,))
    with pytest.raises(DataError) as info:
        load_dataset("binarized_mnist", tmp_path, download=True)
    msg = str(info.value)
    assert "binarized_mnist_train.amat" in msg and str(tmp_path / "binarized_mnist") in msg and url in msg
    assert list((tmp_path / "binarized_mnist").iterdir()) == []  # no temp file left behind


def test_download_false_does_not_try(monkeypatch, tmp_path):
    monkeypatch.setattr(dl, "download_file", lambda *a, **k: pytest.fail("download attempted"))
    with pytest.raises(DataError) as info:
        load_dataset("mnist_t10k", tmp_path, download=False)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz" in msg
    assert not (tmp_path / "mnist").exists()


def test_file_url_download_succeeds(tmp_path):
    bits = np.random.default_rng(1).integers(0, 2, (3, 4))
    src = write(tmp_path / "src" / "small.amat", amat_bytes(bits))
    target = dl.download_file("small.amat", tmp_path / "dst", _verify_amat, urls=(src.as_uri(),))
    assert target == tmp_path / "dst" / "small.amat"
    assert target.read_bytes() == src.read_bytes()
    assert [p.name for p in (tmp_path / "dst").iterdir()] == ["small.amat"]


def test_corrupt_download_rejected_then_next_mirror(tmp_path):
    bad = write(tmp_path / "src" / "bad.amat", b"0 1 2 1\n")
    with pytest.raises(DataError) as info:
        dl.download_file("small.amat", tmp_path / "dst", _verify_amat, urls=(bad.as_uri(),))
    assert "small.amat" in str(info.value) and "'2'" in str(info.value)
    assert list((tmp_path / "dst").iterdir()) == []  # temp file removed, nothing in place
    good = write(tmp_path / "src" / "good.amat", b"0 1 1 1\n")
    target = dl.download_file("small.amat", tmp_path / "dst", _verify_amat,
                              urls=(UNREACHABLE + "x", bad.as_uri(), good.as_uri()))
    assert target.read_bytes() == b"0 1 1 1\n" and len(list((tmp_path / "dst").iterdir())) == 1


def test_mnist_t10k_downloaded_from_file_urls_md5_checked(monkeypatch, tmp_path, shared_data_dir):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        monkeypatch.setitem(dl.URLS, name, ((shared_data_dir / "mnist" / name).as_uri(),))
    ds = load_dataset("mnist_t10k", tmp_path / "data", download=True)
    assert len(ds.train) == 8000
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_truncated_mnist_download_rejected_by_md5(monkeypatch, tmp_path, shared_data_dir):
    name = "t10k-labels-idx1-ubyte.gz"
    truncated = write(tmp_path / "src" / name, (shared_data_dir / "mnist" / name).read_bytes()[:-100])
    monkeypatch.setitem(dl.URLS, name, (truncated.as_uri(),))
    with pytest.raises(DataError, match="md5 mismatch"):
        dl.download_file(name, tmp_path / "dst", lambda p: dl.check_md5(p, p.read_bytes(), name))
    assert list((tmp_path / "dst").iterdir()) == []


def test_unwritable_directory_is_reported(tmp_path):
    blocker = write(tmp_path / "not-a-dir", b"")  # a file where the directory should be
    with pytest.raises(DataError, match="not writable") as info:
        load_dataset("binarized_mnist", blocker, download=True)
    assert "binarized_mnist_train.amat" in str(info.value)
