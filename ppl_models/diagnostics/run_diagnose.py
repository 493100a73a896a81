"""Diagnose a trained run directory and write the report: ``ppl diagnose RUN``.

Writes into ``OUT`` (default ``RUN/diagnostics``): ``diagnostics.json`` (every figure),
``diagnostics.md`` (the summary table and one verdict per diagnostic), PNG figures, and
``inference_data.nc``, an ArviZ InferenceData in NetCDF.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyro

from ppl_models.atomic import atomic_write
from ppl_models.data.base import Split
from ppl_models.diagnostics.diagnose import DiagnoseConfig, Diagnostics, diagnose
from ppl_models.diagnostics.figures import save_figures
from ppl_models.diagnostics.report import markdown
from ppl_models.evaluate.arviz_adapter import save_inference_data, to_inference_data
from ppl_models.evaluate.checks import at_least
from ppl_models.evaluate.run_eval import load_eval_data
from ppl_models.evaluate.samples import sample_inputs
from ppl_models.inference import build_strategy
from ppl_models.paths import inside
from ppl_models.train.run import RunDir
from ppl_models.train.setup import resolve_device


def _json_ready(value):
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def diagnose_run(
    run_path: str | Path, split: str = "test", data: str | None = None, limit: int | None = None,
    out: str | Path | None = None, config: DiagnoseConfig = DiagnoseConfig(), data_dir: str | None = None,
    device: str = "auto", progress: bool = True,
) -> tuple[Diagnostics, list[Path]]:
    """Run every diagnostic on a run's ``split`` (or a ``data`` file) and write the report.

    The proposal is the run's inference strategy's guide, as in ``ppl eval``.

    Args:
        run_path: the run directory.
        split: train, valid or test.
        data: a ``.npy``/``.npz``/``.pt`` file to diagnose instead of the run's own split.
        limit: diagnose a fixed, evenly spread subset of this many points.
        out: the output directory (default ``RUN/diagnostics``).
        config: what to compute.
        data_dir: dataset directory override.
        device: auto, cpu or cuda.
        progress: show progress bars.

    Returns:
        The diagnostics and the files written.

    Raises:
        ValueError: before any computation, for a bad setting (naming its flag) or bad data
            (naming the file or split, the index and the value).
    """
    at_least(limit, "--limit")
    run = RunDir(run_path)
    dev = resolve_device(device)
    run_config, model = run.load_model(dev)
    points = load_eval_data(run_config, model, split, data, limit, data_dir, dev, config.seed, run.path)
    out_dir = inside(run.path, "diagnostics") if out is None else Path(out)
    pyro.set_rng_seed(config.seed)
    with pyro.validation_enabled(False):
        strategy = build_strategy(model, run_config.train, points.x)
        simulate = sample_inputs(model, Split(points.x.cpu(), None if points.y is None else points.y.cpu()),
                                 config.bdmc_points) if config.bdmc_points else None
        result = diagnose(model, points.x, points.y, points.rows.numpy(), config, strategy.guide_for, progress,
                          model_kwargs=simulate)
    result.summary.update(run=str(run.path), model=run_config.model, data=points.where, strategy=run_config.train.strategy,
                          objective=run_config.train.objective)
    return result, write_diagnostics(result, out_dir, model, run_config.event_shape, model.observed_sites[0])


def write_diagnostics(result: Diagnostics, out: str | Path, model=None, event_shape: tuple[int, ...] = (),
                      observed_name: str = "x") -> list[Path]:
    """Write ``diagnostics.json``, ``diagnostics.md``, the figures and ``inference_data.nc`` into ``out``.

    Args:
        result: what :func:`~ppl_models.diagnostics.diagnose.diagnose` returned.
        out: the output directory (created).
        model: the diagnosed model, to decode reconstructions and traversals (None: no such figures).
        event_shape: the shape of one observation.
        observed_name: the model's observed site (names the log-likelihood in the export).
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the output directory {out}: {e.strerror or e}") from e
    summary = _json_ready(result.summary)
    files = {"diagnostics.json": json.dumps(summary, indent=2).encode(), "diagnostics.md": markdown(summary).encode()}
    paths = [inside(out, name) for name in files]
    for path, text in zip(paths, files.values()):
        atomic_write(path, lambda f, text=text: f.write(text))
    paths += save_figures(result, inside(out, "figures"), model, event_shape)
    if "khat" in result.per_point:  # a density model: its draws and weights mean something
        attrs = {k: v for k, v in summary.items() if isinstance(v, (str, int, float))}
        paths.append(save_inference_data(inference_data(result, attrs, observed_name), inside(out, "inference_data.nc")))
    return paths


def inference_data(result: Diagnostics, attrs: dict | None = None, observed_name: str = "x"):
    """The draws kept by :func:`diagnose` as an ArviZ InferenceData: ``posterior`` (each latent site),
    ``log_likelihood``, ``sample_stats`` (log weights), ``point_diagnostics`` and ``observed_data``."""
    d = result.draws
    kept = next(iter(d.latents.values())).shape[0] if d.latents else min(d.num_samples, result.summary["config"]["keep_draws"])
    return to_inference_data(d.latents, d.log_likelihood[:kept], d.log_weights[:kept], result.x, observed_name,
                             result.per_point, attrs, obs_index=result.rows)


def config_from(**fields) -> DiagnoseConfig:
    """A :class:`DiagnoseConfig` from flag values, ``gap_*`` fields going to its :class:`GapSettings`."""
    gap = {k.removeprefix("gap_"): v for k, v in fields.items() if k.startswith("gap_") and v is not None}
    rest = {k: v for k, v in fields.items() if not k.startswith("gap_") and v is not None}
    return DiagnoseConfig(**rest, gap=dataclasses.replace(DiagnoseConfig().gap, **gap))
