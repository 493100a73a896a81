"""The Fréchet distance between Gaussians fitted to two sets of features (the "FID" of Heusel et al. 2017).

M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler and S. Hochreiter, "GANs Trained by a Two
Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017:

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}).

The trace of the matrix square root is computed from eigenvalues of symmetric matrices only:
Tr (S_1 S_2)^{1/2} = sum_i sqrt(lambda_i(A)) with A = S_1^{1/2} S_2 S_1^{1/2}, which is similar to
S_1 S_2 and symmetric positive semi-definite, so ``eigh`` applies and no complex ``sqrtm`` (nor its
failures on near-singular covariances) is needed. Everything is in float64. The estimate is biased
upwards at small sample sizes, so compare values at equal N only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Gaussian:
    """A Gaussian fitted to features: mean and covariance, in float64."""

    mean: torch.Tensor  # [D]
    cov: torch.Tensor  # [D, D], the unbiased sample covariance (divides by N - 1)


def fit_gaussian(features: torch.Tensor) -> Gaussian:
    """The sample mean and covariance of ``features`` ``[N, D]`` (N >= 2), in float64."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"fit_gaussian needs features of shape [N, D] with N >= 2, got {tuple(features.shape)}")
    f = features.detach().to("cpu", torch.float64)
    return Gaussian(f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1]))


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def trace_sqrt_product(cov1: torch.Tensor, cov2: torch.Tensor) -> torch.Tensor:
    """Tr (S_1 S_2)^{1/2} for symmetric positive semi-definite S_1, S_2, by symmetric eigendecompositions."""
    root = _psd_sqrt(cov1)
    inner = root @ cov2 @ root
    return torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()


def frechet_distance(p: Gaussian, q: Gaussian) -> float:
    """The squared Fréchet (2-Wasserstein) distance between Gaussians ``p`` and ``q`` (Heusel et al. 2017).

    Raises:
        ValueError: naming both dimensions if they differ.
    """
    if p.mean.shape != q.mean.shape:
        raise ValueError(f"the Gaussians have different dimensions {tuple(p.mean.shape)} and {tuple(q.mean.shape)}")
    diff = p.mean - q.mean
    value = diff @ diff + torch.trace(p.cov) + torch.trace(q.cov) - 2 * trace_sqrt_product(p.cov, q.cov)
    return max(float(value), 0.0)  # a round-off below zero for (near) identical sets


def frechet_distance_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to feature sets ``a`` ``[N, D]`` and ``b`` ``[M, D]``."""
    return frechet_distance(fit_gaussian(a), fit_gaussian(b))
