"""`ppl train --config FILE`: TOML or JSON settings, flags override them, a run's config.json repeats it."""

import json

import pytest
import torch

from ppl_models.cli.main import main
from ppl_models.train.run import RunDir

TOML = """
model = "vae"
data = "digits"
epochs = 2
seed = 3
latent-dim = 3
hidden = [16]
likelihood = "gaussian"
[guide]
activation = "tanh"
"""


def saved(run):
    return json.loads((run / "config.json").read_text())


def test_a_toml_file_sets_flags_and_model_fields_and_flags_override_it(tmp_path):
    (tmp_path / "run.toml").write_text(TOML)
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--epochs", "1", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    c = saved(tmp_path / "r")
    assert c["model"] == "vae" and c["train"]["epochs"] == 1 and c["train"]["seed"] == 3  # --epochs wins
    assert c["model_config"]["latent_dim"] == 3 and c["model_config"]["hidden"] == [16]
    assert c["guide"]["activation"] == "tanh"


def test_a_runs_config_json_repeats_the_run_exactly(tmp_path):
    (tmp_path / "run.toml").write_text(TOML)
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert main(["train", "--config", str(tmp_path / "a" / "config.json"), "--out", str(tmp_path / "b"),
                 "--no-progress"]) == 0
    a, b = (RunDir(tmp_path / d).load_model()[1].state_dict() for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert saved(tmp_path / "a") == saved(tmp_path / "b")


def test_json_settings_and_a_model_on_the_command_line(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"epochs": 1, "latent_dim": 2, "hidden": [8]}))
    assert main(["train", "vae", "--config", str(tmp_path / "run.json"), "--data", "digits",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert saved(tmp_path / "r")["model_config"]["latent_dim"] == 2


@pytest.mark.parametrize("text, suffix, message", [
    ('model = "vae"\nepochz = 3\n', ".toml", "unknown key 'epochz'; valid keys are "),
    ('model = "vae"\n[guide]\nfamly = "normal"\n', ".toml", "[guide]: unknown key 'famly'"),
    ('model = "vae\n', ".toml", "is not valid TOML"),
    ('{"epochs": 1', ".json", "is not valid JSON"),
    ('epochs = 1\n', ".toml", "names no model"),
    ('model = "nope"\n', ".toml", "unknown model 'nope'"),
])
def test_bad_config_files_are_refused_naming_the_problem(text, suffix, message, tmp_path, capsys):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()
