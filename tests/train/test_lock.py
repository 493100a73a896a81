"""One writer per run directory: a second `ppl train` into a run being trained is refused at once."""

import os
import signal
import subprocess
import sys

import pytest

from ppl_models.cli.main import main
from ppl_models.train.lock import RunLocked, run_lock

TINY = ["--data", "digits", "--epochs", "1", "--latent-dim", "2", "--hidden", "16", "--no-progress"]
HOLD = "import sys, time\nfrom ppl_models.train.lock import run_lock\nwith run_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"


@pytest.fixture
def holder(tmp_path):
    """Another process holding the write lock of ``tmp_path / 'run'``."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


def test_a_second_lock_is_refused_naming_the_holder_and_released_after_the_block(tmp_path):
    with run_lock(tmp_path / "r") as path:
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(RunLocked, match=rf"run {tmp_path / 'r'} is being written by process {os.getpid()}"):
            with run_lock(tmp_path / "r"):
                pass
    with run_lock(tmp_path / "r"):
        pass


def test_a_killed_holder_leaves_no_stale_lock(holder):
    run, proc = holder
    with pytest.raises(RunLocked, match=f"process {proc.pid}"):
        with run_lock(run):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with run_lock(run):  # the OS released it with the process
        pass


def test_train_into_a_run_being_trained_is_refused_and_readers_keep_working(holder, tmp_path, capsys):
    run, proc = holder
    assert main(["train", "vae", *TINY, "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"is being written by process {proc.pid}" in err and "Traceback" not in err
    assert not (run / "metrics.csv").exists() and not (run / "checkpoints").exists()

    done = tmp_path / "done"
    assert main(["train", "vae", *TINY, "--out", str(done)]) == 0
    with run_lock(done):  # a run being written can still be read
        assert main(["eval", str(done), "--nll-samples", "5", "--json"]) == 0
        assert main(["sample", str(done), "-n", "4", "--out", str(tmp_path / "g.png")]) == 0
