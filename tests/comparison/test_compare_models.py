"""``ppl compare`` end to end on digits: one row per family with its own kind of NLL, the floor row,
the figures, and a rerun that reads the finished runs' measurements instead of sampling again."""

import json
import math

import pytest

from ppl_models.cli.main import main
from ppl_models.comparison import ModelComparisonConfig, get_contender

ARGS = ["compare", "--data", "digits", "--binarize", "dynamic", "--models", "vae,iwae,pixelcnn,gan", "--epochs", "1",
        "--limit", "200", "--nll-samples", "5", "--quality-samples", "40", "--set", "vae.hidden=16",
        "--set", "iwae.hidden=16", "--set", "pixelcnn.channels=8", "--set", "pixelcnn.layers=2",
        "--set", "gan.channels=8", "--no-progress"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory, classifier_cache):
    from ppl_models.evaluate.classifier import ENV_CLASSIFIER_DIR

    out = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ENV_CLASSIFIER_DIR, str(classifier_cache))
        assert main([*ARGS, "--out", str(out)]) == 0
    return out


@pytest.fixture(autouse=True)
def _classifier(classifier_env):
    """Every test here reads the session's classifier cache."""


def test_every_family_gets_its_own_kind_of_likelihood_and_the_floor_row(compared):
    results = json.loads((compared / "results.json").read_text())
    rows = {r["model"]: r for r in results["rows"]}
    assert list(rows) == ["vae", "iwae", "pixelcnn", "gan"]
    assert rows["vae"]["nll_method"] == "importance sampling, K=5" and rows["pixelcnn"]["nll_method"] == "exact"
    assert rows["gan"]["test_nll"] == rows["gan"]["bits_per_dim"] == "no likelihood"
    assert [rows[m]["family"] for m in rows] == ["latent variable", "latent variable", "autoregressive", "adversarial"]
    for name in ("vae", "iwae", "pixelcnn"):
        r = rows[name]
        assert r["test_nll"] > 0 and math.isclose(r["bits_per_dim"], r["test_nll"] / (64 * math.log(2)), rel_tol=1e-9)
        assert r["likelihood"] == "bernoulli"
    for r in [*rows.values(), results["floor"]]:
        assert all(math.isfinite(r[m]) for m in ("fd", "precision", "recall", "label_entropy", "mean_entropy"))
    assert all(rows[m]["fd"] > results["floor"]["fd"] for m in rows)  # one epoch is far from real images
    assert all(r["sample_s_per_image"] > 0 and r["parameters"] > 0 and r["train_s"] > 0 for r in rows.values())
    assert rows["iwae"]["trains"] == "vae" and results["n_quality"] == 40
    table = (compared / "results.md").read_text()
    assert "| real data (floor) |" in table and "no likelihood" in table and "N = 40" in table
    assert all(len(line.split("|")) == len(table.splitlines()[6].split("|")) for line in table.splitlines()[6:] if line)
    for name in rows:
        assert (compared / "samples" / f"{name}.png").stat().st_size > 0
    assert (compared / "samples.png").stat().st_size > 0 and (compared / "results.csv").exists()


def test_a_rerun_with_resume_reads_the_finished_runs(compared, monkeypatch, capsys):
    import ppl_models.comparison.compare as compare

    before = (compared / "results.json").read_text()

    def fail(*args, **kwargs):
        raise AssertionError("a finished run with the same settings was measured again")

    monkeypatch.setattr(compare, "measure", fail)
    capsys.readouterr()
    assert main([*ARGS, "--out", str(compared), "--resume"]) == 0
    assert json.loads((compared / "results.json").read_text())["rows"] == json.loads(before)["rows"]


def test_bad_comparisons_are_refused_naming_the_problem():
    with pytest.raises(ValueError, match="unknown model 'nope' in --models"):
        ModelComparisonConfig(models=("vae", "nope"))
    with pytest.raises(ValueError, match="lists a model twice"):
        ModelComparisonConfig(models=("vae", "vae"))
    with pytest.raises(ValueError, match="'gan' is not among --models"):
        ModelComparisonConfig(models=("vae",), settings={"gan": {"channels": 8}})
    assert get_contender("iwae").train == {"objective": "iwae", "particles": 5}
