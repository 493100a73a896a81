"""``ppl compare-inference``: the strategy grammar, and a small comparison end to end from the CLI."""

import csv
import json

import pytest

from ppl_models.cli.main import main
from ppl_models.inference.compare import parse_strategy


@pytest.mark.parametrize("spec, fields", [
    ("elbo", {"objective": "elbo", "particles": 1}),
    ("elbo-analytic:3", {"objective": "elbo-analytic", "particles": 3}),
    ("iwae:50", {"objective": "iwae", "particles": 50}),
    ("iwae:50:dreg", {"objective": "iwae", "particles": 50, "grad_estimator": "dreg"}),
    ("semi-amortized:10", {"strategy": "semi-amortized", "local_steps": 10}),
    ("per-datapoint", {"strategy": "per-datapoint"}),
])
def test_strategy_specs(spec, fields):
    assert parse_strategy(spec) == fields


@pytest.mark.parametrize("spec, message", [
    ("magic:3", "choose an objective \\(elbo, elbo-analytic, iwae\\) or a strategy \\(amortized"),
    ("iwae:0", "particles must be at least 1"),
    ("iwae:5:reinforce", "unknown grad_estimator 'reinforce'"),
    ("elbo:5:dreg", "objective .elbo. has only the standard gradient estimator"),
    ("semi-amortized:0", "local_steps must be at least 1"),
    ("iwae:five", "invalid literal"),
])
def test_bad_specs_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=f"strategy '{spec}': {message}"):
        parse_strategy(spec)


def test_compare_inference_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare-inference", "--data", "digits", "--strategies", "elbo,iwae:5:dreg,semi-amortized:2,per-datapoint:5",
            "--epochs", "2", "--limit", "150", "--test-limit", "40", "--latent-dim", "4", "--hidden", "32",
            "--nll-samples", "60", "--iwae-k", "5", "50", "--estimator-points", "10", "--estimator-samples", "20",
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert [r["strategy"] for r in rows] == ["elbo", "iwae:5:dreg", "semi-amortized:2", "per-datapoint:5"]
    for r in rows:
        # log(mean w) >= mean(log w) on the same draws: the NLL estimate never exceeds -ELBO.
        assert -r["test_nll"] >= r["test_elbo"] and r["parameters"] > 0 and r["n_test"] == 40
        assert r["train_s"] > 0 and len(results["curves"][r["strategy"]]) == 2
        assert 0 <= r["test_khat_bad"] <= 1 and r["test_inference_gap"] == pytest.approx(-r["test_nll"] - r["test_elbo"])
        assert "test_amortization_gap" not in r  # only with --gaps
    per_point = rows[-1]  # decoder + a (loc, log scale) pair per latent dimension per training image
    encoder = (64 * 32 + 32) + (32 * 2 * 4 + 2 * 4)  # 8x8 pixels -> 32 hidden -> loc and scale of 4 latents
    assert per_point["parameters"] == rows[0]["parameters"] - encoder + 150 * 4 * 2
    assert {e["estimator"] for e in results["estimators"]} == {"guide", "prior"}
    with open(out / "results.csv") as f:
        assert [r["strategy"] for r in csv.DictReader(f)] == [r["strategy"] for r in rows]
    md = (out / "results.md").read_text()
    assert "| iwae:5:dreg |" in md and "test IWAE-50" in md and "log p(x) estimators" in md
    assert "k-hat > 0.7" in md and "inference gap" in md and "amortization gap" not in md
    assert (out / "validation.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "runs" / "iwae_5_dreg" / "config.json").exists()

    # --resume finds every run finished: nothing trains again and the evaluation repeats exactly.
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    again = json.loads((out / "results.json").read_text())["rows"]
    assert [r["test_nll"] for r in again] == [r["test_nll"] for r in rows]
    assert "epoch 1:" not in capsys.readouterr().out


def test_unknown_strategy_fails_before_training(tmp_path, capsys):
    assert main(["compare-inference", "--data", "digits", "--strategies", "elbo,magic", "--out", str(tmp_path)]) == 2
    assert "strategy 'magic'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_compare_inference_with_gaps_splits_the_inference_gap(tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare-inference", "--data", "digits", "--strategies", "elbo,semi-amortized:2", "--epochs", "1",
            "--limit", "100", "--test-limit", "20", "--latent-dim", "3", "--hidden", "16", "--nll-samples", "50",
            "--iwae-k", "5", "--estimator-points", "0", "--gaps", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    for r in json.loads((out / "results.json").read_text())["rows"]:
        assert r["test_inference_gap"] == pytest.approx(r["test_approximation_gap"] + r["test_amortization_gap"])
        assert r["test_amortization_gap"] >= 0  # q* is at least as good as the strategy's own q
    assert "amortization gap" in (out / "results.md").read_text()
