"""The model registry: every command finds a model by name here.

A model family registers itself with :func:`register_model`, giving its config dataclass and a
one-line description. The trainer and the evaluators never import a model module directly; they
look it up here, so a built-in model and a user's model enter at the same point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


@dataclass(frozen=True)
class ModelEntry:
    """A registered model family."""

    name: str  # the name used on the command line
    cls: type[nn.Module]  # built as cls(config, event_shape)
    config_cls: type  # frozen dataclass holding every architecture choice
    description: str  # one line for `ppl models`


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, config: type, description: str) -> Callable[[type], type]:
    """Class decorator that registers a model family under ``name``.

    Args:
        name: command-line name, e.g. ``"vae"``.
        config: the frozen dataclass that configures the model.
        description: one-line description shown by ``ppl models``.
    """

    def decorator(cls: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered by {_MODELS[name].cls.__qualname__}")
        _MODELS[name] = ModelEntry(name, cls, config, description)
        return cls

    return decorator


def _load_builtin_models() -> None:
    # Importing the package registers the built-in families.
    import ppl_models.models  # noqa: F401


def available_models() -> dict[str, str]:
    """Names of the registered models mapped to their one-line descriptions."""
    _load_builtin_models()
    return {name: entry.description for name, entry in sorted(_MODELS.items())}


def get_model(name: str) -> ModelEntry:
    """Look up a registered model family by name, with an error that lists the valid names."""
    _load_builtin_models()
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODELS))}") from None


def model_config(name: str, **fields: Any) -> Any:
    """Build the config dataclass of model ``name`` from keyword fields, rejecting unknown ones."""
    entry = get_model(name)
    known = {f.name for f in dataclasses.fields(entry.config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"model {name!r} has no config field(s) {unknown}; its fields are {sorted(known)}")
    return entry.config_cls(**fields)


def build_model(name: str, config: Any, event_shape: tuple[int, ...]) -> nn.Module:
    """Instantiate model ``name`` for data whose single example has shape ``event_shape``."""
    entry = get_model(name)
    if not isinstance(config, entry.config_cls):
        raise TypeError(f"model {name!r} expects a {entry.config_cls.__name__}, got {type(config).__name__}")
    return entry.cls(config, torch.Size(event_shape))
