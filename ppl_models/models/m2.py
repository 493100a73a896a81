"""The semi-supervised generative model M2 (Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised
Learning with Deep Generative Models") as a Pyro program.

    y ~ Categorical(uniform)              the class: observed for labelled data, latent otherwise
    z ~ Normal(0, I)                      (latent_dim,), the style
    x | y, z ~ p(x | decoder(z, y))       the observation's shape, see ``likelihoods.py``

The guide is q(y | x) q(z | x, y) with a classifier q(y | x). On an unlabelled batch it samples
``"y"`` with ``infer={"enumerate": "parallel"}``: under ``pyro.infer.TraceEnum_ELBO`` the ten
classes are summed exactly (the paper's U(x), eq. 7); without an enumeration handler y is drawn
from q(y | x), so importance weights log p(x, y, z) - log q(y, z | x) estimate log p(x). On a
labelled batch y is observed and the model adds the classification term alpha * log q(y | x)
(eq. 9) as the scaled observed site ``"y_aux"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn

from guides.encoder import MIN_SCALE
from ppl_models.models.likelihoods import get_likelihood, observation
from ppl_models.nets import mlp
from ppl_models.registry import register_model


@dataclass(frozen=True)
class M2Config:
    """Architecture of M2. The defaults follow Pyro's ``ss_vae_M2`` example: 50 latent dimensions,
    one hidden layer of 500 units per network, softplus activations (as Kingma et al. 2014).

    ``alpha``: the paper (eq. 9) adds alpha * E_labelled[-log q(y | x)] to a bound summed over the
    N training points, with alpha = 0.1 * N; per labelled example that is 0.1 * N / N_labelled, 50 for
    MNIST with 100 labels (Pyro's example uses 46). On digits (N = 1437, 100 labels) the paper's
    rule gives 1.4; ``examples/m2_digits.py`` uses 200, chosen on the validation split.
    """

    classes: int = 10  # number of classes of y
    latent_dim: int = 50  # size of z
    hidden: tuple[int, ...] = (500,)  # hidden widths of q(z | x, y); the decoder mirrors them
    classifier_hidden: tuple[int, ...] = (500,)  # hidden widths of the classifier q(y | x)
    activation: str = "softplus"  # nonlinearity between layers (ppl_models.nets.ACTIVATIONS)
    likelihood: str = "bernoulli"  # bernoulli | gaussian | gaussian-learned
    obs_scale: float = 0.1  # standard deviation of the fixed-scale gaussian likelihood
    alpha: float = 50.0  # weight of log q(y | x) per labelled example (eq. 9; see above)


@register_model("m2", M2Config, "semi-supervised M2 (Kingma et al. 2014): classifier q(y|x) and p(x | y, z)")
class M2(nn.Module):
    """M2 with MLP networks; ``model`` and ``guide`` share the sites ``y`` (latent when unlabelled) and ``z``.

    ``labels = "semi-supervised"``: ``model``/``guide`` take ``y`` only for labelled batches;
    evaluation passes none, so its bounds are on log p(x) with y summed over (or sampled from q).

    Args:
        config: the architecture.
        event_shape: shape of one observation, e.g. ``torch.Size([8, 8])``.
    """

    observed_sites = ("x",)  # sites conditioned on data; "y" is observed only on labelled batches
    labels = "semi-supervised"

    def __init__(self, config: M2Config, event_shape: torch.Size):
        super().__init__()
        self.config = config
        self.event_shape = torch.Size(event_shape)
        self.likelihood = get_likelihood(config.likelihood)
        data_dim, k, act = prod(self.event_shape), config.classes, config.activation
        self.classifier = mlp([data_dim, *config.classifier_hidden, k], act)
        self.encoder = mlp([data_dim + k, *config.hidden, 2 * config.latent_dim], act)
        self.decoder = mlp(
            [config.latent_dim + k, *reversed(config.hidden), data_dim * self.likelihood.outputs_per_dim], act
        )
        self.register_buffer("_zero", torch.zeros(()), persistent=False)
        self.register_buffer("_one", torch.ones(()), persistent=False)

    def _one_hot(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``[..., classes]`` one-hot codes of ``y`` (observed, sampled or enumerated)."""
        return F.one_hot(y, self.config.classes).to(like.dtype)

    def _check_labels(self, y: torch.Tensor, n: int) -> None:
        k = self.config.classes
        if y.dtype != torch.int64 or y.shape != (n,):
            raise ValueError(f"m2 labels y must be int64 of shape [{n}], got {y.dtype} {tuple(y.shape)}")
        if bool(((y < 0) | (y >= k)).any()):
            bad = y[(y < 0) | (y >= k)][0].item()
            raise ValueError(f"m2 labels y must lie in 0..{k - 1} (hidden labels make an unlabelled batch), got {bad}")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Classifier logits of q(y | x), ``[N, classes]``."""
        return self.classifier(x.reshape(x.shape[0], -1))

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class under q(y | x) for each image, ``[N]`` int64."""
        return self.logits(x).argmax(-1)

    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              batch_size: int | None = None) -> torch.Tensor:
        """Pyro model p(y) p(z) p(x | y, z) for a batch.

        Args:
            x: observations ``[N, *event_shape]``, or ``None`` to sample.
            y: labels ``[N]`` (int64) of a labelled batch (or the classes to draw), else ``None``.
            batch_size: how many to sample when ``x`` and ``y`` are ``None``.
        """
        n = x.shape[0] if x is not None else (y.shape[0] if y is not None else batch_size)
        if y is not None:
            self._check_labels(y, n)
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(self._zero, self._one).expand([self.config.latent_dim]).to_event(1))
            prior = dist.Categorical(logits=self._zero.new_zeros(self.config.classes))
            y_value = pyro.sample("y", prior, obs=y)
            onehot = self._one_hot(y_value, z)
            batch = torch.broadcast_shapes(z.shape[:-1], onehot.shape[:-1])
            out = self.decoder(torch.cat([z.expand(*batch, -1), onehot.expand(*batch, -1)], dim=-1))
            x_value = pyro.sample("x", observation(self.likelihood, out, self.event_shape, self.config.obs_scale), obs=x)
            if x is not None and y is not None:  # the classification term of eq. 9, labelled batches only
                with poutine.scale(scale=self.config.alpha):
                    pyro.sample("y_aux", dist.Categorical(logits=self.logits(x)), obs=y)
            return x_value

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        """Pyro guide q(y | x) q(z | x, y); ``y`` is sampled (enumerated under TraceEnum_ELBO) when not given."""
        n = x.shape[0]
        if y is not None:
            self._check_labels(y, n)
        flat = x.reshape(n, -1)
        with pyro.plate("data", n):
            if y is None:
                y = pyro.sample("y", dist.Categorical(logits=self.classifier(flat)), infer={"enumerate": "parallel"})
            onehot = self._one_hot(y, flat)
            batch = torch.broadcast_shapes(flat.shape[:-1], onehot.shape[:-1])
            loc, raw_scale = self.encoder(torch.cat([flat.expand(*batch, -1), onehot.expand(*batch, -1)], -1)).chunk(2, -1)
            return pyro.sample("z", dist.Normal(loc, F.softplus(raw_scale) + MIN_SCALE).to_event(1))

    def sample_inputs(self, data, n: int) -> dict[str, torch.Tensor]:
        """``{"y": arange(n) % classes}``: samples cycle through the classes in order (``data`` unused)."""
        return {"y": torch.arange(n, device=self._zero.device) % self.config.classes}
