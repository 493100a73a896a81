"""Smoke tests of the IWAE benchmark scripts, and the hand-written IWAE reference against ours.

The scripts live in ``benchmarks/`` (not a package); they are imported from there by path.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pyro
import pytest
import torch

from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

handwritten = importlib.import_module("handwritten")
iwae_step = importlib.import_module("iwae_step")
dreg_variance = importlib.import_module("dreg_variance")


def _positive_finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.parametrize("particles", [1, 7])
@pytest.mark.parametrize("estimator", ["standard", "stl", "dreg"])
def test_handwritten_iwae_matches_our_objective_in_value_and_gradients(particles, estimator):
    # Pyro's rsample of Normal(loc, scale).to_event(1) in the particles plate draws eps as one
    # [K, B, Z] standard normal tensor, as torch.randn does: the same seed gives the same draws.
    torch.manual_seed(0)
    ours = build_model("vae", model_config("vae", latent_dim=5, hidden=(32,)), (6, 6))
    hand = handwritten.HandWrittenVAE(data_dim=36, hidden=(32,), latent_dim=5)
    hand.load_state_dict(ours.state_dict())
    x = (torch.rand(9, 6, 6) < 0.3).float()

    pyro.set_rng_seed(11)
    loss_ours = build_objective("iwae", particles, estimator).differentiable_loss(ours.model, ours.guide, x)
    loss_ours.backward()
    pyro.set_rng_seed(11)
    loss_hand = hand.iwae_loss(x, particles, estimator)
    loss_hand.backward()

    torch.testing.assert_close(loss_hand, loss_ours)
    grads_ours = dict(ours.named_parameters())
    for name, p in hand.named_parameters():
        torch.testing.assert_close(p.grad, grads_ours[name].grad, rtol=1e-4, atol=1e-5, msg=name)


def test_handwritten_iwae_with_an_explicit_eps_equals_the_seeded_draw():
    torch.manual_seed(0)
    hand = handwritten.HandWrittenVAE(data_dim=16, hidden=(8,), latent_dim=3)
    x = (torch.rand(4, 4, 4) < 0.5).float()
    torch.manual_seed(5)
    seeded = hand.iwae_loss(x, 3)
    torch.manual_seed(5)
    explicit = hand.iwae_loss(x, 3, eps=torch.randn(3, 4, 3))
    torch.testing.assert_close(seeded, explicit)


def test_handwritten_elbo_loss_still_runs():
    hand = handwritten.HandWrittenVAE(data_dim=16, hidden=(8,), latent_dim=3)
    opt = torch.optim.Adam(hand.parameters(), lr=1e-3)
    loss = handwritten.step(hand, opt, (torch.rand(4, 4, 4) < 0.5).float())
    assert torch.isfinite(loss)


def test_iwae_step_script_reports_positive_timings_and_ratios(capsys):
    out = iwae_step.main(["--particles", "2", "--estimators", "standard", "dreg", "--batch-size", "4",
                          "--rounds", "3", "--inner", "1", "--warmup", "1", "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(out))
    assert [(r["particles"], r["estimator"]) for r in out["results"]] == [(2, "standard"), (2, "dreg")]
    for r in out["results"]:
        assert _positive_finite(r["median_s"]["ours"]) and _positive_finite(r["median_s"]["hand_written"])
        assert _positive_finite(r["ratio_ours_to_hand"])
        assert all(_positive_finite(q) for q in r["ratio_ours_to_hand_iqr"])


def test_dreg_variance_script_reports_positive_figures_and_writes_its_files(tmp_path):
    out = dreg_variance.main(["--data", "digits", "--particles", "1", "3", "--samples", "4", "--train-steps", "5",
                              "--batch-size", "16", "--latent-dim", "3", "--hidden", "16", "--out", str(tmp_path),
                              "--no-progress"])
    assert len(out["results"]) == 6
    for r in out["results"]:
        for part in ("encoder", "decoder"):
            assert _positive_finite(r[part]["total_variance"]) and _positive_finite(r[part]["mean_snr"])
    assert (tmp_path / "dreg_variance.png").stat().st_size > 0
    written = json.loads((tmp_path / "dreg_variance.json").read_text())
    assert written["results"] == json.loads(json.dumps(out["results"]))
    # Common random numbers: every estimator gives the decoder the same gradients draw by draw, and
    # at K=1 DReG is STL (every normalized weight is 1).
    for k, spread in out["decoder_total_variance_rel_spread"].items():
        assert spread < 1e-6, (k, spread)
    by = {(r["particles"], r["estimator"]): r for r in out["results"]}
    assert by[(1, "dreg")]["encoder"]["total_variance"] == pytest.approx(by[(1, "stl")]["encoder"]["total_variance"])


def test_loop_overhead_script_times_both_loops():
    result = importlib.import_module("loop_overhead").main(["--epochs", "1", "--repeats", "1"])
    assert result["steps"] == 72 and _positive_finite(result["ratio"])
    assert _positive_finite(result["bare_ms_per_step"]) and _positive_finite(result["fit_ms_per_step"])


def test_stock_svi_steps_the_module_s_own_parameters():
    torch.manual_seed(0)
    net = build_model("vae", model_config("vae", latent_dim=3, hidden=(8,)), (4, 4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    svi = importlib.import_module("stock_svi").stock_svi(net, pyro.infer.TraceMeanField_ELBO())
    assert _positive_finite(svi.step((torch.rand(5, 4, 4) < 0.5).float()))
    assert all(not torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_train_step_script_times_every_step():
    result = importlib.import_module("train_step").bench(4, "elbo", torch.device("cpu"), rounds=2, inner=1)
    assert all(_positive_finite(t) for t in result["median_s"].values()) and len(result["median_s"]) == 4
    assert _positive_finite(result["ratio_stock_to_hand"])


def test_select_quickstart_scores_every_candidate(tmp_path):
    select = importlib.import_module("select_quickstart")
    rows = select.main(["--latent-dims", "2", "3", "--obs-scales", "0.3", "--epochs", "1", "--out", str(tmp_path)])
    assert [(r["latent_dim"], r["obs_scale"]) for r in rows] == [(2, 0.3), (3, 0.3)]
    assert all(0 <= r["recognisable"] <= 64 and 0 < r["mean_confidence"] <= 1 for r in rows)


def test_plan_models_script_times_each_path_and_names_how_the_plan_was_built(capsys):
    out = importlib.import_module("plan_models").main(["--models", "autoencoder", "--batch-size", "4",
                                                       "--rounds", "2", "--inner", "1", "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(out))
    (r,) = out
    assert r["model"] == "autoencoder" and r["notes"]["plan"] == "eager"
    assert r["notes"]["plan_compiled"] == "torch.compile"
    assert all(_positive_finite(v) for v in r["median_ms"].values()) and len(r["median_ms"]) == 3
    assert all(_positive_finite(q) for k in ("plan/pyro_path", "plan_compiled/pyro_path") for q in r["ratios"][k])


def test_optimizer_step_script_times_both_steps_and_the_plan_with_each(capsys):
    out = importlib.import_module("optimizer_step").main(["--batch-sizes", "4", "--rounds", "2", "--inner", "1",
                                                          "--json"])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(out))
    assert all(_positive_finite(v) for v in out["optimizer"]["median_us"].values())
    (r,) = out["steps"]
    assert r["notes"] == {"direct": "torch.compile; DirectAdamStep", "torch_step": "torch.compile; TorchStep"}
    assert all(_positive_finite(q) for ratio in r["ratios"].values() for q in ratio)
