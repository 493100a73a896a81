"""Checkpoints under faults: corrupt files fall back, a full disk keeps the last one, signals stop cleanly."""

import errno
import os
import signal

import pytest
import torch

from ppl_models.train import RunDir, fit
from ppl_models.train.checkpoint import (CheckpointWarning, list_checkpoints, load_checkpoint, load_latest,
                                         remove_stale_temporaries)
from ppl_models.train.signals import TrainingStopped

GUARDED = {"checkpoint_every": 5, "log_every": 5, "keep_checkpoints": 3}


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def straight(tmp_path, digits, tiny_run_config):
    """The final state of an uninterrupted 3-epoch run."""
    return fit(RunDir(tmp_path / "straight"), tiny_run_config(epochs=3, train_fields=GUARDED), digits,
               progress=False).state_dict()


CORRUPTIONS = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "empty": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(os.urandom(4096)),
    "foreign": lambda path: torch.save({"weights": torch.ones(3)}, path),
}


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS))
def test_resume_falls_back_from_a_corrupt_newest_checkpoint_and_says_so(tmp_path, digits, tiny_run_config,
                                                                        straight, corrupt):
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=2, train_fields=GUARDED), digits, progress=False)
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [20, 25, 30]
    CORRUPTIONS[corrupt](run.checkpoints / "step-00000030.pt")
    with pytest.raises(ValueError, match="step-00000030.pt"):
        load_checkpoint(run.checkpoints / "step-00000030.pt")
    with pytest.warns(CheckpointWarning, match="step-00000030.pt .*falling back to step-00000025.pt"):
        _, model = run.load_model(checkpoint="latest")  # eval, sample and probe read runs this way (best.pt: test_best.py)
    with pytest.warns(CheckpointWarning, match="falling back to step-00000025.pt"):
        resumed = fit(run, tiny_run_config(epochs=3, train_fields=GUARDED), digits, resume=True, progress=False)
    assert states_equal(straight, resumed.state_dict())  # step 25 onwards was replayed exactly


def test_no_loadable_checkpoint_is_an_error_listing_every_file(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=1, train_fields=GUARDED), digits, progress=False)
    for _, path in list_checkpoints(run.checkpoints):
        path.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match=r"no checkpoint in .* can be loaded:\n.*step-00000015.pt.*\n.*step-00000010"):
        fit(run, tiny_run_config(epochs=2, train_fields=GUARDED), digits, resume=True, progress=False)


def test_a_full_disk_stops_with_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, digits, tiny_run_config,
                                                                                straight, monkeypatch):
    real_save = torch.save

    def disk_full_from_step_25(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step", 0) >= 25:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    run = RunDir(tmp_path / "run")
    monkeypatch.setattr(torch, "save", disk_full_from_step_25)
    with pytest.raises(OSError, match=r"cannot write checkpoint .*step-00000025.pt: No space left on device; the "
                                      r"previous checkpoint .*step-00000020.pt is intact"):
        fit(run, tiny_run_config(epochs=3, train_fields=GUARDED), digits, progress=False)
    monkeypatch.setattr(torch, "save", real_save)
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [10, 15, 20]
    assert not list(run.checkpoints.glob("*.tmp"))  # the half-written file was removed
    load_checkpoint(run.checkpoints / "step-00000020.pt")
    resumed = fit(run, tiny_run_config(epochs=3, train_fields=GUARDED), digits, resume=True, progress=False)
    assert states_equal(straight, resumed.state_dict())


def test_an_unwritable_run_directory_is_refused_before_training(tmp_path, digits, tiny_run_config):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(OSError, match="cannot write the run directory .*a-file/run"):
        fit(RunDir(tmp_path / "a-file" / "run"), tiny_run_config(), digits, progress=False)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_step_checkpoints_and_resume_is_exact(tmp_path, digits, tiny_run_config, straight,
                                                                    signum):
    run = RunDir(tmp_path / "run")
    handler = signal.getsignal(signum)
    send = lambda step, model: step == 17 and os.kill(os.getpid(), signum)  # noqa: E731
    with pytest.raises(TrainingStopped, match=f"stopped by {signal.Signals(signum).name} after step 17") as stop:
        fit(run, tiny_run_config(epochs=3, train_fields=GUARDED), digits, progress=False, after_step=send)
    assert stop.value.checkpoint == run.checkpoints / "step-00000017.pt"
    assert load_checkpoint(stop.value.checkpoint)["batch"] == 2  # mid-epoch: 2 batches into epoch 2
    assert signal.getsignal(signum) == handler  # the original handler is back
    resumed = fit(run, tiny_run_config(epochs=3, train_fields=GUARDED), digits, resume=True, progress=False)
    assert states_equal(straight, resumed.state_dict())


def test_stale_temporary_files_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".step-00000005.pt.abc123.tmp").write_bytes(b"half")
    (tmp_path / "step-00000005.pt").write_bytes(b"kept")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".step-00000005.pt.abc123.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000005.pt"]
    assert load_latest(tmp_path / "missing") is None
