"""The contenders ``ppl compare --models`` names: a registered model plus the training settings that
make it what the literature calls it (``iwae`` is the VAE trained on the IWAE bound, Burda et al.
2015). Any registered model name is also a contender, trained with its defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ppl_models.registry import available_models


@dataclass(frozen=True)
class Contender:
    """One row of a model comparison."""

    name: str  # the name in --models and the run directory OUT/runs/<name>
    model: str  # the registered model it trains
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields it sets (e.g. the objective)
    description: str = ""  # one line for help texts and the table's notes


_CONTENDERS: dict[str, Contender] = {}


def register_contender(name: str, model: str, description: str, **train: Any) -> Contender:
    """Register the contender ``name``: ``model`` trained with the TrainConfig fields ``train``."""
    _CONTENDERS[name] = Contender(name, model, dict(train), description)
    return _CONTENDERS[name]


def get_contender(name: str) -> Contender:
    """The contender ``name``: a registered one, else the registered model of that name with its defaults.

    Raises:
        ValueError: neither, listing both kinds of names.
    """
    if name in _CONTENDERS:
        return _CONTENDERS[name]
    if name in available_models():
        return Contender(name, name, {}, available_models()[name])
    raise ValueError(f"unknown model {name!r} in --models; choose from {', '.join(available_contenders())}")


def available_contenders() -> dict[str, str]:
    """Contender names (the registered ones, then every registered model) mapped to descriptions."""
    return {**{n: c.description for n, c in _CONTENDERS.items()},
            **{n: d for n, d in available_models().items() if n not in _CONTENDERS}}


register_contender("vae", "vae", "VAE trained on the ELBO (Kingma & Welling 2014)")
register_contender("iwae", "vae", "the same VAE trained on the IWAE bound, K=5 (Burda et al. 2015)",
                   objective="iwae", particles=5)
register_contender("gan", "gan", "GAN, Algorithm 1 of Goodfellow et al. (2014), non-saturating generator loss")
