"""The Python API: train a model, load a run, and evaluate, sample, diagnose or compare, one call each.

    import ppl_models as ppl
    run = ppl.train("vae", data="digits", epochs=50, out="runs/x", latent_dim=8)
    run.evaluate(nll_samples=1000)          # the same numbers as `ppl eval runs/x`
    images = run.sample(64)
    run = ppl.load("runs/x")                # any run directory, the CLI's included

The ``ppl`` commands call these same functions: one implementation, two doors. Results come back
as frozen dataclasses with ``to_json()``; nothing is printed unless ``verbose=True``, and progress
bars are on unless ``progress=False``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyro
import torch

from ppl_models.registry import registered_name
from ppl_models.train.config import TrainConfig
from ppl_models.train.run import RunConfig, RunDir

if TYPE_CHECKING:
    from ppl_models.evaluate.sample_quality import SampleQuality

TRAIN_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))  # the rest of **settings are model fields


@dataclass(frozen=True)
class EvalResult:
    """ELBO and importance-sampled NLL of a run on one split or data file, in nats per data point."""

    elbo: float | str  # mean ELBO ("no likelihood" for a model without one, e.g. a GAN's generator)
    nll: float | str  # -mean log p(x), importance sampled with nll_samples draws (or "no likelihood")
    bits_per_dim: float | str  # nll / (dimensions * ln 2) (or "no likelihood")
    nll_samples: int | None  # K (None without a likelihood)
    n: int | None  # data points evaluated (None without a likelihood)
    strategy: str  # the inference strategy whose guide was the proposal
    data: str  # the data evaluated (a dataset name or a file)
    split: str | None  # the split, or None for a data file
    file: str  # the result file written into the run directory
    seconds: float  # wall time of the evaluation
    checkpoint: str  # the checkpoint file evaluated (best.pt by default, when the run has one)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DiagnoseResult:
    """What ``ppl diagnose`` reports (see :mod:`ppl_models.diagnostics`)."""

    summary: dict[str, Any]  # everything in diagnostics.json
    files: tuple[Path, ...]  # diagnostics.json, diagnostics.md, the figures and inference_data.nc

    def to_json(self) -> dict:
        """The summary, with the files written."""
        return {**self.summary, "files": [str(p) for p in self.files]}


@dataclass(frozen=True)
class CompareResult:
    """Rows and validation curves of ``ppl compare-inference``, and the files written."""

    rows: tuple[dict, ...]  # one per strategy: bounds, NLL, k-hat, gaps, time, parameters
    curves: dict[str, list[dict]]  # strategy -> per-epoch validation ELBO
    results: dict[str, Any]  # everything in results.json
    files: tuple[Path, ...]  # results.json, .csv, .md and validation.png

    def to_json(self) -> dict:
        """Everything in results.json."""
        return self.results


@dataclass(frozen=True)
class CompletionReport:
    """What ``ppl complete`` writes: the scored rows (method x way x model x mask) and the files."""

    rows: tuple[dict, ...]  # one per method, way, model and mask: conditional NLL, accuracy, class kept, time
    results: dict[str, Any]  # everything in completion.json
    files: tuple[Path, ...]  # completion.json, .csv, .md and the figures

    def to_json(self) -> dict:
        """Everything in completion.json."""
        return self.results


def _model_name(model: str | type) -> str:
    return model if isinstance(model, str) else registered_name(model)


class Run:
    """A run directory with its model loaded: what ``ppl eval``, ``sample``, ``probe`` and ``diagnose`` read.

    Args:
        path: the run directory.
        device: where the model goes (``"cpu"``, ``"cuda"``, ``"auto"``).
        checkpoint: ``best`` (``best.pt``, the epoch with the best validation bound, when the run has
            one; else the newest), ``latest`` or a checkpoint file; :meth:`evaluate` uses it too.
    """

    def __init__(self, path: str | Path, device: str = "cpu", checkpoint: str = "best"):
        from ppl_models.train.setup import resolve_device

        self.path = Path(path)
        self.device = str(resolve_device(device))
        self.checkpoint = checkpoint
        self.config: RunConfig
        self.config, self.model, self.loaded = RunDir(self.path).load_model_from(checkpoint, self.device)
        self.sample_files: tuple[Path, ...] = ()  # the grids training saved (set by :func:`train`)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.config.model!r}, data={self.config.train.data!r})"

    def evaluate(self, split: str = "test", nll_samples: int = 1000, limit: int | None = None, data: str | None = None,
                 seed: int = 0, batch_size: int | None = None, progress: bool = True, data_dir: str | None = None,
                 particle_chunk: int | None = None, **inference) -> EvalResult:
        """ELBO and importance-sampled NLL on ``split`` (or a ``data`` file), as ``ppl eval``; ``inference``
        overrides the strategy for evaluation (``strategy``, ``local_steps``, ``local_lr``, ``local_tol``).
        ``batch_size`` x ``particle_chunk`` is a pass: 100 x 100 on the CPU; on a GPU what is not given is
        sized to its free memory (:mod:`ppl_models.evaluate.chunking`)."""
        from ppl_models.evaluate.run_eval import evaluate_run

        r = evaluate_run(self.path, split, nll_samples, limit, data_dir, self.device, seed, batch_size, progress,
                         inference or None, data, self.checkpoint, particle_chunk=particle_chunk)
        return EvalResult(**{f.name: r[f.name] for f in dataclasses.fields(EvalResult)})

    def sample(self, n: int = 64, mean: bool = False, seed: int = 0, data_dir: str | None = None) -> torch.Tensor:
        """``n`` draws x ~ p(x) (or decoder means with ``mean=True``), ``[n, *event_shape]``, on the CPU."""
        from ppl_models.evaluate.samples import sample_observations

        data = self._test_split(data_dir, required=True) if hasattr(self.model, "sample_inputs") else None
        pyro.set_rng_seed(seed)
        return sample_observations(self.model, n, mean=mean, data=data).cpu()

    def save_samples(self, path: str | Path, n: int = 64, mean: bool = False, seed: int = 0,
                     data_dir: str | None = None) -> Path:
        """Save :meth:`sample` by ``path``'s suffix, as ``ppl sample``: ``.npy`` or ``.pt`` hold the samples;
        ``.png`` is an image grid (one column per class for label-conditioned models), or for vector data
        a pairs plot against the run's test data."""
        from ppl_models.evaluate.samples import grid_columns, sample_suffix, save_samples

        reference = None
        if sample_suffix(path) == ".png" and len(self.config.event_shape) == 1:
            test = self._test_split(data_dir, required=False)
            reference = None if test is None else test.x
        return save_samples(self.sample(n, mean, seed, data_dir), path, grid_columns(self.model), reference)

    def sample_quality(self, n: int = 1000, seed: int = 0, batch_size: int = 100, mean: bool = False,
                       progress: bool = True, data_dir: str | None = None) -> SampleQuality:
        """Fréchet distance, precision/recall (k=3) and label entropies of ``n`` samples beside the floor of
        held-out real images, as ``ppl eval --sample-quality`` (nothing is written): a frozen
        :class:`~ppl_models.evaluate.sample_quality.SampleQuality` (``mean=True``: decoder means)."""
        from ppl_models.evaluate.sample_quality import run_sample_quality

        return run_sample_quality(self.model, self.config, n, data_dir=data_dir, seed=seed, batch_size=batch_size,
                                  mean=mean, progress=progress)

    def diagnose(self, split: str = "test", data: str | None = None, limit: int | None = None,
                 out: str | Path | None = None, progress: bool = True, data_dir: str | None = None,
                 **settings) -> DiagnoseResult:
        """Every posterior diagnostic, as ``ppl diagnose``; ``settings`` are
        :class:`~ppl_models.diagnostics.DiagnoseConfig` fields (``samples``, ``gaps``, ``ais_steps``, ...)
        and ``gap_*`` fields of its :class:`~ppl_models.diagnostics.GapSettings`."""
        from ppl_models.diagnostics.run_diagnose import config_from, diagnose_run

        result, files = diagnose_run(self.path, split, data, limit, out, config_from(**settings), data_dir,
                                     self.device, progress)
        return DiagnoseResult(result.summary, tuple(files))

    def complete(self, masks: str | list[str], out: str | Path, methods: str | list[str] | None = None,
                 with_runs: tuple[str | Path, ...] = (), limit: int | None = 100, split: str = "test",
                 data_dir: str | None = None, **settings) -> CompletionReport:
        """Complete ``limit`` test images under each mask, as ``ppl complete RUN [OTHER ...]``: every method
        in ``methods`` (default all) on this run and ``with_runs`` (e.g. a PixelCNN run, CVAE runs trained
        for the masks); ``settings`` are :class:`~ppl_models.completion.CompletionSettings` fields."""
        return complete_runs([self.path, *with_runs], masks, out, methods, limit=limit, split=split,
                             data_dir=data_dir, device=self.device, **settings)

    def _test_split(self, data_dir: str | None, required: bool):
        """The run's test split (checked against its event shape); where not ``required``, None if it
        cannot be loaded or has another shape."""
        from ppl_models.data import load_data
        from ppl_models.models.protocol import check_event_shape

        t = self.config.train
        try:
            test = load_data(t.data, data_dir, t.valid_data, t.test_data).test
            check_event_shape(test.x, self.config.event_shape, f"{t.data}/test", f"the run {self.path} was trained on")
        except (ValueError, OSError):
            if required:
                raise
            return None
        return test


