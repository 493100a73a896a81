"""The Python API: the same runs and numbers as the CLI, results as frozen dataclasses, quiet by default."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

import ppl_models as ppl
from ppl_models.cli.main import main

TINY = dict(data="digits", epochs=2, latent_dim=3, hidden=(16,), seed=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return ppl.train("vae", out=tmp_path_factory.mktemp("api") / "run", progress=False, **TINY)


def test_train_returns_a_loaded_run_and_evaluate_gives_the_cli_numbers(run, capsys):
    assert isinstance(run, ppl.Run) and run.config.model == "vae" and run.config.model_config.latent_dim == 3
    assert [p.name for p in run.sample_files] == ["mean.png", "draws.png"]
    result = run.evaluate(nll_samples=20, limit=30, progress=False)
    assert isinstance(result, ppl.EvalResult) and result.n == 30 and result.split == "test"
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.nll = 0.0
    capsys.readouterr()
    assert main(["eval", str(run.path), "--nll-samples", "20", "--limit", "30", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["nll"] == result.nll and cli["elbo"] == result.elbo  # one implementation, two doors
    assert json.loads(json.dumps(result.to_json()))["nll"] == result.nll


def test_the_api_and_the_cli_train_the_same_run(tmp_path):
    run = ppl.train("vae", out=tmp_path / "api", progress=False, **TINY)
    argv = ["train", "vae", "--data", "digits", "--epochs", "2", "--latent-dim", "3", "--hidden", "16", "--seed", "1",
            "--out", str(tmp_path / "cli"), "--no-progress"]
    assert main(argv) == 0
    cli = ppl.load(tmp_path / "cli")
    for a, b in zip(run.model.state_dict().values(), cli.model.state_dict().values()):
        assert torch.equal(a, b)


def test_sample_and_save_samples(run, tmp_path):
    x = run.sample(12, seed=3)
    assert x.shape == (12, 8, 8) and torch.equal(x, run.sample(12, seed=3))
    assert run.sample(5, mean=True).shape == (5, 8, 8)
    assert Image.open(run.save_samples(tmp_path / "g.png", n=9)).size[0] > 0


def test_nothing_is_printed_unless_asked(tmp_path, capsys):
    ppl.train("vae", out=tmp_path / "quiet", progress=False, **TINY)
    assert capsys.readouterr().out == ""
    ppl.train("vae", out=tmp_path / "loud", progress=False, verbose=True, **TINY)
    assert "epoch 2:" in capsys.readouterr().out


def test_train_takes_a_model_class_and_refuses_unknown_names(tmp_path):
    r = ppl.train(ppl.models.VAE, out=tmp_path / "cls", progress=False, **TINY)
    assert r.config.model == "vae"
    with pytest.raises(ValueError, match="is not a registered model"):
        ppl.train(torch.nn.Linear, out=tmp_path / "x", progress=False, **TINY)
    with pytest.raises(ValueError, match="latent_dimm"):
        ppl.train("vae", out=tmp_path / "y", progress=False, data="digits", latent_dimm=3)


def test_model_classes_are_usable_on_their_own():
    model = ppl.models.VAE(ppl.models.VAEConfig(latent_dim=2, hidden=(8,)), (8, 8))
    trace = __import__("pyro").poutine.trace(model.guide).get_trace(torch.rand(4, 8, 8).round())
    assert trace.nodes["z"]["value"].shape == (4, 2)


def test_load_diagnose_and_compare(run, tmp_path):
    loaded = ppl.load(run.path)
    d = loaded.diagnose(limit=10, samples=30, out=tmp_path / "diag", progress=False)
    assert isinstance(d, ppl.DiagnoseResult) and d.summary["n"] == 10 and (tmp_path / "diag" / "diagnostics.md").exists()
    assert np.isfinite(d.to_json()["log_px"]["is"])
    c = ppl.compare_inference(tmp_path / "cmp", model="vae", data="digits", strategies="elbo,iwae:3", epochs=1,
                              limit=100, test_limit=10, nll_samples=10, iwae_k=(3,), estimator_points=0,
                              model_fields={"latent_dim": 2, "hidden": (16,)}, progress=False)
    assert [r["strategy"] for r in c.rows] == ["elbo", "iwae:3"] and (tmp_path / "cmp" / "results.md").exists()
