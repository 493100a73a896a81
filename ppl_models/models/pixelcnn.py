"""PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.5) and its gated
form ("Conditional Image Generation with PixelCNN Decoders", van den Oord et al. 2016, section 2).

Masked convolutions make the network causal in raster order: a type-A mask hides the centre pixel
and every pixel after it (the input layer: pixel i must not see x_i), a type-B mask hides only the
pixels after the centre (later layers, whose centre features already depend on x_<i alone). The
mask multiplies the weight in the forward pass (``F.conv2d(x, weight * mask)``); nothing mutates
``.data``, so autograd, ``torch.compile`` and gradient checks see the masked layer as it is.

- ``gated=False``: a 7x7 type-A convolution, then residual blocks (ReLU, 3x3 type-B convolution,
  ReLU, 1x1 convolution, plus the input), as the paper's PixelCNN.
- ``gated=True``: the Gated PixelCNN: a vertical stack (rows above) and a horizontal stack (the
  current row, left of the pixel) with gated activations tanh(a) * sigmoid(b), the vertical stack
  feeding the horizontal one through a 1x1 convolution. The two stacks remove the blind spot of
  masked 3x3 stacks: every pixel before i is in the receptive field of pixel i.

Both end in ReLU, 1x1, ReLU, 1x1 convolutions to the pixel likelihood's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ppl_models.models.autoregressive import AutoregressiveModel, check_architecture
from ppl_models.models.masked_conv import MaskedConv2d
from ppl_models.registry import register_model


@dataclass(frozen=True)
class PixelCNNConfig:
    """Architecture of the PixelCNN. The defaults (7 blocks of 32 channels) are sized to train on a CPU."""

    channels: int = 32  # feature maps in every layer
    layers: int = 7  # residual (or gated) blocks after the type-A input layer
    kernel: int = 7  # kernel size of the type-A input convolution (odd)
    block_kernel: int = 3  # kernel size of the type-B convolution in each block (odd)
    gated: bool = False  # gated blocks with vertical and horizontal stacks (Gated PixelCNN), no blind spot
    likelihood: str = "bernoulli"  # bernoulli | categorical | logistic (pixel_likelihoods.py)

    def __post_init__(self) -> None:
        """Check the fields, naming the bad one."""
        check_architecture("pixelcnn", self, ("channels", "layers", "kernel", "block_kernel"), ("kernel", "block_kernel"))
        if not isinstance(self.gated, bool):
            raise ValueError(f"pixelcnn: gated must be true or false, got {self.gated!r}")


class ResidualBlock(nn.Module):
    """x + 1x1(ReLU(masked-B conv(ReLU(x)))): the PixelCNN residual block (van den Oord et al. 2016, fig. 5,
    with one masked convolution between the 1x1 ones' places)."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = MaskedConv2d(channels, channels, kernel, "B")
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One block on features ``[B, C, H, W]``."""
        return x + self.out(F.relu(self.conv(F.relu(x))))


def gate(h: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) for the two halves a, b of the channels of ``h``."""
    a, b = h.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` moved one row down (a zero row on top), so row r holds row r - 1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` moved one column right (a zero column on the left)."""
    return F.pad(x, (1, 0))[..., :-1]


class GatedLayer(nn.Module):
    """One layer of the Gated PixelCNN's two stacks (van den Oord et al. 2016b, fig. 2).

    Invariant after each layer: the vertical features at row r depend on the image's rows < r, and the
    horizontal features at (r, c) on the pixels before (r, c) in raster order. The vertical stack is a
    ``[k//2 + 1, k]`` convolution over rows r - k//2 .. r of its input (padded so nothing below
    enters), shifted one row down in the first layer, whose input is the image; a 1x1 convolution
    feeds it into the horizontal stack, a ``[1, k//2 + 1]`` convolution over columns <= c of its own
    row (columns < c in the first layer). Later layers add a residual connection to the horizontal stack.

    Args:
        in_channels: channels of the inputs (1 for the first layer).
        channels: channels of the outputs.
        kernel: the (odd) kernel size.
        first: the first layer (type A: the horizontal stack does not see the current pixel).
    """

    def __init__(self, in_channels: int, channels: int, kernel: int, first: bool = False):
        super().__init__()
        self.first, self.half = first, kernel // 2
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.half + 1, kernel))
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.half + 1))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(vertical, horizontal)`` features from the current ones, each ``[B, C, H, W]``."""
        k = self.half
        v_pre = self.vertical(F.pad(v, (k, k, k, 0)))  # row r from rows r - k .. r of v
        if self.first:  # on the image itself: row r may see rows < r only
            v_pre = shift_down(v_pre)
        h_in = shift_right(h) if self.first else h  # the first layer must not see the pixel itself
        h_pre = self.horizontal(F.pad(h_in, (k, 0, 0, 0))) + self.link(v_pre)
        h_out = self.out(gate(h_pre))
        return gate(v_pre), h_out if self.first else h + h_out


class PixelCNNNet(nn.Module):
    """The causal network ``x`` ``[B, H, W]`` -> outputs ``[B, H, W, outputs]`` (see the module docstring).

    Args:
        config: the architecture.
        outputs: outputs per pixel (the pixel likelihood's).
    """

    rows_above_only = True  # row r's outputs depend on rows <= r only, at any height (faster sampling)

    def __init__(self, config: PixelCNNConfig, outputs: int):
        super().__init__()
        c = config.channels
        self.gated = config.gated
        if config.gated:
            self.stacks = nn.ModuleList([GatedLayer(1, c, config.kernel, first=True)] +
                                        [GatedLayer(c, c, config.block_kernel) for _ in range(config.layers)])
        else:
            self.input = MaskedConv2d(1, c, config.kernel, "A")
            self.blocks = nn.Sequential(*[ResidualBlock(c, config.block_kernel) for _ in range(config.layers)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, outputs, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``[B, H, W, outputs]`` for images ``x`` ``[B, H, W]``; pixel i's depend on x_<i only."""
        x = x.unsqueeze(1)
        if self.gated:
            v = h = x
            for layer in self.stacks:
                v, h = layer(v, h)
            features = h
        else:
            features = self.blocks(self.input(x))
        return self.head(features).permute(0, 2, 3, 1)


@register_model("pixelcnn", PixelCNNConfig, "PixelCNN: masked convolutions, exact log p(x); Bernoulli or 8-bit pixels")
class PixelCNN(AutoregressiveModel):
    """PixelCNN as a Pyro program: one observed site ``x`` whose distribution is the autoregressive
    likelihood prod_i p(x_i | x_<i), and no latent sites (van den Oord et al. 2016).

    Args:
        config: the architecture.
        event_shape: shape of one observation, a 2-D image ``[H, W]`` (any size: 8x8 digits, 28x28 MNIST).
    """

    def __init__(self, config: PixelCNNConfig, event_shape: torch.Size):
        super().__init__("pixelcnn", config, event_shape)
        self.net = PixelCNNNet(config, self.likelihood.outputs)
