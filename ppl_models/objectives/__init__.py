"""Training objectives: Pyro ELBO objects, registered by name.

Every objective is a :class:`pyro.infer.ELBO` with a ``differentiable_loss(model, guide, *args)``
that returns a scalar to minimise (the negative bound, summed over the batch), so one torch
optimizer can drive any of them.
"""

from ppl_models.objectives.log_weights import log_importance_weights
from ppl_models.objectives.registry import available_objectives, build_objective, register_objective

__all__ = ["available_objectives", "build_objective", "log_importance_weights", "register_objective"]
