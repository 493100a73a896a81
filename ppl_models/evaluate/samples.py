"""Samples from the generative model and PNG grids of them."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from pyro import poutine

from ppl_models.evaluate.checks import at_least
from ppl_models.models.protocol import label_use

MIN_CELL_PIXELS = 28  # small images (8x8 digits) are enlarged to at least this size per cell


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
            carries the pixel noise of the likelihood; both are worth looking at.
        data: a split to take :func:`sample_inputs` from, for models that need inputs to sample.
    """
    at_least(n, "-n")
    trace = poutine.trace(model.model).get_trace(None, batch_size=n, **sample_inputs(model, data, n))
    site = trace.nodes[model.observed_sites[0]]
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
    Image.fromarray((grid * 255).round().to(torch.uint8).numpy(), mode="L").save(path)
    return path


def save_sample_grids(model, directory: str | Path, n: int = 64, data=None) -> list[Path]:
    """Save ``mean.png`` (decoder means) and ``draws.png`` (x ~ p(x | z)) grids of ``n`` samples.

    Observations that are not images (vectors ``[D]``) are drawn as one-pixel-high strips;
    ``data`` is the split :func:`sample_inputs` may draw from.
    """
    directory = Path(directory)
    return [save_grid(as_images(sample_observations(model, n, mean=m, data=data)), directory / f"{name}.png",
                      grid_columns(model)) for name, m in (("mean", True), ("draws", False))]


def as_images(samples: torch.Tensor) -> torch.Tensor:
    """``[n, H, W]`` images from samples ``[n, H, W]`` or ``[n, D]``; other shapes are flattened to ``[n, 1, D]``."""
    if samples.dim() == 3:
        return samples
    return samples.reshape(samples.shape[0], 1, -1)
