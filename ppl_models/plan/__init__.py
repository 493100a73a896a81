"""The compiled execution plan: SVI steps through a minimal handler, verified against Pyro's (``plan.py``)."""

from ppl_models.plan.plan import MODES, ExecutionPlan, unsupported

__all__ = ["MODES", "ExecutionPlan", "unsupported"]
