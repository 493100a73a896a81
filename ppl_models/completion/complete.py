"""Complete images with trained models, every applicable way, and score every way alike.

:func:`complete` is the Python door (``ppl complete`` reads run directories and calls it per mask):
it takes trained models, images and a boolean mask (True = hidden), runs each requested method on
each model it applies to, and scores every row on the same images with the same metrics:

- the conditional NLL of the true hidden pixels, -log p(x_hidden | x_observed) (how each method
  estimates it is in ``nll_by``: importance sampling, exact, or the method's own distribution);
- the pixel accuracy of the most likely completion (hidden pixels, binary data): the predictive
  mean thresholded at 1/2;
- whether the completion keeps the digit's class: the share of completions that the feature
  classifier of :mod:`ppl_models.evaluate.classifier` labels as it labels the original image;
- wall time per image.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import pyro
import torch

from ppl_models.completion.masks import check_mask, require_hidden
from ppl_models.completion.method import Completion, CompletionSettings, registered_methods

NOT_COMPUTED = "not computed: no classifier given"  # class_kept when complete() gets no classifier


@dataclass(frozen=True)
class CompletionScore:
    """One row of the table: one way of one method, with one model, under one mask, scored."""

    method: str  # the registered method (latent, pixels, cvae, autoregressive)
    variant: str  # the way it inferred ("" when it has one), e.g. "encoder IS, zero-filled"
    model: str  # the model's label (its run directory for ppl complete)
    mask: str  # the mask's name
    n: int  # images completed
    hidden_fraction: float  # mean share of hidden pixels per image
    nll: float | str  # mean -log p(x_hidden | x_observed) in nats per image, or why there is none
    nll_by: str  # how log p(x_hidden | x_observed) was computed
    accuracy: float | str  # share of hidden pixels the most likely completion gets right (binary data)
    class_kept: float | str  # share of completions the classifier labels as it labels the original image
    ms_per_image: float | str  # wall time of the row per image, milliseconds
    log_p_observed: float | str  # mean log p(x_observed): the latent rows' IS estimate, the pixels rows' bound L
    extra: dict  # the method's own figures (effective sample sizes, bounds, steps)
    reason: str | None = None  # why the method does not apply (the metric fields then repeat it)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CompletionResult:
    """What :func:`complete` returns: the scored rows and every row's completions."""

    rows: tuple[CompletionScore, ...]  # in the order the methods ran; not-applicable methods included
    completions: dict[tuple[str, str, str], Completion]  # (model, method, variant) -> its completions
    x: torch.Tensor  # the images [N, *event] (CPU)
    hidden: torch.Tensor  # the per-image mask [N, *event] (CPU), True = hidden

    def to_json(self) -> dict:
        """The rows, JSON-ready (tensors left out)."""
        return {"rows": [row.to_json() for row in self.rows]}


def method_names(methods: str | Sequence[str] | None) -> list[str]:
    """The methods to run: every registered one for ``None`` or ``"all"``; an unknown name raises,
    listing the valid ones."""
    known = registered_methods()
    if methods is None or methods == "all" or (not isinstance(methods, str) and "all" in methods):
        return list(known)
    names = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ValueError(f"unknown completion method {unknown[0]!r}; choose from {', '.join(known)} or all")
    return list(dict.fromkeys(names))


def check_request(names: Sequence[str], hidden: torch.Tensor, mask_name: str) -> None:
    """Raise ``ValueError`` naming the mask if it hides nothing and one of the methods ``names`` needs
    something hidden (``needs_hidden``)."""
    for name in names:
        if registered_methods()[name].needs_hidden:
            require_hidden(hidden, name, mask_name)


def _is_binary(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1)).all())


def _accuracy(c: Completion, x: torch.Tensor, hidden: torch.Tensor) -> float | str:
    if not _is_binary(x):
        return "not applicable: grey-level data"
    if not bool(hidden.any()):
        return "not applicable: nothing hidden"
    right = ((c.mean > 0.5).to(x.dtype) == x) & hidden
    return right.sum().item() / hidden.sum().item()


def _class_kept(c: Completion, x: torch.Tensor, classifier) -> float | str:
    if isinstance(classifier, str):
        return classifier
    if classifier is None:
        return NOT_COMPUTED
    _, p_true = classifier.features_and_probs(x)
    _, p_draw = classifier.features_and_probs(c.draws.flatten(0, 1))
    labels = p_draw.argmax(-1).reshape(c.draws.shape[0], -1)
    return (labels == p_true.argmax(-1)).float().mean().item()


