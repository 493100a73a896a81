"""Evaluation: bounds and likelihood estimates, subsets and sample grids."""

from ppl_models.evaluate.likelihood import LikelihoodResult, estimate_log_likelihood, evenly_spaced_indices

__all__ = ["LikelihoodResult", "estimate_log_likelihood", "evenly_spaced_indices"]
