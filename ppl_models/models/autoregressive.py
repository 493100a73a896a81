"""Autoregressive image models: p(x) = prod_i p(x_i | x_<i) over the pixels in raster order.

A causal network ``net(x: [B, H, W]) -> [B, H, W, outputs]`` gives, at each pixel i, the outputs
of the pixel's conditional (:mod:`.pixel_likelihoods`) computed from the pixels before i only
(van den Oord et al. 2016, "Pixel Recurrent Neural Networks"). :class:`AutoregressiveImage` is that
likelihood as one Pyro distribution over a whole image, and :class:`AutoregressiveModel` the Pyro
program with one observed site and no latent sites, so that the ELBO, every IWAE bound and the
importance-sampled NLL all equal the exact log p(x).
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro.distributions import TorchDistribution
from torch import nn
from torch.distributions import constraints

from ppl_models.models.pixel_likelihoods import (  # noqa: F401  (re-exported: the shared interface)
    PIXEL_LIKELIHOODS, PixelLikelihood, get_pixel_likelihood)


def _device_dtype(net: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in (*net.parameters(), *net.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def check_architecture(model: str, config, sizes: tuple[str, ...], odd: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``model`` and the field unless every field in ``sizes`` of ``config`` is a
    whole number >= 1, every field in ``odd`` is odd (a kernel centred on the pixel), and its
    ``likelihood`` is a pixel likelihood."""
    for name in sizes:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{model}: {name} must be a whole number >= 1, got {value!r}")
    for name in odd:
        if getattr(config, name) % 2 == 0:
            raise ValueError(f"{model}: {name} must be odd (the kernel is centred on the pixel), got {getattr(config, name)}")
    get_pixel_likelihood(config.likelihood)


class AutoregressiveImage(TorchDistribution):
    """The distribution of one-channel images ``[H, W]`` given by a causal network, one event per image.

    ``log_prob`` is one forward pass; ``sample`` draws pixel by pixel in raster order (H * W
    forward passes, each followed by one draw, under ``torch.no_grad()``). A net that declares
    ``rows_above_only = True`` (its outputs on row r depend on rows <= r only, and it accepts any
    height) is run on the rows up to the current one while sampling, which halves the work.

    ``mean`` has no closed form (it would sum over every prefix) and raises NotImplementedError;
    :meth:`conditional_mean` gives the mean of each pixel's conditional along a given image.

    Args:
        net: the causal network.
        pixel: the per-pixel likelihood; ``net`` gives ``pixel.outputs`` numbers per pixel.
        batch_shape: the batch shape (e.g. ``[N]`` in a data plate of size N).
        event_shape: ``[H, W]``.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, net: nn.Module, pixel: PixelLikelihood, batch_shape=torch.Size(), event_shape=torch.Size(),
                 validate_args: bool | None = None):
        event_shape = torch.Size(event_shape)
        if len(event_shape) != 2:
            raise ValueError(f"AutoregressiveImage needs one-channel images [H, W], got event_shape {list(event_shape)}")
        self.net = net
        self.pixel = pixel
        super().__init__(torch.Size(batch_shape), event_shape, validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:
        base = constraints.boolean if self.pixel.binary_data else constraints.unit_interval
        return constraints.independent(base, 2)

    @property
    def mean(self) -> torch.Tensor:
        raise NotImplementedError("an autoregressive image has no closed-form mean; "
                                  "use conditional_mean(x) for the mean of each pixel given the pixels before it")

    def expand(self, batch_shape, _instance=None) -> "AutoregressiveImage":
        """The same distribution with batch shape ``batch_shape`` (log-probabilities broadcast to it)."""
        return AutoregressiveImage(self.net, self.pixel, batch_shape, self.event_shape)

    def outputs(self, value: torch.Tensor) -> torch.Tensor:
        """The network's outputs ``[*lead, H, W, outputs]`` for images ``value`` ``[*lead, H, W]``."""
        if tuple(value.shape[-2:]) != tuple(self.event_shape):
            raise ValueError(f"expected images of shape {list(self.event_shape)}, got a tensor of shape "
                             f"{list(value.shape)}")
        flat = value.reshape(-1, *self.event_shape)
        out = self.net(flat)
        if tuple(out.shape) != (flat.shape[0], *self.event_shape, self.pixel.outputs):
            raise ValueError(f"the network gave outputs of shape {list(out.shape)} for input {list(flat.shape)}; "
                             f"the {self.pixel.name} likelihood needs [B, H, W, {self.pixel.outputs}]")
        return out.reshape(*value.shape, self.pixel.outputs)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """sum_i log p(x_i | x_<i) per image, from one forward pass; broadcast to the batch shape."""
        if self._validate_args:
            self._validate_sample(value)
        lp = self.pixel.log_prob(self.outputs(value), value).sum((-2, -1))
        return lp.expand(torch.broadcast_shapes(lp.shape, self.batch_shape))

    def conditional_mean(self, value: torch.Tensor) -> torch.Tensor:
        """E[x_i | x_<i] at every pixel i, the prefix x_<i taken from ``value`` ``[..., H, W]`` (one pass)."""
        with torch.no_grad():
            return self.pixel.mean(self.outputs(value))

    def sample(self, sample_shape=torch.Size(), given: torch.Tensor | None = None,
               known: torch.Tensor | None = None) -> torch.Tensor:
        """Draw images ``[*sample_shape, *batch_shape, H, W]`` pixel by pixel in raster order.

        Args:
            sample_shape: leading shape of the draws.
            given: images broadcastable to the draws' shape whose ``known`` pixels are kept.
            known: a boolean mask broadcastable to the draws' shape (e.g. ``[H, W]``): the pixels
                taken from ``given``; the others are drawn from their conditionals given every
                pixel before them (known or drawn). Pixels known in every image cost no pass.
        """
        shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
        (H, W), n = self.event_shape, math.prod(shape[:-2])
        device, dtype = _device_dtype(self.net)
        if (given is None) != (known is None):
            raise ValueError("sample: pass both `given` (the images) and `known` (which of their pixels to keep), or neither")
        with torch.no_grad():
            if given is None:
                x = torch.zeros(n, H, W, device=device, dtype=dtype)
                keep = torch.zeros(n, H, W, dtype=torch.bool, device=device)
            else:
                x = given.to(device, dtype).expand(shape).reshape(n, H, W).clone()
                keep = known.to(device, torch.bool).expand(shape).reshape(n, H, W)
            skip = keep.all(0)
            crop = bool(getattr(self.net, "rows_above_only", False))
            for i in range(H):
                for j in range(W):
                    if bool(skip[i, j]):
                        continue
                    out = self.net(x[:, : i + 1] if crop else x)[:, i, j]
                    x[:, i, j] = torch.where(keep[:, i, j], x[:, i, j], self.pixel.sample(out).to(dtype))
        return x.reshape(shape)


