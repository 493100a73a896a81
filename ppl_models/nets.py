"""Network builders with explicit sizes."""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
}


def activation(name: str) -> nn.Module:
    """Return a fresh activation module by name.

    Args:
        name: one of the keys of ``ACTIVATIONS``.
    """
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


def mlp(sizes: Sequence[int], act: str = "relu") -> nn.Sequential:
    """A multilayer perceptron with ``act`` between layers and a linear last layer.

    Args:
        sizes: layer widths from input to output, e.g. ``[784, 400, 50]``.
        act: activation name used after every layer but the last.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation(act))
    return nn.Sequential(*layers)


# DCGAN-style strided convolutions (Radford et al. 2016): kernel 4, stride 2, padding 1 halves a side
# (floor(n / 2)); the transposed convolution doubles it back, plus an output padding of n mod 2.
CONV_KERNEL, CONV_STRIDE, CONV_PADDING = 4, 2, 1


def conv_feature_shapes(image_shape: Sequence[int], num_layers: int) -> list[tuple[int, int]]:
    """Spatial sizes ``[(H, W), (H1, W1), ...]`` of the input and after each of ``num_layers`` strided
    convolutions of :func:`conv_encoder` (each halves a side, rounding down).

    Raises ``ValueError`` naming the image shape if a side would shrink below 1 pixel.
    """
    if len(image_shape) != 2:
        raise ValueError(f"a convolutional net needs a 2-D image shape [H, W], got {list(image_shape)}")
    shapes = [(int(image_shape[0]), int(image_shape[1]))]
    for _ in range(num_layers):
        h, w = shapes[-1]
        if h < 2 or w < 2:
            raise ValueError(
                f"image shape {list(image_shape)} is too small for {num_layers} stride-2 convolutions: "
                f"the feature map would shrink below 1 pixel after {len(shapes) - 1} (use fewer channels entries)"
            )
        shapes.append((h // 2, w // 2))
    return shapes


def conv_encoder(
    image_shape: Sequence[int], channels: Sequence[int], hidden: Sequence[int], out_dim: int, act: str = "relu",
    in_channels: int = 1,
) -> nn.Sequential:
    """Strided convolutions, then an MLP: ``[B, in_channels, H, W] -> [B, out_dim]``.

    Each convolution (kernel 4, stride 2, padding 1, as the DCGAN discriminator of Radford et al.
    2016, without batch normalization so a data point's output does not depend on its batch) halves
    the feature map and is followed by ``act``; the flattened features pass through dense layers of
    widths ``hidden`` to a linear output.

    Args:
        image_shape: ``(H, W)`` of the input images.
        channels: output channels of each convolution, e.g. ``(32, 64)``.
        hidden: widths of the dense layers after the convolutions.
        out_dim: size of the output.
        act: activation name.
        in_channels: channels of the input.
    """
    if not channels:
        raise ValueError("conv_encoder needs at least one convolution: channels is empty")
    h, w = conv_feature_shapes(image_shape, len(channels))[-1]
    layers: list[nn.Module] = []
    for c_in, c_out in zip([in_channels, *channels[:-1]], channels):
        layers += [nn.Conv2d(c_in, c_out, CONV_KERNEL, CONV_STRIDE, CONV_PADDING), activation(act)]
    layers += [nn.Flatten(), mlp([channels[-1] * h * w, *hidden, out_dim], act)]
    return nn.Sequential(*layers)


def conv_decoder(
    in_dim: int, hidden: Sequence[int], channels: Sequence[int], image_shape: Sequence[int], out_channels: int,
    act: str = "relu",
) -> nn.Sequential:
    """The mirror of :func:`conv_encoder`: ``[B, in_dim] -> [B, out_channels, H, W]``.

    Dense layers of widths ``hidden`` map the input to a ``channels[-1]``-channel feature map of the
    encoder's smallest size; transposed convolutions (kernel 4, stride 2, padding 1, as the DCGAN
    generator) double it back through ``reversed(channels)`` to exactly ``(H, W)`` (odd sides get an
    output padding of 1), the last one linear with ``out_channels`` channels.

    Args:
        in_dim: size of the input vector.
        hidden: widths of the dense layers before the convolutions.
        channels: the encoder's channels, e.g. ``(32, 64)``; the decoder runs them in reverse.
        image_shape: ``(H, W)`` of the output images.
        out_channels: channels of the output (e.g. decoder outputs per pixel).
        act: activation name.
    """
    if not channels:
        raise ValueError("conv_decoder needs at least one convolution: channels is empty")
    shapes = conv_feature_shapes(image_shape, len(channels))
    h, w = shapes[-1]
    layers: list[nn.Module] = [mlp([in_dim, *hidden, channels[-1] * h * w], act), activation(act),
                               nn.Unflatten(1, (channels[-1], h, w))]
    outs = [*reversed(channels[:-1]), out_channels]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
        target = shapes[len(channels) - 1 - i]  # the size this layer restores
        pad = (target[0] % 2, target[1] % 2)
        layers.append(nn.ConvTranspose2d(c_in, c_out, CONV_KERNEL, CONV_STRIDE, CONV_PADDING, output_padding=pad))
        if i < len(channels) - 1:
            layers.append(activation(act))
    return nn.Sequential(*layers)
