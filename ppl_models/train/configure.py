"""Turn command-line choices into a :class:`RunConfig`, for a new run or one being resumed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from guides.config import GuideConfig
from ppl_models.data import Dataset, load_data
from ppl_models.data.user_files import is_data_file
from ppl_models.inference import check_strategy
from ppl_models.objectives import build_objective
from ppl_models.registry import canonical_reference, check_data_shape, get_model, model_config
from ppl_models.train.config import TrainConfig
from ppl_models.train.run import RunConfig, RunDir
from ppl_models.train.tensorboard import require_tensorboard

# Settings a resumed run may change; any other difference from the saved config is an error.
# (lr among them: after a non-finite stop, a lower --lr is the usual fix.)
RESUMABLE_OVERRIDES = {"epochs", "device", "log_every", "lr", "checkpoint_every", "keep_checkpoints", "grad_clip",
                       "on_nan", "nan_retries", "nan_lr_factor", "tensorboard"}
# early_stop too: it decides only when to stop, never a step (its counters are in every checkpoint), so a larger
# patience continues a run that stopped early, exactly as if it had been given from the start.
RESUMABLE_OVERRIDES |= {"early_stop"}
# compile and its settings choose how a step executes, not what it computes (the plan is verified against Pyro's).
RESUMABLE_OVERRIDES |= {"compile", "plan_check_every", "compile_mode", "plan_partitioner"}


def default_likelihood(dataset: Dataset, binarize: str) -> str:
    """Bernoulli for binary (or dynamically binarized) data, a fixed-scale Gaussian otherwise."""
    return "bernoulli" if dataset.binary or binarize == "dynamic" else "gaussian"


def absolute_data_paths(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with user data files (``data``, ``valid_data``, ``test_data``) made absolute, so a
    run's config finds them from any working directory."""
    out = dict(fields)
    for name in ("data", "valid_data", "test_data"):
        if out.get(name) and (name != "data" or is_data_file(out[name])):
            out[name] = str(Path(out[name]).expanduser().resolve())
    return out


def configure_run(
    model: str, run: RunDir, train_fields: dict[str, Any], model_fields: dict[str, Any],
    data_dir: str | None = None, resume: bool = False, guide_fields: dict[str, Any] | None = None,
) -> tuple[RunConfig, Dataset]:
    """The run config and dataset for ``ppl train``.

    Args:
        model: registered model name or ``path/to/file.py:NAME``.
        run: the run directory.
        train_fields: TrainConfig fields given on the command line (others take defaults).
        model_fields: model config fields given on the command line.
        data_dir: dataset directory override.
        resume: continue ``run``: its saved config is used, and a given field may only differ
            from it if it is in ``RESUMABLE_OVERRIDES``.
        guide_fields: GuideConfig fields given on the command line.
    """
    model = canonical_reference(model)
    train_fields = absolute_data_paths(train_fields)
    guide_fields = guide_fields or {}
    if resume and run.config_path.exists():
        saved = run.load_config()
        _check_same(run, "model", saved.model, model)
        for name, value in guide_fields.items():
            _check_same(run, f"guide {name}", getattr(saved.guide, name), value)
        for name, value in model_fields.items():
            _check_same(run, name, getattr(saved.model_config, name, None), value)
        for name, value in train_fields.items():
            if name not in RESUMABLE_OVERRIDES:
                _check_same(run, name, getattr(saved.train, name), value)
        overrides = {k: v for k, v in train_fields.items() if k in RESUMABLE_OVERRIDES}
        config = dataclasses.replace(saved, train=dataclasses.replace(saved.train, **overrides))
        if config.train.tensorboard:
            require_tensorboard()  # a missing optional package fails here, before the data load
        return config, load_data(config.train.data, data_dir, config.train.valid_data, config.train.test_data)

    train = TrainConfig(**train_fields)
    if train.tensorboard:
        require_tensorboard()
    get_model(model)  # unknown names fail before the data are loaded
    guide = GuideConfig(**guide_fields)
    check_strategy(train.strategy)
    build_objective(train.objective, train.particles, train.grad_estimator)
    dataset = load_data(train.data, data_dir, train.valid_data, train.test_data)
    return new_run_config(model, model_fields, train, dataset, guide), dataset


def new_run_config(model: str, model_fields: dict[str, Any], train: TrainConfig, dataset: Dataset,
                   guide: GuideConfig | None = None) -> RunConfig:
    """The config of a new run of ``model`` on ``dataset``; a model with a ``likelihood`` field
    gets :func:`default_likelihood` (or its class's ``default_likelihood(binary)``) unless
    ``model_fields`` names one, and a model that declares a
    ``training_strategy`` (a GAN: ``adversarial``) gets it in place of the default. Checks that the model
    accepts the data's shape and has the labels it needs."""
    model = canonical_reference(model)
    entry = get_model(model)
    check_data_shape(model, dataset.event_shape, dataset.name)
    if getattr(entry.cls, "labels", None) == "condition" and dataset.train.y is None:
        raise ValueError(f"model {model!r} is conditioned on labels, but the data {dataset.name!r} have none")
    own = getattr(entry.cls, "training_strategy", None)
    if own is not None and train.strategy == "amortized":  # the default: a GAN has no amortized inference
        train = dataclasses.replace(train, strategy=own)
    fields = {f.name for f in dataclasses.fields(entry.config_cls)}
    if "likelihood" in fields and "likelihood" not in model_fields:
        family = getattr(entry.cls, "default_likelihood", None)  # a family's own default (autoregressive models)
        binary = dataset.binary or train.binarize == "dynamic"
        likelihood = family(binary) if family else default_likelihood(dataset, train.binarize)
        model_fields = {**model_fields, "likelihood": likelihood}
    return RunConfig(model, model_config(model, **model_fields), train, tuple(dataset.event_shape),
                     guide or GuideConfig())


def _check_same(run: RunDir, name: str, saved: Any, given: Any) -> None:
    if saved != given:
        raise ValueError(
            f"--resume: {name}={given!r} differs from {saved!r} saved in {run.config_path}; "
            f"only {sorted(RESUMABLE_OVERRIDES)} may change when resuming"
        )
