"""PPCA with orthogonal loadings: its exact posterior is a diagonal Normal, inside the family of a
mean-field guide, so every gap of the exact guide is zero (test helper)."""

import pyro
import pyro.distributions as dist
import torch
from linear_gaussian import LinearGaussian


class DiagonalGaussian(LinearGaussian):
    """PPCA whose loadings W have orthogonal columns (scales ``column_scales``; a 0 makes that latent
    coordinate unused), with a diagonal-Normal guide: the exact posterior with its scale times ``guide_scale``."""

    def __init__(self, guide_scale=1.0, column_scales=(2.0, 1.0), **kwargs):
        super().__init__(latent_dim=len(column_scales), **kwargs)
        q, _ = torch.linalg.qr(self.W)
        self.W = q * torch.tensor(column_scales, dtype=torch.float64)
        self.guide_scale = guide_scale

    def guide(self, x, batch_size=None):
        post = self.posterior(x)
        scale = post.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt() * self.guide_scale
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(post.loc, scale).to_event(1))

    def expected_distortion(self, x):
        """E_q[-log p(x | z)] in closed form, for the guide above."""
        post = self.posterior(x)
        var = post.covariance_matrix.diagonal(dim1=-2, dim2=-1) * self.guide_scale**2
        resid = x - post.loc @ self.W.T - self.b
        d = x.shape[-1]
        trace = (var * (self.W**2).sum(0)).sum(-1)
        return 0.5 * d * torch.log(torch.tensor(2 * torch.pi * self.noise**2, dtype=torch.float64)) + \
            ((resid**2).sum(-1) + trace) / (2 * self.noise**2)
