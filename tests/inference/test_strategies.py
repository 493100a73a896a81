"""Every registered inference strategy trains through the loop, checkpoints its state and resumes exactly."""

import math

import pytest
import torch

from ppl_models.evaluate.likelihood import per_datapoint_bounds
from ppl_models.inference import available_strategies, build_strategy
from ppl_models.train import RunDir, fit
from ppl_models.train.checkpoint import load_checkpoint
from ppl_models.train.metrics import MetricsLog

FAST = {"local_steps": 3}  # keeps the per-data-point strategies to a few seconds on digits
# Strategies that fit a posterior for a density model; "adversarial" trains a GAN's two players
# instead and has its own tests (tests/inference/test_adversarial_strategy.py).
POSTERIOR_STRATEGIES = [name for name in available_strategies() if name != "adversarial"]


def _config(tiny_run_config, strategy, epochs=2, **fields):
    return tiny_run_config(epochs=epochs, train_fields={"strategy": strategy, **FAST, **fields})


@pytest.mark.parametrize("strategy", POSTERIOR_STRATEGIES)
def test_strategy_trains_and_evaluates(tmp_path, digits, tiny_run_config, strategy):
    config = _config(tiny_run_config, strategy)
    model = fit(RunDir(tmp_path / "run"), config, digits, progress=False)
    rows = MetricsLog.read(tmp_path / "run" / "metrics.csv")
    losses = [float(r["train_loss"]) for r in rows]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    strat = build_strategy(model, config.train, digits.test.x)
    elbo, log_px = per_datapoint_bounds(model, digits.test.x[:20], 10, guide_for=strat.guide_for)
    assert torch.isfinite(elbo).all() and (log_px >= elbo - 1e-4).all()  # IWAE-10 bounds at least the ELBO
    assert strat.num_parameters(model) > 0


@pytest.mark.parametrize("strategy", POSTERIOR_STRATEGIES)
def test_strategy_resumes_exactly(tmp_path, digits, tiny_run_config, strategy):
    straight = fit(RunDir(tmp_path / "a"), _config(tiny_run_config, strategy, epochs=2), digits, progress=False)
    fit(RunDir(tmp_path / "b"), _config(tiny_run_config, strategy, epochs=1), digits, progress=False)
    resumed = fit(RunDir(tmp_path / "b"), _config(tiny_run_config, strategy, epochs=2), digits, resume=True,
                  progress=False)
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    table_a = load_checkpoint(tmp_path / "a/checkpoints/step-00000030.pt")["strategy"]
    table_b = load_checkpoint(tmp_path / "b/checkpoints/step-00000030.pt")["strategy"]
    assert table_a.keys() == table_b.keys() and all(torch.equal(table_a[k], table_b[k]) for k in table_a)
    if strategy == "per-datapoint":  # the table of phi_i moved away from its prior initialization
        assert table_a["z.loc"].abs().sum() > 0


def test_unknown_strategy_lists_the_valid_ones(digits, tiny_run_config):
    config = _config(tiny_run_config, "magic")
    with pytest.raises(ValueError, match="unknown strategy 'magic'; choose one of amortized"):
        build_strategy(None, config.train, digits.train.x)
