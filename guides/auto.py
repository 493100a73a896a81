"""The automatic amortized guide: an encoder network q(z | x) built from a model alone.

The amortized counterpart of Pyro's ``AutoNormal`` / ``AutoLowRankMultivariateNormal`` /
``AutoIAFNormal`` (which fit one posterior for one data set): :class:`AmortizedGuide` traces the
model once on an example batch to find its latent sites (:mod:`guides.sites`), then an MLP on the
flattened observation gives, per data point, the parameters of a posterior family
(:mod:`guides.families`) over every site in the ``"data"`` plate. Sites outside the data plate
(global latents) get free parameters. :func:`attach_guide` gives a model without a guide (or one
asked to use another family) this guide as ``module.guide``.
"""

from __future__ import annotations

from math import prod
from typing import Callable

import torch
from torch import nn

from guides.config import DEFAULT, GuideConfig
from guides.families import GlobalNormal, build_family
from guides.joint_families import JOINT_SITE  # also registers the lowrank and iaf families
from guides.registry import family_class, family_names
from guides.sites import find_latent_sites, plates
from ppl_models.nets import activation, mlp

FAMILIES = (DEFAULT, *family_names())  # ("default", "normal", "lowrank", "iaf")


class AmortizedGuide(nn.Module):
    """An amortized guide for any Pyro model whose latent sites are continuous (or enumerated).

    The encoder is ``mlp([prod(event_shape) (+ classes), *config.hidden, outputs])`` on the
    flattened observation; its last hidden layer's features h(x) feed the family's output layer
    (and, for ``iaf``, condition the flows). With ``classes`` the labels ``y`` are appended one-hot,
    so a model conditioned on labels gets q(z | x, y); without, q(z | x) is label-blind.

    Args:
        model: the Pyro model, called as ``model(x, **model_kwargs)``.
        example_x: an example batch ``[N, *event_shape]`` (any values in the data's support); the
            guide takes its dtype and device.
        config: the family and architecture; ``family="default"`` means ``normal`` here.
        model_kwargs: extra keyword arguments of the model for the trace, e.g. labels ``y``.
        classes: the number of label classes the encoder reads one-hot (None: it ignores labels).

    Raises:
        ValueError: for a discrete latent site not marked ``infer={"enumerate": "parallel"}``, a site
            in a sequential or subsampled plate, or a support that depends on another latent.
    """

    def __init__(self, model: Callable, example_x: torch.Tensor, config: GuideConfig,
                 model_kwargs: dict | None = None, classes: int | None = None):
        super().__init__()
        self.config = config
        self.classes = classes  # labels y enter the encoder one-hot (None: label-blind)
        self.family_name = family_names()[0] if config.family == DEFAULT else config.family
        sites = find_latent_sites(model, example_x, model_kwargs)
        if any(s.name == JOINT_SITE for s in sites):
            raise ValueError(f"the model has a site named {JOINT_SITE!r}, the automatic guide's auxiliary site")
        self.sites = sites
        local = [s for s in sites if s.is_local]
        in_dim = prod(example_x.shape[1:]) + (classes or 0)
        if config.hidden and local:
            self.trunk = nn.Sequential(mlp([in_dim, *config.hidden], config.activation), activation(config.activation))
        else:
            self.trunk = nn.Identity()  # no encoder: nothing local to infer (e.g. only enumerated sites)
        features = config.hidden[-1] if config.hidden else in_dim
        self.family = build_family(self.family_name, local, features, config) if local else None
        self.globals = nn.ModuleList(GlobalNormal(s) for s in sites if not s.is_local)
        if example_x.is_floating_point():
            self.to(dtype=example_x.dtype, device=example_x.device)

    @property
    def site_names(self) -> list[str]:
        """The model's latent sites this guide samples, in model order."""
        return [s.name for s in self.sites]

    def features(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder features h(x, y) ``[N, H]`` of a batch ``[N, *event_shape]``; with ``classes``
        set the labels enter one-hot (all zeros where ``y`` is None or a label is hidden, -1)."""
        flat = x.reshape(x.shape[0], -1)
        if self.classes:
            code = torch.zeros(x.shape[0], self.classes, dtype=flat.dtype, device=flat.device)
            if y is not None:
                known = (y >= 0) & (y < self.classes)
                code[known] = torch.nn.functional.one_hot(y[known], self.classes).to(flat.dtype)
            flat = torch.cat([flat, code], -1)
        return self.trunk(flat)

    def posterior_params(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The local family's parameters per data point (unconstrained, sites concatenated in model
        order; see the family's ``params``); empty if the model has no local latent sites."""
        return {} if self.family is None else self.family.params(self.features(x, y))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """The Pyro guide: sample every latent site for the batch ``x`` (given its labels ``y`` when
        the guide reads labels; ``batch_size`` is accepted for the model's signature). Returns the
        values by site name."""
        plate_objects = plates(self.sites, x.shape[0])
        values = {g.site.name: g(plate_objects) for g in self.globals}
        if self.family is not None:
            values.update(self.family(self.features(x, y), plate_objects))
        return values


def _dtype_device(module: nn.Module) -> tuple[torch.dtype, torch.device]:
    for t in [*module.parameters(), *module.buffers()]:
        if t.is_floating_point():
            return t.dtype, t.device
    return torch.get_default_dtype(), torch.device("cpu")


def attach_guide(module: nn.Module, event_shape, config: GuideConfig,
                 example_kwargs: dict | None = None) -> nn.Module:
    """Give ``module`` the guide ``config`` asks for and return it.

    With ``family="default"`` a model whose class defines ``guide`` keeps it. Otherwise an
    :class:`AmortizedGuide` for ``module.model`` is built (reading the labels one-hot when the
    model declares ``labels`` and an integer ``config.classes``) from the batch ``zeros(2, *event_shape)``
    (in the dtype and device of the module's first floating parameter or buffer), registered as
    the submodule ``module.auto_guide`` (its parameters are the module's, under ``auto_guide.``),
    and ``module.guide`` becomes an instance attribute that calls it.

    Args:
        module: the model (see :mod:`ppl_models.models.protocol`).
        event_shape: shape of one observation.
        config: the guide family and architecture.
        example_kwargs: extra keyword arguments for tracing the model, e.g. ``{"y": zeros(2, dtype=long)}``.
    """
    if config.family == DEFAULT and callable(getattr(type(module), "guide", None)):
        return module
    dtype, device = _dtype_device(module)
    example_x = torch.zeros(2, *event_shape, dtype=dtype, device=device)
    classes = getattr(getattr(module, "config", None), "classes", None) if getattr(module, "labels", None) else None
    module.auto_guide = AmortizedGuide(module.model, example_x, config, example_kwargs,
                                       classes if isinstance(classes, int) and classes > 0 else None)
    module.guide = module.auto_guide.__call__  # a bound method, not a Module: no second copy in state_dict
    return module


def available_guides() -> dict[str, str]:
    """``--guide`` choices mapped to one-line descriptions (each family class's ``description``)."""
    out = {DEFAULT: "the model's own guide if it has one, else normal"}
    for name in family_names():
        out[name] = getattr(family_class(name), "description", name)
    return out
