"""What a completion method is: its settings, what it returns, and the registry of methods.

A method takes a trained model, images ``x`` ``[N, *event]`` and a per-image mask ``hidden``
``[N, *event]`` (True = missing) and returns one or more :class:`Completion` rows (a method with
several ways of inferring, such as ``latent``, returns one per way). Methods register with
:func:`register_method`; :mod:`.complete` runs them side by side and scores them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass(frozen=True)
class CompletionSettings:
    """How hard each method works. The defaults are those of ``ppl complete``."""

    samples: int = 8  # S: completions drawn per image (the figure shows the first few)
    num_particles: int = 1000  # K: importance samples for log p(x) and log p(x_observed)
    batch_size: int = 100  # images per pass
    particle_chunk: int = 100  # importance samples per pass (memory ~ batch_size * particle_chunk)
    imputation_rounds: int = 3  # rounds of iterative imputation before the encoder proposal (latent)
    svi_steps: int = 200  # cap on the per-point SVI steps, started from the encoder (latent)
    svi_lr: float = 5e-2  # Adam step size of per-point SVI (latent)
    pixel_steps: int = 300  # Adam steps fitting the mean-field phi over the hidden pixels (pixels)
    pixel_lr: float = 0.1  # Adam step size for phi's logits (pixels)
    pixel_draws: int = 4  # D: draws of the hidden pixels per image and step for the gradient estimator (pixels)
    pixel_estimator: str = "concrete"  # gradient estimator for phi: concrete (relaxed) | score (REINFORCE + baseline)
    pixel_temperature: float = 0.5  # temperature tau of the concrete relaxation (pixels)
    pixel_particles: int = 16  # importance samples of z inside log p(x_observed, x_hidden) for a latent model (pixels)
    autoregressive_pool: int = 64  # ancestral proposals per image for importance resampling (autoregressive)
    seed: int = 0  # seeds every method's draws (each method starts from it)
    progress: bool = True  # show tqdm progress bars


@dataclass(frozen=True)
class Completion:
    """One row of the table: one method's (one way's) completions of the images under one mask."""

    method: str  # the registered method, e.g. "latent"
    variant: str  # the way it inferred, e.g. "encoder IS, imputed x3"; "" when the method has one way
    draws: torch.Tensor  # [S, N, *event] completions on the CPU; observed values equal the input's exactly
    mean: torch.Tensor  # [N, *event] each hidden value's predictive mean given the observed ones (observed: the input)
    log_p_hidden: torch.Tensor  # [N] estimate of log p(x_hidden | x_observed) at the true hidden values, nats
    nll_by: str  # how log_p_hidden was computed, e.g. "log p(x) - log p(x_obs), IS K=1000" or "exact"
    seconds: float  # wall time of this row's inference, draws and estimates
    extra: dict = field(default_factory=dict)  # method-specific JSON-ready figures (e.g. the pixels bounds)


class CompletionMethod:
    """A way to complete images. Subclasses set ``name`` and ``description`` via :func:`register_method`."""

    name: str = ""  # the name on the command line (--method)
    description: str = ""  # one line for help texts
    needs_hidden: bool = False  # it fits something to the hidden pixels, so a mask hiding nothing is refused

    def not_applicable(self, module: torch.nn.Module, hidden: torch.Tensor) -> str | None:
        """Why this method cannot complete images with ``module`` under ``hidden``, or None if it can."""
        raise NotImplementedError

    def complete(self, module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor,
                 settings: CompletionSettings) -> list[Completion]:
        """Complete ``x`` ``[N, *event]`` (on the model's device) where ``hidden`` ``[N, *event]`` is True."""
        raise NotImplementedError


METHODS: dict[str, CompletionMethod] = {}  # name -> the method (one instance each), filled by @register_method
BUILT_IN = {"latent": "latent", "pixels": "pixels", "cvae": "conditional",  # method -> its module, in table order
            "autoregressive": "autoregressive"}


def registered_methods() -> dict[str, CompletionMethod]:
    """Every registered method by name: the built-in ones first, in table order (their modules are imported
    on first use), then any others in the order they registered."""
    for module in BUILT_IN.values():
        importlib.import_module(f"ppl_models.completion.{module}")
    return {**{name: METHODS[name] for name in BUILT_IN}, **METHODS}


def register_method(name: str, description: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`CompletionMethod` subclass under ``name``."""

    def decorate(cls: type) -> type:
        if name in METHODS:
            raise ValueError(f"completion method {name!r} is registered twice")
        cls.name, cls.description = name, description
        METHODS[name] = cls()
        return cls

    return decorate


def paste(x: torch.Tensor, completion: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """``completion`` where ``hidden`` is True, ``x`` elsewhere (broadcast over leading draw dims)."""
    return torch.where(hidden, completion, x)
