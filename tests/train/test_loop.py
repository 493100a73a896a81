"""The training loop: seeded runs repeat, resume is exact, run directories hold what they should."""

import json
import math

import pytest
import torch

from ppl_models.train import RunDir, fit
from ppl_models.train.checkpoint import list_checkpoints, load_checkpoint
from ppl_models.train.metrics import MetricsLog


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_seeded_runs_repeat_exactly(tmp_path, digits, tiny_run_config):
    a = fit(RunDir(tmp_path / "a"), tiny_run_config(seed=3), digits, progress=False)
    b = fit(RunDir(tmp_path / "b"), tiny_run_config(seed=3), digits, progress=False)
    c = fit(RunDir(tmp_path / "c"), tiny_run_config(seed=4), digits, progress=False)
    assert states_equal(a.state_dict(), b.state_dict())
    assert not states_equal(a.state_dict(), c.state_dict())
    rows_a, rows_b = MetricsLog.read(tmp_path / "a/metrics.csv"), MetricsLog.read(tmp_path / "b/metrics.csv")
    assert [r["train_loss"] for r in rows_a] == [r["train_loss"] for r in rows_b]


def test_resume_gives_exactly_the_uninterrupted_result(tmp_path, digits, tiny_run_config):
    straight = fit(RunDir(tmp_path / "straight"), tiny_run_config(epochs=4), digits, progress=False)
    fit(RunDir(tmp_path / "split"), tiny_run_config(epochs=2), digits, progress=False)
    resumed = fit(RunDir(tmp_path / "split"), tiny_run_config(epochs=4), digits, resume=True, progress=False)
    assert states_equal(straight.state_dict(), resumed.state_dict())
    opt_a = load_checkpoint(tmp_path / "straight/checkpoints/step-00000060.pt")["optimizer"]["state"]
    opt_b = load_checkpoint(tmp_path / "split/checkpoints/step-00000060.pt")["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)
    rows = MetricsLog.read(tmp_path / "split/metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    straight_rows = MetricsLog.read(tmp_path / "straight/metrics.csv")
    assert [r["valid_elbo"] for r in rows] == [r["valid_elbo"] for r in straight_rows]


def test_run_directory_contents(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=3), digits, progress=False)
    config = json.loads(run.config_path.read_text())
    assert config["model"] == "vae" and config["train"]["epochs"] == 3 and config["event_shape"] == [8, 8]
    assert run.load_config() == tiny_run_config(epochs=3)  # config.json rebuilds the same dataclasses
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [30, 45]  # keep_checkpoints=2; 15 steps an epoch
    state = load_checkpoint(run.checkpoints / "step-00000045.pt")
    assert {"model", "optimizer", "rng", "epoch", "step"} <= state.keys() and state["epoch"] == 3
    rows = MetricsLog.read(run.metrics_path)
    assert [int(r["step"]) for r in rows] == [15, 30, 45]  # ceil(1437 / 100) steps per epoch
    assert all(math.isfinite(float(r["valid_elbo"])) and math.isfinite(float(r["train_loss"])) for r in rows)
    assert not list(run.checkpoints.glob("*.tmp"))  # atomic writes leave no temporary files
    _, model = run.load_model()
    assert not model.training


def test_existing_run_is_not_overwritten_without_resume(tmp_path, digits, tiny_run_config):
    fit(RunDir(tmp_path / "run"), tiny_run_config(epochs=1), digits, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        fit(RunDir(tmp_path / "run"), tiny_run_config(epochs=2), digits, progress=False)


def test_bernoulli_on_grey_data_is_refused_before_training(tmp_path, digits, tiny_run_config):
    with pytest.raises(ValueError, match=r"digits/train: the bernoulli likelihood needs values in \{0, 1\}"):
        fit(RunDir(tmp_path / "run"), tiny_run_config(likelihood="bernoulli"), digits, progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_corrupt_checkpoint_error_names_the_file(tmp_path):
    bad = tmp_path / "step-00000015.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="step-00000015.pt is corrupt"):
        load_checkpoint(bad)
