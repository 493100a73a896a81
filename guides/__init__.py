"""Amortized guides: networks that map observed data to a posterior approximation q(z | x)."""

from guides.encoder import DiagonalNormalEncoder

__all__ = ["DiagonalNormalEncoder"]
