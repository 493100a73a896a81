"""Masked convolutions, the building block of autoregressive image networks (van den Oord et al. 2016).

A causal mask keeps a kernel's rows above the centre and, on the centre row, the columns left of
it; type ``"A"`` also hides the centre (the input layer: pixel i must not see x_i), type ``"B"``
keeps it (later layers, whose features at i already depend on x_<i alone). The mask multiplies
the weight in the forward pass (``F.conv2d(x, weight * mask)``); nothing mutates ``.data``, so
autograd, ``torch.compile`` and gradient checks see the masked layer as it is.

One-channel images need no masks between channel groups: every input channel of a type-A layer is
the pixel itself, and after it every channel at pixel i depends on x_<i only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MASK_TYPES = ("A", "B")


def causal_mask(height: int, width: int, mask_type: str) -> torch.Tensor:
    """The ``[height, width]`` 0/1 mask of a raster-order causal kernel centred on the current pixel.

    Args:
        height: kernel rows (odd).
        width: kernel columns (odd).
        mask_type: ``"A"`` (the centre hidden) or ``"B"`` (the centre kept).
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    mask = torch.ones(height, width)
    r, c = height // 2, width // 2
    mask[r, c + (mask_type == "B"):] = 0  # the current row: the pixels to the right (and, for A, this one)
    mask[r + 1:] = 0  # the rows below
    return mask


class MaskedConv2d(nn.Conv2d):
    """A same-size 2-D convolution whose weight is multiplied by a causal mask in the forward pass.

    Args:
        in_channels, out_channels: as ``nn.Conv2d``.
        kernel: the kernel size, an odd int or ``(rows, cols)`` of odd ints.
        mask_type: ``"A"`` (hides the centre) or ``"B"`` (keeps it); see :func:`causal_mask`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int], mask_type: str):
        rows, cols = (kernel, kernel) if isinstance(kernel, int) else kernel
        if rows % 2 == 0 or cols % 2 == 0:
            raise ValueError(f"a masked convolution needs odd kernel sizes, got {kernel}")
        super().__init__(in_channels, out_channels, (rows, cols), padding=(rows // 2, cols // 2))
        self.mask_type = mask_type
        self.register_buffer("mask", causal_mask(rows, cols, mask_type), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of ``x [B, C, H, W]`` with weight ``weight * mask``."""
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)