def load(path: str | Path, device: str = "cpu", checkpoint: str = "best") -> Run:
    """Load any run directory (made by :func:`train` or ``ppl train``): its config and its best checkpoint
    (``best.pt``; the newest for a run without one), or ``checkpoint="latest"`` or a file."""
    return Run(path, device, checkpoint)


def train(model: str | type | None = None, data: str | None = None, out: str | Path = "runs/run", *,
          config: str | Path | None = None, resume: bool = False, guide: dict[str, Any] | None = None,
          data_dir: str | None = None, progress: bool = True, verbose: bool = False, **settings) -> Run:
    """Train ``model`` on ``data`` into the run directory ``out`` and return the loaded :class:`Run`.

    Args:
        model: a registered name (``ppl models`` lists them), ``"path/to/file.py:NAME"``, or a
            registered model class (may be left out when ``config`` names it).
        data: a dataset name (default ``digits``) or a ``.npy``/``.npz``/``.pt`` training file.
        out: the run directory.
        config: a ``.toml`` or ``.json`` file of settings, or a run's ``config.json`` to repeat that
            run (:mod:`ppl_models.train.config_file`); the other arguments override it.
        resume: continue the run in ``out`` from its newest checkpoint.
        guide: :class:`guides.config.GuideConfig` fields (``family``, ``hidden``, ``rank``, ``flows``).
        data_dir: dataset directory override.
        progress: show a progress bar.
        verbose: print a line per epoch.
        **settings: any :class:`~ppl_models.train.config.TrainConfig` field (``epochs``, ``lr``,
            ``objective``, ``strategy``, ``valid_data`` ...) or field of the model's config
            (``latent_dim``, ``hidden``, ...); an unknown name is an error listing the valid ones.
    """
    from ppl_models.evaluate.samples import save_sample_grids
    from ppl_models.train.configure import configure_run
    from ppl_models.train.distributed import is_writer
    from ppl_models.train.loop import fit

    if config is not None:
        from ppl_models.train.config_file import read_config_file

        file = read_config_file(config, None if model is None else _model_name(model))
        model, guide = file.model, {**file.guide, **(guide or {})}
        settings = {**file.train, **file.model_fields, **{k: v for k, v in settings.items() if v is not None}}
    if model is None:
        raise ValueError("train needs a model: a name, path.py:NAME, a registered class, or a config file naming one")
    train_fields = {k: v for k, v in settings.items() if k in TRAIN_FIELDS and v is not None}
    if data is not None:
        train_fields["data"] = data
    model_fields = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()
                    if k not in TRAIN_FIELDS and v is not None}
    run_dir = RunDir(out)
    config, dataset = configure_run(_model_name(model), run_dir, train_fields, model_fields, data_dir, resume, guide)
    fit(run_dir, config, dataset, resume=resume, progress=progress, verbose=verbose)
    run = Run(run_dir.path, config.train.device)  # the best epoch's model (best.pt), which eval uses too
    if is_writer():  # under torchrun, rank 0 writes the sample grids
        run.sample_files = tuple(save_sample_grids(run.model, run_dir.path / "samples", n=64, data=dataset.test))
    return run


