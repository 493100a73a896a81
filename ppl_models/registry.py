"""The model registry: every command finds a model here, by name or by a user's file.

A model family registers itself with :func:`register_model`, giving its config dataclass and a
one-line description. The trainer and the evaluators never import a model module directly; they
look it up here, so a built-in model, a model in a user's file (``path/to/my_model.py:NAME``) and a
model offered by an installed package (an entry point in the group ``ppl_models.models``) all
enter at the same point. What a model must declare is in :mod:`ppl_models.models.protocol`.

Loading a user's model file or an entry point *executes its Python code*, with the user's rights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

ENTRY_POINT_GROUP = "ppl_models.models"  # installed packages list their model modules here


@dataclass(frozen=True)
class NoConfig:
    """The config of a model that declares none: it has no fields."""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model family."""

    name: str  # the name used on the command line
    cls: type[nn.Module]  # built as cls(config, event_shape)
    config_cls: type  # frozen dataclass holding every architecture choice
    description: str  # one line for `ppl models`
    source: str  # where it came from: "ppl_models", a file path or an entry point


_MODELS: dict[str, ModelEntry] = {}
_FILES: dict[Path, dict[str, ModelEntry]] = {}  # user model files already executed -> the models they define
_loading: list[tuple[str, dict[str, ModelEntry]]] = []  # (source, where its models go) while it is imported
_builtins_loaded = False


def register_model(name: str, config: type | None = None, description: str | None = None) -> Callable[[type], type]:
    """Class decorator that registers a model family under ``name``.

    Args:
        name: command-line name, e.g. ``"vae"``.
        config: the frozen dataclass that configures the model (none: a model without settings).
        description: one-line description shown by ``ppl models`` (default: the class docstring's
            first line).
    """

    def decorator(cls: type) -> type:
        source, target = _loading[-1] if _loading else (cls.__module__, _MODELS)
        if name in target and not _same_file(target[name].cls, cls):
            raise ValueError(f"model {name!r} is already registered by {target[name].cls.__qualname__} "
                             f"({target[name].source})")
        if not callable(getattr(cls, "model", None)):
            raise TypeError(f"model {name!r}: {cls.__qualname__} has no `model` method (the Pyro program)")
        if not getattr(cls, "observed_sites", None):
            raise TypeError(f"model {name!r}: {cls.__qualname__} must declare observed_sites, e.g. ('x',)")
        text = description or (cls.__doc__ or "").strip().split("\n")[0]
        if not text:
            raise ValueError(f"model {name!r}: give a description or a class docstring")
        target[name] = ModelEntry(name, cls, config or NoConfig, text, source)
        return cls

    return decorator


def _same_file(a: type, b: type) -> bool:
    # A file run as a script and then loaded by path defines its class twice: the same model.
    def where(cls: type) -> Path | None:
        code = getattr(getattr(cls, "model", None), "__code__", None)
        return Path(code.co_filename).resolve() if code is not None else None

    return a.__qualname__ == b.__qualname__ and where(a) is not None and where(a) == where(b)


def _load_builtin_models() -> None:
    # Importing the package registers the built-in families; entry points add installed ones.
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    import ppl_models.models  # noqa: F401

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _loading.append((f"entry point {ep.name} = {ep.value}", _MODELS))
        try:
            ep.load()
        except Exception as e:  # a broken plug-in must not take the built-in models down with it
            warnings.warn(f"could not load model entry point {ep.name!r} ({ep.value}): {e}", stacklevel=2)
        finally:
            _loading.pop()


def split_reference(ref: str) -> tuple[Path, str] | None:
    """``(path, NAME)`` for a user-file reference ``path/to/file.py:NAME``, else None."""
    path, sep, name = ref.rpartition(":")
    if not sep or not path.endswith(".py"):
        return None
    return Path(path), name


def canonical_reference(ref: str) -> str:
    """The reference as a run records it: a user file's path made absolute, a name unchanged."""
    parts = split_reference(ref)
    return ref if parts is None else f"{parts[0].expanduser().resolve()}:{parts[1]}"


def _load_file(path: Path) -> dict[str, ModelEntry]:
    # A file's models live in their own namespace, found only as path.py:NAME: two files may
    # both define "my-vae", and neither shadows a built-in model.
    path = path.expanduser().resolve()
    if path in _FILES:
        return _FILES[path]
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    module_name = f"ppl_user_models.m{hashlib.md5(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    entries: dict[str, ModelEntry] = {}
    sys.modules[module_name] = module
    _loading.append((str(path), entries))
    try:
        spec.loader.exec_module(module)  # runs the user's code
    except Exception:
        sys.modules.pop(module_name, None)
        raise
    finally:
        _loading.pop()
    _FILES[path] = entries
    return entries


def registered_name(cls: type) -> str:
    """The name a built-in or installed model class was registered under.

    Raises:
        ValueError: ``cls`` is not registered, listing the names that are.
    """
    _load_builtin_models()
    for name, entry in _MODELS.items():
        if entry.cls is cls:
            return name
    raise ValueError(f"{getattr(cls, '__qualname__', cls)!r} is not a registered model; decorate it with "
                     f"@register_model(name), or give a name ({', '.join(sorted(_MODELS))}) or path.py:NAME")


