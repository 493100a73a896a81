"""PixelRNN with Row LSTM layers (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §3.1).

    x ~ prod_i p(x_i | x_<i)        [H, W], pixels in raster order

Each conditional comes from the causal Row LSTM network of :mod:`.row_lstm` (a type-A masked 7x7
input convolution, Row LSTM layers with residual connections, 1x1 output convolutions) through a
pixel likelihood of :mod:`.pixel_likelihoods` (Bernoulli for binary data, a 256-way softmax or a
discretized logistic for 8-bit data). The Pyro program is :class:`.autoregressive.AutoregressiveModel`'s:
one observed site ``x`` in the plate ``data`` and no latent sites, so every bound is the exact log p(x).

The Row LSTM processes an image a row at a time (H steps per forward pass, each a 1-D convolution of
the row above's state), so training is a little slower per step than a PixelCNN of the same width,
and sampling takes H * W forward passes like every autoregressive model. The Diagonal BiLSTM of the
same paper is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppl_models.models.autoregressive import AutoregressiveModel, check_architecture
from ppl_models.models.row_lstm import RowLSTMNet
from ppl_models.registry import register_model


@dataclass(frozen=True)
class PixelRNNConfig:
    """Architecture of the Row LSTM PixelRNN. Defaults: a binarized-MNIST epoch in minutes on a CPU."""

    hidden: int = 24  # channels of the input map and of each LSTM state (the paper: 128 at 28x28)
    layers: int = 2  # Row LSTM layers, with residual connections between them
    kernel: int = 3  # k of the Row LSTM's masked 1 x k input-to-state and 1-D state-to-state convolutions (odd)
    input_kernel: int = 7  # size of the type-A masked input convolution (odd)
    likelihood: str = "bernoulli"  # bernoulli | categorical | logistic (pixel_likelihoods.py)

    def __post_init__(self) -> None:
        """Check the fields, naming the bad one."""
        check_architecture("pixelrnn", self, ("hidden", "layers", "kernel", "input_kernel"), ("kernel", "input_kernel"))


@register_model("pixelrnn", PixelRNNConfig, "PixelRNN with Row LSTM layers, exact log p(x); Bernoulli or 8-bit pixels")
class PixelRNN(AutoregressiveModel):
    """The Row LSTM PixelRNN as a Pyro program: one observed site ``x`` whose distribution is the
    autoregressive likelihood prod_i p(x_i | x_<i), and no latent sites (van den Oord et al. 2016, §3.1).

    Args:
        config: the architecture.
        event_shape: shape of one observation, a 2-D image ``[H, W]`` (any size: 8x8 digits, 28x28 MNIST).
    """

    def __init__(self, config: PixelRNNConfig, event_shape: torch.Size):
        super().__init__("pixelrnn", config, event_shape)
        self.net = RowLSTMNet(config.hidden, config.layers, self.likelihood.outputs, config.kernel,
                              config.input_kernel)
