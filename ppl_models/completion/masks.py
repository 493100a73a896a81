"""Which pixels of an image are missing: masks for image completion, from a name or a file.

A mask is a boolean tensor, True where a pixel is **hidden** (missing, to be completed) and False
where it is observed. It has one image's shape ``[H, W]`` (the same pixels hidden in every image)
or ``[N, H, W]`` (one per image). The names say what is hidden:

- ``top-half``, ``bottom-half``, ``left-half``, ``right-half``: that half is hidden (``top-half`` is
  the CS236 notes' example: complete the top of a digit from its bottom);
- ``quadrants:N`` (N = 1, 2, 3): all but N quadrants are hidden, the visible ones as in Pyro's CVAE
  tutorial (1: the bottom-left quadrant; 2: the left half; 3: all but the bottom-right), so our
  figures sit beside its table;
- ``random:P``: each pixel of each image hidden independently with probability P (seeded);
- ``path.npy``: a boolean array ``[H, W]`` or ``[N, H, W]`` saved with NumPy, True = hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

MASK_HELP = "top-half | bottom-half | left-half | right-half | quadrants:N (N=1,2,3 visible) | random:P | file.npy"

HALVES: dict[str, Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]] = {  # hidden region
    "top-half": lambda r, c, h, w: r < h // 2,
    "bottom-half": lambda r, c, h, w: r >= h // 2,
    "left-half": lambda r, c, h, w: c < w // 2,
    "right-half": lambda r, c, h, w: c >= w // 2,
}
QUADRANTS_VISIBLE: dict[int, Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]] = {
    1: lambda r, c, h, w: (r >= h // 2) & (c < w // 2),  # bottom-left
    2: lambda r, c, h, w: c < w // 2,  # left half
    3: lambda r, c, h, w: (r < h // 2) | (c < w // 2),  # all but bottom-right
}


@dataclass(frozen=True)
class Mask:
    """A named mask: which pixels of which images are hidden."""

    name: str  # the spec it came from: "top-half", "quadrants:1", "random:0.5" or the file's path
    hidden: torch.Tensor  # bool [H, W] or [N, H, W]: True where a pixel is missing

    def per_image(self, n: int) -> torch.Tensor:
        """The mask as ``[n, H, W]`` (a shared mask repeated; a per-image mask as is)."""
        return self.hidden.expand(n, *self.hidden.shape[-2:]) if self.hidden.dim() == 2 else self.hidden


def _grid(event_shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    h, w = event_shape
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return rows, cols, h, w


def parse_mask(spec: str, event_shape: tuple[int, ...], n: int | None = None, seed: int = 0) -> Mask:
    """The mask named by ``spec`` (see the module docstring) for images of ``event_shape`` ``[H, W]``.

    Args:
        spec: a mask name or a ``.npy`` file.
        event_shape: one image's shape ``(H, W)``.
        n: the number of images (needed by ``random:P``, and checked against a per-image file).
        seed: the seed of ``random:P``.

    Raises:
        ValueError: an unknown name, a bad N or P, or a file that is not a boolean array of the
            right shape (naming the spec and what was found).
    """
    event_shape = tuple(int(s) for s in event_shape)
    if len(event_shape) != 2:
        raise ValueError(f"mask {spec!r}: image completion needs one-channel images [H, W], got observations "
                         f"of shape {list(event_shape)}")
    if spec in HALVES:
        return Mask(spec, HALVES[spec](*_grid(event_shape)))
    if match := re.fullmatch(r"quadrants:(\S+)", spec):
        try:
            visible = QUADRANTS_VISIBLE[int(match.group(1))]
        except (ValueError, KeyError):
            raise ValueError(f"mask {spec!r}: quadrants:N shows N = 1, 2 or 3 quadrants, got {match.group(1)!r}") from None
        return Mask(spec, ~visible(*_grid(event_shape)))
    if match := re.fullmatch(r"random:(\S+)", spec):
        try:
            p = float(match.group(1))
        except ValueError:
            p = float("nan")
        if not 0 < p <= 1:
            raise ValueError(f"mask {spec!r}: random:P hides each pixel with probability P in (0, 1], "
                             f"got {match.group(1)!r}")
        if n is None:
            raise ValueError(f"mask {spec!r}: a random mask needs the number of images")
        g = torch.Generator().manual_seed(seed)
        return Mask(spec, torch.rand(n, *event_shape, generator=g) < p)
    if spec.endswith(".npy"):
        return Mask(spec, load_mask_file(spec, event_shape, n))
    raise ValueError(f"unknown mask {spec!r}; choose one of {MASK_HELP}")


def load_mask_file(path: str | Path, event_shape: tuple[int, ...], n: int | None = None) -> torch.Tensor:
    """A boolean mask ``[H, W]`` or ``[N, H, W]`` from a ``.npy`` file (no pickles), checked by :func:`check_mask`."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"mask file {path}: no such file") from None
    except ValueError as e:  # object arrays need pickles, which are refused
        raise ValueError(f"mask file {path}: not a plain NumPy array ({e})") from None
    hidden = torch.from_numpy(np.ascontiguousarray(array))
    check_mask(hidden, event_shape, n, where=f"mask file {path}")
    return hidden


def check_mask(hidden: torch.Tensor, event_shape: tuple[int, ...], n: int | None = None,
               where: str = "mask") -> None:
    """Raise ``ValueError`` naming ``where`` unless ``hidden`` is a boolean tensor of shape ``event_shape``
    or ``[n, *event_shape]``.

    Args:
        hidden: the mask, True where a value is missing.
        event_shape: one observation's shape.
        n: the number of observations (``None``: any leading size is accepted).
        where: what the mask is, for the message.
    """
    if not torch.is_tensor(hidden) or hidden.dtype != torch.bool:
        found = hidden.dtype if torch.is_tensor(hidden) else type(hidden).__name__
        raise ValueError(f"{where}: a mask must be boolean (True = hidden), got {found}; "
                         f"convert with `mask.astype(bool)` / `mask.bool()`")
    event_shape = tuple(event_shape)
    shared = tuple(hidden.shape) == event_shape
    per_image = tuple(hidden.shape[1:]) == event_shape and hidden.dim() == len(event_shape) + 1
    if not (shared or per_image) or (per_image and n is not None and hidden.shape[0] != n):
        expected = f"{list(event_shape)}" + (f" or {[n, *event_shape]}" if n is not None else " or [N, ...]")
        raise ValueError(f"{where}: the mask has shape {list(hidden.shape)}, but the images need {expected}")


def require_hidden(hidden: torch.Tensor, method: str, where: str = "mask") -> None:
    """Raise ``ValueError`` naming ``where`` and ``method`` if ``hidden`` hides no pixel at all."""
    if not bool(hidden.any()):
        raise ValueError(f"{where} hides nothing: {method} completion needs at least one hidden pixel")
