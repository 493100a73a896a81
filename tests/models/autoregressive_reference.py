"""A slow reference for autoregressive models' log-likelihoods, shared by the PixelCNN and PixelRNN tests."""

import torch


def reference_log_prob(model, x: torch.Tensor) -> torch.Tensor:
    """For each pixel i, run the net on x with the pixels >= i replaced by noise (which must not
    matter) and add log p(x_i | x_<i) from the outputs at i; ``x`` is ``[N, H, W]``."""
    n, h, w = x.shape
    total = torch.zeros(n, dtype=x.dtype)
    g = torch.Generator().manual_seed(7)
    for i in range(h * w):
        r, c = divmod(i, w)
        noisy = x.clone().reshape(n, -1)
        noisy[:, i:] = torch.rand(n, h * w - i, generator=g, dtype=x.dtype)
        out = model.net(noisy.reshape(n, h, w))[:, r, c]
        total += model.likelihood.log_prob(out, x[:, r, c])
    return total
