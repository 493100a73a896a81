"""`ppl diagnose` end to end on a tiny trained run: the report, the figures and the ArviZ export."""

import json

import numpy as np
import pytest
import torch

from ppl_models.cli.main import main

TINY = ["--data", "digits", "--epochs", "3", "--latent-dim", "4", "--hidden", "32", "--no-progress"]
FAST = ["--limit", "40", "--samples", "100", "--keep-draws", "10", "--gaps", "--gap-steps", "50",
        "--ais-steps", "20", "--ais-chains", "2", "--ais-leapfrog", "3", "--ais-points", "5", "--bdmc-points", "4"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("diag") / "run"
    assert main(["train", "vae", *TINY, "--out", str(out), "--seed", "1"]) == 0
    return out


def test_diagnose_writes_the_report_figures_and_inference_data(run_dir, capsys):
    from ppl_models.evaluate.arviz_adapter import _arviz, load_inference_data

    assert main(["diagnose", str(run_dir), *FAST]) == 0
    printed = capsys.readouterr().out
    out = run_dir / "diagnostics"
    assert "## Verdicts" in printed and "**k-hat:**" in printed and "**Gaps:**" in printed and "**AIS:**" in printed
    summary = json.loads((out / "diagnostics.json").read_text())
    assert summary["n"] == 40 and summary["samples"] == 100 and summary["data"] == "digits/test"
    assert abs(summary["khat"]["good"] + summary["khat"]["ok"] + summary["khat"]["bad"] - 1) < 1e-9
    g = summary["gaps"]
    assert g["inference_gap"] == pytest.approx(g["approximation_gap"] + g["amortization_gap"])
    assert summary["ais"]["n"] == 5 and [b["steps"] for b in summary["ais"]["bdmc"]] == [1, 4, 20]
    for name in ("khat", "kl_per_dim", "latent_map_z", "reconstructions", "traversals", "gaps", "ais_bdmc"):
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    idata = load_inference_data(out / "inference_data.nc")
    assert {"posterior", "log_likelihood", "sample_stats", "observed_data", "point_diagnostics"} <= set(idata.groups())
    assert idata.posterior["z"].dims == ("chain", "draw", "obs", "z_dim_0") and idata.posterior["z"].shape == (1, 10, 40, 4)
    khat = idata.point_diagnostics["khat"].values
    assert khat.shape == (40,) and np.isfinite(khat).all()
    assert len(_arviz().summary(idata, var_names=["z"])) == 4 * 40


def test_diagnose_json_on_another_data_file_into_another_directory(run_dir, tmp_path, capsys):
    data = tmp_path / "other.npy"
    np.save(data, torch.rand(15, 8, 8).numpy())
    out = tmp_path / "report"
    assert main(["diagnose", str(run_dir), "--data", str(data), "--samples", "30", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 15 and summary["data"] == str(data) and "gaps" not in summary and "ais" not in summary
    assert (out / "diagnostics.md").exists() and (out / "inference_data.nc").exists()


def test_diagnose_is_seeded(run_dir, tmp_path, capsys):
    runs = []
    for i in range(2):
        assert main(["diagnose", str(run_dir), "--limit", "10", "--samples", "40", "--out", str(tmp_path / str(i)), "--json"]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0]["khat"] == runs[1]["khat"] and runs[0]["log_px"] == runs[1]["log_px"]


@pytest.mark.parametrize("flags, message", [
    (["--samples", "1"], "--samples must be a whole number >= 2"),
    (["--ais-steps", "-1"], "--ais-steps"),
    (["--limit", "0"], "--limit"),
    (["--gap-steps", "0"], "--gap-steps"),
])
def test_bad_settings_name_the_flag(run_dir, flags, message, capsys):
    assert main(["diagnose", str(run_dir), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_missing_run_is_named(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "nope")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
