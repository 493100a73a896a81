"""Completion figures: per mask, the originals, the masked inputs and each method's completions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ppl_models.atomic import atomic_savefig
from ppl_models.completion.method import Completion

HIDDEN_RGB = (0.85, 0.25, 0.25)  # how a hidden pixel is drawn in the masked input


def _rgb(image: torch.Tensor, hidden: torch.Tensor | None = None) -> np.ndarray:
    """A grey image [H, W] as RGB [H, W, 3], hidden pixels in HIDDEN_RGB."""
    grey = image.detach().float().clamp(0, 1).cpu().numpy()
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if hidden is not None:
        rgb[hidden.cpu().numpy()] = HIDDEN_RGB
    return rgb


def _label(c: Completion, model: str, several_models: bool) -> str:
    name = c.method + (f" · {c.variant}" if c.variant else "")
    return f"{name}\n({model})" if several_models else name


def save_completion_figure(path: str | Path, x: torch.Tensor, hidden: torch.Tensor,
                           completions: dict[tuple[str, str, str], Completion], title: str, columns: int = 8,
                           draws: int = 2) -> Path:
    """Save a PNG grid: a column per image (the first ``columns``); rows: the originals, the masked
    inputs (hidden pixels in red), then per completion row its predictive mean and ``draws`` draws.

    Args:
        path: the PNG (written atomically).
        x: the images ``[N, H, W]``.
        hidden: the mask ``[N, H, W]``.
        completions: ``(model, method, variant) -> Completion``, in the table's order.
        title: the figure's title (e.g. the mask and the data).
        columns: how many images to show.
        draws: completions drawn per method row.
    """
    k = min(columns, x.shape[0])
    models = {key[0] for key in completions}
    rows: list[tuple[str, list[np.ndarray]]] = [
        ("original", [_rgb(x[i]) for i in range(k)]),
        ("masked input", [_rgb(x[i], hidden[i]) for i in range(k)]),
    ]
    for (model, _, _), c in completions.items():
        label = _label(c, model, len(models) > 1)
        rows.append((f"{label}\nmean", [_rgb(c.mean[i]) for i in range(k)]))
        for d in range(min(draws, c.draws.shape[0])):
            rows.append((f"draw {d + 1}", [_rgb(c.draws[d, i]) for i in range(k)]))
    return _save_grid(path, rows, title)


def save_pixels_figure(path: str | Path, x: torch.Tensor, hidden: torch.Tensor, phis: list[tuple[str, torch.Tensor]],
                       title: str, columns: int = 8) -> Path:
    """Save the CS236 notes' picture of the ``pixels`` method: the masked inputs, then one row per
    mean-field q(x_hidden; phi) (e.g. phi = 0.5, phi = 1, the fitted phi), each drawn as phi at the
    hidden pixels pasted into the observed ones, labelled with its conditional bound.

    Args:
        path: the PNG (written atomically).
        x: the images ``[N, H, W]``.
        hidden: the mask ``[N, H, W]``.
        phis: ``(label, phi [N, H, W])`` per row, e.g. ``("phi = 0.5\\nbound -80.1", ...)``.
        title: the figure's title.
        columns: how many images to show.
    """
    k = min(columns, x.shape[0])
    rows = [("masked input", [_rgb(x[i], hidden[i]) for i in range(k)])]
    for label, phi in phis:
        shown = torch.where(hidden, phi.expand_as(x), x)
        rows.append((label, [_rgb(shown[i]) for i in range(k)]))
    return _save_grid(path, rows, title)


def _save_grid(path: str | Path, rows: list[tuple[str, list[np.ndarray]]], title: str) -> Path:
    """Paint ``rows`` of ``(label, images)`` as a grid with the labels on the left and save it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    longest = max(len(line) for label, _ in rows for line in label.splitlines())
    cell, margin, k = 0.62, max(1.0, 0.06 * longest + 0.2), max(len(images) for _, images in rows)
    width, height = margin + 0.1 + cell * k, 0.5 + cell * len(rows)
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), k, left=margin / width, right=1 - 0.05 / width, top=1 - 0.45 / height,
                            bottom=0.05 / height, wspace=0.05, hspace=0.08)
    for r, (label, images) in enumerate(rows):
        for i, image in enumerate(images):
            ax = fig.add_subplot(grid[r, i])
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=9, y=1 - 0.1 / height, va="top")
    return atomic_savefig(fig, path, dpi=100)
