"""The model-zoo examples (conv, beta, two-layer VAE; autoencoder with linear probe) run end to end
with tiny settings and produce real results."""

import math
from pathlib import Path

import pytest
from example_loader import load





def assert_run_outputs(out: Path):
    assert (out / "samples" / "mean.png").exists() and (out / "samples" / "draws.png").exists()
    assert (out / "metrics.csv").exists() and (out / "config.json").exists()


@pytest.mark.parametrize("name,flags", [
    ("conv_vae_digits", ["--channels", "4,8", "--hidden", "16", "--latent-dim", "3"]),
    ("two_layer_vae_digits", ["--hidden", "16,8", "--latent-dims", "4,2", "--objective", "iwae", "--particles", "2"]),
])
def test_vae_examples(tmp_path, name, flags):
    out = tmp_path / name
    result = load(name).main(["--epochs", "2", "--nll-samples", "10", "--out", str(out), *flags])
    assert math.isfinite(result["nll"]) and result["n"] == 180 and result["nll_samples"] == 10
    assert result["elbo"] <= -result["nll"] + 1.0  # the ELBO is (up to sampling noise) below the estimate
    assert_run_outputs(out)


def test_beta_vae_example(tmp_path):
    out = tmp_path / "beta"
    result = load("beta_vae_digits").main(
        ["--epochs", "2", "--beta", "4", "--hidden", "16", "--latent-dim", "3", "--nll-samples", "10", "--out", str(out)]
    )
    assert math.isfinite(result["nll"]) and result["beta"] == 4.0 and result["kl"] > 0
    assert_run_outputs(out)


def test_autoencoder_probe_example(tmp_path):
    out = tmp_path / "ae"
    result = load("autoencoder_probe_digits").main(["--epochs", "2", "--hidden", "32", "--latent-dim", "4", "--out", str(out)])
    assert math.isfinite(result["reconstruction_log_likelihood"]) and result["n"] == 180
    probe = result["probe"]
    assert probe["accuracy"] > probe["chance"] + 0.3 and probe["feature_dim"] == 4
    assert_run_outputs(out)
