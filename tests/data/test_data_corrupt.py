"""Corrupt, truncated and malformed files give a DataError naming the file (and the place)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from ppl_data_helpers import amat_bytes, idx_bytes, write

from ppl_models.data import DataError, load_dataset
from ppl_models.data.binarized_mnist import read_binarized_split
from ppl_models.data.cache import cache_path

ROW = np.zeros(784, dtype=np.uint8)


def test_truncated_gzip(tmp_path):
    path = write(tmp_path / "binarized_mnist" / "binarized_mnist_train.amat.gz",
                 gzip.compress(amat_bytes(np.ones((5, 784), np.uint8)))[:-30])
    with pytest.raises(DataError, match="binarized_mnist_train.amat.gz.*(truncated|corrupt)"):
        load_dataset("binarized_mnist", tmp_path, download=False)
    write(path, b"not gzip at all")
    with pytest.raises(DataError, match="binarized_mnist_train.amat.gz: not a gzip file"):
        load_dataset("binarized_mnist", tmp_path, download=False)


def test_amat_line_with_783_values(tmp_path):
    text = amat_bytes(np.stack([ROW, ROW])) + b" ".join([b"1"] * 783) + b"\n"
    write(tmp_path / "binarized_mnist" / "binarized_mnist_train.amat", text)
    with pytest.raises(DataError, match=r"binarized_mnist_train.amat: line 3: found 783 values, expected 784"):
        load_dataset("binarized_mnist", tmp_path, download=False)


@pytest.mark.parametrize("value", [b"2", b"0.5", b"-1", b"01", b"1e0", b"nan"])
def test_amat_bad_value(tmp_path, value):
    rows = [b" ".join([b"0"] * 784)] * 3
    rows[1] = b" ".join([b"1"] * 100 + [value] + [b"0"] * 683)
    write(tmp_path / "binarized_mnist" / "binarized_mnist_train.amat", b"\n".join(rows) + b"\n")
    with pytest.raises(DataError, match=f"binarized_mnist_train.amat: line 2: invalid value '{value.decode()}'"):
        load_dataset("binarized_mnist", tmp_path, download=False)


def test_amat_wrong_row_count(tmp_path):
    write(tmp_path / "binarized_mnist" / "binarized_mnist_train.amat", amat_bytes(np.stack([ROW] * 4)))
    with pytest.raises(DataError, match="found 4 rows, expected 50000"):
        load_dataset("binarized_mnist", tmp_path, download=False)


def test_amat_accepts_other_whitespace(tmp_path):
    path = write(tmp_path / "x.amat", b"0\t1  0 1\r\n\n1 1 1 1   \r\n")
    from ppl_models.data.amat import parse_amat
    assert parse_amat(path.read_bytes(), path, ncols=4).tolist() == [[0, 1, 0, 1], [1, 1, 1, 1]]


def test_cache_is_invalidated_by_a_changed_source(tmp_path):
    path = write(tmp_path / "b.amat", amat_bytes(np.stack([ROW, 1 - ROW])))
    first = read_binarized_split(path)
    assert cache_path(path, path.read_bytes()).is_file()
    assert np.array_equal(read_binarized_split(path), first)  # from the cache
    write(path, amat_bytes(np.stack([1 - ROW, ROW, ROW])))
    second = read_binarized_split(path)
    assert second.shape == (3, 784) and second[0].all() and not second[1:].any()
    cache_path(path, path.read_bytes()).write_bytes(b"garbage")  # a broken cache means parsing again
    assert np.array_equal(read_binarized_split(path), second)


def test_bad_md5(make_t10k, shared_data_dir):
    data_dir = make_t10k()
    (data_dir / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    gz = (shared_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    write(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", gz[:-1] + bytes([gz[-1] ^ 1]))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: md5 mismatch"):
        load_dataset("mnist_t10k", data_dir, download=False)


def test_uncompressed_idx_files_load(make_t10k):
    ds = load_dataset("mnist_t10k", make_t10k(), download=False)
    assert len(ds.train) == 8000 and ds.train.x.max() <= 1.0


@pytest.mark.parametrize("header,match", [
    (b"\x00\x00\x08\x03", None),  # placeholder, replaced below
    (b"\x01\x00\x08\x03", "bad IDX magic: bytes 0-1"),
    (b"\x00\x00\x07\x03", "bad IDX magic: unknown type code 0x07"),
    (b"\x00\x00\x08\x02", "bad IDX magic: 2 dimensions .byte 3., expected 3"),
])
def test_bad_idx_magic(make_t10k, header, match):
    images = idx_bytes(np.zeros((10_000, 28, 28), np.uint8))
    if match is None:
        images, match = images[:-1], r"IDX dimensions \(10000, 28, 28\) need 7840000 data bytes, found 7839999"
    else:
        images = header + images[4:]
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: " + match):
        load_dataset("mnist_t10k", make_t10k(images=images), download=False)


def test_label_count_must_match(make_t10k):
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: expected 10000 uint8 labels"):
        load_dataset("mnist_t10k", make_t10k(labels=idx_bytes(np.zeros(9_999, np.uint8))), download=False)


def test_label_out_of_range(make_t10k):
    labels = np.zeros(10_000, np.uint8)
    labels[1234] = 10
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: label index 1234 has value 10"):
        load_dataset("mnist_t10k", make_t10k(labels=idx_bytes(labels)), download=False)


def test_wrong_image_size(make_t10k):
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: expected uint8 images of shape \(10000, 28, 28\)"):
        load_dataset("mnist_t10k", make_t10k(images=idx_bytes(np.zeros((10_000, 27, 28), np.uint8))),
                     download=False)
