"""Write a model comparison: ``results.md``, ``results.csv``, ``results.json``, one sample grid per
model (``samples/<name>.png``) and all grids side by side (``samples.png``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ppl_models.atomic import atomic_savefig
from ppl_models.evaluate.samples import image_grid, save_grid
from ppl_models.paths import inside
from ppl_models.result_files import write_result_files

# (row key, column title, format) of the table; a value that is text (e.g. "no likelihood") is printed as is,
# and the format "ms" shows seconds as milliseconds
COLUMNS = [
    ("model", "model", "{}"),
    ("family", "family", "{}"),
    ("test_nll", "test NLL (nats)", "{:.2f}"),
    ("nll_method", "NLL by", "{}"),
    ("likelihood", "pixel likelihood", "{}"),
    ("bits_per_dim", "bits/dim", "{:.4f}"),
    ("fd", "Fréchet distance", "{:.2f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("label_entropy", "H(y) (nats)", "{:.3f}"),
    ("mean_entropy", "mean H(y\\|x)", "{:.3f}"),
    ("s_per_epoch", "train s/epoch", "{:.3g}"),
    ("train_s", "train s", "{:.0f}"),
    ("sample_s_per_image", "sample ms/image", "ms"),
    ("parameters", "parameters", "{:,}"),
]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key, "")
    if isinstance(value, str) or value is None:
        return value or ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if fmt == "ms":  # seconds shown as milliseconds, 3 significant digits
        return f"{1000 * value:.3g}"
    return fmt.format(value)


def _columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [c for c in COLUMNS if any(c[0] in r for r in rows)]


def markdown(results: dict[str, Any]) -> str:
    """The comparison as a Markdown table, the real-data floor as its last row, and its notes."""
    cfg, rows = results["config"], results["rows"]
    table_rows = [*rows, results["floor"]]
    cols = _columns(table_rows)
    n, clf = results["n_quality"], results["classifier"]
    lines = [
        f"# Model comparison on {cfg['data']}",
        "",
        f"{cfg['epochs']} epochs each, seed {cfg['seed']}, batch {cfg['batch_size']}, {results['n_train']} training "
        f"images; test NLL on {results['n_test']} test images. Sample quality from N = {n} samples per model "
        f"against N = {n} real reference images ({results['reference']}), in the feature space of the suite's "
        f"digit classifier (trained on {clf.get('source')}, held-out accuracy {clf.get('accuracy', float('nan')):.3f}). "
        f"The last row is N held-out real images ({results['floor_from']}) against the same reference: the floor a "
        "perfect model would reach (lower Fréchet distance is better; precision and recall near the floor's).",
        *([f"Note: {results['note']}."] if results.get("note") else []),
        "",
        "| " + " | ".join(t for _, t, _ in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(_cell(r, k, f) for k, _, f in cols) + " |" for r in table_rows]
    return "\n".join(lines) + "\n"


def save_side_by_side(samples: dict[str, torch.Tensor], path: Path, per_model: int = 36) -> Path:
    """One figure with every model's sample grid side by side (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(samples), figsize=(2.6 * len(samples), 3), squeeze=False)
    for ax, (name, images) in zip(axes[0], samples.items()):
        ax.imshow(image_grid(images[:per_model].float()).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    try:
        return atomic_savefig(fig, path, dpi=120)
    finally:
        plt.close(fig)


def write_results(results: dict[str, Any], out: str | Path) -> list[Path]:
    """Write the table (``results.md``, ``.csv``, ``.json``) and the sample figures into ``out``."""
    plain = {k: v for k, v in results.items() if k != "samples"}  # the images go to the figures
    paths = write_result_files(out, plain, [*results["rows"], results["floor"]], markdown(results))
    for name, images in results["samples"].items():
        paths.append(save_grid(images[:64].float(), inside(out, "samples", f"{name}.png")))
    paths.append(save_side_by_side(results["samples"], inside(out, "samples.png")))
    return paths
