"""Inference strategies and estimators: log-likelihood estimators compared at equal cost, and a
NUTS gold-standard posterior to check amortized guides against."""

# Importing the strategy modules registers them.
from ppl_models.inference.per_datapoint import PerDatapoint, fit_local
from ppl_models.inference.semi_amortized import SemiAmortized, refine
from ppl_models.inference.strategy import Strategy, available_strategies, build_strategy, check_strategy, register_strategy

__all__ = [
    "PerDatapoint", "SemiAmortized", "Strategy", "available_strategies", "build_strategy", "check_strategy",
    "fit_local", "refine", "register_strategy",
]
