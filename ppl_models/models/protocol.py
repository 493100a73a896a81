"""The contract between a model and every command of the suite.

A model is an ``nn.Module`` built as ``cls(config, event_shape)`` that declares:

- ``model(self, x=None, batch_size=None)``: the Pyro program. ``x`` is a batch ``[N, *event_shape]``
  of observations (``None`` to sample ``batch_size`` new ones); the data dimension is covered by
  ``pyro.plate("data", N)`` (dim -1) and each observation's dimensions by ``.to_event()``.
- ``observed_sites``: the names of the sample sites conditioned on the data (first: the one
  holding ``x``); every other sample site is latent.
- optionally ``data_shape``: the shape of one observation the model accepts (``None``: any).
- optionally ``guide(self, x, batch_size=None)``: a hand-written guide with the same latent site
  names. Without one, the registry attaches an automatic amortized guide (``guides/auto.py``).
- optionally ``labels``: ``"condition"`` if ``model``/``guide`` take the labels ``y`` ``[N]``
  (int64) as a keyword argument whenever the data have them (a conditional model: training,
  evaluation and sampling; when sampling without labels the model draws them itself), or
  ``"semi-supervised"`` if they take ``y`` only for batches whose labels are known (training
  batches are all-labelled or all-unlabelled; evaluation passes no labels, so its bounds are on
  log p(x)).
- optionally ``sample_inputs(self, data, n) -> dict``: keyword arguments ``model`` needs to draw
  ``n`` samples (e.g. the visible half of test images for a model that completes images).

Nothing else is required: likelihood support checks, evaluation bounds and sampling read the
model's sites through Pyro's effect handlers.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch

LABEL_USES = (None, "condition", "semi-supervised")
UNKNOWN_LABEL = -1  # a hidden label in a semi-supervised training split


def label_use(module: Any) -> str | None:
    """How ``module`` uses labels: ``None``, ``"condition"`` or ``"semi-supervised"``."""
    use = getattr(module, "labels", None)
    if use not in LABEL_USES:
        raise ValueError(f"{type(module).__name__}.labels must be one of {LABEL_USES}, got {use!r}")
    return use


class LabelledModel:
    """A view of a model module whose ``model`` and ``guide`` have the labels ``y`` bound.

    Everything else (parameters, ``observed_sites``, submodules) is the module's own, so a
    strategy or evaluator can take this view wherever it takes the module.
    """

    def __init__(self, module: torch.nn.Module, y: torch.Tensor):
        self.module = module
        self.y = y
        self.model = partial(module.model, y=y)
        self.guide = partial(module.guide, y=y)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def bind_labels(module: torch.nn.Module, y: torch.Tensor | None, evaluation: bool = False):
    """``module`` with the batch's labels bound where the model uses them, else ``module`` itself.

    Args:
        module: the model.
        y: the batch's labels ``[B]`` or ``None``; ``UNKNOWN_LABEL`` marks a hidden label.
        evaluation: True for evaluation, where a semi-supervised model sees no labels.
    """
    use = label_use(module)
    if y is None or use is None or (evaluation and use == "semi-supervised"):
        return module
    known = y != UNKNOWN_LABEL
    if use == "semi-supervised" and not bool(known.any()):
        return module
    if not bool(known.all()):
        raise ValueError("a batch mixes known and hidden labels; semi-supervised batches must be all one or the other")
    return LabelledModel(module, y)
