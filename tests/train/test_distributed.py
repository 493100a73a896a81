"""Training under torchrun: 2 gloo processes on the CPU, launched as a user launches them.

Each test starts ``python -m torch.distributed.run --standalone --nproc_per_node 2 -m
ppl_models.cli.main train ...`` (what the README's ``torchrun`` line runs) and reads the run
directory it wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ppl_models.api import train
from ppl_models.train.checkpoint import list_checkpoints, load_latest
from ppl_models.train.distributed import World, rank_seed
from ppl_models.train.metrics import MetricsLog

# A VAE whose steps take a few milliseconds more, so that a test can kill it between checkpoints.
SLOW_VAE = '''
import time
import ppl_models as ppl
from ppl_models.models.vae import VAE, VAEConfig


@ppl.register_model("slow-vae", VAEConfig, "the built-in VAE, 20 ms slower a step")
class SlowVAE(VAE):
    def model(self, x=None, batch_size=None):
        time.sleep(0.02)
        return super().model(x, batch_size)
'''


def torchrun(*args: str, procs: int = 2, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node procs -m ppl_models.cli.main train ARGS --device cpu``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
           "-m", "ppl_models.cli.main", "train", *args, "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def final_state(run: Path) -> dict:
    return load_latest(run / "checkpoints")[1]


def test_two_processes_end_where_one_process_on_the_combined_batch_does(tmp_path):
    # The autoencoder's loss has no random draws, so both runs see the same numbers: only the order of the
    # floating-point sums differs (each rank sums its half of a batch; DDP adds the halves' gradients).
    settings = dict(epochs=2, batch_size=100, seed=3)
    one = train("autoencoder", out=tmp_path / "one", device="cpu", progress=False, **settings)
    torchrun("autoencoder", "--epochs", "2", "--batch-size", "100", "--seed", "3", "--out", str(tmp_path / "two"))
    a, b = final_state(one.path), final_state(tmp_path / "two")
    assert a["step"] == b["step"] == 30 and b["world_size"] == 2
    for name, value in a["model"].items():
        torch.testing.assert_close(b["model"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    rows = [MetricsLog.read(r / "metrics.csv") for r in (one.path, tmp_path / "two")]
    for r1, r2 in zip(*rows):  # train loss and validation bound: sums over the ranks' shares
        assert float(r2["train_loss"]) == pytest.approx(float(r1["train_loss"]), rel=1e-5)
        assert float(r2["valid_elbo"]) == pytest.approx(float(r1["valid_elbo"]), rel=1e-5)
    # rank 0 alone wrote: one lock holder, one set of files, sample grids once
    assert sorted(p.name for p in (tmp_path / "two" / "samples").iterdir()) == ["draws.png", "mean.png"]
    assert len(list_checkpoints(tmp_path / "two" / "checkpoints")) == 2


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_a_killed_rank_loses_nothing_beyond_the_last_checkpoint(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_VAE)
    model = f"{tmp_path / 'slow.py'}:slow-vae"
    args = [model, "--epochs", "2", "--batch-size", "50", "--checkpoint-every", "5", "--log-every", "5",
            "--hidden", "32", "--seed", "1"]
    torchrun(*args, "--out", str(tmp_path / "whole"))

    killed = tmp_path / "killed"
    launcher = torchrun(*args, "--out", str(killed), wait=False)
    deadline = time.monotonic() + 120
    while not [s for s, _ in list_checkpoints(killed / "checkpoints") if s >= 10]:
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read()[-3000:]
        time.sleep(0.05)
    workers = _children(launcher.pid)
    assert len(workers) == 2
    rank0 = int((killed / ".lock").read_text())
    os.kill(next(w for w in workers if w != rank0), signal.SIGKILL)  # the rank that writes nothing
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    stopped_at = load_latest(killed / "checkpoints")[1]["step"]
    assert 10 <= stopped_at < final_state(tmp_path / "whole")["step"]

    torchrun(*args, "--out", str(killed), "--resume")  # same world size: every rank's stream was saved
    a, b = final_state(tmp_path / "whole"), final_state(killed)
    assert a["step"] == b["step"]
    for name, value in a["model"].items():
        assert torch.equal(b["model"][name], value), name
    assert [r["train_loss"] for r in MetricsLog.read(killed / "metrics.csv")] == \
        [r["train_loss"] for r in MetricsLog.read(tmp_path / "whole" / "metrics.csv")]


def test_the_execution_plan_runs_through_ddp_bit_for_bit(tmp_path):
    args = ["vae", "--epochs", "1", "--hidden", "32", "--seed", "2"]
    for compile in ("off", "plan"):
        torchrun(*args, "--compile", compile, "--out", str(tmp_path / compile))
    assert "the execution plan (eager), verified" in (tmp_path / "plan" / "events.log").read_text()
    a, b = final_state(tmp_path / "off"), final_state(tmp_path / "plan")
    for name, value in a["model"].items():  # each rank's draws, and the all-reduced gradients, are the same
        assert torch.equal(b["model"][name], value), name


def test_sigterm_to_torchrun_stops_every_rank_at_a_check_with_a_checkpoint(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_VAE)
    out = tmp_path / "run"
    args = [f"{tmp_path / 'slow.py'}:slow-vae", "--epochs", "6", "--batch-size", "50", "--log-every", "4",
            "--hidden", "32", "--out", str(out)]
    launcher = torchrun(*args, wait=False)
    deadline = time.monotonic() + 120
    while not (out / "metrics.csv").exists() or len(MetricsLog.read(out / "metrics.csv")) < 1:
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read()[-3000:]
        time.sleep(0.05)
    launcher.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
    printed, _ = launcher.communicate(timeout=120)
    assert printed.count("stopped by SIGTERM after step") == 1, printed[-3000:]  # rank 0's line only
    step = load_latest(out / "checkpoints")[1]["step"]
    assert step % 4 == 0 or step % 29 == 0, step  # at an agreed check (every 4 steps, or an epoch's end: 29)
    torchrun(*args, "--resume")
    assert [int(r["epoch"]) for r in MetricsLog.read(out / "metrics.csv")] == [1, 2, 3, 4, 5, 6]


def test_a_run_resumes_at_another_world_size(tmp_path):
    out = tmp_path / "run"
    torchrun("vae", "--epochs", "1", "--hidden", "32", "--out", str(out))
    resumed = train("vae", out=out, resume=True, epochs=2, device="cpu", progress=False)  # one process now
    assert final_state(resumed.path)["step"] == 30 and final_state(resumed.path)["world_size"] == 1
    assert [int(r["epoch"]) for r in MetricsLog.read(out / "metrics.csv")] == [1, 2]
    assert "resumed by 1 process(es) from a checkpoint that 2 wrote" in (out / "events.log").read_text()


def test_what_a_distributed_run_cannot_do_yet_is_refused_by_name(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "ppl_models.cli.main", "train", "vae", "--strategy", "per-datapoint", "--epochs", "1", "--device", "cpu",
           "--out", str(tmp_path / "run"), "--no-progress"]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "--strategy per-datapoint runs its own steps" in done.stdout + done.stderr
    assert not list_checkpoints(tmp_path / "run" / "checkpoints")


def test_shards_split_every_global_batch_once():
    idx = torch.arange(7)
    shards = [World(rank, 3).shard(idx) for rank in range(3)]
    assert torch.equal(torch.cat(shards), idx) and [s.numel() for s in shards] == [3, 2, 2]
    assert torch.equal(World().shard(idx), idx)
    assert rank_seed(5, 0) == 5 and len({rank_seed(5, r) for r in range(4)}) == 4
    assert rank_seed(5, 1, step=10) != rank_seed(5, 1)
