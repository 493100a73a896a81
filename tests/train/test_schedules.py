"""KL warm-up and learning-rate schedules: the weights and rates at given steps, the annealed loss
against a hand computation, the true ELBO in the reported bounds, and exact resume."""

import math

import pyro
import pytest
import torch
from pyro import poutine

from ppl_models.cli.main import main
from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.checkpoint import list_checkpoints, load_checkpoint
from ppl_models.train.metrics import MetricsLog
from ppl_models.train.schedules import KLWeight, burda_pass, kl_weight, lr_factor

STEPS = 15  # steps per epoch of the tiny digits runs (1437 points, batches of 100)


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- KL warm-up ------------------------------------------------------------------------------------

def test_the_kl_weight_climbs_linearly_to_one_over_the_warmup_epochs():
    tc = TrainConfig(kl_warmup=2)  # 30 steps
    assert [kl_weight(tc, s, STEPS) for s in (0, 1, 14, 28, 29, 30, 500)] == \
        pytest.approx([1 / 30, 2 / 30, 15 / 30, 29 / 30, 1.0, 1.0, 1.0])
    assert kl_weight(TrainConfig(kl_warmup=0.5), 3, STEPS) == pytest.approx(4 / 7.5)
    assert kl_weight(TrainConfig(), 0, STEPS) == 1.0  # no warm-up: the plain ELBO from the first step


@pytest.mark.parametrize("objective", ["elbo", "elbo-analytic"])
def test_the_annealed_loss_is_the_likelihood_plus_beta_times_the_kl_terms(objective):
    model = build_model("vae", model_config("vae", latent_dim=3, hidden=(8,), likelihood="bernoulli"), (2, 3))
    x = torch.rand(5, 2, 3).round()
    beta = 0.3
    pyro.set_rng_seed(7)
    with KLWeight(beta):
        loss = build_objective(objective).differentiable_loss(model.model, model.guide, x)
    pyro.set_rng_seed(7)  # the same draw of z, by hand
    guide = poutine.trace(model.guide).get_trace(x)
    trace = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
    log_px = trace.nodes["x"]["fn"].log_prob(x).sum()
    if objective == "elbo":
        kl_terms = trace.nodes["z"]["fn"].log_prob(guide.nodes["z"]["value"]).sum() - \
            guide.nodes["z"]["fn"].log_prob(guide.nodes["z"]["value"]).sum()
    else:
        kl_terms = -torch.distributions.kl_divergence(guide.nodes["z"]["fn"], trace.nodes["z"]["fn"]).sum()
    assert loss.item() == pytest.approx(-(log_px + beta * kl_terms).item(), rel=1e-5)
    with KLWeight(beta):  # observed sites keep scale 1, latent sites of model and guide get beta
        scaled = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(x)
        scaled_guide = poutine.trace(model.guide).get_trace(x)
    assert scaled.nodes["x"]["scale"] == 1.0 and scaled.nodes["z"]["scale"] == beta
    assert scaled_guide.nodes["z"]["scale"] == beta


def test_training_weights_each_step_by_the_schedule(tmp_path, digits, tiny_run_config, monkeypatch):
    seen = []
    real = KLWeight._process_message

    def spy(self, msg):
        if msg["name"] == "z":
            seen.append(self.weight)
        real(self, msg)

    monkeypatch.setattr(KLWeight, "_process_message", spy)
    fit(RunDir(tmp_path / "warm"), tiny_run_config(epochs=2, train_fields={"kl_warmup": 1.5}), digits, progress=False)
    assert seen[:2] == [0.5, 0.5]  # the objective check before training runs under the handler too
    trained = seen[2::2]  # then z is sampled in the guide and in the model at every step
    assert trained == pytest.approx([(s + 1) / 22.5 for s in range(22)])  # weight 1 from step 23 on: no handler


