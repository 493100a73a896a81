"""Train (or load) every contender and measure each the same way.

Each contender trains into ``OUT/runs/<name>`` with the one training loop, so a stopped comparison
resumes (``resume=True``) and a finished run is only evaluated. Its measurements are kept beside it
in ``OUT/runs/<name>/compare-eval.json``, keyed by the settings and the checkpoint they came from,
so a rerun with the same settings reads them instead of sampling again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch
from tqdm.auto import tqdm

from ppl_models.atomic import atomic_write
from ppl_models.comparison.contenders import Contender, get_contender
from ppl_models.data import Dataset, load_data
from ppl_models.evaluate.checks import at_least
from ppl_models.evaluate.likelihood import estimate_log_likelihood, evenly_spaced_indices
from ppl_models.evaluate.sample_quality import QualityReference, draw_samples, prepare_reference, score_samples
from ppl_models.inference.compare import limit_dataset
from ppl_models.inference.strategy import build_strategy
from ppl_models.models.protocol import NO_LIKELIHOOD, has_likelihood
from ppl_models.paths import inside
from ppl_models.train.config import TrainConfig
from ppl_models.train.configure import new_run_config
from ppl_models.train.loop import fit
from ppl_models.train.metrics import MetricsLog
from ppl_models.train.run import RunConfig, RunDir
from ppl_models.train.setup import resolve_device

DEFAULT_MODELS = ("vae", "iwae", "two_layer_vae", "pixelcnn", "pixelrnn", "gan")


@dataclass(frozen=True)
class ModelComparisonConfig:
    """One cross-family comparison: the data, the contenders and the shared budget."""

    data: str = "binarized_mnist"  # dataset name
    models: tuple[str, ...] = DEFAULT_MODELS  # contenders (ppl_models.comparison.contenders), in table order
    epochs: int = 10  # training epochs of every contender
    batch_size: int = 100  # data points per training step
    seed: int = 0  # one seed for every contender's initialization, shuffling, sampling and evaluation
    device: str = "auto"  # auto | cpu | cuda
    limit: int | None = None  # cap every split at this many evenly spread images (fast runs)
    test_limit: int | None = None  # cap the test split further for the NLL
    nll_samples: int = 1000  # K of the importance-sampled NLL of latent-variable models (exact ones need 1)
    quality_samples: int = 1000  # N: samples per model, and real images per reference and floor set
    binarize: str = "none"  # none | dynamic: every model sees Bernoulli draws of grey data (the test set once)
    eval_batch_size: int = 100  # data points per evaluation pass, and samples drawn per pass
    settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # per contender: model config fields

    def __post_init__(self) -> None:
        """Check every setting before anything is loaded or trained; messages name the flag."""
        if not self.models:
            raise ValueError("--models names no model; give comma-separated names, e.g. vae,pixelcnn,gan")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"--models lists a model twice: {','.join(self.models)}")
        for name in self.models:
            get_contender(name)
        for name in self.settings:
            if name not in self.models:
                raise ValueError(f"--set {name}.FIELD=...: {name!r} is not among --models ({','.join(self.models)})")
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size), ("--limit", self.limit),
                            ("--test-limit", self.test_limit), ("--nll-samples", self.nll_samples),
                            ("--quality-samples", self.quality_samples), ("eval_batch_size", self.eval_batch_size)):
            at_least(value, flag)
        TrainConfig(binarize=self.binarize)  # checks the value


def run_config(config: ModelComparisonConfig, contender: Contender, dataset: Dataset) -> RunConfig:
    """The run configuration of one contender: the shared budget, then the contender's own settings."""
    shared = dict(data=config.data, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                  device=config.device, binarize=config.binarize)
    fields = config.settings.get(contender.name, {})
    return new_run_config(contender.model, fields, TrainConfig(**{**shared, **contender.train}), dataset)


def likelihood_kind(model: torch.nn.Module, nll_samples: int) -> tuple[str, int]:
    """How the test NLL is had: ``("exact", 1)`` for a model without latent variables,
    ``("importance sampling", K)`` otherwise, ``(NO_LIKELIHOOD, 0)`` for an implicit model."""
    if not has_likelihood(model):
        return NO_LIKELIHOOD, 0
    if getattr(model, "exact_likelihood", False):
        return "exact", 1
    return "importance sampling", nll_samples


def timed_samples(model: torch.nn.Module, n: int, config: ModelComparisonConfig, progress: bool
                  ) -> tuple[torch.Tensor, float]:
    """``n`` draws x ~ p(x) (seeded, in batches), and the wall time per image in seconds."""
    t0 = time.perf_counter()
    with torch.no_grad():
        samples = draw_samples(model, n, config.eval_batch_size, config.seed, progress=progress)
    return samples, (time.perf_counter() - t0) / n


