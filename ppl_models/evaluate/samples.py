"""Samples from the generative model: PNG grids of images, pairs plots of vectors, and sample files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from pyro import poutine

from ppl_models.atomic import atomic_savefig, atomic_write
from ppl_models.evaluate.checks import at_least
from ppl_models.models.protocol import label_use

MIN_CELL_PIXELS = 28  # small images (8x8 digits) are enlarged to at least this size per cell
SAMPLE_SUFFIXES = (".png", ".npy", ".pt")  # what `ppl sample --out` can write
MAX_REFERENCE_POINTS = 1000  # reference data drawn in a pairs plot, evenly spread over the split


def grid_columns(model) -> int | None:
    """Columns of a sample grid: one per class for a model that uses labels and declares
    ``config.classes`` (its samples cycle through the classes, so each column shows one class),
    else None (a square grid)."""
    classes = getattr(getattr(model, "config", None), "classes", None)
    return classes if label_use(model) is not None and isinstance(classes, int) and classes > 0 else None


def sample_inputs(model, data, n: int) -> dict:
    """The keyword arguments ``model.model`` needs to draw ``n`` samples: ``model.sample_inputs(data, n)``
    for a model that defines it (a conditional model's labels, or the images it completes), else none.

    Args:
        model: the model module.
        data: a :class:`ppl_models.data.Split` the inputs may be taken from (e.g. the test split), or None.
        n: number of samples.
    """
    if not hasattr(model, "sample_inputs"):
        return {}
    inputs = model.sample_inputs(data, n)
    device = next(iter(model.parameters()), torch.zeros(())).device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}


@torch.no_grad()
def sample_observations(model, n: int, mean: bool = False, data=None) -> torch.Tensor:
    """Draw ``n`` observations from the model's prior predictive, x ~ p(x | z), z ~ p(z).

    Args:
        model: a module with a Pyro ``model(x=None, batch_size=n)`` and ``observed_sites``.
        n: how many.
        mean: return the decoder mean E[x | z] instead of a draw. The mean is smooth, while a draw
            carries the pixel noise of the likelihood; both are worth looking at. A distribution
            without a closed-form mean that offers ``conditional_mean(x)`` (an autoregressive
            image) gives the mean of each pixel's conditional along the draw, E[x_i | x_<i drawn].
        data: a split to take :func:`sample_inputs` from, for models that need inputs to sample.
    """
    at_least(n, "-n")
    trace = poutine.trace(model.model).get_trace(None, batch_size=n, **sample_inputs(model, data, n))
    site = trace.nodes[model.observed_sites[0]]
    if mean and hasattr(site["fn"], "conditional_mean"):  # no closed-form mean: the conditionals' along the draw
        return site["fn"].conditional_mean(site["value"])
    return site["fn"].mean if mean else site["value"]


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> torch.Tensor:
    """Tile ``images`` ``[n, H, W]`` (values clipped to [0, 1]) into one ``[rows*H', cols*W']`` image."""
    if images.dim() != 3:
        raise ValueError(f"expected grey images of shape [n, H, W], got {tuple(images.shape)}")
    n, h, w = images.shape
    scale = max(1, math.ceil(MIN_CELL_PIXELS / max(h, w)))
    images = images.clamp(0, 1).repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    h, w = h * scale, w * scale
    ncol = nrow or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    grid = torch.ones(nrows * (h + pad) + pad, ncol * (w + pad) + pad)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save ``images`` ``[n, H, W]`` in [0, 1] as a PNG grid (white digits on black, as in MNIST)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = image_grid(images.detach().float().cpu(), nrow)
    buffer = io.BytesIO()
    Image.fromarray((grid * 255).round().to(torch.uint8).numpy(), mode="L").save(buffer, format="png")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def save_pairs_plot(samples: torch.Tensor, path: str | Path, reference: torch.Tensor | None = None,
                    dims: int = 5) -> Path:
    """Save a pairs plot of vector samples ``[n, D]`` as a PNG: scatter plots of each pair of the
    first ``dims`` coordinates, with histograms on the diagonal.

    Args:
        samples: ``[n, D]`` model samples, drawn in blue.
        path: the PNG to write (atomically).
        reference: ``[N, D]`` data to compare with (e.g. the test split), drawn in orange; at most
            :data:`MAX_REFERENCE_POINTS` of them, evenly spread.
        dims: how many leading coordinates to plot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if samples.dim() != 2:
        raise ValueError(f"expected vector samples of shape [n, D], got {tuple(samples.shape)}")
    k = max(1, min(dims, samples.shape[1]))
    groups = [("samples", samples, "tab:blue")]
    if reference is not None:
        reference = reference.reshape(reference.shape[0], -1)
        step = max(1, math.ceil(reference.shape[0] / MAX_REFERENCE_POINTS))
        groups.append(("test data", reference[::step], "tab:orange"))
    groups = [(label, x[:, :k].detach().float().cpu().numpy(), color) for label, x, color in groups]

    fig = Figure(figsize=(max(3.0, 2.2 * k), max(3.0, 2.2 * k)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(k, k, squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if i == j:
                bins = np.histogram_bin_edges(np.concatenate([x[:, i] for _, x, _ in groups]), bins=20)
                for label, x, color in groups:
                    ax.hist(x[:, i], bins=bins, density=True, color=color, alpha=0.5, label=label)
            else:
                for label, x, color in groups:
                    ax.scatter(x[:, j], x[:, i], s=4, color=color, alpha=0.5, label=label)
            if i == k - 1:
                ax.set_xlabel(f"x[{j}]")
            if j == 0:
                ax.set_ylabel(f"x[{i}]")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper right", fontsize=8)
    fig.suptitle(f"first {k} of {samples.shape[1]} coordinates, {samples.shape[0]} samples", fontsize=9)
    return atomic_savefig(fig, path, dpi=100)


def save_sample_plot(samples: torch.Tensor, path: str | Path, nrow: int | None = None,
                     reference: torch.Tensor | None = None) -> Path:
    """Save a PNG of samples: a pairs plot for vectors ``[n, D]`` (with ``reference`` data when
    given), else a grid of images (see :func:`as_images`) with ``nrow`` columns."""
    if samples.dim() == 2:
        return save_pairs_plot(samples, path, reference)
    return save_grid(as_images(samples), path, nrow)


def sample_suffix(path: str | Path) -> str:
    """The suffix of a samples file ``path`` (one of :data:`SAMPLE_SUFFIXES`); a ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        named = f"unknown suffix {suffix!r}" if suffix else "no suffix"
        raise ValueError(f"{path}: {named}; samples are written to .png (a picture), .npy or .pt "
                         "(the samples themselves)")
    return suffix


def save_samples(samples: torch.Tensor, path: str | Path, nrow: int | None = None,
                 reference: torch.Tensor | None = None) -> Path:
    """Write samples ``[n, *event_shape]`` to ``path`` as its suffix says, atomically.

    ``.npy`` (``numpy.save``, no pickle) and ``.pt`` (a plain float32 tensor that
    ``torch.load(weights_only=True)`` reads) hold the samples themselves; ``.png`` is a picture of
    them (:func:`save_sample_plot`, with ``nrow`` and ``reference``).
    """
    suffix = sample_suffix(path)
    if suffix == ".png":
        return save_sample_plot(samples, path, nrow, reference)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = samples.detach().to("cpu", torch.float32).contiguous().clone()
    if suffix == ".npy":
        atomic_write(path, lambda f: np.save(f, values.numpy(), allow_pickle=False))
    else:
        atomic_write(path, lambda f: torch.save(values, f))
    return path


def save_sample_grids(model, directory: str | Path, n: int = 64, data=None) -> list[Path]:
    """Save ``mean.png`` (decoder means) and ``draws.png`` (x ~ p(x | z)) pictures of ``n`` samples.

    Images are drawn as grids; vectors ``[D]`` as pairs plots (:func:`save_pairs_plot`), with
    ``data.x`` for comparison when its observations have the samples' shape. ``data`` is also the
    split :func:`sample_inputs` may draw from.
    """
    directory = Path(directory)
    paths = []
    for name, mean in (("mean", True), ("draws", False)):
        samples = sample_observations(model, n, mean=mean, data=data)
        reference = data.x if data is not None and data.x.shape[1:] == samples.shape[1:] else None
        paths.append(save_sample_plot(samples, directory / f"{name}.png", grid_columns(model), reference))
    return paths


def as_images(samples: torch.Tensor) -> torch.Tensor:
    """``[n, H, W]`` images from samples ``[n, H, W]`` or ``[n, D]``; other shapes are flattened to ``[n, 1, D]``."""
    if samples.dim() == 3:
        return samples
    return samples.reshape(samples.shape[0], 1, -1)
