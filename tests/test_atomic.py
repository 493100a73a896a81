"""atomic_write: the whole file or none of it, with ordinary permissions."""

import os
import stat

import pytest

from ppl_models.atomic import atomic_write


def test_written_file_has_the_permissions_of_a_plain_file(tmp_path):
    atomic_write(tmp_path / "a.json", lambda f: f.write(b"{}"))
    (tmp_path / "plain").write_bytes(b"{}")
    assert (tmp_path / "a.json").read_bytes() == b"{}"
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    atomic_write(tmp_path / "a.json", lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "a.json", fail)
    assert (tmp_path / "a.json").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
