"""Compare inference strategies on one model and one dataset: same seed, same budget, same test data.

Each strategy spec names an objective or a strategy, with its options after colons:

    elbo, elbo-analytic, elbo:K           amortized, ELBO with K particles
    iwae:K, iwae:K:dreg, iwae:K:stl       amortized, importance-weighted bound with K particles
    semi-amortized:N                      encoder refined by N steps (ELBO)
    per-datapoint, per-datapoint:N        free phi_i fitted (at most N steps) before each model step

Every strategy trains into ``OUT/runs/<spec>`` with the training loop (so a stopped comparison
resumes), then is evaluated on the test split with its own guide: ELBO, IWAE-k bounds and the
importance-sampled NLL, all from the same K draws per data point.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch

from guides.config import GuideConfig
from ppl_models.data import Dataset, load_data
from ppl_models.data.base import Split
from ppl_models.diagnostics.gaps import inference_gaps
from ppl_models.diagnostics.weights import weight_diagnostics
from ppl_models.evaluate.checks import at_least, positive
from ppl_models.evaluate.likelihood import bounds_table, evenly_spaced_indices
from ppl_models.inference.estimators import compare_estimators
from ppl_models.inference.nuts import compare_with_guide, nuts_posterior
from ppl_models.inference.strategy import Strategy, available_strategies, build_strategy
from ppl_models.objectives import available_objectives, build_objective
from ppl_models.paths import inside
from ppl_models.train.config import TrainConfig
from ppl_models.train.configure import absolute_data_paths, new_run_config
from ppl_models.train.loop import fit
from ppl_models.train.setup import resolve_device
from ppl_models.train.metrics import MetricsLog
from ppl_models.train.run import RunConfig, RunDir


def parse_strategy(spec: str) -> dict[str, Any]:
    """The :class:`TrainConfig` fields a strategy spec sets (see the module docstring for the grammar)."""
    name, *opts = spec.split(":")
    try:
        if name in available_objectives():
            if len(opts) > 2:
                raise ValueError("an objective takes at most :K:ESTIMATOR")
            fields = {"objective": name, "particles": int(opts[0]) if opts else 1}
            if len(opts) == 2:
                fields["grad_estimator"] = opts[1]
            build_objective(fields["objective"], fields["particles"], fields.get("grad_estimator", "standard"))
        elif name in available_strategies():
            if len(opts) > 1 or (opts and name == "amortized"):
                raise ValueError(f"{name} takes at most one option, :STEPS" if name != "amortized" else "no options")
            fields = {"strategy": name, **({"local_steps": int(opts[0])} if opts else {})}
        else:
            raise ValueError(
                f"choose an objective ({', '.join(available_objectives())}) or a strategy ({', '.join(available_strategies())})"
            )
        TrainConfig(**fields)  # range checks
    except ValueError as e:
        raise ValueError(f"strategy {spec!r}: {e}") from None
    return fields


@dataclass(frozen=True)
class CompareConfig:
    """One comparison: the model, the data and the shared budget."""

    model: str = "vae"  # registered model name or path/to/file.py:NAME
    data: str = "binarized_mnist"  # dataset name or a .npy/.npz/.pt training file
    valid_data: str | None = None  # validation file (user data; default: carved from the training file)
    test_data: str | None = None  # test file (user data; default: carved from the training file)
    strategies: tuple[str, ...] = ("elbo", "iwae:5")  # strategy specs, compared in this order
    epochs: int = 10  # training budget of every strategy
    batch_size: int = 100  # data points per step
    lr: float = 1e-3  # Adam learning rate of the model (and encoder)
    seed: int = 0  # one seed for every strategy's initialization, shuffling and evaluation
    device: str = "auto"  # auto | cpu | cuda
    limit: int | None = None  # cap every split at this many evenly spread data points
    test_limit: int | None = None  # cap the test split further (evaluation costs K decoder passes per point)
    nll_samples: int = 5000  # K of the test NLL estimate; the ELBO and IWAE-k bounds use the same draws
    iwae_k: tuple[int, ...] = (5, 50)  # IWAE-k bounds to report
    eval_batch_size: int = 100  # test data points per evaluation pass
    estimator_points: int = 100  # test points for prior-vs-guide log p(x) estimators (0: skip)
    estimator_samples: int = 100  # K of both estimators, equal by design (the reference uses nll_samples)
    estimator_repeats: int = 5  # repetitions that measure each estimator's spread
    nuts_points: int = 0  # test points checked against a NUTS posterior (0: skip; each takes ~seconds)
    gaps: bool = False  # also fit q* per test point: the approximation and amortization gaps
    model_fields: dict[str, Any] = field(default_factory=dict)  # model config fields (e.g. latent_dim)
    guide_fields: dict[str, Any] = field(default_factory=dict)  # guides.auto.GuideConfig fields (e.g. family)

    def __post_init__(self) -> None:
        """Check every setting before anything is loaded or trained; messages name the flag."""
        if not self.strategies:
            raise ValueError("--strategies names no strategy; give comma-separated specs, e.g. elbo,iwae:5")
        dirs: dict[str, str] = {}
        for spec in self.strategies:
            parse_strategy(spec)
            if run_dir_name(spec) in dirs:  # both would train into OUT/runs/<name>
                raise ValueError(f"--strategies lists {spec!r} twice" if dirs[run_dir_name(spec)] == spec else
                                 f"--strategies {dirs[run_dir_name(spec)]!r} and {spec!r} share a run directory")
            dirs[run_dir_name(spec)] = spec
        for flag, value in (("--epochs", self.epochs), ("--batch-size", self.batch_size),
                            ("--nll-samples", self.nll_samples), ("--estimator-samples", self.estimator_samples),
                            ("estimator_repeats", self.estimator_repeats), ("eval_batch_size", self.eval_batch_size),
                            ("--limit", self.limit), ("--test-limit", self.test_limit)):
            at_least(value, flag)
        for flag, value in (("--estimator-points", self.estimator_points), ("--nuts-points", self.nuts_points)):
            at_least(value, flag, minimum=0)
        positive(self.lr, "--lr")
        bad = [k for k in self.iwae_k
               if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.nll_samples]
        if bad:
            raise ValueError(f"--iwae-k values must lie in 1..{self.nll_samples} (--nll-samples), got {bad[0]!r}")


def limit_dataset(dataset: Dataset, limit: int | None) -> Dataset:
    """The dataset with every split cut to ``limit`` evenly spread data points (all if None)."""
    if limit is None:
        return dataset

    def cut(split: Split) -> Split:
        return split.subset(evenly_spaced_indices(len(split), limit))

    return dataclasses.replace(dataset, train=cut(dataset.train), valid=cut(dataset.valid), test=cut(dataset.test))


def run_config(config: CompareConfig, spec: str, dataset: Dataset) -> RunConfig:
    """The run configuration of one strategy."""
    train = TrainConfig(data=config.data, valid_data=config.valid_data, test_data=config.test_data, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                        seed=config.seed, device=config.device, **parse_strategy(spec))
    return new_run_config(config.model, config.model_fields, train, dataset, GuideConfig(**config.guide_fields))


def run_dir_name(spec: str) -> str:
    """The directory name of a strategy's run: the spec with its colons made file-name safe."""
    return spec.replace(":", "_")


