"""ppl-models: deep generative models written as Pyro programs.

A model is an ``nn.Module`` whose ``model`` and ``guide`` methods are Pyro programs that share
site names. Training is SVI with a Pyro ELBO's ``differentiable_loss`` driving one torch optimizer;
evaluation reads the same programs back through Pyro's effect handlers.
"""

__version__ = "0.1.0"

from ppl_models.registry import register_model  # noqa: E402  (the one import a model file needs)

__all__ = ["register_model"]
