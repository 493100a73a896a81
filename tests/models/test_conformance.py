"""One conformance suite for every registered model: a model added later is covered automatically.

Each model is built small (integer sizes of 32 or more shrink to 16) for the digits data, and must:
build; have guide sites that match the model's latent sites; train with SVI through the real loop
to a finite, decreasing loss; sample observations of the data's shape; and give finite bounds.
"""

import dataclasses
import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppl_models.data import Dataset, Split, load_dataset
from ppl_models.evaluate.likelihood import estimate_log_likelihood
from ppl_models.evaluate.samples import sample_observations
from ppl_models.models.protocol import bind_labels, has_likelihood, label_use
from ppl_models.registry import available_models
from ppl_models.train import RunDir, TrainConfig, fit
from ppl_models.train.configure import new_run_config
from ppl_models.train.metrics import MetricsLog

MODELS = sorted(available_models())
SMALL = 16  # integer sizes of at least 2 * SMALL shrink to SMALL


def _shrink(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value >= 2 * SMALL:
        return SMALL
    if isinstance(value, tuple) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(_shrink(v) for v in value)
    return value


def small_fields(config_cls) -> dict:
    """The config fields whose defaults are large sizes, shrunk."""
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING and _shrink(f.default) != f.default:
            out[f.name] = _shrink(f.default)
    return out


@pytest.fixture(scope="module")
def small_digits() -> Dataset:
    d = load_dataset("digits")
    cut = lambda s, n: Split(s.x[:n].contiguous(), s.y[:n].contiguous())  # noqa: E731
    return Dataset("digits", cut(d.train, 300), cut(d.valid, 60), cut(d.test, 40), binary=False)


def build(name: str, data: Dataset, **train_fields):
    from ppl_models.registry import get_model

    fields = small_fields(get_model(name).config_cls)
    config = new_run_config(name, fields, TrainConfig(data="digits", **train_fields), data)
    pyro.set_rng_seed(0)
    return config, config.build()


def sample_sites(trace, observed: bool) -> set[str]:
    return {n for n, s in trace.nodes.items()
            if s["type"] == "sample" and not site_is_subsample(s) and s["is_observed"] == observed
            and not s["infer"].get("is_auxiliary")}


def summed_out(model_trace, guide_trace) -> set[str]:
    """Model sites enumerated in the model itself (TraceEnum_ELBO sums them out; no guide site)."""
    return {n for n, s in model_trace.nodes.items()
            if s["type"] == "sample" and s["infer"].get("enumerate") == "parallel" and n not in guide_trace.nodes}


@pytest.mark.parametrize("name", MODELS)
def test_model_and_guide_sites_agree(name, small_digits):
    _, module = build(name, small_digits)
    x, y = small_digits.test.x[:5], small_digits.test.y[:5]
    for view in {bind_labels(module, y), bind_labels(module, y, evaluation=True)}:
        with torch.no_grad():
            guide_trace = poutine.trace(view.guide).get_trace(x)
            model_trace = poutine.trace(poutine.replay(view.model, trace=guide_trace)).get_trace(x)
        latent = sample_sites(model_trace, observed=False) - summed_out(model_trace, guide_trace)
        proposed = sample_sites(guide_trace, observed=False)
        assert latent == proposed, f"{name}: model latents {latent} vs guide sites {proposed}"
        assert set(module.observed_sites) <= sample_sites(model_trace, observed=True)
        assert torch.equal(model_trace.nodes[module.observed_sites[0]]["value"], x)


@pytest.mark.parametrize("name", MODELS)
def test_svi_through_the_loop_gives_a_finite_decreasing_loss(name, small_digits, tmp_path):
    semi = {}
    config, module = build(name, small_digits)
    if label_use(module) == "semi-supervised":
        semi = {"labelled": 50}
    config, _ = build(name, small_digits, epochs=4, batch_size=50, lr=3e-3, **semi)
    torch.set_num_threads(1)
    fit(RunDir(tmp_path), config, small_digits, progress=False)
    losses = [float(r["train_loss"]) for r in MetricsLog.read(tmp_path / "metrics.csv")]
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0], f"{name}: train loss per epoch {losses}"


@pytest.mark.parametrize("name", MODELS)
def test_samples_have_the_data_shape(name, small_digits):
    _, module = build(name, small_digits)
    for mean in (False, True):
        xs = sample_observations(module, 6, mean=mean, data=small_digits.test)
        assert xs.shape == (6, 8, 8) and bool(torch.isfinite(xs).all())


@pytest.mark.parametrize("name", MODELS)
def test_eval_bounds_are_finite(name, small_digits):
    _, module = build(name, small_digits)
    module.eval()
    pyro.set_rng_seed(1)
    if not has_likelihood(module):  # an implicit model: refused with a message, never a number
        with pytest.raises(ValueError, match="no likelihood"):
            estimate_log_likelihood(module, small_digits.test.x[:20], 20)
        return
    with pyro.validation_enabled(False):
        r = estimate_log_likelihood(module, small_digits.test.x[:20], 20, y=small_digits.test.y[:20])
    assert math.isfinite(r.elbo) and math.isfinite(r.nll) and r.n == 20
    if getattr(module, "density_model", True):
        assert -r.nll >= r.elbo - 1e-3  # log-sum-exp of K weights >= their mean


@pytest.mark.parametrize("name", MODELS)
def test_diagnose_reports_a_number_or_a_reason_for_every_diagnostic(name, small_digits, tmp_path):
    from ppl_models.diagnostics.diagnose import DiagnoseConfig, diagnose
    from ppl_models.diagnostics.gaps import GapSettings
    from ppl_models.diagnostics.run_diagnose import write_diagnostics

    _, module = build(name, small_digits)
    module.eval()
    x, y = small_digits.test.x[:12], small_digits.test.y[:12]
    config = DiagnoseConfig(samples=40, keep_draws=5, gaps=True, gap=GapSettings(max_steps=20), ais_steps=4,
                            ais_chains=2, ais_leapfrog=2, ais_points=3, bdmc_points=2)
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(False):
        d = diagnose(module, x, y, config=config, model_kwargs={})
    s = d.summary
    for key in ("khat", "gaps", "ais", "rate_distortion"):
        value = s[key]
        assert isinstance(value, dict) or value.startswith("not applicable"), (name, key, value)
    if isinstance(s["khat"], dict):
        assert np.isfinite(d.per_point["khat"]).all() and np.isfinite(d.per_point["log_px_is"]).all()
        assert ((d.per_point["ess"] >= 1 - 1e-6) & (d.per_point["ess"] <= 40 + 1e-6)).all()
    for site in s["latents"]:
        assert site["active_units"] is None or 0 <= site["active_units"] <= site["dims"]
    paths = write_diagnostics(d, tmp_path, module, (8, 8), module.observed_sites[0])
    assert (tmp_path / "diagnostics.md").read_text().startswith("# Diagnostics")
    assert all(p.stat().st_size > 0 for p in paths)


@pytest.mark.parametrize("name", MODELS)
def test_the_cli_trains_evaluates_and_samples_every_model_with_its_defaults(name, tmp_path, capsys):
    from ppl_models.cli.main import main

    run = tmp_path / "run"
    assert main(["train", name, "--data", "digits", "--epochs", "1", "--out", str(run), "--no-progress"]) == 0
    assert main(["eval", str(run), "--nll-samples", "5", "--limit", "20", "--json"]) == 0
    assert main(["sample", str(run), "-n", "10", "--out", str(tmp_path / "grid.png")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" not in err, err
