"""Improved precision and recall of generated samples in a feature space (Kynkäänniemi et al. 2019).

T. Kynkäänniemi, T. Karras, S. Laine, J. Lehtinen and T. Aila, "Improved Precision and Recall
Metric for Assessing Generative Models", NeurIPS 2019. Each set's manifold is approximated by the
union of balls around its points, each ball reaching the point's k-th nearest neighbour within its
own set (the point itself excluded). Precision is the fraction of generated points inside the real
manifold (how many samples look real); recall is the fraction of real points inside the generated
manifold (how much of the data the model covers). The paper uses k = 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_K = 3  # neighbours of the ball radii, as in the paper
CHUNK = 1024  # rows of a distance matrix computed at once (memory ~ CHUNK x N)


@dataclass(frozen=True)
class PrecisionRecall:
    """Improved precision and recall, each in [0, 1]."""

    precision: float  # fraction of generated points inside the real manifold
    recall: float  # fraction of real points inside the generated manifold
    k: int  # nearest neighbour defining the radii


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[len(a), len(b)]`` in float64 (exact ties: identical points are at 0)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def knn_radii(features: torch.Tensor, k: int = DEFAULT_K) -> torch.Tensor:
    """The distance of each point of ``features`` ``[N, D]`` to its ``k``-th nearest other point ``[N]``."""
    if features.dim() != 2 or not 1 <= k < features.shape[0]:
        raise ValueError(f"k-NN radii need features [N, D] with 1 <= k < N, got k={k} and shape "
                         f"{tuple(features.shape)}")
    f = features.detach().to("cpu", torch.float64)
    # index k of the sorted row: index 0 is the point itself (distance 0)
    return torch.cat([_distances(rows, f).kthvalue(k + 1, dim=1).values for rows in f.split(CHUNK)])


def coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> float:
    """The fraction of ``points`` ``[M, D]`` inside at least one ball (``centres`` ``[N, D]``, ``radii`` ``[N]``)."""
    p = points.detach().to("cpu", torch.float64)
    c = centres.detach().to("cpu", torch.float64)
    inside = [(_distances(rows, c) <= radii).any(dim=1) for rows in p.split(CHUNK)]
    return float(torch.cat(inside).double().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = DEFAULT_K) -> PrecisionRecall:
    """Improved precision and recall of ``fake`` features ``[M, D]`` against ``real`` features ``[N, D]``.

    Raises:
        ValueError: for feature dimensions that differ, or a set with no more than ``k`` points.
    """
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"precision and recall need features [N, D] of one D, got real {tuple(real.shape)} and "
                         f"generated {tuple(fake.shape)}")
    return PrecisionRecall(precision=coverage(fake, real, knn_radii(real, k)),
                           recall=coverage(real, fake, knn_radii(fake, k)), k=k)
