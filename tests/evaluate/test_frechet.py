"""The Fréchet distance: zero for a set against itself, the squared shift for a shifted set, and the
closed form ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) for known Gaussians, the matrix square
root computed independently (per coordinate for commuting covariances, by scipy's sqrtm otherwise)."""

import math

import numpy as np
import pytest
import torch

from ppl_models.evaluate.frechet import Gaussian, fit_gaussian, frechet_distance, frechet_distance_features


def _features(n=300, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)


def _rotation(d, seed):
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_a_set_against_itself_is_zero():
    f = _features()
    assert frechet_distance_features(f, f) == pytest.approx(0.0, abs=1e-9)


def test_a_shifted_set_is_at_the_squared_shift_and_grows_with_it():
    f = _features()
    direction = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    values = [frechet_distance_features(f, f + s * direction) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(b > a > 0 for a, b in zip(values, values[1:]))
    # the covariances are identical, so only the mean term is left: s^2 ||direction||^2
    for s, v in zip((0.1, 0.5, 1.0, 2.0), values):
        assert v == pytest.approx(s**2 * float(direction @ direction), rel=1e-8)


@pytest.mark.parametrize("rotated", [False, True])
def test_commuting_covariances_match_the_per_coordinate_closed_form(rotated):
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    b = torch.tensor([2.0, 1.0, 0.25, 16.0], dtype=torch.float64)
    mu1 = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0, 3.0], dtype=torch.float64)
    r = _rotation(4, 1) if rotated else torch.eye(4, dtype=torch.float64)
    s1, s2 = r @ torch.diag(a) @ r.T, r @ torch.diag(b) @ r.T
    # S1 and S2 share eigenvectors: (S1 S2)^{1/2} = R diag(sqrt(a b)) R^T, so FD = |mu|^2 + sum (sqrt a - sqrt b)^2
    expected = float((mu1 - mu2) @ (mu1 - mu2) + ((a.sqrt() - b.sqrt()) ** 2).sum())  # = 5 + 0.1716 + 1 + 0 + 1
    assert expected == pytest.approx(5 + (1 - math.sqrt(2)) ** 2 + 1 + 1, rel=1e-12)
    assert frechet_distance(Gaussian(mu1, s1), Gaussian(mu2, s2)) == pytest.approx(expected, rel=1e-9)


def test_non_commuting_covariances_match_scipy_sqrtm():
    from scipy.linalg import sqrtm

    g = torch.Generator().manual_seed(3)
    m1, m2 = (torch.randn(5, 5, generator=g, dtype=torch.float64) for _ in range(2))
    s1, s2 = m1 @ m1.T + 0.1 * torch.eye(5), m2 @ m2.T + 0.1 * torch.eye(5)
    mu1, mu2 = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    root = sqrtm(s1.numpy() @ s2.numpy())  # the textbook route (Heusel et al.'s reference code)
    expected = float((mu1 - mu2) @ (mu1 - mu2)) + float(np.trace(s1.numpy() + s2.numpy() - 2 * root.real))
    assert frechet_distance(Gaussian(mu1, s1), Gaussian(mu2, s2)) == pytest.approx(expected, rel=1e-8)


def test_sample_estimate_approaches_the_population_value():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40_000, 2, generator=g, dtype=torch.float64)
    y = torch.randn(40_000, 2, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0]) + torch.tensor([1.0, 0])
    # N(0, I) vs N((1, 0), diag(4, 1)): 1 + (1 - 2)^2 + 0 = 2; sampling error ~0.03 at this N
    assert frechet_distance_features(x, y) == pytest.approx(2.0, abs=0.1)


def test_fit_gaussian_and_errors():
    f = _features(n=50, d=3)
    fitted = fit_gaussian(f.float())
    assert fitted.mean.dtype == torch.float64 and fitted.cov.shape == (3, 3)
    assert torch.allclose(fitted.cov, torch.from_numpy(np.cov(f.float().double().numpy().T)), atol=1e-10)
    with pytest.raises(ValueError, match=r"N >= 2, got \(1, 3\)"):
        fit_gaussian(f[:1])
    with pytest.raises(ValueError, match="different dimensions"):
        frechet_distance_features(f, _features(n=50, d=4))