def test_validation_reports_the_true_elbo_during_the_warmup(tmp_path, digits, tiny_run_config, monkeypatch):
    import ppl_models.evaluate.likelihood as likelihood
    from pyro.poutine.runtime import _PYRO_STACK

    real, calls = likelihood.per_datapoint_bounds, []

    def unweighted(*args, **kwargs):
        calls.append(any(isinstance(m, KLWeight) for m in _PYRO_STACK))
        return real(*args, **kwargs)

    monkeypatch.setattr(likelihood, "per_datapoint_bounds", unweighted)
    run = RunDir(tmp_path / "warm")
    model = fit(run, tiny_run_config(epochs=3, train_fields={"kl_warmup": 1000, "lr": 1e-2}), digits, progress=False)
    assert calls == [False, False, False]  # the epoch's validation ran outside the annealing handler
    reported = float(MetricsLog.read(run.metrics_path)[-1]["valid_elbo"])
    from ppl_models.train.setup import prepare_data
    data = prepare_data(model, digits, TrainConfig(), torch.device("cpu"))
    pyro.set_rng_seed(0)
    table = likelihood.bounds_table(model, data.valid_x, 50)  # the true ELBO, 50 draws a point
    guide = poutine.trace(model.guide).get_trace(data.valid_x)
    trace = poutine.trace(poutine.replay(model.model, trace=guide)).get_trace(data.valid_x)
    kl = torch.distributions.kl_divergence(guide.nodes["z"]["fn"], trace.nodes["z"]["fn"]).mean().item()
    true_elbo = table["elbo"].mean().item()
    assert kl > 10 and abs(reported - true_elbo) < 2.0  # the annealed bound (weight ~0) would be ~ true + KL


def test_kl_warmup_is_refused_with_iwae_and_out_of_range(tmp_path, capsys):
    with pytest.raises(ValueError, match="kl_warmup.*iwae"):
        TrainConfig(objective="iwae", particles=5, kl_warmup=2)
    for field, value in [("kl_warmup", -1.0), ("kl_warmup", math.nan), ("lr_schedule", "linear"),
                         ("lr_warmup", -3), ("lr_gamma", 0.0), ("lr_gamma", 1.5), ("early_stop", 0)]:
        with pytest.raises(ValueError, match=field):
            TrainConfig(**{field: value})
    out = tmp_path / "run"
    code = main(["train", "vae", "--data", "digits", "--objective", "iwae", "--particles", "3", "--kl-warmup", "2",
                 "--out", str(out), "--no-progress"])
    assert code == 2 and "kl_warmup (--kl-warmup)" in capsys.readouterr().err and not out.exists()


def test_a_sampled_discrete_latent_is_refused_before_training():
    def model(x):
        with pyro.plate("data", 2):
            pyro.sample("c", pyro.distributions.Categorical(logits=torch.zeros(3)))
    with pytest.raises(ValueError, match="site 'c' is sampled without rsample"):
        with KLWeight(0.5):
            model(None)


class Crash(Exception):
    """A process death at a given step, as an exception."""


def crash_after(step: int):
    def hook(done, model):
        if done == step:
            raise Crash(step)
    return hook


# --- learning-rate schedules -----------------------------------------------------------------------

def test_the_learning_rate_factor_at_given_steps():
    none = TrainConfig()
    assert [lr_factor(none, s, STEPS) for s in (0, 100)] == [1.0, 1.0]
    warm = TrainConfig(lr_warmup=4)
    assert [lr_factor(warm, s, STEPS) for s in (0, 1, 3, 4, 99)] == [0.25, 0.5, 1.0, 1.0, 1.0]

    cos = TrainConfig(epochs=2, lr_schedule="cosine")  # 30 steps in all
    assert [lr_factor(cos, s, STEPS) for s in (0, 15, 30)] == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)
    assert lr_factor(cos, 10, STEPS) == pytest.approx(0.5 * (1 + math.cos(math.pi / 3)))
    cos_warm = TrainConfig(epochs=2, lr_schedule="cosine", lr_warmup=10)  # warm-up, then cosine over the other 20
    assert lr_factor(cos_warm, 4, STEPS) == pytest.approx(0.5)
    assert lr_factor(cos_warm, 20, STEPS) == pytest.approx(0.5)

    exp = TrainConfig(lr_schedule="exponential", lr_gamma=0.9)
    assert [lr_factor(exp, s, STEPS) for s in (0, 15, 30)] == pytest.approx([1.0, 0.9, 0.81])
    assert lr_factor(exp, 7, STEPS) == pytest.approx(0.9 ** (7 / 15))
    assert TrainConfig().lr_gamma == 0.99

    burda = TrainConfig(lr_schedule="burda")  # passes of 1, 3, 9, ... 2187 epochs
    assert [burda_pass(e) for e in (0, 1, 3, 4, 12, 13, 39, 40, 1092, 1093, 3279, 3280, 10 ** 6)] == \
        [0, 1, 1, 2, 2, 3, 3, 4, 6, 7, 7, 7, 7]
    assert [lr_factor(burda, e * STEPS, STEPS) for e in (0, 1, 4, 13, 1093)] == \
        pytest.approx([10 ** (-i / 7) for i in (0, 1, 2, 3, 7)])
    assert lr_factor(burda, 4 * STEPS - 1, STEPS) == pytest.approx(10 ** (-1 / 7))


