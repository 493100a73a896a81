"""Which guide a model gets: the model's own, or an automatic one of a registered family."""

from __future__ import annotations

from dataclasses import dataclass

from guides.registry import family_names

DEFAULT = "default"  # the model's own guide if it has one, else the first registered family


@dataclass(frozen=True)
class GuideConfig:
    """Which guide a model gets, and the architecture of an automatic one."""

    family: str = DEFAULT  # default (the model's own guide if it has one, else normal) | normal | lowrank | iaf
    hidden: tuple[int, ...] = (400,)  # encoder hidden widths
    rank: int = 2  # lowrank: rank of the covariance factor
    flows: int = 2  # iaf: number of autoregressive transforms
    flow_hidden: tuple[int, ...] = (200,)  # iaf: hidden widths of each transform's autoregressive network
    activation: str = "relu"  # encoder nonlinearity (ppl_models.nets.ACTIVATIONS)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))  # lists (e.g. from JSON) become tuples
        object.__setattr__(self, "flow_hidden", tuple(self.flow_hidden))
        families = (DEFAULT, *family_names())
        if self.family not in families:
            raise ValueError(f"unknown guide family {self.family!r}; choose one of {', '.join(families)}")
        for field in ("hidden", "flow_hidden"):
            widths = getattr(self, field)
            if any(int(w) < 1 for w in widths):
                raise ValueError(f"guide {field} widths must be positive, got {list(widths)}")
        if not self.flow_hidden:
            raise ValueError("guide flow_hidden needs at least one width (the autoregressive network's hidden layer)")
        if self.rank < 1:
            raise ValueError(f"guide rank must be at least 1, got {self.rank}")
        if self.flows < 1:
            raise ValueError(f"guide flows must be at least 1, got {self.flows}")
        from ppl_models.nets import ACTIVATIONS  # here, not at import: ppl_models imports this module

        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown guide activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