def measure(model: torch.nn.Module, rc: RunConfig, run: RunDir, dataset: Dataset, test_x: torch.Tensor,
            reference: QualityReference, config: ModelComparisonConfig, progress: bool
            ) -> tuple[dict[str, Any], torch.Tensor]:
    """The contender's row (likelihood, sample quality, timing, size) and its samples."""
    kind, k = likelihood_kind(model, config.nll_samples)
    row: dict[str, Any] = {"nll_method": kind if k <= 1 else f"{kind}, K={k}"}
    if k:
        pyro.set_rng_seed(config.seed)
        strategy = build_strategy(model, rc.train, dataset.train.x[:1].to(test_x.device))
        with pyro.validation_enabled(False):
            r = estimate_log_likelihood(model, test_x, k, batch_size=config.eval_batch_size, progress=progress,
                                        guide_for=strategy.guide_for)
        row.update(test_nll=r.nll, bits_per_dim=r.bits_per_dim)
    else:
        row.update(test_nll=NO_LIKELIHOOD, bits_per_dim=NO_LIKELIHOOD)
    samples, per_image = timed_samples(model, reference.n, config, progress)
    row.update(score_samples(samples, reference).to_json(), sample_s_per_image=per_image)
    metrics = MetricsLog.read(run.metrics_path)
    train_s = float(metrics[-1]["elapsed_s"])
    row.update(epochs=len(metrics), train_s=train_s, s_per_epoch=train_s / len(metrics),
               parameters=sum(p.numel() for p in model.parameters()))
    return row, samples


def compare_models(config: ModelComparisonConfig, out: str | Path, resume: bool = False, data_dir: str | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """Train and measure every contender of ``config``; return ``{"config", "rows", "floor", "samples"}``.

    ``rows`` has one dict per contender (in ``config.models`` order), ``floor`` the same metrics for
    held-out real images, and ``samples[name]`` 64 of each model's samples for the figures.

    Args:
        config: the comparison.
        out: the output directory (``runs/`` below it holds one run directory per contender).
        resume: continue contenders whose run directories exist (finished ones are only evaluated).
        data_dir: dataset directory override.
        progress: show progress bars.
    """
    out = Path(out)
    full = load_data(config.data, data_dir)
    binary = config.binarize == "dynamic"
    reference = prepare_reference(full, config.quality_samples, data_dir=data_dir, binarize=binary, seed=config.seed,
                                  progress=progress)
    floor = {"model": "real data (floor)", **reference.floor.to_json()}
    dataset = limit_dataset(full, config.limit)
    device = resolve_device(config.device)
    test_x = dataset.test.x[evenly_spaced_indices(len(dataset.test), config.test_limit)].to(device)
    if binary:  # binarized once, from a fixed seed, as `ppl eval` does for such runs
        test_x = torch.bernoulli(test_x, generator=torch.Generator(device=device).manual_seed(config.seed + 1))
    rows, samples = [], {}
    for name in config.models:
        contender = get_contender(name)
        rc, run = run_config(config, contender, dataset), RunDir(inside(out, "runs", name))
        if progress:
            print(f"== {name}: {contender.model}, {rc.train.strategy}, {rc.train.objective}, {config.epochs} epochs "
                  f"on {len(dataset.train)} images")
        fit(run, rc, dataset, resume=resume and run.config_path.exists(), progress=progress)
        _, model, used = run.load_model_from("best", device)
        shared = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("models", "settings")}
        key = {"settings": shared, "contender": dataclasses.asdict(contender), "fields": config.settings.get(name, {}),
               "checkpoint": used.path.name, "step": used.step}  # other contenders' choices keep this row
        cached = _read_cached(run, key)
        if cached is None:
            row, drawn = measure(model, rc, run, dataset, test_x, reference, config, progress)
            row = {"model": name, "family": _family(model), "trains": contender.model,
                   "likelihood": getattr(rc.model_config, "likelihood", None) or getattr(rc.model_config, "observation", ""), **row,
                   "checkpoint": used.describe()}
            _write_cached(run, key, row, drawn[:64].cpu())
            cached = row, drawn[:64].cpu()
        rows.append(cached[0])
        samples[name] = cached[1]
    results = {"config": dataclasses.asdict(config), "rows": rows, "floor": floor, "samples": samples,
               "n_train": len(dataset.train), "n_test": int(test_x.shape[0]), "n_quality": reference.n,
               "reference": reference.sets.reference_from, "floor_from": reference.sets.floor_from,
               "note": reference.sets.note, "classifier": reference.classifier.info()}
    return results


def _family(model: torch.nn.Module) -> str:
    if getattr(model, "training_strategy", None) == "adversarial":
        return "adversarial"
    return "autoregressive" if getattr(model, "exact_likelihood", False) else "latent variable"


def _read_cached(run: RunDir, key: dict) -> tuple[dict, torch.Tensor] | None:
    path, grid = run.path / "compare-eval.json", run.path / "compare-samples.pt"
    try:
        saved = json.loads(path.read_text())
        if saved.get("key") != json.loads(json.dumps(key)):
            return None
        return saved["row"], torch.load(grid, weights_only=True)
    except (OSError, ValueError, KeyError, RuntimeError):
        return None


def _write_cached(run: RunDir, key: dict, row: dict, samples: torch.Tensor) -> None:
    atomic_write(run.path / "compare-samples.pt", lambda f: torch.save(samples, f))
    text = json.dumps({"key": key, "row": row}, indent=2).encode()
    atomic_write(run.path / "compare-eval.json", lambda f: f.write(text))

