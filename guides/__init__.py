"""Amortized guides: networks that map observed data to a posterior approximation q(z | x)."""

import ppl_models  # noqa: F401  (first: the guides build on ppl_models.nets, whose package imports models that use guides)

from guides.auto import FAMILIES, AmortizedGuide, attach_guide
from guides.config import GuideConfig
from guides.encoder import DiagonalNormalEncoder
from guides.registry import family_names, register_family

__all__ = ["FAMILIES", "AmortizedGuide", "DiagonalNormalEncoder", "GuideConfig", "attach_guide", "family_names",
           "register_family"]
