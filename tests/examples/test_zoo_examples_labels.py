"""The label-using examples (conditional VAE, semi-supervised M2) run end to end with tiny settings."""

import math

import torch
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
    assert (tmp_path / "samples.png").exists()


def test_m2_example_hides_all_but_the_kept_labels_evenly():
    m2 = load("m2_digits")
    y = torch.arange(10).repeat(30)
    hidden = m2.hide_labels(y, 25)
    known = hidden != -1
    assert int(known.sum()) == 25 and torch.equal(hidden[known], y[known])
    assert torch.bincount(hidden[known], minlength=10).tolist() == [3] * 5 + [2] * 5
    g = torch.Generator().manual_seed(0)
    batches = m2.epoch_batches(hidden, 10, g)
    assert sorted(torch.cat(batches).tolist()) == list(range(300))  # every point once per epoch
    kinds = [bool((hidden[b] != -1).all()) for b in batches]
    assert all(kinds[i] or bool((hidden[b] == -1).all()) for i, b in enumerate(batches))  # never mixed
    assert kinds.count(True) == 3 and not kinds[0] and not kinds[-1]  # spread among the unlabelled
