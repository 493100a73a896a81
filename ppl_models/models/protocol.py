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
- optionally ``has_likelihood = False``: the observed site has no density (an implicit model such
  as a GAN's generator without an observation model). Every bound, NLL and likelihood-based
  diagnostic then reports "no likelihood" instead of a number; sampling still works.
- optionally ``training_strategy``: the inference strategy the model trains with by default (a
  GAN: ``"adversarial"``), used when the run asks for the default (``amortized``).

Nothing else is required: likelihood support checks, evaluation bounds and sampling read the
model's sites through Pyro's effect handlers.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pyro
import torch
from pyro import poutine
from torch.distributions import constraints

LABEL_USES = (None, "condition", "semi-supervised")
UNKNOWN_LABEL = -1  # a hidden label in a semi-supervised training split


NO_LIKELIHOOD = "no likelihood"  # what tables print for a model whose observed site has no density


def has_likelihood(module: Any) -> bool:
    """Whether ``module``'s observed site has a density, so that bounds and NLLs mean something."""
    return bool(getattr(module, "has_likelihood", True))


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
        y: the batch's labels ``[B]``, or ``None`` (no labels, or a batch whose labels are hidden).
        evaluation: True for evaluation, where a semi-supervised model sees no labels.
    """
    use = label_use(module)
    if y is None or use is None or (evaluation and use == "semi-supervised"):
        return module
    return LabelledModel(module, y)


def check_labels(module: torch.nn.Module, y: torch.Tensor | None, where: str, rows: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` if a model conditioned on labels gets data without them, or if a model
    that uses labels and declares ``config.classes`` gets a label outside ``0..classes-1``
    (``UNKNOWN_LABEL`` allowed for a semi-supervised model), naming ``where``, the index and the value.

    Args:
        module: the model.
        y: the labels ``[N]`` or None.
        where: what the data are, for the message.
        rows: source row of each data point (``Split.rows``), to name it in the message.
    """
    use = label_use(module)
    if use == "condition" and y is None:
        raise ValueError(f"{where} has no labels, but {type(module).__name__} is conditioned on them "
                         f"(labels = 'condition'); use a labelled dataset or a .npz/.pt file with 'y'")
    classes = getattr(getattr(module, "config", None), "classes", None)
    if use is None or y is None or not isinstance(classes, int):
        return
    bad = (y < 0) | (y >= classes)
    if use == "semi-supervised":
        bad &= y != UNKNOWN_LABEL
    if bool(bad.any()):
        from ppl_models.models.likelihoods import describe_element

        i = int(bad.nonzero()[0])
        allowed = f"0..{classes - 1}" + (f" (or {UNKNOWN_LABEL}: hidden)" if use == "semi-supervised" else "")
        raise ValueError(f"{where}: label {describe_element(y, (i,), rows)}, but {type(module).__name__} has "
                         f"classes {allowed} (set its config field classes)")


def check_event_shape(x: torch.Tensor, event_shape: tuple[int, ...], where: str, expected_by: str) -> None:
    """Raise ``ValueError`` naming ``where``, the shape found and the shape expected if the data
    points of ``x`` ``[N, ...]`` do not have shape ``event_shape``.

    Args:
        x: the data.
        event_shape: the shape one data point must have.
        where: what the data are (a file name, ``dataset/split``), for the message.
        expected_by: who expects ``event_shape``, e.g. ``"the run runs/vae was trained on"``.
    """
    if tuple(x.shape[1:]) != tuple(event_shape):
        raise ValueError(f"{where}: observations have shape {tuple(x.shape[1:])}, but {expected_by} "
                         f"shape {tuple(event_shape)}")


def _first_bad(support: constraints.Constraint, x: torch.Tensor) -> tuple[int, ...] | None:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    ok = support.check(x)
    if ok.shape != x.shape or bool(ok.all()):  # a constraint on whole events: name the data point
        return None if bool(ok.all()) else (int((~ok).reshape(ok.shape[0], -1).any(-1).nonzero()[0]),)
    return tuple(int(i) for i in (~ok).nonzero()[0])


@torch.no_grad()
def check_observations(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None, where: str,
                       batch_size: int = 1000, rows: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` naming ``where``, the index and the value of the first observation
    outside the support of the model's observed site (read from a trace of ``module.model``).

    Modules with a ``likelihood`` attribute (the built-in image models) use its own check
    (:func:`ppl_models.models.likelihoods.check_support`: values in [0, 1], or {0, 1} for a
    Bernoulli likelihood), whose message also says how to fix grey levels 0..255 or grey-level
    data under a Bernoulli likelihood.

    Args:
        module: the model.
        x: the observations ``[N, ...]``.
        y: their labels ``[N]`` or None (bound for a model conditioned on them).
        where: what the data are, for the message (e.g. ``path/x.npy/train``).
        batch_size: data points per traced pass.
        rows: source row of each data point (``Split.rows``), to name it in the message.
    """
    from ppl_models.models.likelihoods import check_support, row_note

    if hasattr(module, "likelihood"):
        check_support(module.likelihood, x, where, rows)
        return
    site_name = module.observed_sites[0]
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        yb = None if y is None else y[start : start + batch_size]
        view = bind_labels(module, yb, evaluation=True)
        with pyro.validation_enabled(False):
            trace = poutine.trace(view.model).get_trace(xb)
        site = trace.nodes[site_name]
        value = site["value"]
        bad = _first_bad(site["fn"].support, value)
        if bad is not None:
            index = (bad[0] + start, *bad[1:])
            value = value[bad].tolist() if len(bad) < value.dim() else value[bad].item()
            raise ValueError(f"{where}: element {index}{row_note(rows, index[0])} is {value!r}, outside the support "
                             f"{site['fn'].support} of the observed site {site_name!r} of {type(module).__name__}")