def available_models() -> dict[str, str]:
    """Names of the registered models mapped to their one-line descriptions."""
    _load_builtin_models()
    return {name: entry.description for name, entry in sorted(_MODELS.items())}


def get_model(name: str) -> ModelEntry:
    """Look up a model family by registered name or by ``path/to/file.py:NAME`` (executing that file
    once), with an error that lists the valid names."""
    _load_builtin_models()
    parts = split_reference(name)
    if parts is not None:
        path, model_name = parts
        entries = _load_file(path)
        if model_name not in entries:
            raise ValueError(f"{path} registers no model {model_name!r}; it registers {sorted(entries) or 'none'} "
                             f"(decorate the class with @ppl_models.register_model({model_name!r}))")
        return entries[model_name]
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(_MODELS))} "
                         f"(or a file: path/to/model.py:NAME)") from None


# Fields the built-in model configs share by convention, checked when a config is built:
SIZE_FIELDS = ("latent_dim", "latent_dims", "hidden", "channels", "classifier_hidden", "classes", "components",
               "depth")  # a size (int >= 1) or sizes (tuple of them)
POSITIVE_FIELDS = ("obs_scale", "min_scale")  # a finite number > 0


def model_config(name: str, **fields: Any) -> Any:
    """Build the config dataclass of model ``name`` from keyword fields, rejecting unknown ones.

    A built-in model's config is also checked for the conventional fields: sizes
    (``SIZE_FIELDS``) at least 1, scales (``POSITIVE_FIELDS``) positive, and ``likelihood`` and
    ``activation`` among the known names (a user's model checks its own fields).
    """
    entry = get_model(name)
    known = {f.name for f in dataclasses.fields(entry.config_cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"model {name!r} has no config field(s) {unknown}; its fields are {sorted(known)}")
    builtin = entry.cls.__module__.startswith("ppl_models.")
    # --set hidden=200 means the one width (200,), for any model whose field defaults to a tuple
    tuples = {f.name for f in dataclasses.fields(entry.config_cls) if isinstance(f.default, tuple)}
    fields = {k: (v,) if k in tuples and isinstance(v, int) and not isinstance(v, bool) else v
              for k, v in fields.items()}
    config = entry.config_cls(**fields)
    if builtin:
        _check_conventional_fields(name, config, entry.cls)
    return config


def _check_conventional_fields(name: str, config: Any, cls: type | None = None) -> None:
    from ppl_models.models.likelihoods import get_likelihood
    from ppl_models.nets import activation

    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in SIZE_FIELDS:
            sizes = value if isinstance(value, tuple) else (value,)
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes):
                raise ValueError(f"model {name!r}: {field.name} must be a whole number >= 1"
                                 f"{' (or several)' if isinstance(field.default, tuple) else ''}, got {value!r}")
        elif field.name in POSITIVE_FIELDS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"model {name!r}: {field.name} must be a finite number > 0, got {value!r}")
        elif field.name == "likelihood":  # a model with likelihoods of its own names their lookup
            getattr(cls, "lookup_likelihood", get_likelihood)(value)
        elif field.name == "activation":
            activation(value)


def check_data_shape(name: str, event_shape: tuple[int, ...], where: str | None = None) -> None:
    """Raise ``ValueError`` if model ``name`` declares a ``data_shape`` other than ``event_shape``.

    Args:
        name: registered name or ``path/to/file.py:NAME``.
        event_shape: the shape of one data point.
        where: what the data are (e.g. the dataset name or file), for the message.
    """
    expected = getattr(get_model(name).cls, "data_shape", None)
    if expected is not None and tuple(expected) != tuple(event_shape):
        data = f"the data {where}" if where else "the data"
        raise ValueError(f"model {name!r} expects observations of shape {tuple(expected)}, "
                         f"but {data} have shape {tuple(event_shape)}")


def build_model(name: str, config: Any, event_shape: tuple[int, ...], guide: Any = None) -> nn.Module:
    """Instantiate model ``name`` for data whose single example has shape ``event_shape``.

    Args:
        name: registered name or ``path/to/file.py:NAME``.
        config: the model's config dataclass.
        event_shape: shape of one observation.
        guide: a :class:`guides.auto.GuideConfig`; by default the model's own guide if it has one,
            else an automatic amortized guide (:mod:`guides.auto`).
    """
    from guides.auto import attach_guide
    from guides.config import GuideConfig
    from ppl_models.models.protocol import label_use

    entry = get_model(name)
    if not isinstance(config, entry.config_cls):
        raise TypeError(f"model {name!r} expects a {entry.config_cls.__name__}, got {type(config).__name__}")
    check_data_shape(name, event_shape)
    module = entry.cls(config, torch.Size(event_shape))
    example = {"y": torch.zeros(2, dtype=torch.long)} if label_use(module) is not None else None
    return attach_guide(module, tuple(event_shape), guide or GuideConfig(), example)
