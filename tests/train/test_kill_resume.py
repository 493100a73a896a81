"""Real `ppl train` processes killed (SIGKILL) or stopped (SIGTERM, SIGINT) at random moments, then resumed.

After every interruption the newest checkpoint must load, and a signal must leave a checkpoint of
the very step it reports. In the end the interrupted-and-resumed run must equal an uninterrupted one
bit for bit, metrics included: nothing was lost and nothing was counted twice.
"""

import importlib
import random
import re
import signal
import sys
from pathlib import Path

import torch

from ppl_models.train.checkpoint import load_checkpoint
from ppl_models.train.metrics import MetricsLog

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
drill = importlib.import_module("fault_drill")  # the process helpers are shared with the fault drill

EPOCHS = 40  # 2880 steps, about 4 s of training; an interruption lets at most 0.5 s (~360 steps) happen
INTERRUPTIONS = [signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGKILL]


def test_runs_killed_and_stopped_at_random_moments_resume_to_the_uninterrupted_result(tmp_path):
    rng = random.Random(0)
    out = tmp_path / "interrupted"
    progress = []
    for i, signum in enumerate(INTERRUPTIONS):
        code, err = drill.interrupt_at_random(drill.start(out, EPOCHS, resume=i > 0), out, signum, rng, longest=0.5)
        step = drill.newest_step(out)
        assert code is not None and step < EPOCHS * drill.STEPS_PER_EPOCH, f"training ended before interruption {i}"
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

    final = drill.start(out, EPOCHS, resume=True)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    straight = drill.start(tmp_path / "straight", EPOCHS, resume=False)
    _, err = straight.communicate(timeout=300)
    assert straight.returncode == 0, err

    assert drill.same(drill.final_model(out), drill.final_model(tmp_path / "straight"))
    rows, straight_rows = MetricsLog.read(out / "metrics.csv"), MetricsLog.read(tmp_path / "straight/metrics.csv")
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, EPOCHS + 1)]
    key = lambda r: (r["step"], r["train_loss"], r["valid_elbo"])  # noqa: E731
    assert [key(r) for r in rows] == [key(r) for r in straight_rows]
    assert not list((out / "checkpoints").glob("*.tmp"))
