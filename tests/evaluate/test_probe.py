"""The linear probe: features are posterior means (not draws), noise scores at chance, a trained
encoder beats an untrained one, and ``ppl probe`` on a run directory."""

import json

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

from ppl_models.cli.main import main as ppl
from ppl_models.data import Dataset, Split
from ppl_models.evaluate.probe import linear_probe, posterior_mean_features
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config
from ppl_models.train import RunDir, fit


class NoisyPixels(nn.Module):
    """q(z | x) = Normal(x, 100^2): the mean is the image, a draw is almost pure noise."""

    def guide(self, x, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(x.reshape(x.shape[0], -1), 100.0).to_event(1))


class Hierarchical(nn.Module):
    """q(z1 | x) = Normal(x, 100^2), q(z2 | z1) = Normal(2 z1, 0.01^2)."""

    def guide(self, x, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            z1 = pyro.sample("z1", dist.Normal(x.reshape(x.shape[0], -1), 100.0).to_event(1))
            return pyro.sample("z2", dist.Normal(2 * z1, 0.01).to_event(1))


class PureNoise(nn.Module):
    """Means that ignore x altogether."""

    def guide(self, x, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(torch.randn(x.shape[0], 8), 1.0).to_event(1))


class CategoricalThenNormal(nn.Module):
    """q(y | x) = Categorical(softmax(W x)), q(z | x, y) = Normal(one-hot(y), 1)."""

    def __init__(self):
        super().__init__()
        self.classify = nn.Linear(64, 3)

    def guide(self, x, batch_size=None):
        with pyro.plate("data", x.shape[0]):
            y = pyro.sample("y", dist.Categorical(logits=self.classify(x.reshape(x.shape[0], -1))))
            return pyro.sample("z", dist.Normal(nn.functional.one_hot(y, 3).float(), 1.0).to_event(1))


class LabelConditioned(PureNoise):
    labels = "condition"


def probe(module, digits):
    return linear_probe(module, digits.train.x, digits.train.y, digits.test.x, digits.test.y)


def test_features_are_means_given_earlier_means(digits):
    x = digits.train.x[:50]
    torch.testing.assert_close(posterior_mean_features(NoisyPixels(), x), x.reshape(50, -1))
    # z2's mean is taken at z1's mean, not at a draw of z1 (which is noise of scale 100)
    expected = torch.cat([x.reshape(50, -1), 2 * x.reshape(50, -1)], dim=-1)
    torch.testing.assert_close(posterior_mean_features(Hierarchical(), x, batch_size=7), expected)
    # a categorical site: its class probabilities, and the next site sees its most probable class
    guide = CategoricalThenNormal()
    with torch.no_grad():
        probs = guide.classify(x.reshape(50, -1)).softmax(-1)
    expected = torch.cat([probs, nn.functional.one_hot(probs.argmax(-1), 3).float()], dim=-1)
    torch.testing.assert_close(posterior_mean_features(guide, x), expected)
    ae = build_model("autoencoder", model_config("autoencoder", latent_dim=3, hidden=(8,)), (8, 8))
    with torch.no_grad():  # a point mass: its value
        torch.testing.assert_close(posterior_mean_features(ae, x), ae.encoder(x.reshape(50, -1)))


def test_pixel_means_are_linearly_decodable_and_noise_is_not(digits):
    pyro.set_rng_seed(0)
    pixels = probe(NoisyPixels(), digits)
    assert pixels.accuracy > 0.9  # logistic regression on the raw pixels
    assert (pixels.n_train, pixels.n_test, pixels.feature_dim) == (1437, 180, 64)
    assert 0.05 < pixels.chance < 0.15  # ten roughly balanced classes
    noise = probe(PureNoise(), digits)
    assert noise.accuracy < noise.chance + 0.12, noise


def test_a_trained_encoder_beats_an_untrained_one(digits):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pyro.set_rng_seed(0)
    ae = build_model("autoencoder", model_config("autoencoder", latent_dim=8, hidden=(64,), likelihood="gaussian"), (8, 8))
    untrained = probe(ae, digits)
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    loss_fn = build_objective("elbo").differentiable_loss
    for _ in range(300):
        xb = digits.train.x[torch.randint(0, 1437, (200,))]
        loss = loss_fn(ae.model, ae.guide, xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained = probe(ae, digits)
    # measured: 0.92 trained, 0.73 with random weights (a random projection of the pixels), chance 0.10
    assert trained.accuracy > 0.85 and trained.accuracy > untrained.accuracy + 0.1, (trained, untrained)


def test_bad_inputs_are_named(digits):
    x, y = digits.train.x[:20], digits.train.y[:20]
    with pytest.raises(ValueError, match="conditioned on the labels"):
        linear_probe(LabelConditioned(), x, y, x, y)
    with pytest.raises(ValueError, match=r"test labels must have shape \(20,\), got \(19,\)"):
        linear_probe(NoisyPixels(), x, y, x, y[:19])
    with pytest.raises(ValueError, match="single class 3"):
        linear_probe(NoisyPixels(), x, torch.full((20,), 3), x, y)


def test_ppl_probe_on_a_trained_run(tmp_path, digits, tiny_run_config, capsys):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    fit(RunDir(run), tiny_run_config(epochs=3), digits, progress=False)
    capsys.readouterr()
    assert ppl(["probe", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] > result["chance"] + 0.4 and result["n_test"] == 180 and result["feature_dim"] == 4
    assert json.loads((run / "probe.json").read_text()) == result
    assert ppl(["probe", str(run), "--limit", "50"]) == 0
    assert "linear probe accuracy" in capsys.readouterr().out
    assert json.loads((run / "probe.json").read_text())["n_train"] == 50


def test_ppl_probe_needs_labels(tmp_path, digits, tiny_run_config, capsys, monkeypatch):
    run = tmp_path / "run"
    fit(RunDir(run), tiny_run_config(epochs=1), digits, progress=False)
    unlabelled = Dataset("digits", *(Split(digits.split(s).x) for s in ("train", "valid", "test")), binary=False)
    monkeypatch.setattr("ppl_models.data.load_data", lambda *args, **kwargs: unlabelled)
    capsys.readouterr()
    assert ppl(["probe", str(run)]) == 2
    assert "digits/train has no labels; the linear probe needs a labelled dataset" in capsys.readouterr().err
