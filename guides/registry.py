"""The registry of automatic-guide families: names to classes, filled by ``@register_family``.

It imports nothing of the guides package, so the config, the families and the automatic guide
can all read it without importing each other in a circle.
"""

from __future__ import annotations

from typing import Callable

_FAMILIES: dict[str, type] = {}


def register_family(name: str) -> Callable[[type], type]:
    """Class decorator registering a :class:`guides.families.Family` subclass under ``name``."""

    def decorator(cls: type) -> type:
        if name in _FAMILIES:
            raise ValueError(f"guide family {name!r} is already registered by {_FAMILIES[name].__qualname__}")
        _FAMILIES[name] = cls
        return cls

    return decorator


def family_names() -> tuple[str, ...]:
    """The registered family names, in registration order."""
    return tuple(_FAMILIES)


def family_class(name: str) -> type:
    """The class registered as ``name``; an unknown name is an error listing the registered ones."""
    if name not in _FAMILIES:
        raise ValueError(f"unknown guide family {name!r}; choose one of {', '.join(_FAMILIES)}")
    return _FAMILIES[name]
