"""Evaluate a trained run directory on one split of its dataset."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path

import pyro
import torch

from ppl_models.atomic import atomic_write
from ppl_models.data import load_data, read_split
from ppl_models.evaluate.checks import at_least
from ppl_models.evaluate.chunking import DEFAULT_BATCH, DEFAULT_PARTICLES, eval_chunks
from ppl_models.evaluate.likelihood import estimate_log_likelihood, evenly_spaced_indices
from ppl_models.inference import build_strategy, check_strategy
from ppl_models.models.likelihoods import check_probabilities
from ppl_models.models.protocol import (NO_LIKELIHOOD, check_event_shape, check_labels, check_observations,
                                        has_likelihood)
from ppl_models.paths import inside
from ppl_models.train.setup import resolve_device
from ppl_models.train.run import RunDir


@dataclasses.dataclass(frozen=True)
class EvalData:
    """The data points an evaluation command works on, checked against the run's model."""

    x: torch.Tensor  # observations [N, ...] on the device (binarized if the run binarizes dynamically)
    y: torch.Tensor | None  # labels [N] or None
    rows: torch.Tensor  # each point's row in the source file or split
    where: str  # what the data are, for messages: "dataset/split" or the file
    name: str  # the split, or "data-" and the data file's stem (names result files)


def load_eval_data(config, model, split: str = "test", data: str | None = None, limit: int | None = None,
                   data_dir: str | None = None, device: str | torch.device = "cpu", seed: int = 0,
                   run_path: str | Path = "the run") -> EvalData:
    """The run's ``split`` (or a ``data`` file), cut to ``limit`` evenly spread points and checked.

    Checks the event shape, the labels and the support of the model's observed site (naming the
    file or split, the index and the value); grey data of a run trained with ``--binarize dynamic``
    are binarized once with ``seed``.

    Args:
        config: the run's :class:`~ppl_models.train.run.RunConfig`.
        model: the run's model.
        split: train, valid or test.
        data: a ``.npy``/``.npz``/``.pt`` file to use instead of the run's own split.
        limit: keep a fixed, evenly spread subset of this many points.
        data_dir: dataset directory override.
        device: where the tensors go.
        seed: seeds the binarization.
        run_path: the run directory, for messages.
    """
    if data is not None:
        split_data, where, name = read_split(data), str(data), f"data-{Path(data).stem}"
    else:
        dataset = load_data(config.train.data, data_dir, config.train.valid_data, config.train.test_data)
        split_data = dataset.split(split)
        where, name = f"{config.train.data}/{split}", split
    check_event_shape(split_data.x, config.event_shape, where, f"the run {run_path} was trained on")
    part = split_data.subset(evenly_spaced_indices(len(split_data), limit))
    x = part.x.to(device)
    y = None if part.y is None else part.y.to(device)
    if config.train.binarize == "dynamic":
        check_probabilities(x, where, part.rows)
        x = torch.bernoulli(x, generator=torch.Generator(device=device).manual_seed(seed + 1))
    check_labels(model, y, where, part.rows)
    check_observations(model, x, y, where, rows=part.rows)
    return EvalData(x, y, part.source_rows(), where, name)


