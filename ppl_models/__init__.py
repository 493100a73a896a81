"""ppl-models: deep generative models written as Pyro programs.

A model is an ``nn.Module`` whose ``model`` and ``guide`` methods are Pyro programs that share
site names. Training is SVI with a Pyro ELBO's ``differentiable_loss`` driving one torch optimizer;
evaluation reads the same programs back through Pyro's effect handlers.
"""

__version__ = "0.1.0"

from ppl_models.registry import register_model  # noqa: E402  (the one import a model file needs)

from ppl_models.api import (CompareResult, CompletionReport, DiagnoseResult, EvalResult, Run,  # noqa: E402
                            compare_inference, complete_runs, load, train)
from ppl_models.diagnostics import DiagnoseConfig, diagnose  # noqa: E402  (any module, no run directory)

__all__ = ["CompareResult", "CompletionReport", "DiagnoseConfig", "DiagnoseResult", "EvalResult", "Run",
           "compare_inference", "complete", "complete_runs", "diagnose", "load", "models", "register_model", "train"]


def __getattr__(name: str):
    """``ppl.models`` (the model classes, ``ppl.models.VAE``) and ``ppl.complete`` (complete images with a
    model: :func:`ppl_models.completion.complete`), imported when first asked for: the built-in models
    import the guides, which import this package, so they cannot come eagerly."""
    import importlib

    if name == "models":
        return importlib.import_module("ppl_models.models")
    if name == "complete":
        return importlib.import_module("ppl_models.completion").complete
    raise AttributeError(f"module 'ppl_models' has no attribute {name!r}")
