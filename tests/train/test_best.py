"""best.pt and early stopping: every run keeps its best epoch, --early-stop ends a run that stopped
improving, readers load best.pt by default and say so, resume continues from the newest checkpoint,
and IWAE runs add (and select on) their own validation bound."""

import json

import numpy as np
import pytest
import torch

import ppl_models as ppl
from ppl_models.cli.main import main
from ppl_models.data import load_data
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.checkpoint import CheckpointWarning, list_checkpoints, load_checkpoint
from ppl_models.train.configure import configure_run, new_run_config
from ppl_models.train.metrics import MetricsLog


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """60 training digits: a VAE overfits them within a few epochs, so its validation ELBO stops improving."""
    from ppl_models.data import load_dataset

    d = tmp_path_factory.mktemp("small")
    x = load_dataset("digits").train.x.numpy()
    for name, part in (("train", x[:60]), ("valid", x[1000:1200]), ("test", x[1200:1300])):
        np.save(d / f"{name}.npy", part)
    files = {"data": str(d / "train.npy"), "valid_data": str(d / "valid.npy"), "test_data": str(d / "test.npy")}
    return files, load_data(files["data"], None, files["valid_data"], files["test_data"])


def small_config(small, **fields):
    files, dataset = small
    train = TrainConfig(**files, **{"epochs": 40, "batch_size": 20, "lr": 1e-2, **fields})
    return new_run_config("vae", {"latent_dim": 8, "hidden": (128,), "likelihood": "gaussian"}, train, dataset)


def valid(run: RunDir, key: str = "valid_elbo") -> list[float]:
    return [float(r[key]) for r in MetricsLog.read(run.metrics_path)]


def test_every_run_keeps_its_best_epoch_in_best_pt_beyond_the_cleanup(tmp_path, small):
    run = RunDir(tmp_path / "run")
    fit(run, small_config(small, epochs=12), small[1], progress=False)
    bounds = valid(run)
    best = int(np.argmax(bounds)) + 1
    assert best < 12  # the curve has a better epoch than the last (or the test proves nothing)
    state = load_checkpoint(run.checkpoints / "best.pt")
    assert state["epoch"] == best and state["best"]["epoch"] == best and state["best"]["bound"] == pytest.approx(
        bounds[best - 1], abs=1e-4)
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [33, 36]  # keep-last-2 never touched best.pt
    again = RunDir(tmp_path / "keep")  # best.pt holds exactly that epoch's checkpoint
    fit(again, small_config(small, epochs=12, keep_checkpoints=20), small[1], progress=False)
    epoch_end = load_checkpoint(again.checkpoints / f"step-{3 * best:08d}.pt")
    assert states_equal(state["model"], epoch_end["model"])
    _, model = run.load_model()  # readers load it by default
    assert states_equal(model.state_dict(), state["model"])
    _, newest = run.load_model(checkpoint="latest")
    assert states_equal(newest.state_dict(), load_checkpoint(run.checkpoints / "step-00000036.pt")["model"])


def test_early_stopping_ends_the_run_and_resume_with_more_patience_continues_it_exactly(tmp_path, small):
    run = RunDir(tmp_path / "run")
    fit(run, small_config(small, early_stop=1), small[1], progress=False)
    bounds = valid(run)
    assert len(bounds) < 40  # ended before its epoch budget
    assert bounds[-1] <= max(bounds[:-1]) and int(np.argmax(bounds)) + 1 == len(bounds) - 1
    assert "early stop after epoch" in run.events_path.read_text()
    assert load_checkpoint(run.checkpoints / "best.pt")["epoch"] == len(bounds) - 1
    stopped_at = list_checkpoints(run.checkpoints)[-1][0]

    straight = RunDir(tmp_path / "straight")
    expected = fit(straight, small_config(small, early_stop=3), small[1], progress=False)
    assert len(valid(straight)) > len(bounds)
    resumed_config, dataset = configure_run("vae", run, {"early_stop": 3}, {}, resume=True)
    assert resumed_config.train.early_stop == 3  # may change on resume
    resumed = fit(run, resumed_config, small[1], resume=True, progress=False)
    assert states_equal(expected.state_dict(), resumed.state_dict())  # from the newest step-N.pt, not best.pt
    assert valid(run) == valid(straight) and list_checkpoints(run.checkpoints)[-1][0] > stopped_at
    assert states_equal(load_checkpoint(run.checkpoints / "best.pt")["model"],
                        load_checkpoint(straight.checkpoints / "best.pt")["model"])

    again = fit(run, resumed_config, small[1], resume=True, progress=False)  # a finished run stays finished
    assert states_equal(again.state_dict(), resumed.state_dict()) and valid(run) == valid(straight)


