"""Fault drill: inject many faults into real training runs and count the runs that survive.

    python benchmarks/fault_drill.py --out benchmarks/out/fault_drill.json

Every fault is injected into a run whose uninterrupted twin is trained too; a fault counts as
survived only if the faulted run, after its recovery (automatic, or ``--resume``), ends with the same
parameters as the twin, bit for bit. A run is lost if it cannot be brought to its end at all.

- ``kill``: a real ``ppl train`` process is sent SIGKILL (mostly), SIGTERM or SIGINT at a random
  moment after it starts writing checkpoints, then resumed, over and over until it finishes;
- ``nan``: a nan or inf written into a random parameter after a random step (one-shot), in process;
- ``corrupt``: the newest checkpoint truncated, emptied, overwritten with garbage or replaced by a
  foreign torch file, then the run resumed;
- ``disk-full``: ENOSPC raised while writing a random checkpoint, then the run resumed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import dataclasses
import errno
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from unittest import mock

import torch
from tqdm.auto import tqdm

from ppl_models.data import load_dataset
from ppl_models.registry import model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.checkpoint import list_checkpoints, load_checkpoint
from ppl_models.train.run import RunConfig

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
STEPS_PER_EPOCH = 72  # ceil(1437 digits / batches of 20)
TRAIN = ["train", "vae", "--data", "digits", "--latent-dim", "4", "--hidden", "32", "--batch-size", "20",
         "--checkpoint-every", "3", "--log-every", "3", "--seed", "0", "--device", "cpu", "--no-progress"]


def start(out: Path, epochs: int, resume: bool) -> subprocess.Popen:
    """Start ``ppl train`` (tiny VAE on digits, a checkpoint every 3 steps) into ``out``."""
    args = [sys.executable, "-m", "ppl_models.cli.main", *TRAIN, "--epochs", str(epochs), "--out", str(out)]
    return subprocess.Popen(args + (["--resume"] if resume else []), env=ENV, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def newest_step(out: Path) -> int:
    """The step of the newest checkpoint in the run ``out`` (-1 if none)."""
    found = list_checkpoints(out / "checkpoints")
    return found[-1][0] if found else -1


def interrupt_at_random(proc: subprocess.Popen, out: Path, signum: int, rng: random.Random,
                        longest: float = 0.8) -> tuple[int | None, str]:
    """Wait until ``proc`` writes a new checkpoint (it is training), then a random 0..``longest`` s, then
    send ``signum``. Returns (exit status, stderr); the status is None if it finished first."""
    before, deadline = newest_step(out), time.monotonic() + 120
    while newest_step(out) == before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, longest))
    if proc.poll() is not None:
        return None, proc.communicate()[1]
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def finish(proc: subprocess.Popen) -> int:
    """Wait for ``proc`` (draining its pipes) and return its exit status."""
    proc.communicate(timeout=600)
    return proc.returncode


def final_model(out: Path) -> dict:
    """The model parameters of the run's newest checkpoint."""
    return load_checkpoint(list_checkpoints(out / "checkpoints")[-1][1])["model"]