def run_directory(out: Path, spec: str) -> RunDir:
    """``OUT/runs/<spec>`` (see :func:`run_dir_name`), refused if it would lead out of ``OUT``."""
    return RunDir(inside(out, "runs", run_dir_name(spec)))


def evaluate_strategy(model: torch.nn.Module, strategy: Strategy, x: torch.Tensor, config: CompareConfig,
                      progress: bool = False, y: torch.Tensor | None = None) -> dict[str, float]:
    """Test bounds of one trained strategy with its own guide, from ``config.nll_samples`` draws per point:
    the ELBO, IWAE-k bounds and NLL, the Pareto k-hat of each point's weights and the inference gap
    (with ``config.gaps``, split into its approximation and amortization parts)."""
    pyro.set_rng_seed(config.seed)
    t0 = time.perf_counter()
    with pyro.validation_enabled(False):
        table = bounds_table(model, x, config.nll_samples, config.iwae_k, config.eval_batch_size,
                             progress=progress, guide_for=strategy.guide_for, y=y, keep_log_weights=True)
    khat = weight_diagnostics(table.pop("log_weights")).khat
    means = {name: values.mean().item() for name, values in table.items()}
    row = {"test_elbo": means["elbo"], **{f"test_iwae_{k}": means[f"iwae_{k}"] for k in config.iwae_k},
           "test_nll": -means["log_px"], "test_khat_mean": float(khat.mean()), "test_khat_bad": float((khat > 0.7).mean()),
           "test_inference_gap": means["log_px"] - means["elbo"], "eval_s": time.perf_counter() - t0,
           "parameters": strategy.num_parameters(model)}
    if config.gaps:
        with pyro.validation_enabled(False):
            gaps = inference_gaps(model, x, table["elbo"], table["log_px"], config.nll_samples, y=y,
                                  batch_size=config.eval_batch_size, progress=progress).summary()
        row.update(test_inference_gap=gaps["inference_gap"], test_approximation_gap=gaps["approximation_gap"],
                   test_amortization_gap=gaps["amortization_gap"])
    return row


