"""The Gaussian mixture example runs end to end with tiny settings and reports the exact log p(x)."""

import math
from pathlib import Path

import pytest
import torch
from torch import distributions as td
from example_loader import load


def test_gmm_digits_example(tmp_path, digits):
    out = tmp_path / "gmm"
    result = load("gmm_digits").main(["--epochs", "2", "--components", "3", "--lr", "0.05", "--samples", "9", "--out", str(out)])
    assert result["n"] == 180 and math.isfinite(result["log_px"])
    assert result["elbo"] == pytest.approx(result["log_px"], abs=1e-4)  # nothing sampled: the bound is exact
    assert len(result["weights"]) == 3 and sum(result["weights"]) == pytest.approx(1.0)
    assert Path(result["means_png"]).exists() and Path(result["draws_png"]).exists()
    assert (out / "metrics.csv").exists()

    # The reported figure is the closed-form mixture log-likelihood of the saved model.
    from ppl_models.train import RunDir

    _, model = RunDir(out).load_model()
    mixture = td.MixtureSameFamily(td.Categorical(logits=model.logits),
                                   td.Independent(td.Normal(model.loc, model.scale), 1))
    with torch.no_grad():
        exact = mixture.log_prob(digits.test.x.reshape(180, -1)).mean().item()
    assert result["log_px"] == pytest.approx(exact, abs=1e-3)

