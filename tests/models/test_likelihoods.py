"""The observation likelihoods: BernoulliImage is Bernoulli(...).to_event, only faster."""

import pyro
import pyro.distributions as dist
import torch

from ppl_models.models.likelihoods import BernoulliImage


def test_bernoulli_image_equals_independent_bernoulli_in_value_and_gradient():
    logits = torch.randn(3, 4, 5, 6, requires_grad=True)
    x = torch.randint(0, 2, (3, 4, 5, 6)).float()
    ours = BernoulliImage(logits, 2).log_prob(x)
    ref = dist.Bernoulli(logits=logits).to_event(2).log_prob(x)
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    torch.testing.assert_close(g_ours, g_ref)


def test_bernoulli_image_shapes_samples_and_broadcasting():
    d = BernoulliImage(torch.full((5, 6), 2.0), 2)
    assert d.batch_shape == () and d.event_shape == (5, 6)
    wide = d.expand([7, 3])
    draws = wide.sample((2000,))
    assert draws.shape == (2000, 7, 3, 5, 6) and set(draws.unique().tolist()) <= {0.0, 1.0}
    assert abs(draws.mean().item() - torch.sigmoid(torch.tensor(2.0)).item()) < 0.01  # 420k draws: sd ~0.0005
    assert wide.log_prob(draws[0, 0, 0]).shape == (7, 3)  # one image broadcast against the batch
    torch.testing.assert_close(d.mean, torch.sigmoid(torch.full((5, 6), 2.0)))


def test_bernoulli_image_in_a_plate_validates_its_support():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", BernoulliImage(torch.zeros(x.shape), 2), obs=x)

    trace = pyro.poutine.trace(model).get_trace(torch.ones(4, 3, 3))
    torch.testing.assert_close(trace.log_prob_sum(), torch.tensor(4 * 9 * -0.6931471805599453))
    assert not BernoulliImage(torch.zeros(3, 3), 2).support.check(torch.full((3, 3), 0.5)).item()
