"""``--precision bf16``: the networks run under bfloat16 autocast; the probabilistic part stays float32.

Autocast (``torch.autocast(device, torch.bfloat16)``) runs matrix products and convolutions in
bfloat16, where a GPU's tensor cores are fastest. Around the whole loss it would also hand
bfloat16 parameters to the distributions, and sampling and log-densities would lose precision (a
bfloat16 number has 8 significant bits: a sum of 784 Bernoulli log-probabilities of about -100
would be off by about 0.5 nats). So autocast is entered only around the model's **networks**, and
every floating-point tensor a network returns is cast back to float32: distribution parameters,
samples, log-densities, the objective and the gradients' accumulation are float32, as in an fp32
run. Parameters and the optimizer state stay float32 (bfloat16 has float32's exponent range, so
no loss scaling is needed).

The unit is a **layer**: a submodule that holds parameters itself (``Linear``, a convolution, an LSTM
cell). It opens the autocast region when called and casts its floating-point outputs back to float32,
so whatever a network builds from its layers' outputs (a distribution object, a softplus scale) is
float32; the elementwise work between layers runs in float32 (``torch.compile`` fuses those casts).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

PRECISIONS = ("fp32", "bf16")  # --precision choices


def _to_float32(value):
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, tuple):
        return type(value)(*map(_to_float32, value)) if hasattr(value, "_fields") else tuple(map(_to_float32, value))
    if isinstance(value, list):
        return [_to_float32(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_float32(v) for k, v in value.items()}
    return value


class MixedPrecision:
    """bfloat16 autocast around ``module``'s networks while :meth:`active`; nothing changes outside it.

    Each layer (a submodule holding parameters itself) gets its ``forward`` wrapped: called while
    active and outside an autocast region, it opens one and casts its floating-point outputs back to
    float32; inside a region it runs as it is. The wrapping is plain Python, so ``torch.compile``
    traces it (``--compile full --precision bf16``).

    Args:
        module: the model.
        device_type: ``"cuda"`` or ``"cpu"`` (both support bfloat16 autocast).
    """

    def __init__(self, module: torch.nn.Module, device_type: str):
        self.device_type = device_type
        self.enabled = False
        for name, sub in module.named_modules():
            if any(True for _ in sub.parameters(recurse=False)):
                sub.forward = self._wrap(sub.forward)

    def _wrap(self, forward):
        def network(*args, **kwargs):
            if not self.enabled or torch.is_autocast_enabled(self.device_type):
                return forward(*args, **kwargs)
            with torch.autocast(self.device_type, dtype=torch.bfloat16):
                out = forward(*args, **kwargs)
            return _to_float32(out)

        return network

    @contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, the networks run under bfloat16 autocast (a training step's loss and backward)."""
        self.enabled = True
        try:
            yield
        finally:
            self.enabled = False


def denormals_flushed() -> bool:
    """Whether the CPU now flushes denormal numbers to zero (torch has no getter: a denormal times one tells)."""
    return float(torch.tensor(1e-39) * 1.0) == 0.0


@contextmanager
def flushed_denormals(on: bool) -> Iterator[None]:
    """``--flush-denormal``: inside the block the CPU treats denormal float32 numbers (below 1.2e-38) as zero
    (``torch.set_flush_denormal``, FTZ/DAZ); the previous mode is put back afterwards. Off: nothing changes.

    Measured (benchmarks/denormals.py, MLP VAE on binarized MNIST, 3 epochs): 33,323 of Adam's 1.4 M state
    values were denormal at the end without it, and epochs took 1.5-7% longer; the parameters came out
    identical. It is not the default: a model whose densities pass through such tiny numbers (the log of a
    probability below 1e-38) would get -inf instead of about -88 nats.
    """
    if not on:
        yield
        return
    before = denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
