"""Small Pyro models for the automatic-guide tests (test helper).

- :class:`MixedModel`: local latents of every kind of support and a hierarchy, plus global latents.
- :class:`DiscreteModel`: a per-point Categorical, enumerated or not.
"""

import pyro
import pyro.distributions as dist
import torch
from torch import nn

DATA_DIM = 4


class MixedModel(nn.Module):
    """Per data point: the hierarchy z2 -> z1 -> x (z2 ~ Gamma, positive, is z1's prior scale), a
    bounded b ~ Beta, a simplex p ~ Dirichlet and an interval u ~ Uniform(-1, 2); globally, a vector
    w ~ Normal and the positive observation noise sigma ~ HalfNormal."""

    observed_sites = ("x",)

    def __init__(self, data_dim: int = DATA_DIM):
        super().__init__()
        self.decoder = nn.Linear(2 + 1 + 3 + 1, data_dim)

    def model(self, x=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        w = pyro.sample("w", dist.Normal(torch.zeros(DATA_DIM), 1.0).to_event(1))
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        with pyro.plate("data", n):
            z2 = pyro.sample("z2", dist.Gamma(2.0, 2.0))
            z1 = pyro.sample("z1", dist.Normal(0.0, z2.unsqueeze(-1).expand(*z2.shape, 2)).to_event(1))
            b = pyro.sample("b", dist.Beta(2.0, 3.0))
            p = pyro.sample("p", dist.Dirichlet(torch.ones(3)))
            u = pyro.sample("u", dist.Uniform(-1.0, 2.0))
            h = torch.cat([z1, b.unsqueeze(-1), p, u.unsqueeze(-1)], -1)
            loc = self.decoder(h) + w
            pyro.sample("x", dist.Normal(loc, sigma.unsqueeze(-1) + 0.1).to_event(1), obs=x)


LOCAL_SITES = ("z2", "z1", "b", "p", "u")
GLOBAL_SITES = ("w", "sigma")


class DiscreteModel(nn.Module):
    """c ~ Categorical per data point, x | c ~ Normal(mu_c); ``enumerate`` marks c for enumeration;
    ``continuous`` adds a local latent z ~ Normal shifting x."""

    observed_sites = ("x",)

    def __init__(self, enumerate: bool, continuous: bool = False):
        super().__init__()
        self.enumerate = enumerate
        self.continuous = continuous
        self.mu = nn.Parameter(torch.randn(3, DATA_DIM))

    def model(self, x=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            infer = {"enumerate": "parallel"} if self.enumerate else {}
            c = pyro.sample("c", dist.Categorical(logits=torch.zeros(3)), infer=infer)
            loc = self.mu[c]
            if self.continuous:
                loc = loc + pyro.sample("z", dist.Normal(0.0, 1.0)).unsqueeze(-1)
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


class NestedModel(nn.Module):
    """A local latent in a plate nested inside the data plate: z ~ Normal, shape [3, N, 2]."""

    observed_sites = ("x",)

    def model(self, x=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n, dim=-1):
            with pyro.plate("parts", 3, dim=-2):
                z = pyro.sample("z", dist.LogNormal(0.0, 1.0).expand([2]).to_event(1))
            loc = z.sum(-1).sum(-2).unsqueeze(-1)  # over the event and the parts plate: [..., N, 1]
            pyro.sample("x", dist.Normal(loc.expand(*loc.shape[:-1], DATA_DIM), 1.0).to_event(1), obs=x)


class GlobalMeanModel(nn.Module):
    """Conjugate global mean: mu ~ Normal(0, PRIOR_SCALE), x_i ~ Normal(mu, 1) iid per dimension.

    Posterior: Normal(sum(x) / (n + 1 / PRIOR_SCALE^2), 1 / sqrt(n + 1 / PRIOR_SCALE^2)) per dimension,
    with n the number of data points."""

    observed_sites = ("x",)
    PRIOR_SCALE = 3.0

    def __init__(self):
        super().__init__()
        self.register_buffer("_zero", torch.zeros((), dtype=torch.float64))

    def model(self, x=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        mu = pyro.sample("mu", dist.Normal(self._zero, self.PRIOR_SCALE).expand([DATA_DIM]).to_event(1))
        with pyro.plate("data", n):
            pyro.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)

    def exact_posterior(self, x):
        precision = x.shape[0] + 1 / self.PRIOR_SCALE**2
        return x.sum(0) / precision, torch.full((x.shape[1],), precision**-0.5, dtype=x.dtype)


class PositiveBoundedModel(nn.Module):
    """z ~ Gamma(2, 2) (3 numbers) and b ~ Beta(2, 2) per data point; x ~ Normal(z.sum + b, 1)."""

    observed_sites = ("x",)

    def model(self, x=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Gamma(2.0, 2.0).expand([3]).to_event(1))
            b = pyro.sample("b", dist.Beta(2.0, 2.0))
            loc = (z.sum(-1) + b).unsqueeze(-1).expand(*b.shape, DATA_DIM)
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


class ConditionalModel(nn.Module):
    """z ~ Normal per data point, x ~ Normal(z + y): the model needs the labels y."""

    observed_sites = ("x",)
    labels = "condition"

    def model(self, x=None, y=None, batch_size=None):
        n = x.shape[0] if x is not None else batch_size
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            loc = (z + y.to(z.dtype)).unsqueeze(-1).expand(n, DATA_DIM)
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


class DynamicSupportModel(nn.Module):
    """z1 ~ Uniform(0, z2): the support of z1 moves with z2."""

    observed_sites = ("x",)

    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            z2 = pyro.sample("z2", dist.Gamma(2.0, 1.0))
            z1 = pyro.sample("z1", dist.Uniform(0.0, z2))
            pyro.sample("x", dist.Normal(z1.unsqueeze(-1).expand(x.shape), 1.0).to_event(1), obs=x)


class SequentialPlateModel(nn.Module):
    """A latent in a sequential (python-loop) plate."""

    observed_sites = ("x",)

    def model(self, x=None, batch_size=None):
        for i in pyro.plate("parts", 2):
            pyro.sample(f"z_{i}", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(0.0, 1.0).expand([DATA_DIM]).to_event(1), obs=x)


class SubsampledModel(nn.Module):
    """A global latent vector in a subsampled plate."""

    observed_sites = ("x",)

    def model(self, x=None, batch_size=None):
        with pyro.plate("components", 10, subsample_size=3):
            pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(0.0, 1.0).expand([DATA_DIM]).to_event(1), obs=x)