def evaluate_run(
    run_path: str | Path, split: str = "test", nll_samples: int = 1000, limit: int | None = None,
    data_dir: str | None = None, device: str = "auto", seed: int = 0, batch_size: int | None = None,
    progress: bool = True, inference: dict | None = None, data: str | None = None, checkpoint: str = "best",
    sample_quality: bool = False, quality_samples: int = 1000, particle_chunk: int | None = None,
) -> dict:
    """ELBO, importance-sampled NLL and bits/dim of a run on ``split``, and with ``sample_quality`` the
    sample-quality metrics beside their real-data floor; also written to ``RUN/eval-SPLIT.json``
    (see :func:`result_path`: an earlier, different evaluation is never replaced).

    A model without a likelihood (``has_likelihood = False``, e.g. a GAN's generator) gets
    ``"no likelihood"`` in ``elbo``, ``nll`` and ``bits_per_dim`` instead of numbers (and ``None``
    in ``nll_samples`` and ``n``); for it only the sample quality can be computed.

    The proposal is the run's inference strategy's guide: the encoder, the refined encoder
    (semi-amortized) or posteriors fitted per data point with the model frozen (per-datapoint).
    ``inference`` overrides that for evaluation only: refining an amortized run's encoder or fitting
    its test posteriors measures how much the encoder leaves on the table (the amortization gap).

    Args:
        run_path: the run directory.
        split: train, valid or test.
        nll_samples: K, importance samples per data point.
        limit: evaluate a fixed, evenly spread subset of this many data points.
        data_dir: dataset directory override.
        device: auto, cpu or cuda.
        seed: seeds the importance samples (and the fixed binarization of grey data).
        batch_size: data points per pass (None: 100 on the CPU; on a CUDA device sized to free memory
            with the amortized guide, 100 with a guide fitted per batch; see
            :func:`~ppl_models.evaluate.chunking.eval_chunks`).
        progress: show a progress bar.
        inference: test-time strategy settings (``strategy``, ``local_steps``, ``local_lr``, ``local_tol``).
        data: a data file (``.npy``, ``.npz``, ``.pt``) to evaluate on instead of the run's own
            split; the results go to ``RUN/eval-data-<file stem>.json``.
        checkpoint: ``best`` (``best.pt`` if the run has one, else the newest), ``latest`` or a
            checkpoint file; the result's ``checkpoint`` names the file used.
        sample_quality: also compute :func:`~ppl_models.evaluate.sample_quality.run_sample_quality`
            (the result's ``sample_quality``: the model's and the floor's rows, N, the classifier).
        quality_samples: N, the number of model samples, reference and floor images.
        particle_chunk: importance samples per pass (None: 100 on the CPU, sized to free memory on
            a CUDA device). The result's ``chunks`` says what was used and how it was chosen.

    Raises:
        ValueError: before any computation, for a setting out of range (naming its flag), data of
            another shape than the run's, or data outside the model's support (naming the file or
            split, the index and the value).
    """
    at_least(nll_samples, "--nll-samples")
    at_least(limit, "--limit")
    at_least(batch_size, "--batch-size")
    at_least(particle_chunk, "--particle-chunk")
    at_least(quality_samples if sample_quality else None, "--quality-samples", 2)
    run = RunDir(run_path)
    dev = resolve_device(device)
    config, model, used = run.load_model_from(checkpoint, dev)
    likelihood = has_likelihood(model)
    settings = dataclasses.replace(config.train, **(inference or {}))  # TrainConfig checks the overrides
    check_strategy(settings.strategy)
    if batch_size is None and settings.strategy != "amortized":
        batch_size = DEFAULT_BATCH  # a guide fitted per batch: its fit, not only the memory, depends on the batch
    if likelihood:
        points = load_eval_data(config, model, split, data, limit, data_dir, dev, seed, run.path)
    if sample_quality:
        from ppl_models.evaluate.classifier import check_event_shape as check_classifier_shape

        check_classifier_shape(config.event_shape)
    source = str(data) if data is not None else split_source(config.train, split)
    asked = {"data": source, "split": None if data is not None else split, "nll_samples": nll_samples, "limit": limit,
             "seed": seed, **asked_chunks(batch_size, particle_chunk, dev),
             "inference": {k: getattr(settings, k) for k in INFERENCE},
             "checkpoint": checkpoint, **({"quality_samples": quality_samples} if sample_quality else {})}
    out_path = result_path(run.path, f"data-{Path(data).stem}" if data is not None else split, asked)
    t0 = time.perf_counter()
    chunks = None
    if likelihood:
        pyro.set_rng_seed(seed)
        with pyro.validation_enabled(False):
            strategy = build_strategy(model, settings, points.x)
            chunks = eval_chunks(model, points.x, nll_samples, batch_size=batch_size, particle_chunk=particle_chunk,
                                 y=points.y)
            scores = estimate_log_likelihood(model, points.x, nll_samples, batch_size=chunks.batch_size,
                                             particle_chunk=chunks.particle_chunk, progress=progress,
                                             guide_for=strategy.guide_for, y=points.y).to_json()
    else:
        scores = {"elbo": NO_LIKELIHOOD, "nll": NO_LIKELIHOOD, "bits_per_dim": NO_LIKELIHOOD, "nll_samples": None,
                  "n": None}
    out = {**scores, "has_likelihood": likelihood, "strategy": settings.strategy, "split": asked["split"],
           "data": source, "run": str(run.path), "density_model": getattr(model, "density_model", True),
           "seconds": round(time.perf_counter() - t0, 2), "settings": asked, "file": str(out_path),
           "checkpoint": str(used.path), "checkpoint_kind": used.kind, "checkpoint_step": used.step,
           "checkpoint_note": used.describe(), "chunks": None if chunks is None else chunks.to_json()}
    if sample_quality:
        from ppl_models.evaluate.sample_quality import run_sample_quality

        out["sample_quality"] = run_sample_quality(model, config, quality_samples, data_dir=data_dir, seed=seed,
                                                   batch_size=batch_size or DEFAULT_BATCH, progress=progress).to_json()
    text = json.dumps(out, indent=2).encode()
    atomic_write(out_path, lambda f: f.write(text))
    return out


INFERENCE = ("strategy", "local_steps", "local_lr", "local_tol")  # the test-time inference settings


def asked_chunks(batch_size: int | None, particle_chunk: int | None, device: torch.device) -> dict:
    """The pass sizes as the result file's ``settings`` record them: what was given, else ``"auto"`` on a
    CUDA device (sized to its free memory) and the defaults elsewhere, the particle chunk only when
    it is not the default (so a CPU evaluation's settings read as they always have)."""
    if device.type == "cuda":
        return {"batch_size": "auto" if batch_size is None else batch_size,
                "particle_chunk": "auto" if particle_chunk is None else particle_chunk}
    particles = DEFAULT_PARTICLES if particle_chunk is None else particle_chunk
    return {"batch_size": DEFAULT_BATCH if batch_size is None else batch_size,
            **({} if particles == DEFAULT_PARTICLES else {"particle_chunk": particles})}


def split_source(train, split: str) -> str:
    """The data a run's ``split`` comes from: its own file (``--valid-data``/``--test-data``), else the
    training data (a built-in dataset's name, or the file the split was carved from)."""
    own = {"train": train.data, "valid": train.valid_data, "test": train.test_data}[split]
    return own or train.data


def result_path(run_path: Path, name: str, asked: dict) -> Path:
    """``RUN/eval-NAME.json``, unless it holds another evaluation (other data or settings): then the first
    of ``eval-NAME-2.json``, ``-3`` ... that is free or holds this same one. No result is ever replaced
    by a different evaluation; an unreadable file is kept too."""
    for i in itertools.count(1):
        path = inside(run_path, f"eval-{name}.json" if i == 1 else f"eval-{name}-{i}.json")
        if not path.exists():
            return path
        try:
            if json.loads(path.read_text()).get("settings") == json.loads(json.dumps(asked)):
                return path
        except (OSError, ValueError, AttributeError):
            pass
    raise AssertionError("unreachable")
