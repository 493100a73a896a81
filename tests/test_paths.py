"""Output paths built from user text stay inside their directory."""

import os

import pytest

from ppl_models.paths import inside


def test_paths_below_the_root_are_resolved(tmp_path):
    assert inside(tmp_path, "eval-test.json") == tmp_path.resolve() / "eval-test.json"
    assert inside(tmp_path, "runs", "iwae_5") == tmp_path.resolve() / "runs" / "iwae_5"
    assert inside(tmp_path, "a/../b") == tmp_path.resolve() / "b"  # ".." that stays inside is fine
    assert inside(tmp_path) == tmp_path.resolve()


@pytest.mark.parametrize("parts", [("..", "x.json"), ("runs", "../../x"), ("/etc/passwd",), ("a", "/tmp/x")])
def test_dot_dot_and_absolute_parts_are_refused(tmp_path, parts):
    with pytest.raises(ValueError, match="outside the directory"):
        inside(tmp_path / "run", *parts)


def test_symlinks_out_of_the_root_are_refused_and_into_it_followed(tmp_path):
    root, outside = tmp_path / "run", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside / "f.json", root / "eval-x.json")
    with pytest.raises(ValueError, match=r"eval-x.json.*outside the directory"):
        inside(root, "eval-x.json")
    os.symlink(outside, root / "runs")
    with pytest.raises(ValueError, match="outside the directory"):
        inside(root, "runs", "elbo")
    os.symlink(root / "real", root / "alias")
    assert inside(root, "alias", "f") == root.resolve() / "real" / "f"


def test_a_root_that_is_itself_a_link_is_fine(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert inside(tmp_path / "link", "probe.json") == (tmp_path / "real" / "probe.json").resolve()
