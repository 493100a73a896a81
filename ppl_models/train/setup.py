"""What the training loop needs before its first step: the device, the optimizer and checked data."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import pyro
import torch

from ppl_models.inference.strategy import fused_adam
from ppl_models.models.likelihoods import check_probabilities
from ppl_models.models.protocol import UNKNOWN_LABEL, bind_labels, check_labels, check_observations, label_use
from ppl_models.objectives import build_objective
from ppl_models.rng import restored_rng
from ppl_models.train.batches import hide_labels
from ppl_models.train.config import TrainConfig
from ppl_models.train.schedules import KLWeight


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; other names are checked for availability."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for, but this torch build sees no CUDA device")
    return device


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """The amortized strategy's optimizer: fused Adam over the module's parameters
    (:meth:`ppl_models.inference.strategy.Strategy.optimizer`)."""
    return fused_adam(model, lr)


@dataclass
class TrainingData:
    """The training and validation tensors on the device, as the model uses them."""

    train_x: torch.Tensor  # training observations [N, ...]
    valid_x: torch.Tensor  # validation observations (binarized once under --binarize dynamic)
    train_y: torch.Tensor | None  # training labels (-1 where hidden), or None if the model takes none
    valid_y: torch.Tensor | None  # validation labels, or None
    known: torch.Tensor | None  # semi-supervised models: bool mask of the known training labels (CPU)


def prepare_data(model: torch.nn.Module, dataset, tc: TrainConfig, device: torch.device) -> TrainingData:
    """Check every split against the model (support, labels) before any step, and move the training
    and validation splits to ``device``.

    Raises:
        ValueError: naming the split (and file), the index, its row in the file and the value of the
            first observation or label the model cannot take; or a batch larger than the training split.
    """
    use = label_use(model)
    n_train = len(dataset.train)
    if tc.batch_size > n_train:
        raise ValueError(f"--batch-size {tc.batch_size} is larger than the {n_train} training points of "
                         f"{dataset.name}; use at most {n_train}")
    for name in ("train", "valid", "test"):
        split, where = dataset.split(name), f"{dataset.name}/{name}"
        if use is not None:
            check_labels(model, split.y, where, split.rows)
        if tc.binarize == "dynamic":
            check_probabilities(split.x, where, split.rows)
        else:
            check_observations(model, split.x, split.y if use is not None else None, where, rows=split.rows)
    train_x, valid_x = dataset.train.x.to(device), dataset.valid.x.to(device)
    if tc.binarize == "dynamic":
        # Held-out data under --binarize dynamic are binarized once, from a fixed seed.
        valid_x = torch.bernoulli(valid_x, generator=torch.Generator(device=device).manual_seed(tc.seed + 1))
    train_y = valid_y = known = None
    if use is not None:
        train_y, valid_y = dataset.train.y, dataset.valid.y
        if use != "condition" and train_y is not None:
            if tc.labelled is not None:
                train_y = hide_labels(train_y, tc.labelled, tc.seed)
            known = train_y != UNKNOWN_LABEL
    move = (lambda y: None if y is None else y.to(device))
    return TrainingData(train_x, valid_x, move(train_y), move(valid_y), known)


def check_objective(model: torch.nn.Module, tc: TrainConfig, data: TrainingData) -> None:
    """Evaluate the training objective once, without a step, on two training points of each kind of
    batch (labelled and unlabelled for a semi-supervised model), so that an objective the model
    cannot take is refused before anything is written. It runs in training mode (a beta-VAE
    weights its KL only then) and puts the RNG state and the module's buffers back, so a seeded run
    draws and trains exactly as it would without this check.

    Raises:
        ValueError: the objective's own message (e.g. IWAE on a model that scales some sites).
    """
    objective = build_objective(tc.objective, tc.particles, tc.grad_estimator)  # a fresh one: no cached state
    n = data.train_x.shape[0]
    if data.known is None:
        kinds = [(torch.arange(min(2, n)), True)]
    else:
        kinds = [(data.known.nonzero()[:2, 0], True), ((~data.known).nonzero()[:2, 0], False)]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]  # running statistics (batch norm) are put back
    try:
        with restored_rng(), pyro.validation_enabled(False):
            for idx, labelled in kinds:
                if idx.numel() == 0:
                    continue
                idx = idx.to(data.train_x.device)
                xb = data.train_x.index_select(0, idx)
                if tc.binarize == "dynamic":
                    xb = torch.bernoulli(xb)
                yb = data.train_y.index_select(0, idx) if data.train_y is not None and labelled else None
                view = bind_labels(model, yb)
                with KLWeight(0.5) if tc.kl_warmup else nullcontext():  # --kl-warmup's handler, if used
                    objective.differentiable_loss(view.model, view.guide, xb)
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
