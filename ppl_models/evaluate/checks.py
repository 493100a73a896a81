"""Range checks of the numeric settings of the evaluation commands, with messages naming the flag."""

from __future__ import annotations

import math


def at_least(value: int | None, flag: str, minimum: int = 1) -> None:
    """Raise ``ValueError`` naming ``flag`` and ``value`` unless ``value`` is None or a whole number >= ``minimum``.

    Args:
        value: the setting (None: not given).
        flag: its command-line name, e.g. ``"--nll-samples"``.
        minimum: the smallest allowed value.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{flag} must be a whole number >= {minimum}, got {value!r}")


def positive(value: float | None, flag: str) -> None:
    """Raise ``ValueError`` naming ``flag`` and ``value`` unless ``value`` is None or a finite number > 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{flag} must be a finite number > 0, got {value!r}")
