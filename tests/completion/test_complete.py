"""complete() runs every method on every model it applies to and scores the rows alike; ppl complete
does the same from run directories, writes the table and the figures, and refuses bad masks by name."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from ppl_models.cli.main import main
from ppl_models.completion import CompletionSettings, complete, parse_mask
from ppl_models.registry import build_model, model_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "completion_digits.py"
TINY = CompletionSettings(samples=2, num_particles=20, svi_steps=5, pixel_steps=5, pixel_draws=4, pixel_particles=2,
                          autoregressive_pool=4, progress=False)


@pytest.fixture(scope="module")
def images():
    from ppl_models.data import load_dataset

    x = load_dataset("digits").test.x[:6]
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"vae": build_model("vae", model_config("vae", latent_dim=3, hidden=(16,)), (8, 8)),
            "pixelcnn": build_model("pixelcnn", model_config("pixelcnn", channels=8, layers=1), (8, 8)),
            "cvae": build_model("cvae", model_config("cvae", condition="partial", visible="bottom", latent_dim=3,
                                                     hidden=(16,)), (8, 8))}


def test_every_method_runs_where_it_applies_and_rows_are_scored_alike(models, images, classifier_cache):
    from ppl_models.evaluate.classifier import load_classifier

    classifier = load_classifier((8, 8), cache_dir=classifier_cache, progress=False)
    hidden = parse_mask("top-half", (8, 8)).hidden
    result = complete(models, images, hidden, settings=TINY, mask_name="top-half", classifier=classifier)
    ran = [(r.method, r.model) for r in result.rows]
    assert ("latent", "vae") in ran and ("pixels", "vae") in ran and ("pixels", "pixelcnn") in ran
    assert ("cvae", "cvae") in ran and ("autoregressive", "pixelcnn") in ran
    assert [r.method for r in result.rows] == sorted((r.method for r in result.rows),
                                                     key=["latent", "pixels", "cvae", "autoregressive"].index)
    assert len([r for r in result.rows if r.method == "latent"]) == 4  # prior IS, two encoder ways, per-point SVI
    for row in result.rows:
        assert row.reason is None and row.n == 6 and row.hidden_fraction == 0.5 and row.mask == "top-half"
        assert math.isfinite(row.nll) and 0 <= row.accuracy <= 1 and 0 <= row.class_kept <= 1
        assert row.ms_per_image > 0
    for (model, method, variant), c in result.completions.items():
        assert tuple(c.draws.shape) == (2, 6, 8, 8) and tuple(c.mean.shape) == (6, 8, 8)
        assert torch.equal(c.draws[:, :, 4:], images[:, 4:].expand(2, 6, 4, 8))  # the observed bottom, untouched


def test_a_method_no_model_serves_says_why_and_bad_requests_are_refused(models, images):
    result = complete(models["vae"], images, parse_mask("top-half", (8, 8)).hidden, ["cvae", "autoregressive"], TINY)
    assert [r.method for r in result.rows] == ["cvae", "autoregressive"]
    assert all(r.reason and r.reason.startswith("not applicable") and r.nll == r.reason for r in result.rows)
    assert result.completions == {}
    with pytest.raises(ValueError, match="unknown completion method 'inpaint'; choose from latent, pixels, cvae, "
                                         "autoregressive or all"):
        complete(models["vae"], images, parse_mask("top-half", (8, 8)).hidden, "inpaint", TINY)
    with pytest.raises(ValueError, match=r"my-mask: the mask has shape \[4, 4\], but the images need \[8, 8\]"):
        complete(models["vae"], images, torch.zeros(4, 4, dtype=torch.bool), "latent", TINY, mask_name="my-mask")
    with pytest.raises(ValueError, match="a mask must be boolean"):
        complete(models["vae"], images, torch.zeros(8, 8), "latent", TINY)
    with pytest.raises(ValueError, match="hides nothing: pixels completion needs at least one hidden pixel"):
        complete(models["vae"], images, torch.zeros(8, 8, dtype=torch.bool), "pixels", TINY)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A user model file (the example's Bernoulli sketch-vae), a PixelCNN and a CVAE for the top-half mask."""
    root = tmp_path_factory.mktemp("complete")
    shutil.copy(EXAMPLE, root / "my_model.py")
    common = ["--data", "digits", "--binarize", "dynamic", "--epochs", "1", "--no-progress"]
    made = {"user": (f"{root / 'my_model.py'}:sketch-vae", ["--set", "hidden=32"]),
            "pixelcnn": ("pixelcnn", ["--set", "channels=8", "--set", "layers=1"]),
            "cvae": ("cvae", ["--set", "condition=partial", "--set", "visible=bottom", "--set", "hidden=[16]"])}
    for name, (model, extra) in made.items():
        assert main(["train", model, *common, *extra, "--out", str(root / name)]) == 0
    return root


def test_ppl_complete_writes_the_table_and_a_figure_per_mask(runs, classifier_env, capsys):
    out = runs / "out"
    code = main(["complete", str(runs / "user"), str(runs / "pixelcnn"), str(runs / "cvae"), "--mask", "top-half",
                 "--mask", "quadrants:1", "--limit", "5", "--samples", "2", "--nll-samples", "10", "--svi-steps", "3",
                 "--pixel-steps", "3", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "## Conditional NLL" in printed and "Pyro's CVAE tutorial" in printed
    results = json.loads((out / "completion.json").read_text())
    assert results["n"] == 5 and results["masks"] == ["top-half", "quadrants:1"]
    rows = {(r["method"], r["model"], r["mask"]): r for r in results["rows"]}
    user = str(runs / "user")
    for mask in ("top-half", "quadrants:1"):
        assert math.isfinite(rows[("latent", user, mask)]["nll"]) and math.isfinite(rows[("pixels", user, mask)]["nll"])
    assert math.isfinite(rows[("cvae", str(runs / "cvae"), "top-half")]["nll"])
    cvae_q1 = next(r for r in results["rows"] if r["method"] == "cvae" and r["mask"] == "quadrants:1")
    assert cvae_q1["reason"] is not None and "visible='bottom'" in cvae_q1["reason"]  # trained for another mask
    for name in ("completion.md", "completion.csv", "top-half.png", "quadrants-1.png", "pixels-top-half.png"):
        assert (out / name).stat().st_size > 0, name


def test_ppl_complete_refuses_a_bad_mask_by_name(runs, capsys):
    code = main(["complete", str(runs / "user"), "--mask", "quadrants:5", "--out", str(runs / "bad"), "--no-progress"])
    assert code == 2
    assert "mask 'quadrants:5': quadrants:N shows N = 1, 2 or 3 quadrants" in capsys.readouterr().err