def _score(model: str, mask: str, c: Completion, x: torch.Tensor, hidden: torch.Tensor, classifier) -> CompletionScore:
    n = x.shape[0]
    nll = -c.log_p_hidden.double().mean().item()
    observed = c.extra.get("log_p_observed", c.extra.get("bound_fitted", "not estimated by this method"))
    return CompletionScore(c.method, c.variant, model, mask, n, hidden.flatten(1).float().mean().item(), nll,
                           c.nll_by, _accuracy(c, x, hidden), _class_kept(c, x, classifier),
                           1000 * c.seconds / n, observed, c.extra)


def _not_applicable(method: str, mask: str, n: int, hidden: torch.Tensor, reasons: dict[str, str]) -> CompletionScore:
    reason = "; ".join(f"{name}: {why}" for name, why in reasons.items()) if len(reasons) > 1 else next(iter(reasons.values()))
    return CompletionScore(method, "", ", ".join(reasons), mask, n, hidden.flatten(1).float().mean().item(),
                           reason, "", reason, reason, reason, reason, {}, reason)


def _check_observed_kept(c: Completion, x: torch.Tensor, hidden: torch.Tensor, model: str) -> None:
    for name, values in (("draws", c.draws), ("mean", c.mean)):
        if not bool(torch.where(hidden, torch.tensor(True), values == x).all()):
            raise RuntimeError(f"completion method {c.method} ({c.variant or 'its one way'}) changed observed pixels "
                               f"in its {name} for model {model}: a bug in the method")


def complete(models: torch.nn.Module | Mapping[str, torch.nn.Module], images: torch.Tensor, hidden: torch.Tensor,
             methods: str | Sequence[str] | None = None, settings: CompletionSettings = CompletionSettings(),
             mask_name: str = "mask", classifier=None) -> CompletionResult:
    """Complete ``images`` where ``hidden`` is True with every requested method on every model it applies to.

    Args:
        models: a trained model, or labelled models (e.g. ``{"runs/vae": vae, "runs/pixelcnn": pcnn}``;
            ``cvae`` and ``autoregressive`` need their own kinds of model, ``latent`` and ``pixels`` take
            any model with latent variables or a likelihood over binary pixels).
        images: ``[N, *event]`` on the models' device.
        hidden: a boolean mask ``event`` or ``[N, *event]``, True where a value is missing.
        methods: method names (``None`` or ``"all"``: every registered method).
        settings: how hard each method works (samples, K, steps).
        mask_name: the mask's name in the rows.
        classifier: a :class:`~ppl_models.evaluate.classifier.FeatureClassifier` for the class-kept
            score, a string saying why there is none, or ``None`` (not computed).

    Returns:
        A :class:`CompletionResult`; a method that applies to none of the models gives one row whose
        ``reason`` says why.

    Raises:
        ValueError: a bad mask (not boolean, wrong shape; or hiding nothing where a method needs
            something hidden), naming it; an unknown method.
    """
    if isinstance(models, torch.nn.Module):
        models = {type(models).__name__.lower(): models}
    names = method_names(methods)
    n = images.shape[0]
    check_mask(hidden, tuple(images.shape[1:]), n, where=mask_name)
    check_request(names, hidden, mask_name)
    hidden = hidden.to(images.device).expand_as(images)
    x_cpu, hidden_cpu = images.detach().cpu(), hidden.cpu()
    rows, completions = [], {}
    for name in names:
        method = registered_methods()[name]
        reasons = {}
        for label, module in models.items():
            why = method.not_applicable(module, hidden)
            if why is not None:
                reasons[label] = why
                continue
            pyro.set_rng_seed(settings.seed)
            start = time.perf_counter()
            made = method.complete(module, images, hidden, settings)
            for c in made:
                if c.seconds <= 0:
                    c = dataclasses.replace(c, seconds=time.perf_counter() - start)
                _check_observed_kept(c, x_cpu, hidden_cpu, label)
                completions[(label, c.method, c.variant)] = c
                rows.append(_score(label, mask_name, c, x_cpu, hidden_cpu, classifier))
        if len(reasons) == len(models):
            rows.append(_not_applicable(name, mask_name, n, hidden_cpu, reasons))
    return CompletionResult(tuple(rows), completions, x_cpu, hidden_cpu)
