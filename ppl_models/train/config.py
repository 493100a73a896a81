"""The training configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ppl_models.plan.partition import COMPILE_MODES, PARTITIONERS
from ppl_models.train.precision import PRECISIONS
from ppl_models.train.schedules import check_schedules


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run that is not the model's architecture."""

    data: str = "digits"  # dataset name (ppl_models.data.available_datasets) or a .npy/.npz/.pt training file
    valid_data: str | None = None  # validation file (user data; default: carved from the training file)
    test_data: str | None = None  # test file (user data; default: carved from the training file)
    labelled: int | None = None  # semi-supervised models: keep only this many training labels (None: all)
    binarize: str = "none"  # none | dynamic: resample x ~ Bernoulli(grey level) at every batch
    objective: str = "elbo"  # objective name (ppl_models.objectives.available_objectives)
    particles: int = 1  # Monte Carlo samples per data point in the objective
    grad_estimator: str = "standard"  # standard | stl | dreg (the latter two for iwae)
    strategy: str = "amortized"  # amortized | semi-amortized | per-datapoint (ppl_models.inference)
    local_steps: int | None = None  # refinement steps (semi-amortized, 10) or step cap (per-datapoint, 200)
    local_lr: float | None = None  # step size of the per-data-point updates (strategy default if None)
    local_tol: float = 1e-3  # per-datapoint: relative ELBO improvement that counts as converged (0: never)
    d_steps: int = 1  # adversarial: discriminator steps per generator step (k of Goodfellow et al. 2014)
    generator_loss: str = "non-saturating"  # adversarial: non-saturating | minimax (ppl_models.objectives.adversarial)
    epochs: int = 10  # passes over the training split
    batch_size: int = 100  # data points per SVI step
    lr: float = 1e-3  # Adam learning rate
    lr_schedule: str = "none"  # none | cosine | exponential | burda: the rate over steps (ppl_models.train.schedules)
    lr_warmup: int = 0  # steps of linear learning-rate warm-up, times any schedule (0: none)
    lr_gamma: float = 0.99  # lr_schedule=exponential: the rate is lr x lr_gamma^epoch
    kl_warmup: float = 0.0  # epochs over which the latent sites' (KL) weight climbs linearly from 0 to 1 (0: none)
    early_stop: int | None = None  # stop after this many epochs without a better validation bound (None: never)
    seed: int = 0  # seeds parameters, shuffling and sampling; a CPU run repeats exactly
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50  # steps between reading the loss back to the host
    keep_checkpoints: int = 2  # most recent checkpoints kept on disk
    checkpoint_every: int | None = None  # steps between checkpoints (None: at the end of each epoch only)
    grad_clip: float | None = None  # clip the global gradient norm to this value (None: no clipping)
    on_nan: str = "stop"  # stop | retry: after a non-finite loss and the rollback to the last good checkpoint
    nan_retries: int = 3  # on_nan=retry: rollbacks allowed before giving up
    nan_lr_factor: float = 0.5  # on_nan=retry: each retry multiplies the learning rate by this
    tensorboard: bool = False  # write per-epoch summaries to RUN/tensorboard (optional extra; no effect on training)
    compile: str = "off"  # off | plan (the execution plan, eager) | full (the plan under torch.compile): ppl_models.plan
    plan_check_every: int = 0  # with compile: re-verify the plan against the Pyro path every N steps (0: never)
    compile_mode: str = "default"  # compile=full: torch.compile's mode, default | reduce-overhead (CUDA graphs)
    plan_partitioner: str = "auto"  # compile=full: what the compiled backward keeps, auto | saved | min-cut (plan.partition)
    flush_denormal: bool = False  # CPU: treat denormal floats as zero while training (train.precision.flushed_denormals)
    precision: str = "fp32"  # fp32 | bf16: networks under bfloat16 autocast, distributions float32 (train.precision)

    def __post_init__(self) -> None:
        for name in ("particles", "epochs", "batch_size", "log_every", "keep_checkpoints", "d_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, got {self.checkpoint_every}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive, got {self.grad_clip}")
        if self.on_nan not in ("stop", "retry"):
            raise ValueError(f"on_nan must be 'stop' or 'retry', got {self.on_nan!r}")
        if self.nan_retries < 0:
            raise ValueError(f"nan_retries must be non-negative, got {self.nan_retries}")
        if not 0 < self.nan_lr_factor < 1:
            raise ValueError(f"nan_lr_factor must be in (0, 1), got {self.nan_lr_factor}")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be positive and finite, got {self.lr}")
        if self.labelled is not None and self.labelled < 0:
            raise ValueError(f"labelled must be non-negative, got {self.labelled}")
        if self.local_steps is not None and self.local_steps < 1:
            raise ValueError(f"local_steps must be at least 1, got {self.local_steps}")
        if self.local_lr is not None and not 0 < self.local_lr < math.inf:
            raise ValueError(f"local_lr must be positive and finite, got {self.local_lr}")
        if not self.local_tol >= 0:
            raise ValueError(f"local_tol must be non-negative, got {self.local_tol}")
        if self.compile not in ("off", "plan", "full"):
            raise ValueError(f"compile must be off, plan or full, got {self.compile!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.plan_partitioner not in PARTITIONERS:
            raise ValueError(f"plan_partitioner must be one of {', '.join(PARTITIONERS)}, got {self.plan_partitioner!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.plan_check_every < 0:
            raise ValueError(f"plan_check_every must be >= 0, got {self.plan_check_every}")
        if self.binarize not in ("none", "dynamic"):
            raise ValueError(f"binarize must be 'none' or 'dynamic', got {self.binarize!r}")
        if self.generator_loss not in ("non-saturating", "minimax"):
            raise ValueError(f"generator_loss must be 'non-saturating' or 'minimax', got {self.generator_loss!r}")
        check_schedules(self)
