"""The GAN's generator as a Pyro program: its sites, its samples and its two observation models."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from ppl_models.models.gan import GAN, GANConfig
from ppl_models.models.protocol import has_likelihood


@pytest.mark.parametrize("shape", [(8, 8), (28, 28)])
def test_the_generator_is_a_pyro_program_whose_samples_are_images(shape):
    torch.manual_seed(0)
    gan = GAN(GANConfig(latent_dim=8, channels=8), torch.Size(shape)).eval()
    trace = poutine.trace(gan.model).get_trace(None, batch_size=5)
    assert trace.nodes["z"]["value"].shape == (5, 8) and not trace.nodes["z"]["is_observed"]
    x = trace.nodes["x"]["value"]
    assert x.shape == (5, *shape) and bool(((x > 0) & (x < 1)).all())
    assert torch.equal(x, gan.generator(trace.nodes["z"]["value"]))  # x = G(z), no noise
    assert not has_likelihood(gan) and gan.training_strategy == "adversarial"


def test_the_gaussian_observation_model_has_the_normal_density():
    torch.manual_seed(0)
    gan = GAN(GANConfig(latent_dim=4, channels=8, observation="gaussian", obs_scale=0.2), torch.Size([8, 8])).eval()
    x = torch.rand(3, 8, 8)
    guide = poutine.trace(gan.guide).get_trace(x)
    trace = poutine.trace(poutine.replay(gan.model, trace=guide)).get_trace(x)
    mean = gan.generator(guide.nodes["z"]["value"])
    expected = torch.distributions.Normal(mean, 0.2).log_prob(x).sum((-2, -1))
    assert torch.allclose(trace.nodes["x"]["fn"].log_prob(x), expected, atol=1e-5)
    assert has_likelihood(gan)
    # the guide is the prior: an importance weight is the likelihood alone
    log_w = trace.log_prob_sum() - guide.log_prob_sum()
    assert torch.allclose(log_w, expected.sum(), atol=1e-4)


def test_a_bad_image_shape_or_observation_model_is_named():
    with pytest.raises(ValueError, match=r"divisible by 4.*\[10, 10\]"):
        GAN(GANConfig(), torch.Size([10, 10]))
    with pytest.raises(ValueError, match="observation must be one of"):
        GAN(GANConfig(observation="bernoulli"), torch.Size([8, 8]))


def test_the_cli_trains_a_gan_with_k_discriminator_steps_and_samples_it(tmp_path, capsys):
    import json

    from ppl_models.cli.main import main

    run = tmp_path / "gan"
    assert main(["train", "gan", "--data", "digits", "--epochs", "1", "--d-steps", "3", "--generator-loss", "minimax",
                 "--set", "channels=8", "--latent-dim", "8", "--out", str(run), "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["strategy"] == "adversarial" and config["train"]["d_steps"] == 3
    assert config["train"]["generator_loss"] == "minimax"
    assert "valid ELBO no likelihood" in capsys.readouterr().out
    assert main(["sample", str(run), "-n", "16", "--out", str(tmp_path / "g.npy")]) == 0
    import numpy as np

    samples = np.load(tmp_path / "g.npy")
    assert samples.shape == (16, 8, 8) and math.isfinite(float(samples.sum()))


def test_instance_noise_blurs_what_the_discriminator_sees_in_training_only():
    gan = GAN(GANConfig(latent_dim=4, channels=8, instance_noise=0.3), torch.Size([8, 8]))
    x = torch.rand(5, 8, 8)
    torch.manual_seed(0)
    noisy = gan.discriminate(x)
    torch.manual_seed(0)
    expected = gan.discriminator(x + 0.3 * torch.randn_like(x))
    assert torch.equal(noisy, expected) and not torch.equal(noisy, gan.discriminator(x))
    gan.eval()
    assert torch.equal(gan.discriminate(x), gan.discriminator(x))
    with pytest.raises(ValueError, match="instance_noise must be a finite number >= 0"):
        GAN(GANConfig(instance_noise=-1.0), torch.Size([8, 8]))


def test_with_the_gaussian_observation_model_ais_reads_the_generator():
    from ppl_models.diagnostics.diagnose import DiagnoseConfig, diagnose

    torch.manual_seed(0)
    gan = GAN(GANConfig(latent_dim=4, channels=8, observation="gaussian", obs_scale=0.3), torch.Size([8, 8])).eval()
    x = gan.fake(6).detach()  # data the generator can explain
    config = DiagnoseConfig(samples=50, keep_draws=5, ais_steps=20, ais_chains=2, ais_leapfrog=2, ais_points=3)
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(False):
        s = diagnose(gan, x, config=config).summary
    ais, is_prior = s["ais"]["log_px_ais"], s["ais"]["log_px_is_same_points"]
    assert s["ais"]["n"] == 3 and math.isfinite(ais) and math.isfinite(is_prior)
    assert abs(ais - is_prior) < 1.0  # two estimators of the same log p(x) (the guide is the prior) agree
