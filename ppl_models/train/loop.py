"""The SVI training loop, made to survive faults.

One torch optimizer over the module's parameters is driven by the objective's
``differentiable_loss``. Nothing is read back to the host inside an interval of ``log_every`` steps,
so a CUDA run never waits on the device mid-interval. Pyro's argument validation is off in the
loop (it syncs); the data are checked once up front instead.

Faults (see ``nonfinite.py``, ``signals.py`` and ``checkpoint.py``):

- a non-finite loss or parameter found at an interval check rolls the run back to its last good
  checkpoint and replays the steps one by one to name the site or parameter where it started;
  ``on_nan="retry"`` then lowers the learning rate and goes on, at most ``nan_retries`` times;
- checkpoints are atomic and taken every ``checkpoint_every`` steps and at each epoch's end, so a
  killed run loses at most one interval; ``resume`` continues exactly where the checkpoint was taken;
- SIGINT or SIGTERM finishes the step, writes a checkpoint and raises :class:`TrainingStopped`.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ppl_models.paths import inside
from ppl_models.train.checkpoint import list_checkpoints, load_latest, remove_stale_temporaries
from ppl_models.train.curves import save_curves
from ppl_models.train.lock import run_lock
from ppl_models.train.best import reconcile_best
from ppl_models.train.distributed import join
from ppl_models.train.run import RunConfig, RunDir
from ppl_models.train.trainer import AfterStep, Trainer


def fit(run: RunDir, config: RunConfig, dataset, resume: bool = False, progress: bool = True,
        after_step: AfterStep | None = None, verbose: bool = True) -> torch.nn.Module:
    """Train ``config`` on ``dataset`` into the run directory ``run``; return the trained model.

    Per-epoch metrics go to ``run.metrics_path``; checkpoints to ``run.checkpoints`` (one at step 0,
    every ``checkpoint_every`` steps, and at each epoch's end; the best epoch's also as ``best.pt``,
    see :mod:`ppl_models.train.best`); events such as rollbacks to
    ``run.events_path``; at the end, the curves of the metrics to ``run.figures / "curves.png"``
    (a failure to write them is a printed warning, not an error).

    Args:
        run: where config, checkpoints and metrics go.
        config: model and training configuration.
        dataset: a :class:`ppl_models.data.Dataset`.
        resume: continue from the newest loadable checkpoint in ``run`` (exact on CPU).
        progress: show a tqdm progress bar.
        after_step: called as ``after_step(step, model)`` after every optimizer step (monitoring,
            fault injection in tests).
        verbose: print a line per epoch and per event (events always go to ``events.log``).

    Raises:
        NonFiniteError: a non-finite loss or parameter that retries (if any) could not get past;
            the run directory is left at its last good checkpoint.
        TrainingStopped: SIGINT or SIGTERM arrived; a checkpoint was written first.
        OSError: a checkpoint could not be written (the previous one is intact).
        RunLocked: another process is training into ``run`` (see :mod:`ppl_models.train.lock`).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this; they join one process group and
    train with DistributedDataParallel, and only rank 0 writes (:mod:`ppl_models.train.distributed`).
    """
    world, device = join(config.train.device)
    if list_checkpoints(run.checkpoints) and not resume:
        raise FileExistsError(f"{run.path} already holds checkpoints; pass --resume to continue it or choose another --out")
    # checks every input and writes nothing
    trainer = Trainer(run, config, dataset, progress, after_step, verbose, world=world, device=device)
    world.barrier()  # every rank has looked at the run directory before rank 0 writes into it
    with run_lock(run.path) if world.writer else nullcontext():  # a second writer is refused, naming the first
        model = _train(run, config, trainer, resume)
    world.barrier()  # rank 0 has written the last checkpoint and best.pt before any rank reads them
    return model


def _train(run: RunDir, config: RunConfig, trainer: Trainer, resume: bool) -> torch.nn.Module:
    writer = trainer.world.writer
    if writer:
        remove_stale_temporaries(run.checkpoints)
    loaded = load_latest(run.checkpoints) if resume else None
    if writer:
        run.save_config(config)
    with trainer.stop:  # from here on, SIGINT/SIGTERM stop after a step with a checkpoint
        if loaded is not None:
            path, state = loaded
            trainer.load_state_dict(state)
            trainer.say(f"resuming {run.path} at step {trainer.step} (epoch {trainer.epochs_done + 1}, "
                              f"batch {trainer.batch}) from {path.name}")
            if writer:
                reconcile_best(run.checkpoints, state, trainer._event)  # a crash between step-N.pt and best.pt
            metrics = trainer.open_metrics(trainer.epochs_done)
        else:
            metrics = trainer.open_metrics()
            trainer.save()  # step 0: a run killed before its first interval resumes, and rollbacks have a target
        model = trainer.train(metrics)
    if writer:
        _save_curves(run, trainer)
    return model


def _save_curves(run: RunDir, trainer: Trainer) -> None:
    """Write ``RUN/figures/curves.png``; a failure is a warning, never the loss of a trained run."""
    try:
        save_curves(run.metrics_path, inside(run.path, "figures", "curves.png"))
    except (OSError, ValueError) as e:  # ValueError: figures/ is a link out of the run directory
        trainer.bar.write(f"warning: could not write {run.figures / 'curves.png'}: {e}")  # even when quiet
