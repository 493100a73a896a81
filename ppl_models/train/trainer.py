"""The :class:`Trainer`: one training run's state, its SVI steps, checks, checkpoints and recovery.

See :mod:`ppl_models.train.loop` for how a run survives faults; :func:`ppl_models.train.fit` is the
entry point.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import pyro
import torch
from tqdm.auto import tqdm

from ppl_models.inference import build_strategy
from ppl_models.inference.strategy import Strategy
from ppl_models.models.protocol import NO_LIKELIHOOD, bind_labels, has_likelihood
from ppl_models.objectives import build_objective
from ppl_models.paths import inside
from ppl_models.plan import ExecutionPlan
from ppl_models.plan.plan import BF16_COMPILED_RTOL, COMPILED_RTOL
from ppl_models.train.batches import split_batches, steps_per_epoch
from ppl_models.train.best import BEST, BestTracker, monitored, validation_bounds
from ppl_models.train.checkpoint import checkpoint_path, load_latest, save_best, save_checkpoint
from ppl_models.train.distributed import (DistributedStep, World, rank_rng_state, rank_seed, refuse_undistributable,
                                          restore_rank_rng)
from ppl_models.train.metrics import IWAE_COLUMNS, MetricsLog, NoMetrics
from ppl_models.train.precision import MixedPrecision, flushed_denormals
from ppl_models.train.nonfinite import NonFinite, NonFiniteError, SiteCheck, StepHooks, all_finite, first_nonfinite
from ppl_models.train.run import RunConfig, RunDir
from ppl_models.train.schedules import kl_annealing, kl_weight, lr_factor, lr_scheduled
from ppl_models.train.setup import check_objective, prepare_data, resolve_device
from ppl_models.train.signals import GracefulStop, TrainingStopped
from ppl_models.train.tensorboard import TensorBoardLog

AfterStep = Callable[[int, torch.nn.Module], None]


class Trainer:
    """One training run: the model, its optimizer and strategy, and where in the data it is.

    The position is (``epochs_done``, ``batch`` of the next epoch, ``step`` overall); a checkpoint
    records it with every random state, so training can continue from any checkpoint exactly.
    """

    def __init__(self, run: RunDir, config: RunConfig, dataset, progress: bool, after_step: AfterStep | None,
                 verbose: bool = True, world: World = World(), device: str | None = None):
        tc = self.tc = config.train
        self.run, self.after_step, self.world = run, after_step, world
        self.verbose = verbose and world.writer  # only rank 0 prints, logs and writes
        self.device = resolve_device(device or tc.device)
        pyro.set_rng_seed(tc.seed)
        self.model = config.build().to(self.device)
        self.data = prepare_data(self.model, dataset, tc, self.device)
        self.strategy = build_strategy(self.model, tc, self.data.train_x)
        self.mixed = MixedPrecision(self.model, self.device.type) if tc.precision == "bf16" else None  # --precision
        self.ddp = None  # torchrun: the DistributedDataParallel step (ppl_models.train.distributed)
        if world.size > 1:
            refuse_undistributable(self.strategy, tc, self.model, self.data.train_y is not None, world)
            self.ddp = DistributedStep(self.model, world)
            pyro.set_rng_seed(rank_seed(tc.seed, world.rank))  # each rank its own stream; rank 0 keeps the seed's
        if tc.early_stop is not None and not has_likelihood(self.model):
            raise ValueError(f"--early-stop watches the validation bound, but {type(self.model).__name__} has "
                             f"{NO_LIKELIHOOD}, so there is none to watch")
        self.optimizer = self.strategy.optimizer(self.model, tc.lr)
        self.tensorboard = TensorBoardLog(inside(run.path, "tensorboard"), self.optimizer, self.model.parameters(),
                                          dataset.valid) if tc.tensorboard and world.writer else None  # hooked before StepHooks clips
        self.hooks = StepHooks(self.model, self.optimizer, tc.grad_clip)
        self.objective = build_objective(tc.objective, tc.particles, tc.grad_estimator)
        if self.strategy.uses_objective:  # an objective the model cannot take fails here, not mid-run
            check_objective(self.model, tc, self.data)
        self.n_steps = steps_per_epoch(self.data.train_x.shape[0], tc.batch_size, self.data.known)
        self.data_rng = torch.Generator().manual_seed(tc.seed)
        self.epoch_rng = self.data_rng.get_state()  # the data RNG as the current epoch began
        self.epochs_done = self.batch = self.step = 0
        self.elapsed = self.epoch_time = 0.0
        self.epoch_loss = torch.zeros((), device=self.device)
        self.interval_loss = torch.zeros((), device=self.device)
        self.interval_start = 0
        self.lr_scale, self.retries = 1.0, 0  # learning-rate multiplier and rollbacks used by on_nan=retry
        self.best = BestTracker()  # the best validation bound so far: best.pt and --early-stop
        self.careful_until = self.replayed_to = 0  # replay steps up to careful_until one by one
        self.stop = GracefulStop()
        self.plan: ExecutionPlan | None = None  # --compile: built at the first step that can use it
        self._plan_pending = tc.compile != "off"
        self._mark = time.perf_counter()  # when time was last added to elapsed and epoch_time
        self.sites_found: str | None = None  # a careful step's first non-finite site (SiteCheck)
        self.stop_agreed: int | None = None  # a stop signal every rank has seen (set by _check)
        self.bar = tqdm(total=self.n_steps * tc.epochs, disable=None if progress and world.writer else True, unit="step",
                        smoothing=0.05)

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a checkpoint holds (tensors and plain values only: it loads weights-only)."""
        rng = {"torch": torch.get_rng_state(), "data": self.epoch_rng}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        if self.world.size > 1:  # every rank's stream, so a resume at the same world size repeats exactly
            rng["ranks"] = self.world.gather(rank_rng_state(self.device))
        return {"world_size": self.world.size, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "rng": rng,
                "strategy": self.strategy.state_dict(), "epoch": self.epochs_done, "batch": self.batch,
                "step": self.step, "elapsed_s": self.elapsed, "epoch_time_s": self.epoch_time,
                "epoch_loss": self.world.sum(self.epoch_loss.detach()).cpu(), "lr_scale": self.lr_scale,
                "nan_retries": self.retries, "base_lr": self.tc.lr, "best": self.best.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (RNG states stay on the CPU)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        changed = restore_rank_rng(self.world, state["rng"].get("ranks"), self.tc.seed, state["step"], self.device)
        if changed:
            self._event(changed)
        self.epoch_rng = state["rng"]["data"]
        self.strategy.load_state_dict(state.get("strategy", {}))
        self.epochs_done, self.batch, self.step = state["epoch"], state.get("batch", 0), state["step"]
        self.elapsed, self.epoch_time = state["elapsed_s"], state.get("epoch_time_s", 0.0)
        self.epoch_loss = state.get("epoch_loss", torch.zeros(())).to(self.device).clone()  # the sum over ranks:
        if not self.world.writer:  # rank 0 carries it, the others restart from zero
            self.epoch_loss.zero_()
        self.lr_scale, self.retries = state.get("lr_scale", 1.0), state.get("nan_retries", 0)
        self.best.load_state_dict(state.get("best"), self.epochs_done)
        if state.get("base_lr", self.tc.lr) != self.tc.lr:  # --lr changed on resume: use it as given
            self.lr_scale = 1.0
        self._apply_lr()
        self.interval_loss.zero_()
        self.interval_start = self.step
        if self.tensorboard is not None:
            self.tensorboard.reset_grad_norm()
        self.bar.n = self.step
        self.bar.refresh()

    def save(self, best: bool = False) -> Path:
        """Write a checkpoint of the current state (atomically; older ones beyond ``keep`` are deleted).
        With ``best``, the same state is also written as ``best.pt``, right after its ``step-N.pt`` (a crash in
        between is repaired on resume: :func:`~ppl_models.train.best.reconcile_best`). Under torchrun every
        rank calls it (the state gathers their random streams); rank 0 writes."""
        self._clock()
        state = self.state_dict()
        if not self.world.writer:
            return checkpoint_path(self.run.checkpoints, self.step)
        path = save_checkpoint(self.run.checkpoints, self.step, state, keep=self.tc.keep_checkpoints)
        if best:
            save_best(self.run.checkpoints, state)
        return path

    def rollback(self) -> Path:
        """Go back to the newest loadable checkpoint, keeping the retry count and learning-rate scale."""
        loaded = load_latest(self.run.checkpoints)
        if loaded is None:
            raise NonFiniteError(f"training went non-finite and {self.run.checkpoints} holds no checkpoint to roll back to")
        path, state = loaded
        retries, scale = self.retries, self.lr_scale
        self.load_state_dict(state)
        self.retries, self.lr_scale = retries, scale
        self._apply_lr()
        self.metrics = self.open_metrics(self.epochs_done)
        return path

    def open_metrics(self, resume_epoch: int | None = None) -> MetricsLog:
        """metrics.csv (kept up to ``resume_epoch`` when resuming), with a valid_iwae column for iwae runs."""
        if not self.world.writer:
            return NoMetrics()
        return MetricsLog(self.run.metrics_path, resume_epoch, IWAE_COLUMNS if self.tc.objective == "iwae" else None)

    # -- the loop ---------------------------------------------------------------------------------
    def train(self, metrics: MetricsLog) -> torch.nn.Module:
        """Run the remaining epochs, recovering from non-finite values; return the model in eval mode."""
        self.metrics = metrics
        self._mark = time.perf_counter()
        with pyro.validation_enabled(False), flushed_denormals(self.tc.flush_denormal), \
                self.tensorboard or nullcontext():  # closes the event file
            while True:
                try:
                    self._epochs()
                    break
                except NonFinite as bad:
                    self._recover(bad)
        self.bar.close()
        return self.model.eval()

    def _epochs(self) -> None:
        tc, data = self.tc, self.data
        while self.epochs_done < tc.epochs and not self.best.exhausted(tc.early_stop, self.epochs_done):
            self.bar.set_description(f"epoch {self.epochs_done + 1}/{tc.epochs}")
            self.data_rng.set_state(self.epoch_rng)
            perm = torch.randperm(data.train_x.shape[0], generator=self.data_rng)
            if data.known is None:
                batches = [(idx, True) for idx in perm.to(self.device).split(tc.batch_size)]
            else:
                batches = [(idx.to(self.device), lab) for idx, lab in split_batches(perm, tc.batch_size, data.known)]
            for idx, labelled in batches[self.batch:]:
                self._step(self.world.shard(idx), labelled)
            self._end_epoch()
        if self.epochs_done < tc.epochs:  # --early-stop ended it
            self._event(self.best.describe_stop(tc.early_stop, monitored(tc), self.epochs_done,
                                                self.run.checkpoints / BEST))

    def _step(self, idx: torch.Tensor, labelled: bool) -> None:
        tc, data = self.tc, self.data
        careful = self.step < self.careful_until
        if careful:
            bad = first_nonfinite(self.hooks.named)
            if bad:
                raise NonFinite(self.step + 1, self.step + 1, f"parameter {bad} was non-finite before the step: "
                                "something outside the optimizer changed it", diagnosed=True)
        xb = data.train_x.index_select(0, idx)
        if tc.binarize == "dynamic":
            xb = torch.bernoulli(xb)
        yb = data.train_y.index_select(0, idx) if data.train_y is not None and labelled else None
        self.hooks.careful, self.hooks.finding = careful, None
        if lr_scheduled(tc):
            self._apply_lr()
        with self.mixed.active() if self.mixed is not None else nullcontext():
            loss = self._run_step(xb, yb, idx, careful)
        self.hooks.careful = False
        self.step += 1
        self.batch += 1
        if careful:
            self._diagnose(loss.item(), self.sites_found)
        self._after(loss)

    def _run_step(self, xb: torch.Tensor, yb: torch.Tensor | None, idx: torch.Tensor, careful: bool) -> torch.Tensor:
        """One optimizer step by the plan, the DDP step or the strategy; returns the detached loss."""
        tc = self.tc
        loss = None
        if (self.plan is not None or self._plan_pending) and not careful and kl_weight(tc, self.step, self.n_steps) >= 1:
            loss = self._plan_step(xb, yb)  # careful replays and KL warm-up take the Pyro path (their handlers)
        if loss is None:
            with SiteCheck() if careful else nullcontext() as sites, kl_annealing(tc, self.step, self.n_steps):
                if self.ddp is not None:
                    loss = self.ddp(self.objective, self.optimizer, xb)
                else:
                    loss = self.strategy.step(self.objective, bind_labels(self.model, yb), self.optimizer, xb, idx)
            self.sites_found = sites.finding if careful else None
        return loss

    def _after(self, loss: torch.Tensor) -> None:
        """Account a finished step: losses, hooks, progress, the interval check, checkpoints, stops."""
        tc = self.tc
        self.interval_loss += loss
        self.epoch_loss += loss
        if self.after_step is not None:
            self.after_step(self.step, self.model)
        self.bar.update(1)
        if self.step == self.careful_until:
            self._event(f"replayed up to step {self.step} without a non-finite value: it did not recur; going on")
            self.careful_until, self.replayed_to = 0, self.step
        end_of_epoch = self.batch == self.n_steps
        due = tc.checkpoint_every is not None and self.step % tc.checkpoint_every == 0
        # One process checks at every step a signal came; ranks agree on it at their next interval check.
        if self.step % tc.log_every == 0 or end_of_epoch or due or (self.stop.requested and self.world.size == 1):
            self._check()
        if (due or self.stop_agreed) and not end_of_epoch:
            path = self.save()
            if self.stop_agreed:
                raise TrainingStopped(self.stop_agreed, self.step, path, self.world.writer)

    def _plan_step(self, xb: torch.Tensor, yb: torch.Tensor | None) -> torch.Tensor | None:
        """One step through the execution plan (``--compile``), building it first; ``None``: take the Pyro path."""
        if self.plan is None:
            self._plan_pending = False
            if type(self.strategy).step is not Strategy.step or not self.strategy.uses_objective:
                reason = f"strategy {self.tc.strategy} runs its own steps"
            elif yb is not None:
                reason = "the model is bound to labels"
            else:
                rtol = BF16_COMPILED_RTOL if self.mixed is not None else COMPILED_RTOL
                ddp = {} if self.ddp is None else {"through": self.ddp.forward, "loss_scale": self.ddp.loss_scale}
                self.plan, reason = ExecutionPlan.build(self.objective, self.model, self.optimizer, xb,
                                                        self.tc.compile == "full", self.tc.plan_check_every, rtol,
                                                        compile_mode=self.tc.compile_mode,
                                                        partitioner=self.tc.plan_partitioner, **ddp)
            if self.plan is None:
                self._event(f"--compile {self.tc.compile}: the Pyro path, because {reason}")
                return None
            if self.plan.compiled:  # how it compiled: the mode and what its backward keeps (ppl_models.plan.partition)
                reason += f", mode {self.tc.compile_mode}, partitioner {self.plan.partitioner}"
            self._event(f"--compile {self.tc.compile}: the execution plan ({reason}), verified against the Pyro path")
        loss, reason = self.plan.step(xb)
        if loss is None:
            self.plan = None
            self._event(f"--compile {self.tc.compile}: back to the Pyro path: {reason}")
        return loss

    def _diagnose(self, loss: float, site: str | None) -> None:
        """After a careful step: raise a diagnosed :class:`NonFinite` naming the first problem (the first
        rank's that found one, on every rank, so that all of them roll back together)."""
        what = None
        if site is not None:
            what = f"{site} (the loss is {loss})"
        elif not math.isfinite(loss):
            what = f"the loss is {loss}, though every sample site's value and log-density are finite"
        elif self.hooks.finding is not None:
            what = self.hooks.finding
        found = [(rank, w) for rank, w in enumerate(self.world.gather(what)) if w is not None]
        if found:
            rank, what = found[0]
            where = f" (on rank {rank} of {self.world.size})" if self.world.size > 1 else ""
            raise NonFinite(self.step, self.step, what + where, diagnosed=True)

    def _check(self) -> None:
        """The interval check: one read-back of the summed loss and of whether all parameters are finite."""
        n = self.step - self.interval_start
        if n == 0:
            return
        stop = torch.tensor(float(self.stop.requested is not None), device=self.device)
        loss_sum, ok, stop = self.world.sum(torch.stack([self.interval_loss.float(), all_finite(self.hooks.params).float(),
                                                         stop])).tolist()  # summed over the ranks (one read-back)
        self.stop_agreed = (self.stop.requested or signal.SIGTERM) if stop else None  # a signal reached some rank
        if ok < self.world.size:
            raise NonFinite(self.interval_start + 1, self.step, f"parameter {first_nonfinite(self.hooks.named)} "
                            f"became non-finite (the summed loss was {loss_sum})")
        if not math.isfinite(loss_sum):
            raise NonFinite(self.interval_start + 1, self.step, f"the {self.tc.objective} loss became {loss_sum}")
        self.bar.set_postfix(loss=f"{loss_sum / (n * self.tc.batch_size):.2f}")
        self.interval_loss.zero_()
        self.interval_start = self.step

    def _end_epoch(self) -> None:
        data, epoch = self.data, self.epochs_done + 1
        # valid_elbo (, valid_iwae); under torchrun each rank bounds its share of the split
        bounds = validation_bounds(self.model, data, self.strategy.guide_for, self.tc, self.world)
        valid_elbo = bounds["valid_elbo"]
        self._clock()
        train_loss = self.world.sum(self.epoch_loss).item() / data.train_x.shape[0]
        row = dict(epoch=epoch, step=self.step, train_loss=round(train_loss, 4),
                   **{k: round(v, 4) for k, v in bounds.items()}, epoch_time_s=round(self.epoch_time, 3),
                   elapsed_s=round(self.elapsed, 3))
        self.metrics.append(**row)
        if self.tensorboard is not None:
            self.tensorboard.log_epoch(self.step, row["train_loss"], row["valid_elbo"],
                                       self.optimizer.param_groups[0]["lr"], self.model)
        shown = f"{valid_elbo:.2f}" if has_likelihood(self.model) else NO_LIKELIHOOD
        self.say(f"epoch {epoch}: train loss {row['train_loss']:.2f}  valid ELBO {shown}  "
                 f"({self.epoch_time:.1f}s)")
        self.epochs_done, self.batch, self.epoch_time = epoch, 0, 0.0
        self.epoch_rng = self.data_rng.get_state()
        self.epoch_loss.zero_()
        improved = self.best.update(bounds[monitored(self.tc)], epoch, self.step)
        path = self.save(best=improved)
        if self.stop_agreed:
            raise TrainingStopped(self.stop_agreed, self.step, path, self.world.writer)

    # -- recovery ---------------------------------------------------------------------------------
    def _recover(self, bad: NonFinite) -> None:
        """Roll back after a failed check: first to replay carefully and find the source, then to retry
        with a lower learning rate (``on_nan="retry"``) or stop with :class:`NonFiniteError`."""
        tc = self.tc
        if not bad.diagnosed and bad.last > self.replayed_to:
            path = self.rollback()
            self.careful_until = bad.last
            self._event(f"{bad.describe()}; rolled back to {path.name} (step {self.step}); replaying steps "
                        f"{self.step + 1}-{bad.last} one at a time to find where it starts")
            return
        self.careful_until = 0
        if tc.on_nan == "retry" and self.retries < tc.nan_retries:
            self.retries += 1
            self.lr_scale *= tc.nan_lr_factor
            path = self.rollback()
            self._event(f"non-finite value at {bad.describe()}; rolled back to {path.name} (step {self.step}); "
                        f"retry {self.retries}/{tc.nan_retries} with lr {tc.lr * self.lr_scale:g}")
            return
        path = self.rollback()
        tried = f" after {self.retries} retries with lower learning rates" if tc.on_nan == "retry" else ""
        message = (f"training went non-finite at {bad.describe()}{tried}. The run is rolled back to its last good "
                   f"checkpoint {path} (step {self.step}); fix the cause (e.g. a lower --lr, --grad-clip, or "
                   f"--on-nan retry) and continue with --resume")
        self.run.log_event(message)  # the caller prints the error itself
        raise NonFiniteError(message)

    def say(self, text: str) -> None:
        """Print a line above the progress bar, unless the trainer was made quiet (``verbose=False``)."""
        if self.verbose:
            self.bar.write(text)

    def _event(self, text: str) -> None:
        self.say(text)
        if self.world.writer:
            self.run.log_event(text)

    def _apply_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.tc.lr * self.lr_scale * lr_factor(self.tc, self.step, self.n_steps)

    def _clock(self) -> None:
        now = time.perf_counter()
        self.epoch_time += now - self._mark
        self.elapsed += now - self._mark
        self._mark = now


