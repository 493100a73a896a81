"""The VAE (Kingma & Welling 2014) with convolutional encoder and decoder, for images of any [H, W].

    z ~ Normal(0, I)                      (latent_dim,)
    x | z ~ p(x | decoder(z))             [H, W], see ``likelihoods.py``

The networks follow the DCGAN architecture (Radford et al. 2016) without batch normalization:
stride-2 convolutions (kernel 4, padding 1) halve the image, dense layers map to and from z, and
transposed convolutions double it back to exactly [H, W] (``ppl_models.nets.conv_encoder`` /
``conv_decoder``). Batch normalization is left out because it would make a data point's density
depend on the rest of its batch (and on the particles of an importance-weighted bound).

The model and guide programs are the MLP VAE's (:class:`ppl_models.models.vae.VAE`): only the
networks differ. Sites ``z`` and ``x`` in the plate ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from guides.encoder import DiagonalNormalEncoder
from ppl_models.models.likelihoods import get_likelihood
from ppl_models.models.vae import VAE
from ppl_models.nets import conv_decoder, conv_encoder
from ppl_models.registry import register_model


@dataclass(frozen=True)
class ConvVAEConfig:
    """Architecture of the convolutional VAE."""

    latent_dim: int = 32  # size of z
    channels: tuple[int, ...] = (32, 64)  # channels of the stride-2 convolutions; the decoder mirrors them
    hidden: tuple[int, ...] = (256,)  # dense widths between the convolutions and z
    activation: str = "relu"  # nonlinearity between layers (ppl_models.nets.ACTIVATIONS)
    likelihood: str = "bernoulli"  # bernoulli | gaussian | gaussian-learned
    obs_scale: float = 0.1  # standard deviation of the fixed-scale gaussian likelihood


class ConvNormalEncoder(DiagonalNormalEncoder):
    """q(z | x) = Normal(mu(x), diag(sigma(x)^2)) computed by a convolutional network.

    ``forward`` and ``guide`` are :class:`guides.encoder.DiagonalNormalEncoder`'s, which flatten
    ``x`` and apply ``self.net``; here ``self.net`` restores the image and convolves it.

    Args:
        image_shape: ``(H, W)`` of one observation.
        channels: channels of the convolutions.
        hidden: dense widths after them.
        latent_dim: size of the latent vector.
        act: activation name.
        site: name of the latent sample site.
    """

    def __init__(self, image_shape: tuple[int, int], channels: tuple[int, ...], hidden: tuple[int, ...],
                 latent_dim: int, act: str = "relu", site: str = "z"):
        nn.Module.__init__(self)  # DiagonalNormalEncoder.__init__ would build an MLP; only the network differs
        self.site = site
        self.latent_dim = latent_dim
        self.net = nn.Sequential(nn.Unflatten(1, (1, *image_shape)),
                                 conv_encoder(image_shape, channels, hidden, 2 * latent_dim, act))


class ConvImageDecoder(nn.Module):
    """z ``[..., latent_dim]`` -> decoder outputs ``[..., H * W * outputs_per_dim]`` in the (H, W, k)
    order :func:`ppl_models.models.likelihoods.observation` expects; any leading (particle) dims.

    Args:
        latent_dim: size of z.
        hidden: dense widths before the transposed convolutions.
        channels: the encoder's channels (run in reverse).
        image_shape: ``(H, W)`` of one observation.
        outputs_per_dim: decoder outputs per pixel (the likelihood's).
        act: activation name.
    """

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], channels: tuple[int, ...],
                 image_shape: tuple[int, int], outputs_per_dim: int, act: str = "relu"):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = conv_decoder(latent_dim, hidden, channels, image_shape, outputs_per_dim, act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode ``z`` of shape ``[..., latent_dim]``."""
        out = self.net(z.reshape(-1, self.latent_dim))  # [B, k, H, W]
        return out.permute(0, 2, 3, 1).reshape(*z.shape[:-1], -1)


@register_model("conv_vae", ConvVAEConfig, "VAE with DCGAN-style convolutional encoder and decoder; any [H, W] image")
class ConvVAE(VAE):
    """Convolutional VAE: :class:`VAE`'s ``model`` and ``guide`` with convolutional networks.

    Args:
        config: the architecture.
        event_shape: shape of one observation, a 2-D image ``[H, W]`` (e.g. 8x8 digits, 28x28 MNIST).
    """

    data_shape = None  # any 2-D image shape; checked in __init__

    def __init__(self, config: ConvVAEConfig, event_shape: torch.Size):
        nn.Module.__init__(self)  # VAE.__init__ builds MLPs; the programs are shared, the networks are not
        event_shape = torch.Size(event_shape)
        if len(event_shape) != 2:
            raise ValueError(f"conv_vae needs 2-D images [H, W], got observations of shape {list(event_shape)}")
        self.config = config
        self.event_shape = event_shape
        self.likelihood = get_likelihood(config.likelihood)
        image = (event_shape[0], event_shape[1])
        self.encoder = ConvNormalEncoder(image, config.channels, config.hidden, config.latent_dim, config.activation)
        self.decoder = ConvImageDecoder(config.latent_dim, tuple(reversed(config.hidden)), config.channels, image,
                                        self.likelihood.outputs_per_dim, config.activation)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)