class AutoregressiveModel(nn.Module):
    """Base class of autoregressive image models (PixelCNN, PixelRNN) as Pyro programs.

    Subclasses call ``super().__init__(name, config, event_shape)`` (which sets ``config``,
    ``event_shape`` ``[H, W]`` and ``likelihood``, a :class:`PixelLikelihood`), then set ``self.net``
    (a causal network, see :class:`AutoregressiveImage`). The
    model has one observed site ``x`` and no latent sites; its guide is empty, so the ELBO, IWAE
    and the importance-sampled NLL are all the exact log p(x).
    """

    observed_sites = ("x",)  # the one observed site; there are no latent sites
    exact_likelihood = True  # log p(x) is computed exactly, not bounded
    data_shape = None  # any [H, W] image; __init__ checks the rank
    lookup_likelihood = staticmethod(get_pixel_likelihood)  # how the registry checks a config's `likelihood`

    net: nn.Module
    likelihood: PixelLikelihood
    event_shape: torch.Size

    @staticmethod
    def default_likelihood(binary: bool) -> str:
        """The pixel likelihood a new run uses unless told: Bernoulli for binary data, else the
        256-way softmax of van den Oord et al. 2016."""
        return "bernoulli" if binary else "categorical"

    def __init__(self, name: str, config, event_shape: torch.Size):
        """Keep ``config``, check that ``event_shape`` is a 2-D image ``[H, W]`` (a ValueError naming
        the model ``name`` otherwise) and look up ``config.likelihood``; the subclass then sets ``net``."""
        super().__init__()
        event_shape = torch.Size(event_shape)
        if len(event_shape) != 2 or min(event_shape) < 1:
            raise ValueError(f"{name} needs one-channel 2-D images [H, W], got observations of shape "
                             f"{list(event_shape)}")
        self.config = config
        self.event_shape = event_shape
        self.likelihood = get_pixel_likelihood(config.likelihood)

    def distribution(self, n: int) -> AutoregressiveImage:
        """p(x) for a batch of ``n`` images: batch shape ``[n]``, event shape ``[H, W]``."""
        return AutoregressiveImage(self.net, self.likelihood, (n,), self.event_shape)

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro model: x ~ prod_i p(x_i | x_<i) for each image; ``x=None`` samples ``batch_size`` images."""
        if x is None and batch_size is None:
            raise ValueError("model: pass the images x or a batch_size to sample")
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            return pyro.sample("x", self.distribution(n), obs=x)

    def guide(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> None:
        """Pyro guide: empty, as the model has no latent sites."""
        return None
