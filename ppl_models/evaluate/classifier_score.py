"""Classifier scores of samples: how diverse and how confident a digit classifier's predictions are.

From the predicted class probabilities p(y | x_i) of N samples: H(y), the entropy of the marginal
label distribution p(y) = mean_i p(y | x_i) (diversity: ln 10 = 2.303 nats for balanced digits),
and E H(y | x), the mean per-sample entropy (confidence: 0 for unambiguous digits). Their
difference is the mutual information whose exponential is the Inception score (Salimans et al.
2016, "Improved Techniques for Training GANs"): exp(H(y) - E H(y|x)), here with a digit
classifier in place of Inception (between 1 and 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClassifierScore:
    """Label entropies of a set of samples, in nats."""

    label_entropy: float  # H(y) of the marginal predicted label distribution (diversity)
    mean_entropy: float  # E_x H(y | x), the mean per-sample entropy (confidence; lower is surer)
    inception_score: float  # exp(H(y) - E H(y | x))


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each row of ``probs`` (0 log 0 = 0)."""
    return -torch.where(probs > 0, probs * probs.log(), torch.zeros_like(probs)).sum(-1)


def classifier_score(probs: torch.Tensor) -> ClassifierScore:
    """:class:`ClassifierScore` of class probabilities ``probs`` ``[N, C]`` (rows summing to 1)."""
    if probs.dim() != 2 or probs.shape[0] < 1:
        raise ValueError(f"classifier_score needs probabilities of shape [N, C], got {tuple(probs.shape)}")
    p = probs.detach().to("cpu", torch.float64)
    marginal = float(_entropy(p.mean(0)))
    mean = float(_entropy(p).mean())
    return ClassifierScore(marginal, mean, math.exp(marginal - mean))
