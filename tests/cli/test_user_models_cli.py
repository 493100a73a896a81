"""A user's own model file and data files through every command, as the README shows them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppl_models.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "your_own_model.py"


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """The example model copied into a user's directory, and digits-like data as .npy/.npz files."""
    from ppl_models.data import load_dataset

    root = tmp_path_factory.mktemp("user")
    shutil.copy(EXAMPLE, root / "my_model.py")
    d = load_dataset("digits")
    np.save(root / "train.npy", d.train.x[:400].numpy())
    np.savez(root / "valid.npz", x=d.valid.x.numpy())
    np.save(root / "test.npy", d.test.x.numpy())
    np.save(root / "other.npy", d.valid.x[:50].numpy())
    return root


@pytest.fixture(scope="module")
def user_run(user_files):
    out = user_files / "run"
    code = main(["train", f"{user_files / 'my_model.py'}:ink-vae", "--data", str(user_files / "train.npy"),
                 "--valid-data", str(user_files / "valid.npz"), "--test-data", str(user_files / "test.npy"),
                 "--set", "hidden=32", "--epochs", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_records_the_model_file_and_data_files(user_run, user_files):
    config = json.loads((user_run / "config.json").read_text())
    assert config["model"] == f"{(user_files / 'my_model.py').resolve()}:ink-vae"
    assert config["model_config"] == {"latent_dim": 8, "hidden": 32}
    assert config["train"]["valid_data"] == str((user_files / "valid.npz").resolve())
    assert config["guide"]["family"] == "default"
    assert Image.open(user_run / "samples" / "draws.png").size[0] > 0


def test_eval_on_the_test_file_and_on_other_data(user_run, user_files, capsys):
    assert main(["eval", str(user_run), "--nll-samples", "10", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert own["n"] == 180 and own["split"] == "test"
    assert own["data"] == str((user_files / "test.npy").resolve())  # the file the test split came from
    assert main(["eval", str(user_run), "--data", str(user_files / "other.npy"), "--nll-samples", "10", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["n"] == 50 and other["data"].endswith("other.npy") and np.isfinite(other["nll"])
    assert (user_run / "eval-data-other.json").exists()


def test_an_evaluation_never_replaces_a_different_one(user_run, user_files, capsys):
    """A data file named like a split, and a second K, each keep the earlier result files."""
    assert main(["eval", str(user_run), "--nll-samples", "20", "--limit", "30", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    data = user_files / "sub" / "test.npy"
    data.parent.mkdir(exist_ok=True)
    shutil.copy(user_files / "other.npy", data)
    assert main(["eval", str(user_run), "--data", str(data), "--nll-samples", "5", "--json"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert by_file["file"].endswith("eval-data-test.json") and by_file["data"] == str(data)
    assert main(["eval", str(user_run), "--nll-samples", "5", "--limit", "30", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["file"] != first["file"] and json.loads(Path(first["file"]).read_text())["nll_samples"] == 20
    assert main(["eval", str(user_run), "--nll-samples", "20", "--limit", "30", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["file"] == first["file"] and again["nll"] == first["nll"]  # the same evaluation, repeated


def test_eval_on_data_of_the_wrong_shape_names_the_file(user_run, user_files, capsys):
    np.save(user_files / "wrong.npy", np.zeros((5, 4, 4), dtype=np.float32))
    assert main(["eval", str(user_run), "--data", str(user_files / "wrong.npy")]) == 2
    assert "wrong.npy: observations have shape (4, 4)" in capsys.readouterr().err


def test_sample_from_a_user_model_run(user_run, tmp_path):
    assert main(["sample", str(user_run), "-n", "9", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").mode == "L"


@pytest.mark.parametrize("family", ["normal", "lowrank", "iaf"])
def test_every_guide_family_trains_a_user_model(user_files, family, tmp_path):
    code = main(["train", f"{user_files / 'my_model.py'}:ink-vae", "--data", str(user_files / "train.npy"),
                 "--guide", family, "--guide-hidden", "16", "--set", "hidden=16", "--epochs", "1",
                 "--out", str(tmp_path / family), "--no-progress"])
    assert code == 0
    config = json.loads((tmp_path / family / "config.json").read_text())
    assert config["guide"]["family"] == family and config["guide"]["hidden"] == [16]


def test_compare_inference_on_a_user_model_and_file(user_files, tmp_path):
    code = main(["compare-inference", "--model", f"{user_files / 'my_model.py'}:ink-vae",
                 "--data", str(user_files / "train.npy"), "--strategies", "elbo,iwae:3", "--epochs", "1",
                 "--set", "hidden=16", "--nll-samples", "10", "--iwae-k", "2", "--estimator-points", "0",
                 "--out", str(tmp_path / "cmp"), "--no-progress"])
    assert code == 0
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert [r["strategy"] for r in results["rows"]] == ["elbo", "iwae:3"]
    assert all(np.isfinite(r["test_nll"]) for r in results["rows"])


def test_bad_model_and_data_errors(user_files, tmp_path, capsys):
    assert main(["train", f"{user_files / 'my_model.py'}:nope", "--out", str(tmp_path / "r")]) == 2
    assert "registers no model 'nope'" in capsys.readouterr().err
    assert main(["train", "vae", "--data", str(user_files / "missing.npy"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.npy: no such data file" in capsys.readouterr().err
    assert main(["train", "vae", "--set", "depth=3", "--out", str(tmp_path / "r")]) == 2
    assert "has no config field(s) ['depth']" in capsys.readouterr().err
    assert main(["train", "vae", "--guide", "flowy", "--out", str(tmp_path / "r")]) == 2
    assert "unknown guide family 'flowy'" in capsys.readouterr().err


def test_diagnose_a_user_model_with_a_positive_and_a_laplace_latent(user_run, capsys):
    argv = ["diagnose", str(user_run), "--limit", "30", "--samples", "60", "--gaps", "--gap-steps", "50",
            "--ais-steps", "10", "--ais-chains", "2", "--ais-leapfrog", "2", "--ais-points", "5", "--bdmc-points", "3",
            "--json"]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["model"].endswith("my_model.py:ink-vae") and s["n"] == 30
    assert {site["site"] for site in s["latents"]} == {"z", "ink"}
    assert not s["rate_distortion"]["rate_analytic"]  # two latent sites: Monte Carlo rate
    g = s["gaps"]
    assert g["inference_gap"] == pytest.approx(g["approximation_gap"] + g["amortization_gap"])
    assert s["ais"]["n"] == 5 and len(s["ais"]["bdmc"]) == 3
    assert (user_run / "diagnostics" / "inference_data.nc").exists()
