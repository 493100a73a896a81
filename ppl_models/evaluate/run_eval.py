"""Evaluate a trained run directory on one split of its dataset."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pyro
import torch

from ppl_models.atomic import atomic_write
from ppl_models.data import load_dataset
from ppl_models.evaluate.likelihood import estimate_log_likelihood, evenly_spaced_indices
from ppl_models.inference import build_strategy
from ppl_models.models.likelihoods import check_support
from ppl_models.train.loop import resolve_device
from ppl_models.train.run import RunDir


def evaluate_run(
    run_path: str | Path, split: str = "test", nll_samples: int = 1000, limit: int | None = None,
    data_dir: str | None = None, device: str = "auto", seed: int = 0, batch_size: int = 100, progress: bool = True,
    inference: dict | None = None,
) -> dict:
    """ELBO, importance-sampled NLL and bits/dim of a run on ``split``; also written to ``RUN/eval-SPLIT.json``.

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
        batch_size: data points per pass.
        progress: show a progress bar.
        inference: test-time strategy settings (``strategy``, ``local_steps``, ``local_lr``, ``local_tol``).
    """
    run = RunDir(run_path)
    dev = resolve_device(device)
    config, model = run.load_model(dev)
    data = load_dataset(config.train.data, data_dir).split(split)
    x = data.x[evenly_spaced_indices(len(data), limit)].to(dev)
    if config.train.binarize == "dynamic":
        x = torch.bernoulli(x, generator=torch.Generator(device=dev).manual_seed(seed + 1))
    check_support(model.likelihood, x, f"{config.train.data}/{split}")
    pyro.set_rng_seed(seed)
    t0 = time.perf_counter()
    with pyro.validation_enabled(False):
        settings = dataclasses.replace(config.train, **(inference or {}))
        strategy = build_strategy(model, settings, x)
        result = estimate_log_likelihood(model, x, nll_samples, batch_size=batch_size, progress=progress,
                                         guide_for=strategy.guide_for)
    out = {**result.to_json(), "strategy": settings.strategy, "split": split, "data": config.train.data,
           "run": str(run.path), "seconds": round(time.perf_counter() - t0, 2)}
    text = json.dumps(out, indent=2).encode()
    atomic_write(run.path / f"eval-{split}.json", lambda f: f.write(text))
    return out
