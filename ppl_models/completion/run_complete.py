"""``ppl complete``: complete the test images of one or more run directories under named masks, write
``completion.json``/``.csv``/``.md`` and a figure per mask."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence

import torch

from ppl_models.completion.complete import CompletionResult, check_request, complete, method_names
from ppl_models.completion.figures import save_completion_figure, save_pixels_figure
from ppl_models.completion.masks import parse_mask
from ppl_models.completion.method import CompletionSettings
from ppl_models.completion.report import markdown
from ppl_models.paths import inside
from ppl_models.result_files import write_result_files


def mask_slug(spec: str) -> str:
    """A file-name-safe form of a mask's name: ``quadrants:1`` -> ``quadrants-1``, ``m/x.npy`` -> ``file-x``."""
    if spec.endswith(".npy"):
        spec = "file-" + Path(spec).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-")


def load_runs(runs: Sequence[str | os.PathLike], device: str) -> dict[str, tuple]:
    """``{run path: (config, model)}`` for each run directory (its best checkpoint); all must have been
    trained on the same dataset and image shape (a ValueError names the first that was not)."""
    from ppl_models.train.run import RunDir

    loaded: dict[str, tuple] = {}
    for path in runs:
        config, model, _ = RunDir(Path(path)).load_model_from("best", device)
        model.eval()
        loaded[str(path)] = (config, model)
    first, (config0, _) = next(iter(loaded.items()))
    for path, (config, _) in loaded.items():
        if (config.train.data, tuple(config.event_shape)) != (config0.train.data, tuple(config0.event_shape)):
            raise ValueError(f"run {path} was trained on {config.train.data} {list(config.event_shape)}, but run {first} "
                             f"on {config0.train.data} {list(config0.event_shape)}: complete runs of one dataset")
    return loaded


def _classifier(event_shape: tuple[int, ...], data_dir: str | None, progress: bool):
    from ppl_models.evaluate.classifier import load_classifier

    try:
        return load_classifier(event_shape, data_dir, progress=progress)
    except ValueError as e:
        return f"not applicable: {e}"


def _pixels_phis(result: CompletionResult) -> list | None:
    """Rows of the pixels figure, (label, phi), for the first model the pixels method ran on, labelled
    with the bounds that method already estimated (its ``extra``)."""
    keys = [key for key in result.completions if key[1] == "pixels"]
    if not keys:
        return None
    c = result.completions[keys[0]]
    return [(f"phi = 0.5\nbound {c.extra['bound_phi_half']:.1f}", torch.full_like(result.x, 0.5)),
            (f"phi = 1\nbound {c.extra['bound_phi_one']:.1f}", torch.ones_like(result.x)),
            (f"fitted phi\nbound {c.extra['bound_fitted']:.1f}", c.mean)]


def complete_runs(runs: Sequence[str | os.PathLike], masks: Sequence[str], out: str | os.PathLike,
                  methods: str | Sequence[str] | None = None, split: str = "test", limit: int | None = 100,
                  settings: CompletionSettings = CompletionSettings(), data_dir: str | None = None,
                  device: str = "cpu") -> tuple[dict, list[Path]]:
    """Complete ``limit`` evenly spread images of the runs' ``split`` under each mask with every method.

    Grey data of runs trained with ``--binarize dynamic`` are binarized once (seeded), as ``ppl eval``
    does. Writes ``OUT/completion.json``, ``.csv`` and ``.md``, ``OUT/<mask>.png`` (originals,
    masked inputs, each method's mean and draws) and, where the ``pixels`` method ran,
    ``OUT/pixels-<mask>.png`` (phi = 0.5, phi = 1 and the fitted phi with their bounds).

    Args:
        runs: run directories (e.g. a VAE, a PixelCNN and CVAEs trained for the masks).
        masks: mask names or ``.npy`` files (:mod:`ppl_models.completion.masks`).
        out: the output directory.
        methods: method names, or ``None``/``"all"``.
        split: the split to complete.
        limit: how many images (evenly spread); ``None``: the whole split.
        settings: how hard each method works.
        data_dir: dataset directory override.
        device: where the models run.

    Returns:
        The results (as in ``completion.json``) and the files written.
    """
    from ppl_models.evaluate.run_eval import load_eval_data
    from ppl_models.models.protocol import check_observations
    from ppl_models.train.setup import resolve_device

    device = str(resolve_device(device))
    names = method_names(methods)
    loaded = load_runs(runs, device)
    first, (config, model) = next(iter(loaded.items()))
    data = load_eval_data(config, model, split, None, limit, data_dir, device, settings.seed, first)
    for path, (_, other) in loaded.items():
        check_observations(other, data.x, None, f"{data.where} (for run {path})")
    event_shape, n = tuple(config.event_shape), data.x.shape[0]
    parsed = [parse_mask(spec, event_shape, n, settings.seed) for spec in masks]  # every mask checked before work
    for mask in parsed:
        check_request(names, mask.per_image(n), mask.name)
    classifier = _classifier(event_shape, data_dir, settings.progress)
    models = {path: m for path, (_, m) in loaded.items()}
    rows, files = [], []
    for spec, mask in zip(masks, parsed):
        result = complete(models, data.x, mask.per_image(n), names, settings, spec, classifier)
        rows += [r.to_json() for r in result.rows]
        hidden_share = float(mask.per_image(n).float().mean())  # quadrants:N names what stays visible
        title = f"{config.train.data} {split}: mask {spec}, {hidden_share:.0%} of the pixels hidden"
        if result.completions:
            files.append(save_completion_figure(inside(out, f"{mask_slug(spec)}.png"), result.x, result.hidden,
                                                result.completions, title))
        phis = _pixels_phis(result)
        if phis is not None:
            files.append(save_pixels_figure(inside(out, f"pixels-{mask_slug(spec)}.png"), result.x, result.hidden,
                                            phis, f"{title}: mean-field q(x_hidden; phi)"))
    results = {"data": config.train.data, "split": split, "n": int(data.x.shape[0]), "runs": list(loaded),
               "masks": list(masks), "methods": names, "settings": dataclasses.asdict(settings),
               "classifier": classifier.info() if not isinstance(classifier, str) else classifier, "rows": rows}
    files = write_result_files(out, results, rows, markdown(results), stem="completion") + files
    return results, files