@pytest.mark.parametrize("schedule", [{"lr_schedule": "cosine", "lr_warmup": 5},
                                      {"lr_schedule": "exponential", "lr_gamma": 0.5},
                                      {"lr_schedule": "burda"}])
def test_each_step_trains_at_the_scheduled_rate_and_resume_continues_it_exactly(tmp_path, digits, tiny_run_config,
                                                                               schedule, monkeypatch):
    fields = {"lr": 2e-3, **schedule}
    rates, real_step = [], torch.optim.Adam.step

    def capture(self, *args, **kwargs):  # the rate each optimizer step runs at
        rates.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", capture)
    straight = fit(RunDir(tmp_path / "straight"), tiny_run_config(epochs=4, train_fields=fields), digits,
                   progress=False)
    monkeypatch.undo()
    tc = TrainConfig(epochs=4, **fields)
    assert rates == pytest.approx([2e-3 * lr_factor(tc, s, STEPS) for s in range(60)])

    split = RunDir(tmp_path / "split")  # dies after step 37; resumes mid-epoch 3 from step 35
    mid = tiny_run_config(epochs=4, train_fields={**fields, "checkpoint_every": 7})
    with pytest.raises(Crash):
        fit(split, mid, digits, progress=False, after_step=crash_after(37))
    assert list_checkpoints(split.checkpoints)[-1][0] == 35
    resumed = fit(split, mid, digits, resume=True, progress=False)
    assert states_equal(straight.state_dict(), resumed.state_dict())
    final = load_checkpoint(split.checkpoints / "step-00000060.pt")
    assert final["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-3 * lr_factor(tc, 59, STEPS))


def test_a_schedule_composes_with_the_retry_scale_and_a_new_lr_on_resume(tmp_path, digits, tiny_run_config):
    fields = {"lr_schedule": "exponential", "lr_gamma": 0.5}
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=1, train_fields=fields), digits, progress=False)
    fit(run, tiny_run_config(epochs=2, train_fields={**fields, "lr": 1e-4}), digits, resume=True, progress=False)
    state = load_checkpoint(run.checkpoints / "step-00000030.pt")
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.5 ** (29 / 15))  # the new base rate

    from ppl_models.train.trainer import Trainer
    trainer = Trainer(RunDir(tmp_path / "t"), tiny_run_config(train_fields=fields), digits, False, None, False)
    trainer.lr_scale, trainer.step = 0.25, 15  # a retry halved the rate twice; one epoch done
    trainer._apply_lr()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.25 * 0.5)


def test_the_settings_are_kept_in_config_json_for_resume_and_repeats(tmp_path, capsys):
    out, again = tmp_path / "run", tmp_path / "again"
    flags = ["--lr-schedule", "cosine", "--lr-warmup", "3", "--kl-warmup", "0.5", "--early-stop", "2"]
    common = ["--data", "digits", "--latent-dim", "2", "--hidden", "8", "--no-progress"]
    assert main(["train", "vae", *common, "--epochs", "2", *flags, "--out", str(out)]) == 0
    saved = RunDir(out).load_config().train
    assert (saved.lr_schedule, saved.lr_warmup, saved.kl_warmup, saved.early_stop, saved.lr_gamma) == \
        ("cosine", 3, 0.5, 2, 0.99)
    assert main(["train", "--config", str(out / "config.json"), "--out", str(again), "--no-progress"]) == 0
    assert RunDir(again).load_config() == RunDir(out).load_config()
    a, b = (RunDir(d).load_model(checkpoint="latest")[1].state_dict() for d in (out, again))
    assert states_equal(a, b)
    capsys.readouterr()
    assert main(["train", "vae", *common, "--out", str(out), "--resume", "--lr-schedule", "burda"]) == 2
    assert "lr_schedule='burda' differs from 'cosine'" in capsys.readouterr().err
    assert main(["train", "vae", *common, "--out", str(out), "--resume", "--epochs", "3", "--early-stop", "5"]) == 0
    assert RunDir(out).load_config().train.early_stop == 5
