"""A user's own data files: .npy, .npz and .pt, separate or carved splits, and clear errors."""

import numpy as np
import pytest
import torch

from ppl_models.data import DataError, load_data, read_split


def test_npy_npz_pt_read_the_same_observations(tmp_path):
    x = np.random.default_rng(0).random((20, 3, 4)).astype(np.float32)
    y = np.arange(20) % 3
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x=x, y=y)
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "c.pt")
    a, b, c = (read_split(tmp_path / n) for n in ("a.npy", "b.npz", "c.pt"))
    assert a.y is None and torch.equal(b.y, c.y) and b.y.dtype == torch.int64
    assert torch.equal(a.x, b.x) and torch.equal(b.x, c.x) and a.x.dtype == torch.float32


def test_missing_splits_are_carved_deterministically(tmp_path):
    np.save(tmp_path / "train.npy", np.random.default_rng(1).random((50, 6)))
    d1, d2 = load_data(str(tmp_path / "train.npy")), load_data(str(tmp_path / "train.npy"))
    assert (len(d1.train), len(d1.valid), len(d1.test)) == (40, 5, 5)
    assert torch.equal(d1.test.x, d2.test.x)
    rows = {tuple(r.tolist()) for s in (d1.train, d1.valid, d1.test) for r in s.x}
    assert len(rows) == 50  # a partition: nothing lost or repeated


def test_separate_split_files(tmp_path):
    for name, n in (("tr", 30), ("va", 7), ("te", 9)):
        np.save(tmp_path / f"{name}.npy", np.zeros((n, 2, 2), dtype=bool))
    d = load_data(str(tmp_path / "tr.npy"), valid=str(tmp_path / "va.npy"), test=str(tmp_path / "te.npy"))
    assert (len(d.train), len(d.valid), len(d.test)) == (30, 7, 9) and d.binary and d.event_shape == (2, 2)
    d = load_data(str(tmp_path / "tr.npy"), test=str(tmp_path / "te.npy"))
    assert (len(d.train), len(d.valid), len(d.test)) == (27, 3, 9)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p / "f.npy", np.array(["a", "b"])), r"f.npy: x has dtype <U1"),
    (lambda p: np.save(p / "f.npy", np.zeros(5)), r"f.npy: x must have shape \[N, \.\.\.\].*\(5,\)"),
    (lambda p: np.save(p / "f.npy", np.zeros((0, 3))), r"f.npy: the file holds no data points: x has shape \(0, 3\)"),
    (lambda p: np.save(p / "f.npy", np.zeros(0)), r"f.npy: the file holds no data points"),
    (lambda p: np.save(p / "f.npy", np.array([[0.0, 1.0], [np.inf, 0.0]])), r"f.npy: x\[1, 0\] is inf"),
    (lambda p: np.savez(p / "f.npz", x=np.zeros((3, 2)), y=np.array([0, -2, 1])), r"f.npz: y\[1\] is -2; labels are classes"),
    (lambda p: np.save(p / "f.npy", np.array([[0.0, np.nan]])), r"f.npy: x\[0, 1\] is nan"),
    (lambda p: np.savez(p / "f.npz", x=np.zeros((3, 2)), y=np.zeros(4, dtype=int)), r"labels y have shape \(4,\).*3 rows"),
    (lambda p: np.savez(p / "f.npz", x=np.zeros((3, 2)), y=np.zeros(3)), r"labels y have dtype torch.float64"),
    (lambda p: np.savez(p / "f.npz", a=np.zeros((3, 2)), b=np.zeros(3)), r"needs an array 'x'.*\['a', 'b'\]"),
    (lambda p: (p / "f.npy").write_bytes(b"\x93NUMPY garbage"), r"f.npy: cannot read"),
    (lambda p: (p / "f.pt").write_bytes(b"not a zip"), r"f.pt: cannot read"),
    (lambda p: (p / "f.csv").write_text("1,2"), r"unsupported data file type '.csv'"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, make, message):
    make(tmp_path)
    path = next(tmp_path.iterdir())
    with pytest.raises(DataError, match=message):
        read_split(path)


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "f.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read"):
        read_split(tmp_path / "f.npy")


def test_split_files_go_with_a_data_file_only(tmp_path):
    with pytest.raises(DataError, match="not the registered dataset 'digits'"):
        load_data("digits", valid=str(tmp_path / "v.npy"))


def test_mismatched_shapes_and_labels_across_splits_name_the_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((10, 3)))
    np.save(tmp_path / "b.npy", np.zeros((10, 4)))
    with pytest.raises(DataError, match=r"b.npy: observations have shape \(4,\), but the training file .*a.npy has shape \(3,\)"):
        load_data(str(tmp_path / "a.npy"), test=str(tmp_path / "b.npy"))
    np.savez(tmp_path / "c.npz", x=np.zeros((10, 3)), y=np.zeros(10, dtype=int))
    with pytest.raises(DataError, match=r"a.npy: has no labels y, but .*c.npz has"):
        load_data(str(tmp_path / "c.npz"), test=str(tmp_path / "a.npy"))
    with pytest.raises(DataError, match=r"a.npy: has no labels y, but .*c.npz has"):
        load_data(str(tmp_path / "a.npy"), valid=str(tmp_path / "c.npz"))


def test_an_empty_split_file_is_refused_naming_it(tmp_path):
    np.save(tmp_path / "train.npy", np.zeros((10, 3), dtype=np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"empty.npy: the file holds no data points"):
        load_data(str(tmp_path / "train.npy"), valid=str(tmp_path / "empty.npy"))


def test_carved_splits_record_the_rows_of_the_training_file(tmp_path):
    x = np.arange(50 * 2, dtype=np.float32).reshape(50, 2)
    np.save(tmp_path / "train.npy", x)
    d = load_data(str(tmp_path / "train.npy"))
    for split in (d.train, d.valid, d.test):
        assert torch.equal(split.x, torch.from_numpy(x)[split.rows])  # example i is row rows[i] of the file
    assert sorted(torch.cat([d.train.rows, d.valid.rows, d.test.rows]).tolist()) == list(range(50))
    np.save(tmp_path / "valid.npy", x[:5])
    np.save(tmp_path / "test.npy", x[:5])
    d = load_data(str(tmp_path / "train.npy"), valid=str(tmp_path / "valid.npy"), test=str(tmp_path / "test.npy"))
    assert d.train.rows is None and torch.equal(d.train.source_rows(), torch.arange(50))  # files are their own source
