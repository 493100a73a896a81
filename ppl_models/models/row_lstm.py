"""The Row LSTM network of PixelRNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.1).

A causal network ``x [B, H, W] -> [B, H, W, outputs]``: the outputs at pixel (r, c) depend only on
the pixels before it in raster order (rows above, and the pixels to its left in its own row).

    input:  a masked 7x7 convolution of type A (the current pixel excluded)
    layers: Row LSTMs with residual connections between them; in each,
              input-to-state: a masked 1 x k convolution along the row of type B (columns c-k//2 .. c),
                              computed for the whole image at once;
              state-to-state: an unmasked 1-D convolution of width k over the previous row's hidden
                              state (columns c-k//2 .. c+k//2 of row r-1), computed row by row;
              [o, f, i, g] = [sigma, sigma, sigma, tanh](K_ss * h_{r-1} + K_is * x_r)
              c_r = f . c_{r-1} + i . g,   h_r = o . tanh(c_r)
    output: ReLU, 1x1 convolution, ReLU, 1x1 convolution to the likelihood's outputs per pixel.

The receptive field of a pixel is a triangle above it (k//2 more columns on each side for every row
up, beyond the input convolution's window) plus the pixels to its left in its row; the rest of the
context to the upper right is a blind spot (the paper's fig. 4; the Diagonal BiLSTM removes it).

With one image channel, the type-A input mask is the only place the current pixel must be excluded:
every later feature at (r, c) already depends only on pixels before (r, c), so the row convolution
may include column c (type B), and a 1x1 convolution needs no mask at all (the type-B mask of a
one-channel 1x1 convolution is all ones).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ppl_models.models.masked_conv import MaskedConv2d, causal_mask


class MaskedRowConv(nn.Module):
    """A masked ``1 x k`` convolution along each row of a channels-last map ``[B, H, W, C]``.

    The same as ``F.conv2d`` with a ``[out, in, 1, k]`` kernel times the causal mask (type B keeps
    columns c - k//2 .. c, type A only those < c), written as one matrix product over the row
    windows: on the CPU this is several times faster than a ``1 x k`` convolution (measured at 28x28,
    batch 100), and it keeps the map channels-last for the row-by-row recurrence.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel: k (odd).
        include_centre: type B (True) or A (False), see :func:`causal_mask`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, include_centre: bool):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"a masked convolution needs odd kernel sizes, got (1, {kernel})")
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel))
        self.bias = nn.Parameter(torch.empty(out_channels))
        bound = 1 / (in_channels * kernel) ** 0.5  # nn.Conv2d's default initialization
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.register_buffer("mask", causal_mask(1, kernel, "B" if include_centre else "A")[0], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x [B, H, W, C]`` along its rows: ``[B, H, W, out]``."""
        k = self.kernel
        window = F.pad(x, (0, 0, k // 2, k // 2)).unfold(-2, k, 1)  # [B, H, W, C, k]: columns c - k//2 .. c + k//2
        weight = (self.weight * self.mask).reshape(self.weight.shape[0], -1)  # [out, (C, k)], masked functionally
        return F.linear(window.reshape(*x.shape[:-1], -1), weight, self.bias)


class RowLSTM(nn.Module):
    """One Row LSTM layer on channels-last maps: ``[B, H, W, C] -> [B, H, W, hidden]``, a row at a time.

    Args:
        in_channels: channels of the input map.
        hidden: channels of the LSTM state (h and c).
        kernel: k, the width of the input-to-state and state-to-state convolutions (odd).
    """

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedRowConv(in_channels, 4 * hidden, kernel, include_centre=True)
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, kernel, padding=kernel // 2, bias=False)
        with torch.no_grad():  # forget gate bias 1 at initialization (Gers et al. 2000), a common LSTM default
            self.input_to_state.bias.zero_()
            self.input_to_state.bias[hidden:2 * hidden] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the layer over ``x [B, H, W, C]``; the state of the row above row 0 is zero."""
        b, height, width, _ = x.shape
        k = self.state_to_state.kernel_size[0]
        # one slice per row; unbind has one backward for all rows (indexing row by row would
        # allocate and fill a whole-image gradient per row)
        gates_in = self.input_to_state(x).unbind(1)  # H x [B, W, 4 hidden], gate order o, f, i, g
        weight = self.state_to_state.weight.reshape(4 * self.hidden, self.hidden * k)  # [4h, (h, k)]
        h = x.new_zeros(b, width, self.hidden)
        c = x.new_zeros(b, width, self.hidden)
        rows = []
        for r in range(height):  # the recurrence runs over rows, never over single pixels
            # the 1-D convolution over the row above as one matrix product (faster than conv1d on CPU)
            window = F.pad(h, (0, 0, k // 2, k // 2)).unfold(1, k, 1)  # [B, W, hidden, k]
            gates = gates_in[r] + F.linear(window.reshape(b, width, self.hidden * k), weight)
            o, f, i = torch.sigmoid(gates[..., : 3 * self.hidden]).chunk(3, dim=-1)
            c = f * c + i * torch.tanh(gates[..., 3 * self.hidden:])
            h = o * torch.tanh(c)
            rows.append(h)
        return torch.stack(rows, dim=1)  # [B, H, W, hidden]


class RowLSTMNet(nn.Module):
    """The PixelRNN network with Row LSTM layers: ``x [B, H, W]`` in [0, 1] -> ``[B, H, W, outputs]``.

    Causal in raster order (tested by gradients in ``tests/models/test_pixelrnn.py``). After the
    input convolution the maps are channels-last ``[B, H, W, C]``, so the 1x1 convolutions are
    per-pixel linear layers.

    Args:
        hidden: channels of the input map and of each LSTM state.
        layers: Row LSTM layers, with a residual connection around each.
        outputs: network outputs per pixel (the pixel likelihood's).
        kernel: k of the Row LSTM's convolutions (odd).
        input_kernel: size of the type-A input convolution (odd), 7 in the paper.
    """

    rows_above_only = True  # row r's outputs depend on rows <= r only, at any height (faster sampling)

    def __init__(self, hidden: int, layers: int, outputs: int, kernel: int = 3, input_kernel: int = 7):
        super().__init__()
        self.input = MaskedConv2d(1, hidden, input_kernel, "A")
        self.lstms = nn.ModuleList(RowLSTM(hidden, hidden, kernel) for _ in range(layers))
        # the paper's residual 1x1 convolution from the LSTM state back to the layer's input map
        self.residual = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.output = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The per-pixel outputs for images ``x [B, H, W]`` (any values; data are in [0, 1])."""
        if x.dim() != 3:
            raise ValueError(f"the Row LSTM network takes images [B, H, W], got a tensor of shape {list(x.shape)}")
        features = self.input(2 * x.unsqueeze(1) - 1).permute(0, 2, 3, 1)  # centred input, [B, H, W, hidden]
        for lstm, residual in zip(self.lstms, self.residual):
            features = features + residual(lstm(features))
        return self.output(features)  # [B, H, W, outputs]
