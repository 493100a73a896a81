"""The non-finite guard: detection at interval checks, rollback, the named source, retries, clipping."""

from pathlib import Path

import pytest
import torch

from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.checkpoint import list_checkpoints, load_checkpoint
from ppl_models.train.configure import new_run_config
from ppl_models.train.nonfinite import NonFiniteError

FRAGILE = str(Path(__file__).with_name("fragile_model.py")) + ":fragile-sqrt"
GUARDED = {"checkpoint_every": 5, "log_every": 5}  # 15 steps an epoch: checks and checkpoints at 5, 10, 15


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def inject_nan(at_step: int, once: bool):
    """An after_step hook that sets one decoder weight to nan after step ``at_step``."""
    fired = []

    def hook(step, model):
        if step == at_step and not (once and fired):
            fired.append(step)
            with torch.no_grad():
                model.decoder[2].weight[0, 0] = float("nan")

    hook.fired = fired
    return hook


def test_one_shot_nan_rolls_back_and_the_run_ends_as_if_it_never_happened(tmp_path, digits, tiny_run_config):
    config = tiny_run_config(train_fields=GUARDED)
    clean = fit(RunDir(tmp_path / "clean"), config, digits, progress=False)
    hook = inject_nan(7, once=True)
    run = RunDir(tmp_path / "faulty")
    recovered = fit(run, config, digits, progress=False, after_step=hook)
    assert hook.fired == [7]
    assert states_equal(clean.state_dict(), recovered.state_dict())  # the replay repeats the same steps exactly
    events = run.events_path.read_text()
    assert "steps 6-10: parameter '" in events and "rolled back to step-00000005.pt" in events
    assert "did not recur" in events


def test_a_recurring_nan_is_named_and_the_run_is_left_at_its_last_good_checkpoint(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    with pytest.raises(NonFiniteError, match=r"step 8: parameter 'decoder.2.weight' \(nan\) was non-finite before "
                                             r"the step.*rolled back to its last good checkpoint .*step-00000005.pt"):
        fit(run, tiny_run_config(train_fields=GUARDED), digits, progress=False, after_step=inject_nan(7, once=False))
    assert [s for s, _ in list_checkpoints(run.checkpoints)][-1] == 5  # nothing non-finite was ever saved
    state = load_checkpoint(run.checkpoints / "step-00000005.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_retries_are_bounded_and_each_lowers_the_learning_rate(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    config = tiny_run_config(train_fields={**GUARDED, "on_nan": "retry", "nan_retries": 2})
    with pytest.raises(NonFiniteError, match="step 8: parameter 'decoder.2.weight'.* after 2 retries"):
        fit(run, config, digits, progress=False, after_step=inject_nan(7, once=False))
    events = run.events_path.read_text()
    assert "retry 1/2 with lr 0.0005" in events and "retry 2/2 with lr 0.00025" in events


def test_the_failing_site_is_named_and_a_retry_with_a_lower_lr_recovers(tmp_path, digits):
    def config(on_nan):
        train = TrainConfig(data="digits", epochs=2, lr=0.6, on_nan=on_nan, nan_lr_factor=0.1, **GUARDED)
        return new_run_config(FRAGILE, {}, train, digits)

    # w = 1 -> 0.4 -> -0.14, so sqrt(w) is nan at step 3: the error names the site and its parameter.
    with pytest.raises(NonFiniteError, match=r"step 3: observed site 'anchor': its log-density is nan; its Normal "
                                             r"distribution's loc has nan values"):
        fit(RunDir(tmp_path / "stop"), config("stop"), digits, progress=False)
    run = RunDir(tmp_path / "retry")
    model = fit(run, config("retry"), digits, progress=False)
    assert 0 < model.w.item() < 1
    state = load_checkpoint(list_checkpoints(run.checkpoints)[-1][1])
    assert state["nan_retries"] == 1 and state["lr_scale"] == pytest.approx(0.1)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.06)  # kept for --resume
    assert "retry 1/3 with lr 0.06" in run.events_path.read_text()


def test_the_loss_is_read_back_once_per_interval_not_every_step(tmp_path, digits, tiny_run_config, monkeypatch):
    reads = []
    for name in ("item", "tolist", "__bool__", "__float__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, _f=original: reads.append(1) or _f(self))
    steps = []
    fit(RunDir(tmp_path / "run"), tiny_run_config(epochs=1, train_fields={"log_every": 5}), digits, progress=False,
        after_step=lambda step, model: steps.append(len(reads)))
    per_step = [b - a for a, b in zip(steps, steps[1:])]
    assert len(per_step) == 14 and sum(n > 0 for n in per_step) <= 2  # the checks after steps 5 and 10


def test_grad_clip_bounds_the_global_gradient_norm(tmp_path, digits, tiny_run_config):
    def norms(fields):
        seen = []
        record = lambda step, model: seen.append(  # noqa: E731  (gradients stay set after the step)
            torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item())
        fit(RunDir(tmp_path / str(len(fields))), tiny_run_config(epochs=1, train_fields=fields), digits,
            progress=False, after_step=record)
        return seen

    assert max(norms({})) > 10.0
    assert max(norms({"grad_clip": 1.0})) <= 1.0 + 1e-5


@pytest.mark.parametrize("field, value", [("checkpoint_every", 0), ("grad_clip", 0.0), ("on_nan", "ignore"),
                                          ("nan_retries", -1), ("nan_lr_factor", 1.0)])
def test_fault_settings_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})
