"""The adversarial strategy: k discriminator steps per generator step, both players checkpointed,
exact resume, and the non-finite guard naming the player whose parameter broke."""

import math

import pytest
import torch

from ppl_models.data import load_dataset
from ppl_models.inference import build_strategy
from ppl_models.models.gan import GAN, GANConfig
from ppl_models.registry import model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.checkpoint import load_checkpoint, list_checkpoints
from ppl_models.train.metrics import MetricsLog
from ppl_models.train.nonfinite import NonFiniteError
from ppl_models.train.run import RunConfig


def gan_config(epochs=2, seed=0, **train):
    fields = dict(data="digits", epochs=epochs, seed=seed, batch_size=60, strategy="adversarial", lr=2e-4, **train)
    return RunConfig("gan", model_config("gan", latent_dim=8, channels=8), TrainConfig(**fields), (8, 8))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before, module, prefix):
    return any(not torch.equal(before[k], p) for k, p in module.named_parameters() if k.startswith(prefix))


@pytest.mark.parametrize("k", [1, 3])
def test_one_round_updates_the_discriminator_k_times_and_the_generator_once(k):
    torch.manual_seed(0)
    module = GAN(GANConfig(latent_dim=8, channels=8), torch.Size([8, 8]))
    tc = TrainConfig(strategy="adversarial", d_steps=k)
    strategy = build_strategy(module, tc, torch.zeros(10, 8, 8))
    optimizer = strategy.optimizer(module, 1e-3)
    x = torch.rand(16, 8, 8)
    for step in range(1, 2 * k + 1):
        before = snapshot(module)
        loss = strategy.step(None, module, optimizer, x, torch.arange(16))
        assert math.isfinite(loss.item())
        assert changed(before, module, "discriminator."), step
        assert changed(before, module, "generator.") == (step % k == 0), step
    assert strategy.state_dict()["d_done"].item() == 2 * k
    groups = optimizer.param_groups
    assert [g["name"] for g in groups] == ["generator", "discriminator"] and groups[0]["betas"] == (0.5, 0.999)
    # Adam keeps separate state per player: the generator has taken 2 steps, the discriminator 2k
    assert {int(optimizer.state[p]["step"]) for p in groups[0]["params"]} == {2}
    assert {int(optimizer.state[p]["step"]) for p in groups[1]["params"]} == {2 * k}


def test_the_strategy_refuses_a_model_without_players_and_the_gan_refuses_other_strategies():
    from ppl_models.models.vae import VAE, VAEConfig

    with pytest.raises(ValueError, match="needs a model with a generator"):
        build_strategy(VAE(VAEConfig(latent_dim=2, hidden=(8,)), torch.Size([8, 8])),
                       TrainConfig(strategy="adversarial"), torch.zeros(4, 8, 8))
    gan = GAN(GANConfig(latent_dim=8, channels=8), torch.Size([8, 8]))
    with pytest.raises(ValueError, match="trains with --strategy adversarial"):
        build_strategy(gan, TrainConfig(strategy="semi-amortized"), torch.zeros(4, 8, 8))


def test_a_gan_run_holds_both_players_and_resumes_exactly(tmp_path):
    digits = load_dataset("digits")
    straight = fit(RunDir(tmp_path / "straight"), gan_config(epochs=3, d_steps=2), digits, progress=False)
    fit(RunDir(tmp_path / "split"), gan_config(epochs=1, d_steps=2), digits, progress=False)
    resumed = fit(RunDir(tmp_path / "split"), gan_config(epochs=3, d_steps=2), digits, resume=True, progress=False)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = load_checkpoint(list_checkpoints(tmp_path / "split/checkpoints")[-1][1])
    assert any(k.startswith("discriminator.") for k in state["model"])
    assert any(k.startswith("generator.") for k in state["model"])
    assert [g["name"] for g in state["optimizer"]["param_groups"]] == ["generator", "discriminator"]
    assert int(state["strategy"]["d_done"]) == state["step"]
    rows = MetricsLog.read(tmp_path / "split/metrics.csv")
    assert [r["valid_elbo"] for r in rows] == ["nan"] * 3  # no likelihood: no bound, and no best.pt
    assert not (tmp_path / "split/checkpoints/best.pt").exists()


def test_a_nan_in_the_discriminator_is_found_and_named(tmp_path):
    def poison(step, model):
        if step == 7:
            with torch.no_grad():
                model.discriminator.net[0].weight[0, 0, 0, 0] = float("nan")

    config = gan_config(epochs=3, log_every=5)
    with pytest.raises(NonFiniteError, match="discriminator.net.0.weight"):
        fit(RunDir(tmp_path), config, load_dataset("digits"), progress=False, after_step=poison)
    events = (tmp_path / "events.log").read_text()
    assert "replaying steps" in events and "rolled back" in events


def test_early_stop_is_refused_for_a_model_without_likelihood(tmp_path):
    with pytest.raises(ValueError, match="no likelihood"):
        fit(RunDir(tmp_path), gan_config(early_stop=2), load_dataset("digits"), progress=False)
