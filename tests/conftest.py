"""Shared pytest configuration: point the data layer at the repository's sibling shared data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = (REPO_ROOT.parent / "shared" / "data").resolve()

if not os.environ.get("PPL_DATA_DIR"):
    os.environ["PPL_DATA_DIR"] = str(SHARED_DATA_DIR)

_REQUIRED = (
    "binarized_mnist/binarized_mnist_train.amat.gz",
    "binarized_mnist/binarized_mnist_valid.amat.gz",
    "binarized_mnist/binarized_mnist_test.amat.gz",
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs on one intra-op thread: the tiny tensors of the tests gain nothing from more,
    and on a 2-core machine shared with other work, threads contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared real-data directory (``PPL_DATA_DIR``); skips the test if its files are missing."""
    path = Path(os.environ["PPL_DATA_DIR"]).resolve()  # CI passes it relative to the repo root
    missing = [name for name in _REQUIRED if not (path / name).is_file()]
    if missing:
        pytest.skip(f"shared data missing in {path}: {', '.join(missing)}")
    return path


@pytest.fixture
def digits():
    """The embedded digits dataset (no files needed)."""
    from ppl_models.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def tiny_run_config():
    """Factory of small VAE run configs on digits that train in about a second (15 steps an epoch)."""
    return _tiny_run_config


def _tiny_run_config(epochs: int = 2, seed: int = 0, train_fields: dict | None = None, **model_fields):
    from ppl_models.registry import model_config
    from ppl_models.train.config import TrainConfig
    from ppl_models.train.run import RunConfig

    fields = {"latent_dim": 4, "hidden": (32,), "likelihood": "gaussian", **model_fields}
    train = TrainConfig(data="digits", epochs=epochs, seed=seed, **(train_fields or {}))
    return RunConfig("vae", model_config("vae", **fields), train, (8, 8))


# The sample-quality classifier: a digits classifier trained once per session into a temporary cache,
# so no test reads or writes a user's cache.
@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory) -> Path:
    """A classifier cache directory holding the digits classifier (trained once, ~4 s on one thread)."""
    import torch

    from ppl_models.evaluate.classifier import load_classifier

    path = tmp_path_factory.mktemp("classifiers")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        load_classifier((8, 8), cache_dir=path, progress=False)
    finally:
        torch.set_num_threads(threads)
    return path


@pytest.fixture
def classifier_env(classifier_cache, monkeypatch) -> Path:
    """``PPL_CLASSIFIER_DIR`` pointing at the session's classifier cache (for the CLI and the API)."""
    from ppl_models.evaluate.classifier import ENV_CLASSIFIER_DIR

    monkeypatch.setenv(ENV_CLASSIFIER_DIR, str(classifier_cache))
    return classifier_cache
