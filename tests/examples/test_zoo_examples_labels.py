"""The label-using examples (conditional VAE, semi-supervised M2) run end to end with tiny settings."""

import math

from example_loader import load





def test_cvae_digits_example_both_modes(tmp_path):
    results = load("cvae_digits").main(
        ["--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--samples", "3", "--nll-samples", "5", "--out", str(tmp_path)]
    )
    assert set(results) == {"label", "partial"}
    assert all(math.isfinite(v) for mode in results.values() for v in mode.values())
    assert (tmp_path / "classes.png").exists() and (tmp_path / "completions.png").exists()


def test_m2_digits_example(tmp_path):
    result = load("m2_digits").main(
        ["--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--nll-samples", "5", "--out", str(tmp_path)]
    )
    assert result["labels"] == 100 and result["n"] == 180
    assert 0 <= result["test_accuracy"] <= 1 and math.isfinite(result["nll"])
    assert (tmp_path / "samples.png").exists() and (tmp_path / "config.json").exists()  # a run directory