def test_a_crash_between_the_epoch_checkpoint_and_best_pt_is_repaired_on_resume(tmp_path, small, monkeypatch):
    import importlib

    trainer = importlib.import_module("ppl_models.train.trainer")
    straight = RunDir(tmp_path / "straight")
    fit(straight, small_config(small, epochs=6), small[1], progress=False)
    real, writes = trainer.save_best, []

    def dies_on_the_fourth(directory, state):
        writes.append(state["epoch"])
        if len(writes) == 4:
            raise KeyboardInterrupt  # killed after step-N.pt of that epoch, before its best.pt
        return real(directory, state)

    run = RunDir(tmp_path / "run")
    monkeypatch.setattr(trainer, "save_best", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        fit(run, small_config(small, epochs=6), small[1], progress=False)
    monkeypatch.undo()
    assert load_checkpoint(run.checkpoints / "best.pt")["epoch"] == writes[-2]
    fit(run, small_config(small, epochs=6), small[1], resume=True, progress=False)
    assert f"best.pt restored from the checkpoint of step {3 * writes[-1]}" in run.events_path.read_text()
    assert states_equal(load_checkpoint(run.checkpoints / "best.pt")["model"],
                        load_checkpoint(straight.checkpoints / "best.pt")["model"])


def test_eval_uses_best_pt_by_default_and_says_so(tmp_path, small, capsys):
    run = RunDir(tmp_path / "run")
    fit(run, small_config(small, early_stop=1), small[1], progress=False)
    best = load_checkpoint(run.checkpoints / "best.pt")
    capsys.readouterr()
    common = [str(run.path), "--nll-samples", "5", "--json"]
    assert main(["eval", *common]) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["checkpoint"] == str(run.checkpoints / "best.pt") and default["checkpoint_step"] == best["step"]
    assert main(["eval", *common, "--checkpoint", f"step-{best['step']:08d}.pt"]) == 0  # the same weights
    same = json.loads(capsys.readouterr().out)
    assert same["elbo"] == default["elbo"] and same["checkpoint"].endswith(f"step-{best['step']:08d}.pt")
    assert main(["eval", *common, "--checkpoint", "latest"]) == 0
    latest = json.loads(capsys.readouterr().out)
    assert latest["checkpoint_step"] == list_checkpoints(run.checkpoints)[-1][0] > best["step"]
    assert main(["eval", str(run.path), "--nll-samples", "5"]) == 0
    assert f"checkpoint {run.checkpoints / 'best.pt'} (step {best['step']}" in capsys.readouterr().out
    assert main(["eval", *common, "--checkpoint", "nowhere.pt"]) == 2
    assert "--checkpoint nowhere.pt: no such checkpoint file" in capsys.readouterr().err

    loaded = ppl.load(run.path)  # the API reads the same checkpoint
    assert loaded.loaded.kind == "best" and loaded.evaluate(nll_samples=5, progress=False).checkpoint == \
        default["checkpoint"]


def test_an_unreadable_best_pt_falls_back_to_the_newest_checkpoint_with_a_warning(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=1), digits, progress=False)
    (run.checkpoints / "best.pt").write_bytes(b"garbage")
    with pytest.warns(CheckpointWarning, match="best.pt is corrupt.*falling back to the newest checkpoint"):
        _, model, choice = run.load_model_from("best")
    assert choice.kind == "latest" and choice.path.name == "step-00000015.pt" and "unreadable" in choice.note
    (run.checkpoints / "best.pt").unlink()  # a run from before best.pt: the newest, said so
    assert "no best.pt" in run.load_model_from("best")[2].note


def test_iwae_runs_report_and_select_on_their_own_bound(tmp_path, digits, tiny_run_config):
    run = RunDir(tmp_path / "run")
    fit(run, tiny_run_config(epochs=2, train_fields={"objective": "iwae", "particles": 4}), digits, progress=False)
    rows = MetricsLog.read(run.metrics_path)
    assert list(rows[0]) == ["epoch", "step", "train_loss", "valid_elbo", "epoch_time_s", "elapsed_s", "valid_iwae"]
    assert all(float(r["valid_iwae"]) >= float(r["valid_elbo"]) for r in rows)  # IWAE-4 from the same draws
    best = load_checkpoint(run.checkpoints / "best.pt")["best"]
    assert best["bound"] == pytest.approx(max(float(r["valid_iwae"]) for r in rows), abs=1e-4)

    # A run whose metrics.csv predates the column resumes, and old readers read the file.
    text = run.metrics_path.read_text().splitlines()
    run.metrics_path.write_text("\n".join(",".join(line.split(",")[:6]) for line in text) + "\n")
    config = tiny_run_config(epochs=3, train_fields={"objective": "iwae", "particles": 4})
    fit(run, config, digits, resume=True, progress=False)
    rows = MetricsLog.read(run.metrics_path)
    assert [r["valid_iwae"] == "" for r in rows] == [True, True, False]
    plain = RunDir(tmp_path / "elbo")
    fit(plain, tiny_run_config(epochs=1), digits, progress=False)
    assert "valid_iwae" not in MetricsLog.read(plain.metrics_path)[0]  # ELBO runs keep the old columns
