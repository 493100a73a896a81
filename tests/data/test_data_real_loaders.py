"""Loaders on the real files of the shared data directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ppl_models.data import DataError, load_dataset


@pytest.fixture(scope="module")
def bmnist(shared_data_dir: Path):
    return load_dataset("binarized_mnist", shared_data_dir, download=False)


@pytest.fixture(scope="module")
def t10k(shared_data_dir: Path):
    return load_dataset("mnist_t10k", shared_data_dir, download=False)


def test_binarized_mnist_shapes_values_means(bmnist):
    assert bmnist.name == "binarized_mnist" and bmnist.binary and bmnist.event_shape == (28, 28)
    expected = {"train": (50_000, 0.1306), "valid": (10_000, 0.1311), "test": (10_000, 0.1325)}
    for name, (n, mean) in expected.items():
        split = bmnist.split(name)
        assert split.x.shape == (n, 28, 28) and split.x.dtype == torch.float32 and split.y is None
        assert len(split) == n
        assert set(torch.unique(split.x).tolist()) == {0.0, 1.0}
        assert abs(split.x.mean().item() - mean) < 1e-3


def test_binarized_mnist_cached_load_is_identical(bmnist, shared_data_dir):
    again = load_dataset("binarized_mnist", shared_data_dir, download=False)
    assert torch.equal(again.train.x, bmnist.train.x) and torch.equal(again.test.x, bmnist.test.x)


def test_mnist_t10k_splits(t10k):
    assert not t10k.binary and t10k.event_shape == (28, 28)
    assert [len(t10k.split(s)) for s in ("train", "valid", "test")] == [8000, 1000, 1000]
    for s in ("train", "valid", "test"):
        split = t10k.split(s)
        assert split.y.dtype == torch.int64 and 0 <= split.y.min() and split.y.max() <= 9
        assert 0.0 <= split.x.min() and split.x.max() <= 1.0
    assert len(torch.unique(t10k.train.y)) == 10
    # disjoint: 10,000 distinct images overall (MNIST t10k has no exact duplicates)
    flat = torch.cat([t10k.split(s).x.flatten(1) for s in ("train", "valid", "test")])
    assert torch.unique(flat, dim=0).shape[0] == 10_000
    assert abs(flat.mean().item() - 0.1325) < 0.01  # grey-level t10k mean (binarized test mean is 0.1325)


def test_mnist_t10k_is_deterministic(t10k, shared_data_dir):
    again = load_dataset("mnist_t10k", shared_data_dir, download=False)
    assert torch.equal(again.valid.x, t10k.valid.x) and torch.equal(again.valid.y, t10k.valid.y)


def test_mnist_without_train_images_names_the_file(shared_data_dir):
    if (shared_data_dir / "mnist" / "train-images-idx3-ubyte.gz").exists():
        ds = load_dataset("mnist", shared_data_dir, download=False)
        assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [50_000, 10_000, 10_000]
        return
    with pytest.raises(DataError, match="train-images-idx3-ubyte") as info:
        load_dataset("mnist", shared_data_dir, download=False)
    assert str(shared_data_dir / "mnist") in str(info.value) and "ossci-datasets" in str(info.value)


def test_digits():
    ds = load_dataset("digits")
    assert ds.event_shape == (8, 8) and not ds.binary
    assert [len(ds.split(s)) for s in ("train", "valid", "test")] == [1437, 180, 180]
    x = torch.cat([ds.split(s).x for s in ("train", "valid", "test")])
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(torch.unique(x * 16).tolist()) <= set(map(float, range(17)))
    y = torch.cat([ds.split(s).y for s in ("train", "valid", "test")])
    assert sorted(torch.unique(y).tolist()) == list(range(10))
    assert torch.equal(load_dataset("digits").test.y, ds.test.y)
