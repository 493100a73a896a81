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
