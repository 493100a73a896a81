"""Real `ppl train` processes killed (SIGKILL) or stopped (SIGTERM, SIGINT) at random moments, then resumed.

After every interruption the newest checkpoint must load, and a signal must leave a checkpoint of
the very step it reports. In the end the interrupted-and-resumed run must equal an uninterrupted one
bit for bit, metrics included: nothing was lost and nothing was counted twice.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

import torch

from ppl_models.train.checkpoint import list_checkpoints, load_checkpoint
from ppl_models.train.metrics import MetricsLog

TRAIN = ["train", "vae", "--data", "digits", "--latent-dim", "4", "--hidden", "32", "--batch-size", "20",
         "--epochs", "20", "--checkpoint-every", "3", "--log-every", "3", "--seed", "0", "--device", "cpu",
         "--no-progress"]
INTERRUPTIONS = [signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGKILL]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def start(out, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "ppl_models.cli.main", *TRAIN, "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def newest_step(out) -> int:
    found = list_checkpoints(out / "checkpoints")
    return found[-1][0] if found else -1


def interrupt_at_random(proc: subprocess.Popen, out, signum: int, rng: random.Random) -> tuple[int, str]:
    """Wait until the process writes a new checkpoint (it is training), then a random 0-0.8 s, then signal it."""
    before, deadline = newest_step(out), time.monotonic() + 120
    while newest_step(out) == before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"training ended before it could be interrupted: {proc.communicate()}"
    time.sleep(rng.uniform(0.0, 0.8))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def model_state(out) -> dict:
    return load_checkpoint(list_checkpoints(out / "checkpoints")[-1][1])["model"]


def test_runs_killed_and_stopped_at_random_moments_resume_to_the_uninterrupted_result(tmp_path):
    rng = random.Random(0)
    out = tmp_path / "interrupted"
    progress = []
    for i, signum in enumerate(INTERRUPTIONS):
        code, err = interrupt_at_random(start(out, resume=i > 0), out, signum, rng)
        step = newest_step(out)
        state = load_checkpoint(out / "checkpoints" / f"step-{step:08d}.pt")  # loads: never half-written
        assert all(torch.isfinite(v).all() for v in state["model"].values())
        if signum == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:  # a clean stop: exit status 128 + signal, and the checkpoint of the step it names
            assert code == 128 + signum, err
            stopped = int(re.search(rf"stopped by {signal.Signals(signum).name} after step (\d+)", err).group(1))
            assert stopped == step and f"step-{step:08d}.pt" in err
        progress.append(step)
    assert progress == sorted(progress) and progress[-1] > progress[0]  # every restart went on from the last

    final = start(out, resume=True)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    straight = start(tmp_path / "straight", resume=False)
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err

    a, b = model_state(out), model_state(tmp_path / "straight")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows, straight_rows = MetricsLog.read(out / "metrics.csv"), MetricsLog.read(tmp_path / "straight/metrics.csv")
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, 21)]
    key = lambda r: (r["step"], r["train_loss"], r["valid_elbo"])  # noqa: E731
    assert [key(r) for r in rows] == [key(r) for r in straight_rows]
    assert not list((out / "checkpoints").glob("*.tmp"))
