"""Inference strategies and estimators: amortized, semi-amortized and per-data-point SVI; log-likelihood
estimators compared at equal cost; a NUTS gold-standard posterior to check amortized guides against."""

# Importing the strategy modules registers them.
from ppl_models.inference.adversarial import Adversarial
from ppl_models.inference.estimators import compare_estimators, log_likelihood, prior_log_weights
from ppl_models.inference.nuts import compare_with_guide, nuts_posterior
from ppl_models.inference.per_datapoint import PerDatapoint, fit_local
from ppl_models.inference.semi_amortized import SemiAmortized, refine
from ppl_models.inference.strategy import Strategy, available_strategies, build_strategy, check_strategy, register_strategy

__all__ = [
    "Adversarial", "PerDatapoint", "SemiAmortized", "Strategy", "available_strategies", "build_strategy", "check_strategy",
    "compare_estimators", "compare_with_guide", "fit_local", "log_likelihood", "nuts_posterior", "prior_log_weights",
    "refine", "register_strategy",
]
