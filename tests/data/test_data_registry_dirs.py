"""Registry, data-directory resolution and the validation of Split/Dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ppl_models.data import DataError, Dataset, Split, available_datasets, load_dataset, register_dataset, resolve_data_dir
from ppl_models.data import registry
from ppl_models.data.base import permuted_splits


def test_available_datasets():
    names = available_datasets()
    assert {"binarized_mnist", "mnist", "mnist_t10k", "digits"} <= set(names)
    assert all(isinstance(d, str) and d and "\n" not in d for d in names.values())


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError) as info:
        load_dataset("cifar10")
    msg = str(info.value)
    assert "cifar10" in msg and all(name in msg for name in available_datasets())


def test_register_dataset_decorator(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    seen = {}

    @register_dataset("tiny", "a tiny test dataset")
    def load_tiny(data_dir: Path, download: bool) -> Dataset:
        seen.update(data_dir=data_dir, download=download)
        s = Split(torch.zeros(2, 3, 3))
        return Dataset("tiny", s, s, s, binary=True)

    assert available_datasets()["tiny"] == "a tiny test dataset"
    assert load_dataset("tiny", tmp_path, download=False).event_shape == (3, 3)
    assert seen == {"data_dir": tmp_path, "download": False}
    with pytest.raises(DataError, match="already registered"):
        register_dataset("tiny", "again")(load_tiny)


def test_resolve_order(monkeypatch, tmp_path):
    monkeypatch.setenv("PPL_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("PPL_DATA_DIR")
    assert resolve_data_dir() == tmp_path / "xdg" / "ppl-models" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "ppl-models" / "data"


def test_split_name_error_lists_names():
    ds = load_dataset("digits")
    with pytest.raises(DataError, match="train, valid, test"):
        ds.split("validation")


@pytest.mark.parametrize("x", [torch.zeros(2), torch.zeros(2, 3, 3, dtype=torch.float64),
                               torch.full((2, 3, 3), float("nan")), torch.full((2, 3), float("inf"))])
def test_split_rejects_bad_images(x):
    with pytest.raises(DataError):
        Split(x)


def test_split_names_the_first_non_finite_element():
    x = torch.zeros(2, 3, 3)
    x[1, 2, 0] = float("nan")
    with pytest.raises(DataError, match=r"\(1, 2, 0\) is nan"):
        Split(x)


def test_split_takes_vectors_and_any_real_values():
    # a split is [N, ...]; whether the values suit a model is its likelihood's question
    assert len(Split(torch.full((4, 3), 7.5))) == 4


def test_split_rejects_bad_labels():
    with pytest.raises(DataError, match="3 labels"):
        Split(torch.zeros(2, 3, 3), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(DataError):
        Split(torch.zeros(2, 3, 3), torch.zeros(2, dtype=torch.int32))


def test_dataset_checks_binary_and_shapes():
    grey = Split(torch.full((2, 3, 3), 0.5))
    with pytest.raises(DataError, match="non-binary"):
        Dataset("d", grey, grey, grey, binary=True)
    with pytest.raises(DataError, match="shapes"):
        Dataset("d", grey, grey, Split(torch.zeros(2, 4, 4)), binary=False)


def test_an_empty_split_is_refused():
    with pytest.raises(DataError, match=r"the split is empty: x has shape \(0, 3, 3\)"):
        Split(torch.zeros(0, 3, 3))
    with pytest.raises(DataError, match=r"split sizes \(3, 0, 1\) must be at least 1 each"):
        permuted_splits(torch.zeros(4, 2), None, (3, 0, 1))


def test_permuted_splits_and_subsets_record_source_rows():
    x = torch.arange(10.0).reshape(10, 1).expand(10, 2).contiguous()  # row i holds the value i
    parts = permuted_splits(x, torch.arange(10), (6, 3, 1), seed=0)
    for part in parts:
        assert torch.equal(part.x[:, 0].long(), part.rows) and torch.equal(part.y, part.rows)
    sub = parts[0].subset(torch.tensor([4, 1]))
    assert torch.equal(sub.rows, parts[0].rows[[4, 1]]) and torch.equal(sub.x[:, 0].long(), sub.rows)
    with pytest.raises(DataError, match=r"Split.rows must be an int64 tensor of shape \[10\]"):
        Split(x, rows=torch.arange(9))
