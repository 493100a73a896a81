"""Probabilistic PCA as a Pyro program, with its closed-form marginal and posterior (test helper).

    z ~ N(0, I_d),  x | z ~ N(W z + b, s^2 I_D)  =>  x ~ N(b, W W^T + s^2 I),
    z | x ~ N(M^-1 W^T (x - b), s^2 M^-1),  M = W^T W + s^2 I   (Tipping & Bishop 1999)
"""

import pyro
import pyro.distributions as dist
import torch
from torch import nn


class LinearGaussian(nn.Module):
    """PPCA whose guide is the exact posterior, shifted by ``guide_shift`` and its covariance scaled by
    ``guide_widen``; both are learnable guide parameters (``shift``, ``log_widen``)."""

    def __init__(self, data_dim=5, latent_dim=2, noise=0.5, guide_shift=0.0, guide_widen=1.0, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(data_dim, latent_dim, generator=g, dtype=torch.float64)
        self.b = torch.randn(data_dim, generator=g, dtype=torch.float64)
        self.noise = noise
        self.latent_dim = latent_dim
        self.shift = nn.Parameter(torch.tensor(float(guide_shift), dtype=torch.float64))
        self.log_widen = nn.Parameter(torch.tensor(float(guide_widen), dtype=torch.float64).log())

    def marginal(self):
        cov = self.W @ self.W.T + self.noise**2 * torch.eye(self.W.shape[0], dtype=torch.float64)
        return dist.MultivariateNormal(self.b, covariance_matrix=cov)

    def posterior(self, x):
        M = self.W.T @ self.W + self.noise**2 * torch.eye(self.latent_dim, dtype=torch.float64)
        Minv = torch.linalg.inv(M)
        loc = (x - self.b) @ self.W @ Minv.T
        cov = self.log_widen.exp() * self.noise**2 * Minv
        return dist.MultivariateNormal(loc + self.shift, covariance_matrix=cov)

    def model(self, x=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(torch.zeros(self.latent_dim, dtype=torch.float64), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T + self.b, self.noise).to_event(1), obs=x)

    def guide(self, x, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.posterior(x))
