"""Settings of ``ppl train`` read from a file: ``--config run.toml`` (or ``.json``).

Two layouts are read:

- **flat**: any training setting (a :class:`~ppl_models.train.config.TrainConfig` field), any field
  of the model's config, ``model`` (a name or ``path.py:NAME``) and a ``guide`` table of
  :class:`guides.config.GuideConfig` fields; keys may use ``-`` or ``_``::

      model = "vae"
      data = "digits"
      epochs = 50
      latent_dim = 8
      [guide]
      family = "lowrank"

- **a run's** ``config.json``: its ``model``, ``model_config``, ``train`` and ``guide`` sections, so
  ``ppl train --config RUN/config.json --out RUN2`` repeats that run exactly.

An unknown key is an error that names it and lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guides.config import GuideConfig
from ppl_models.registry import get_model
from ppl_models.train.config import TrainConfig

TRAIN_KEYS = frozenset(f.name for f in dataclasses.fields(TrainConfig))
GUIDE_KEYS = frozenset(f.name for f in dataclasses.fields(GuideConfig))
RUN_SECTIONS = frozenset({"format_version", "model", "model_config", "train", "event_shape", "guide"})


@dataclass(frozen=True)
class FileSettings:
    """What a config file sets; the command line's flags override each part."""

    model: str | None = None  # the model name or path.py:NAME (None: give it on the command line)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    model_fields: dict[str, Any] = field(default_factory=dict)  # fields of the model's config
    guide: dict[str, Any] = field(default_factory=dict)  # GuideConfig fields


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as e:
        raise OSError(f"cannot read the config file {path}: {e.strerror or e}") from e
    try:
        data = tomllib.loads(text.decode()) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table of settings, got {type(data).__name__}")
    return data


def _tuples(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def read_config_file(path: str | Path, model: str | None = None) -> FileSettings:
    """The settings in ``path`` (``.toml``, or JSON otherwise), split by where they go.

    Args:
        path: the config file.
        model: the model named on the command line, which wins over the file's.

    Raises:
        ValueError: malformed file, no model named anywhere, or an unknown key (naming it and
            listing the valid ones).
    """
    path = Path(path)
    data = _read(path)
    if "model_config" in data or "train" in data:  # a run's config.json
        unknown = sorted(set(data) - RUN_SECTIONS)
        if unknown:
            raise ValueError(f"config file {path}: unknown section(s) {unknown}; a run's config has {sorted(RUN_SECTIONS)}")
        name = model or data.get("model")
        _check(path, "train", data.get("train", {}), TRAIN_KEYS)
        _check(path, "guide", data.get("guide", {}), GUIDE_KEYS)
        _check(path, "model_config", data.get("model_config", {}), _model_keys(name, path))
        return FileSettings(name, _tuples(data.get("train", {})), _tuples(data.get("model_config", {})),
                            _tuples(data.get("guide", {})))
    flat = {k.replace("-", "_"): v for k, v in data.items()}
    name = model or flat.pop("model", None)
    flat.pop("model", None)
    guide = flat.pop("guide", {})
    if not isinstance(guide, dict):
        raise ValueError(f"config file {path}: 'guide' must be a table of guide settings ({sorted(GUIDE_KEYS)})")
    model_keys = _model_keys(name, path)
    _check(path, None, flat, TRAIN_KEYS | model_keys, extra=("model", "guide"))
    _check(path, "guide", guide, GUIDE_KEYS)
    return FileSettings(name, _tuples({k: v for k, v in flat.items() if k in TRAIN_KEYS}),
                        _tuples({k: v for k, v in flat.items() if k not in TRAIN_KEYS}), _tuples(guide))


def _model_keys(name: str | None, path: Path) -> frozenset[str]:
    if name is None:
        raise ValueError(f"config file {path} names no model: add model = \"NAME\" or give MODEL on the command line")
    return frozenset(f.name for f in dataclasses.fields(get_model(name).config_cls))


def _check(path: Path, section: str | None, fields: dict, valid: frozenset[str], extra: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(fields) - valid)
    if unknown:
        where = f" [{section}]" if section else ""
        raise ValueError(f"config file {path}{where}: unknown key {unknown[0]!r}; valid keys are "
                         f"{', '.join(sorted(valid | set(extra)))}")
