"""``ppl train --tensorboard``: per-epoch summaries read back from the event files, a run that trains
bit for bit as without them, and a clear refusal before training when TensorBoard is missing.

TensorBoard is in the ``test`` extra, so these tests run (never skip) in CI.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ppl_models.cli.main import main
from ppl_models.data import load_data
from ppl_models.registry import model_config
from ppl_models.train import RunDir, fit
from ppl_models.train.checkpoint import load_latest
from ppl_models.train.config import TrainConfig
from ppl_models.train.metrics import MetricsLog
from ppl_models.train.run import RunConfig

TINY = ["--data", "digits", "--latent-dim", "4", "--hidden", "32", "--likelihood", "gaussian", "--no-progress"]
SCALARS = ("loss/train", "elbo/valid", "lr", "grad_norm")


def train(out, *flags: str) -> int:
    return main(["train", "vae", "--out", str(out), *TINY, *flags])


def events(run) -> EventAccumulator:
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def final_state(run) -> dict:
    return load_latest(run / "checkpoints")[1]


def assert_same_training(a, b) -> None:
    sa, sb = final_state(a), final_state(b)
    assert sa["step"] == sb["step"]
    assert sa["model"].keys() == sb["model"].keys()
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
    opt_a, opt_b = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])  # no random number drawn for the summaries
    rows_a, rows_b = MetricsLog.read(a / "metrics.csv"), MetricsLog.read(b / "metrics.csv")
    assert [(r["train_loss"], r["valid_elbo"]) for r in rows_a] == [(r["train_loss"], r["valid_elbo"]) for r in rows_b]


def test_summaries_match_metrics_and_training_is_unchanged(tmp_path):
    on, off = tmp_path / "on", tmp_path / "off"
    assert train(on, "--epochs", "3", "--lr", "2e-3", "--tensorboard") == 0
    assert train(off, "--epochs", "3", "--lr", "2e-3") == 0
    assert not (off / "tensorboard").exists()
    assert_same_training(on, off)  # parameters, optimizer and RNG state bit for bit

    rows = MetricsLog.read(on / "metrics.csv")
    acc = events(on)
    assert set(SCALARS) <= set(acc.Tags()["scalars"])
    steps = [int(r["step"]) for r in rows]
    for tag in SCALARS:
        assert [e.step for e in acc.Scalars(tag)] == steps, tag
    # the same numbers as metrics.csv, to float32 precision (event files store float32)
    assert [e.value for e in acc.Scalars("loss/train")] == [float(np.float32(r["train_loss"])) for r in rows]
    assert [e.value for e in acc.Scalars("elbo/valid")] == [float(np.float32(r["valid_elbo"])) for r in rows]
    assert [e.value for e in acc.Scalars("lr")] == [float(np.float32(2e-3))] * len(rows)
    assert all(math.isfinite(e.value) and e.value > 0 for e in acc.Scalars("grad_norm"))
    images = acc.Images("samples/mean")
    assert [e.step for e in images] == steps
    # 64 decoder means of 8x8 digits, enlarged 4x to 32x32 cells with a 1-pixel border: an 8x8 grid
    assert (images[-1].width, images[-1].height) == (8 * 33 + 1, 8 * 33 + 1)
    assert images[-1].encoded_image_string.startswith(b"\x89PNG")


def test_tensorboard_may_be_switched_on_when_resuming(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(straight, "--epochs", "2") == 0
    assert train(split, "--epochs", "1") == 0
    assert train(split, "--epochs", "2", "--resume", "--tensorboard") == 0
    assert_same_training(straight, split)
    acc = events(split)
    assert [e.step for e in acc.Scalars("loss/train")] == [30]  # only the epoch trained with it on
    assert RunDir(split).load_config().train.tensorboard


def test_vector_data_get_scalars_but_no_image_and_the_norm_is_taken_before_clipping(tmp_path, digits):
    vectors = tmp_path / "vectors.npy"
    np.save(vectors, digits.train.x.reshape(len(digits.train), -1).numpy())
    dataset = load_data(str(vectors))
    train_config = TrainConfig(data=str(vectors), epochs=1, batch_size=100, grad_clip=0.01, tensorboard=True)
    config = RunConfig("vae", model_config("vae", latent_dim=2, hidden=(16,), likelihood="gaussian"), train_config,
                       tuple(dataset.event_shape))
    fit(RunDir(tmp_path / "run"), config, dataset, progress=False, verbose=False)
    acc = events(tmp_path / "run")
    assert set(SCALARS) <= set(acc.Tags()["scalars"])
    assert acc.Tags()["images"] == []
    assert acc.Scalars("grad_norm")[0].value > 0.01  # the norm --grad-clip saw, not the clipped one


@pytest.fixture
def no_tensorboard(monkeypatch):
    """Imports of TensorBoard fail, as when the package is not installed."""
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_the_package_the_flag_is_refused_before_anything_is_written(tmp_path, capsys, no_tensorboard):
    out = tmp_path / "run"
    assert train(out, "--epochs", "1", "--tensorboard") == 2
    err = capsys.readouterr().err
    assert "--tensorboard needs the tensorboard package" in err
    assert 'pip install "ppl-models[tensorboard]"' in err and "pip install tensorboard" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_without_the_package_fit_refuses_before_anything_is_written(tmp_path, digits, tiny_run_config,
                                                                    no_tensorboard):
    out = tmp_path / "run"
    with pytest.raises(ImportError, match=r'pip install "ppl-models\[tensorboard\]"'):
        fit(RunDir(out), tiny_run_config(epochs=1, train_fields={"tensorboard": True}), digits, progress=False)
    assert not out.exists()


def test_without_the_package_a_resume_can_turn_it_off(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert train(out, "--epochs", "1", "--tensorboard") == 0
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)
    capsys.readouterr()
    assert train(out, "--epochs", "2", "--resume") == 2  # the saved config asks for it
    assert "pip install tensorboard" in capsys.readouterr().err
    assert [r["epoch"] for r in MetricsLog.read(out / "metrics.csv")] == ["1"]
    assert train(out, "--epochs", "2", "--resume", "--no-tensorboard") == 0
    assert [r["epoch"] for r in MetricsLog.read(out / "metrics.csv")] == ["1", "2"]