def compare_inference(config: CompareConfig, out: str | Path, resume: bool = False, data_dir: str | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Train and evaluate every strategy of ``config``; return the rows and validation curves.

    Args:
        config: the comparison.
        out: the output directory (``runs/`` below it holds one run directory per strategy).
        resume: continue strategies whose run directories exist (finished ones are only evaluated).
        data_dir: dataset directory override.
        progress: show progress bars.

    Returns:
        ``{"config", "rows", "curves"}``, with ``curves[spec]`` the per-epoch validation ELBO, and
        ``"estimators"`` / ``"nuts"`` (see :func:`diagnose_guide`) for the first amortized strategy.
    """
    out = Path(out)
    for spec in config.strategies:
        run_directory(out, spec)  # every spec was checked by CompareConfig; its directory is checked here
    config = dataclasses.replace(config, **absolute_data_paths(
        {"data": config.data, "valid_data": config.valid_data, "test_data": config.test_data}))
    dataset = limit_dataset(load_data(config.data, data_dir, config.valid_data, config.test_data), config.limit)
    device = resolve_device(config.device)
    keep = evenly_spaced_indices(len(dataset.test), config.test_limit)
    test_x = dataset.test.x[keep].to(device)
    test_y = None if dataset.test.y is None else dataset.test.y[keep].to(device)
    rows, curves, models = [], {}, {}
    for spec in config.strategies:
        rc, run = run_config(config, spec, dataset), run_directory(out, spec)
        if progress:
            print(f"== {spec}: {rc.train.strategy}, {rc.train.objective} K={rc.train.particles} "
                  f"{rc.train.grad_estimator}, {config.epochs} epochs on {len(dataset.train)} images")
        model = fit(run, rc, dataset, resume=resume and run.config_path.exists(), progress=progress)
        metrics = MetricsLog.read(run.metrics_path)
        curves[spec] = [{k: float(r[k]) for k in ("epoch", "elapsed_s", "valid_elbo")} for r in metrics]
        train_s = float(metrics[-1]["elapsed_s"])
        row = {"strategy": spec, "inference": rc.train.strategy, "objective": rc.train.objective,
               "particles": rc.train.particles, "grad_estimator": rc.train.grad_estimator, "epochs": config.epochs,
               "train_s": train_s, "s_per_epoch": train_s / len(metrics), "valid_elbo": curves[spec][-1]["valid_elbo"]}
        strategy = build_strategy(model, rc.train, dataset.train.x.to(device))  # sized as in training
        row.update(evaluate_strategy(model, strategy, test_x, config, progress, test_y))
        row.update(n_train=len(dataset.train), n_test=test_x.shape[0], nll_samples=config.nll_samples)
        rows.append(row)
        models[spec] = model
    results = {"config": dataclasses.asdict(config), "rows": rows, "curves": curves}
    amortized = [spec for spec, row in zip(config.strategies, rows) if row["inference"] == "amortized"]
    if amortized and (config.estimator_points or config.nuts_points):
        results.update(diagnose_guide(models[amortized[0]], test_x, config, progress), diagnosed=amortized[0])
    return results


def diagnose_guide(model: torch.nn.Module, x: torch.Tensor, config: CompareConfig, progress: bool = False) -> dict:
    """Why the guide matters: naive prior sampling vs guide importance sampling at equal K, and the
    guide against a NUTS posterior, on evenly spread test points."""
    out: dict[str, Any] = {}
    with pyro.validation_enabled(False):
        if config.estimator_points:
            xs = x[evenly_spaced_indices(x.shape[0], config.estimator_points)]
            found = compare_estimators(model, xs, config.estimator_samples, config.estimator_repeats,
                                       reference_samples=config.nll_samples, seed=config.seed, progress=progress)
            out["estimators"] = [r.to_json() for r in found]
        if config.nuts_points:
            xs = x[evenly_spaced_indices(x.shape[0], config.nuts_points)]
            samples = nuts_posterior(model, xs, seed=config.seed, progress=progress)
            out["nuts"] = [c.to_json() for c in compare_with_guide(model, xs, samples, seed=config.seed)]
    return out