def same(a: dict, b: dict) -> bool:
    """Whether two state dicts are equal bit for bit."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def kill_drill(n: int, rng: random.Random, tmp: Path) -> dict:
    """``n`` interruptions of one long run (3 in 4 SIGKILL, the rest SIGTERM or SIGINT). SIGTERM and
    SIGINT count as survived only if the process stopped cleanly (exit status 128 + signal)."""
    epochs = 8 * n + 20  # an interruption lets up to 0.8 s of training happen; an epoch takes about 0.1 s
    twin = start(tmp / "twin", epochs, resume=False)
    out, sent, unclean, log = tmp / "killed", {}, 0, []
    for i in tqdm(range(n), desc="kill"):
        signum = rng.choice([signal.SIGKILL] * 6 + [signal.SIGTERM, signal.SIGINT])
        code, err = interrupt_at_random(start(out, epochs, resume=i > 0), out, signum, rng)
        if code is None or newest_step(out) == epochs * STEPS_PER_EPOCH:
            break  # the run finished training before this interruption
        name = signal.Signals(signum).name
        sent[name] = sent.get(name, 0) + 1
        clean = signum == signal.SIGKILL or code == 128 + signum
        unclean += not clean
        final_model(out)  # the newest checkpoint must load after every interruption
        log.append({"signal": name, "exit": code, "newest_step": newest_step(out)})
        if not clean:
            print(f"{name} did not stop the run cleanly (exit {code}): {err[-500:]}", file=sys.stderr)
    proc = start(out, epochs, resume=True)
    ok = finish(proc) == 0 and finish(twin) == 0 and same(final_model(out), final_model(tmp / "twin"))
    injected = sum(sent.values())
    return {"injected": injected, "survived": injected - unclean if ok else 0, "lost": 0 if ok else 1,
            "signals": sent, "interruptions": log}


def _nan_run(i, rng, run, config, digits):
    at, value = rng.randrange(1, 45), rng.choice([float("nan"), float("inf"), -float("inf")])
    fired = []

    def inject(step, model):
        if step == at and not fired:
            params = list(model.parameters())
            with torch.no_grad():
                params[rng.randrange(len(params))].view(-1)[0] = value
            fired.append(step)

    return fit(run, config, digits, progress=False, after_step=inject)


def _corrupt_run(i, rng, run, config, digits):
    fit(run, dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=2)), digits, progress=False)
    newest = list_checkpoints(run.checkpoints)[-1][1]
    corruptions = [lambda: newest.write_bytes(newest.read_bytes()[: rng.randrange(newest.stat().st_size)]),
                   lambda: newest.write_bytes(b""), lambda: newest.write_bytes(os.urandom(4096)),
                   lambda: torch.save({"weights": torch.ones(3)}, newest)]
    corruptions[i % len(corruptions)]()
    return fit(run, config, digits, resume=True, progress=False)


def _disk_full_run(i, rng, run, config, digits):
    real_save, fail_step = torch.save, 5 * rng.randrange(1, 9)

    def disk_full(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == fail_step:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    with mock.patch.object(torch, "save", disk_full):
        try:
            fit(run, config, digits, progress=False)
        except OSError as e:
            assert "previous checkpoint" in str(e) and "is intact" in str(e), e
        else:
            raise AssertionError("the full disk went unnoticed")
    return fit(run, config, digits, resume=True, progress=False)


IN_PROCESS = {"nan": _nan_run, "corrupt": _corrupt_run, "disk-full": _disk_full_run}


def in_process_drill(kind: str, n: int, rng: random.Random, tmp: Path) -> dict:
    """``n`` runs of a tiny VAE on digits (3 epochs, a checkpoint every 5 steps) with a ``kind`` fault."""
    digits = load_dataset("digits")
    config = RunConfig("vae", model_config("vae", latent_dim=4, hidden=(32,), likelihood="gaussian"),
                       TrainConfig(data="digits", epochs=3, checkpoint_every=5, log_every=5, keep_checkpoints=3),
                       (8, 8))
    with contextlib.redirect_stdout(io.StringIO()):
        twin = fit(RunDir(tmp / f"{kind}-twin"), config, digits, progress=False).state_dict()
    survived = lost = 0
    for i in tqdm(range(n), desc=kind):
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # the fallback warnings of corrupt checkpoints
                model = IN_PROCESS[kind](i, rng, RunDir(tmp / f"{kind}-{i}"), config, digits)
            survived += same(model.state_dict(), twin)
        except Exception as e:  # a run that cannot be brought to its end is lost
            print(f"{kind} {i}: lost: {e}", file=sys.stderr)
            lost += 1
    return {"injected": n, "survived": survived, "lost": lost}


def main(argv: list[str] | None = None) -> dict:
    """Run the drill and print the counts; write them as JSON to ``--out`` if given."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="interruptions of a real ppl train process")
    ap.add_argument("--nan", type=int, default=10, help="runs with a nan/inf injected into a parameter")
    ap.add_argument("--corrupt", type=int, default=8, help="runs resumed from a corrupted newest checkpoint")
    ap.add_argument("--disk-full", type=int, default=4, help="runs hit by ENOSPC while checkpointing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON file for the counts")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        counts = {"kill": kill_drill(args.kills, rng, tmp)}
        for kind, n in (("nan", args.nan), ("corrupt", args.corrupt), ("disk-full", args.disk_full)):
            counts[kind] = in_process_drill(kind, n, rng, tmp)
    counts["total"] = {k: sum(c[k] for c in counts.values()) for k in ("injected", "survived", "lost")}
    for kind, c in counts.items():
        print(f"{kind:10s} injected {c['injected']:3d}  survived {c['survived']:3d}  runs lost {c['lost']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(counts, indent=2))
    return counts


if __name__ == "__main__":
    main()
