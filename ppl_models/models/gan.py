"""A generative adversarial network (Goodfellow et al. 2014) with DCGAN-style players (Radford et al.
2016), written so that its generator is a Pyro program:

    z ~ Normal(0, I)                       (latent_dim,)
    x = G(z)                               observation="none": an implicit model, no likelihood
    x | z ~ Normal(G(z), obs_scale^2 I)    observation="gaussian": the observation model that Wu et al.
                                           (2017) add to evaluate decoder-based models with AIS

The discriminator D is a submodule, so a checkpoint holds both players, but it is not part of the
Pyro program: it is trained by the ``adversarial`` strategy (:mod:`ppl_models.inference.adversarial`),
which plays Algorithm 1 of Goodfellow et al. (2014) with k discriminator steps per generator step.
``ppl sample`` and the diagnostics read the generator through the Pyro program like any other model;
without an observation model every likelihood table says "no likelihood" instead of a number.

Both players are DCGAN-shaped for H x W images with H and W divisible by 4 (28x28 MNIST, 8x8 digits):
G maps z through a linear layer to 2c maps of (H/4, W/4), then two stride-2 transposed convolutions
(batch norm and ReLU between them) to a sigmoid image; D mirrors it with stride-2 convolutions and
leaky ReLUs to one logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ppl_models.models.likelihoods import get_likelihood
from ppl_models.registry import register_model

OBSERVATIONS = ("none", "gaussian")


@dataclass(frozen=True)
class GANConfig:
    """Architecture of the DCGAN-style generator and discriminator."""

    latent_dim: int = 64  # size of z
    channels: int = 64  # feature maps at half resolution (c); the quarter-resolution layer has 2c
    observation: str = "none"  # none: implicit, no likelihood | gaussian: x ~ N(G(z), obs_scale^2) (Wu et al. 2017)
    obs_scale: float = 0.1  # standard deviation of the gaussian observation model
    instance_noise: float = 0.3  # sd of Gaussian noise on every image D sees in training (Sønderby et al. 2017; 0: none)


def _quarter(event_shape: torch.Size) -> tuple[int, int]:
    if len(event_shape) != 2 or event_shape[0] % 4 or event_shape[1] % 4:
        raise ValueError(f"gan needs 2-D images [H, W] with H and W divisible by 4 (e.g. 28x28, 8x8), got "
                         f"observations of shape {list(event_shape)}")
    return event_shape[0] // 4, event_shape[1] // 4


class Generator(nn.Module):
    """G(z): z ``[B, latent_dim]`` to images ``[B, H, W]`` in (0, 1), DCGAN-style."""

    def __init__(self, latent_dim: int, channels: int, event_shape: torch.Size):
        super().__init__()
        self.quarter = _quarter(event_shape)
        c, (h, w) = channels, self.quarter
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * c * h * w), nn.BatchNorm1d(2 * c * h * w), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.BatchNorm2d(c), nn.ReLU(),
                                nn.ConvTranspose2d(c, 1, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images for a batch of codes ``z`` (any leading batch dimensions)."""
        batch = z.shape[:-1]
        h = self.project(z.reshape(-1, z.shape[-1])).reshape(-1, self.up[0].in_channels, *self.quarter)
        x = torch.sigmoid(self.up(h))
        return x.reshape(*batch, *x.shape[-2:])


class Discriminator(nn.Module):
    """D's logit l(x) for images ``[B, H, W]``; D(x) = sigmoid(l(x)) is the probability that x is data."""

    def __init__(self, channels: int, event_shape: torch.Size):
        super().__init__()
        h, w = _quarter(event_shape)
        c = channels
        self.net = nn.Sequential(nn.Conv2d(1, c, 4, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2),
                                 nn.Flatten(), nn.Linear(2 * c * h * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]``."""
        return self.net(x.unsqueeze(-3)).squeeze(-1)


@register_model("gan", GANConfig, "GAN with DCGAN-style players; the generator is a Pyro model "
                                  "(no likelihood unless observation=gaussian)")
class GAN(nn.Module):
    """A GAN whose generator is a Pyro program and whose discriminator the ``adversarial`` strategy trains.

    Args:
        config: the architecture and observation model.
        event_shape: shape of one image ``[H, W]``, H and W divisible by 4.
    """

    observed_sites = ("x",)
    training_strategy = "adversarial"  # Algorithm 1 of Goodfellow et al. (2014), not SVI

    def __init__(self, config: GANConfig, event_shape: torch.Size):
        super().__init__()
        if not (isinstance(config.instance_noise, (int, float)) and 0 <= config.instance_noise < float("inf")):
            raise ValueError(f"model 'gan': instance_noise must be a finite number >= 0, got {config.instance_noise!r}")
        if config.observation not in OBSERVATIONS:
            raise ValueError(f"model 'gan': observation must be one of {OBSERVATIONS}, got {config.observation!r}")
        self.config = config
        self.event_shape = torch.Size(event_shape)
        self.generator = Generator(config.latent_dim, config.channels, self.event_shape)
        self.discriminator = Discriminator(config.channels, self.event_shape)
        self.likelihood = get_likelihood("gaussian")  # read only by the data checks: pixels must lie in [0, 1]
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    @property
    def has_likelihood(self) -> bool:
        """Whether x has a density: only with the gaussian observation model."""
        return self.config.observation == "gaussian"

    def prior(self) -> dist.Distribution:
        """p(z) = N(0, I), one event per data point."""
        return dist.Normal(self._zero, self._one).expand([self.config.latent_dim]).to_event(1)

    def fake(self, n: int) -> torch.Tensor:
        """G(z) for ``n`` fresh draws z ~ p(z): the samples the players see during training ``[n, H, W]``."""
        return self.generator(self.prior().sample((n,)))

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D's logits for images ``x``, seen through instance noise while training (``instance_noise``):
        on binary data D could otherwise tell every real image from G's continuous outputs by its
        pixel values alone, and the generator collapses. Measured on dynamically binarized digits
        (100 epochs, N = 180): noise 0 gives FD 237 and recall 0.00 (one image), 0.3 gives FD 10.4
        and recall 0.86 (README, Baselines)."""
        if self.training and self.config.instance_noise > 0:
            x = x + self.config.instance_noise * torch.randn_like(x)
        return self.discriminator(x)

    def model(self, x: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro model: z ~ p(z), then x = G(z) (``observation="none"``) or x ~ N(G(z), obs_scale^2)."""
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            z = pyro.sample("z", self.prior())
            mean = self.generator(z)
            if self.config.observation == "none":  # a point mass: sampling works, a density does not exist
                return pyro.sample("x", dist.Delta(mean, event_dim=len(self.event_shape)), obs=x)
            noise = mean.new_tensor(self.config.obs_scale).expand(mean.shape)
            return pyro.sample("x", dist.Normal(mean, noise).to_event(len(self.event_shape)), obs=x)

    def guide(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide: the prior itself (a GAN has no encoder), so that importance sampling and AIS start
        from p(z); with the gaussian observation model this gives valid, if loose, bounds."""
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", self.prior())