def compare_inference(out: str | Path, *, resume: bool = False, data_dir: str | None = None, progress: bool = True,
                      **settings) -> CompareResult:
    """Train and evaluate several inference strategies on one model and dataset, as ``ppl compare-inference``;
    ``settings`` are :class:`~ppl_models.inference.compare.CompareConfig` fields (``model``, ``data``,
    ``strategies``, ``epochs``, ``gaps``, ...). Writes results.json, .csv, .md and validation.png into ``out``."""
    from ppl_models.inference.compare import CompareConfig
    from ppl_models.inference.compare import compare_inference as run_comparison
    from ppl_models.inference.report import write_results

    if isinstance(settings.get("strategies"), str):
        settings["strategies"] = tuple(s.strip() for s in settings["strategies"].split(",") if s.strip())
    results = run_comparison(CompareConfig(**settings), out, resume=resume, data_dir=data_dir, progress=progress)
    files = write_results(results, out)
    return CompareResult(tuple(results["rows"]), results["curves"], results, tuple(files))


def complete_runs(runs: list[str | Path], masks: str | list[str], out: str | Path, methods: str | list[str] | None = None,
                  *, limit: int | None = 100, split: str = "test", data_dir: str | None = None, device: str = "cpu",
                  **settings) -> CompletionReport:
    """Complete test images of the runs under each mask with every method, as ``ppl complete``; ``settings``
    are :class:`~ppl_models.completion.CompletionSettings` fields (``samples``, ``num_particles``, ...).
    For a model and images in memory, :func:`ppl_models.completion.complete` is the Python door."""
    from ppl_models.completion.method import CompletionSettings
    from ppl_models.completion.run_complete import complete_runs as run_completion

    masks = [masks] if isinstance(masks, str) else list(masks)
    results, files = run_completion(runs, masks, out, methods, split, limit, CompletionSettings(**settings), data_dir,
                                    device)
    return CompletionReport(tuple(results["rows"]), results, tuple(files))
