"""Fixtures of the data-layer tests: an isolated parse cache and small synthetic data files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ppl_data_helpers import idx_bytes, write


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep the parse cache of these tests out of the real user cache directory."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
    mp.undo()


@pytest.fixture
def make_t10k(tmp_path: Path):
    """Factory writing uncompressed t10k IDX files into ``tmp_path/mnist`` and returning the data dir."""

    def make(images: bytes | None = None, labels: bytes | None = None) -> Path:
        rng = np.random.default_rng(0)
        if images is None:
            images = idx_bytes(rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8))
        if labels is None:
            labels = idx_bytes(rng.integers(0, 10, 10_000, dtype=np.uint8))
        write(tmp_path / "mnist" / "t10k-images-idx3-ubyte", images)
        write(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", labels)
        return tmp_path

    return make


@pytest.fixture
def no_env_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset ``PPL_DATA_DIR`` for the test."""
    monkeypatch.delenv("PPL_DATA_DIR", raising=False)

