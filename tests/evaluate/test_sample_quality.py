"""Sample quality: the reference and floor sets, classifier scores with known answers, the floor beats
noise, identical sets score exactly, and ``ppl eval --sample-quality`` end to end on a tiny digits VAE
(the Python API giving the same numbers), plus a model without a likelihood."""

import dataclasses
import json
import math

import pytest
import torch

from ppl_models.cli.main import main as ppl
from ppl_models.data import Dataset, Split
from ppl_models.evaluate.classifier_score import classifier_score
from ppl_models.evaluate.sample_quality import prepare_reference, reference_sets, sample_quality, score_samples
from ppl_models.models.protocol import NO_LIKELIHOOD
from ppl_models.train import RunDir, fit

METRICS = ("fd", "precision", "recall", "label_entropy", "mean_entropy", "inception_score")


def _numbered(n_valid, n_test):
    """A dataset whose images hold their own split and index, so the sets can be traced back."""
    def split(n, tag):
        return Split(torch.stack([torch.full((2, 2), tag + i / 1000) for i in range(n)]))
    return Dataset("numbered", split(5, 0.0), split(n_valid, 0.1), split(n_test, 0.2), binary=False)


def test_reference_and_floor_come_from_one_permutation_of_the_valid_split():
    sets = reference_sets(_numbered(50, 30), n=20)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    ids = lambda x: ((x[:, 0, 0] - 0.1) * 1000).round().long()  # noqa: E731
    assert ids(sets.reference).tolist() == perm[:20].tolist() and ids(sets.floor).tolist() == perm[20:40].tolist()
    assert sets.n == 20 and sets.note is None and sets.floor_from == "numbered/valid[perm[20:40]]"


def test_a_small_valid_split_takes_the_floor_from_the_test_split_and_cuts_n():
    sets = reference_sets(_numbered(50, 30), n=40)
    assert sets.n == 30 and sets.floor.shape == (30, 2, 2) and bool((sets.floor[:, 0, 0] >= 0.2).all())
    assert "fewer than 2 x 40: the floor comes from numbered/test; N cut from 40 to 30" in sets.note
    binary = reference_sets(_numbered(50, 30), n=10, binarize=True)
    assert set(binary.reference.unique().tolist()) <= {0.0, 1.0}


def test_classifier_score_known_answers():
    uniform = classifier_score(torch.full((7, 10), 0.1))
    assert uniform.label_entropy == pytest.approx(math.log(10)) and uniform.mean_entropy == pytest.approx(math.log(10))
    assert uniform.inception_score == pytest.approx(1.0)
    sure = classifier_score(torch.eye(10).repeat(3, 1))  # every class equally often, each sample certain
    assert (sure.label_entropy, sure.mean_entropy, sure.inception_score) == (
        pytest.approx(math.log(10)), 0.0, pytest.approx(10.0))
    collapsed = classifier_score(torch.eye(10)[[3] * 5])  # one class only
    assert (collapsed.label_entropy, collapsed.inception_score) == (0.0, 1.0)


@pytest.fixture
def digits_reference(digits, classifier_cache):
    return prepare_reference(digits, n=1000, cache_dir=classifier_cache)


def test_the_floor_beats_noise_and_the_reference_scores_exactly_against_itself(digits_reference):
    ref = digits_reference
    assert ref.n == 180 and "N cut from 1000 to 180" in ref.sets.note  # digits: valid and test have 180 each
    floor = ref.floor
    assert floor.precision > 0.8 and floor.recall > 0.8 and floor.label_entropy > 2.2  # ln 10 = 2.303
    noise = score_samples(torch.rand(180, 8, 8, generator=torch.Generator().manual_seed(0)), ref)
    # measured: noise FD 128.9, precision 0.128, recall 0; the floor 5.2, 0.961, 0.933
    assert noise.fd > 5 * floor.fd and noise.precision < 0.5 * floor.precision and noise.recall < 0.1
    itself = score_samples(ref.sets.reference, ref)  # a "model" that returns the reference set
    assert itself.fd == pytest.approx(0.0, abs=1e-6) and (itself.precision, itself.recall) == (1.0, 1.0)


def test_sample_quality_api_checks_n_and_shape(digits, digits_reference):
    result = sample_quality(digits.test.x, digits, reference=digits_reference)
    # the floor set is the whole test split here, in another order: equal up to summation round-off
    assert result.n == 180 and result.model.to_json() == pytest.approx(digits_reference.floor.to_json(), rel=1e-6)
    with pytest.raises(ValueError, match="100 samples, but the reference sets have N = 180: compare at equal N"):
        score_samples(digits.test.x[:100], digits_reference)
    with pytest.raises(ValueError, match=r"shape \[N, 8, 8\], got \(180, 28, 28\)"):
        score_samples(torch.zeros(180, 28, 28), digits_reference)
    with pytest.raises(ValueError, match="shape \\(5, 5\\)"):
        prepare_reference(_bad_shape(), n=10)


def _bad_shape():
    x = Split(torch.rand(10, 5, 5))
    return Dataset("five", x, x, x, binary=False)


@pytest.fixture
def tiny_run(tmp_path, digits, tiny_run_config):
    run = tmp_path / "run"
    fit(RunDir(run), tiny_run_config(epochs=1), digits, progress=False)
    return run


def test_ppl_eval_sample_quality_end_to_end(tiny_run, classifier_env, capsys):
    import ppl_models as api

    capsys.readouterr()
    args = ["eval", str(tiny_run), "--sample-quality", "--quality-samples", "60", "--nll-samples", "5"]
    assert ppl([*args, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    q = r["sample_quality"]
    assert {"model", "floor", "n", "k", "classifier", "reference_from", "floor_from", "note"} <= set(q)
    assert q["n"] == 60 and q["k"] == 3 and q["classifier"]["accuracy"] > 0.95 and len(q["classifier"]["sha256"]) == 64
    assert all(math.isfinite(row[m]) for row in (q["model"], q["floor"]) for m in METRICS)
    assert q["floor"]["fd"] < q["model"]["fd"]  # one epoch of training is far from the data
    assert math.isfinite(r["nll"]) and r["has_likelihood"] is True  # the likelihood part is unchanged
    assert json.loads((tiny_run / "eval-test.json").read_text())["sample_quality"] == q
    assert ppl(args) == 0
    out = capsys.readouterr().out
    assert "sample quality (N=60, k=3" in out and "floor (held-out real)" in out and "NLL (IS, K)" in out
    api_result = api.load(tiny_run).sample_quality(n=60, progress=False)
    assert dataclasses.asdict(api_result)["model"] == q["model"]  # the same seed, the same samples and numbers
    with pytest.raises(dataclasses.FrozenInstanceError):
        api_result.n = 1


def test_a_model_without_likelihood_reports_no_likelihood(tiny_run, classifier_env, capsys, monkeypatch):
    load = RunDir.load_model_from

    def implicit(self, *args, **kwargs):  # the run's VAE, declared an implicit model (as a GAN's generator is)
        config, model, used = load(self, *args, **kwargs)
        model.has_likelihood = False
        return config, model, used

    monkeypatch.setattr(RunDir, "load_model_from", implicit)
    capsys.readouterr()
    assert ppl(["eval", str(tiny_run)]) == 0  # "no likelihood" is the answer, not an error
    out = capsys.readouterr().out
    assert f"NLL           {NO_LIKELIHOOD}" in out and "add --sample-quality" in out
    assert ppl(["eval", str(tiny_run), "--sample-quality", "--quality-samples", "30", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["elbo"], r["nll"], r["bits_per_dim"], r["has_likelihood"]) == (NO_LIKELIHOOD,) * 3 + (False,)
    assert r["sample_quality"]["n"] == 30
    assert ppl(["eval", str(tiny_run), "--sample-quality", "--quality-samples", "30"]) == 0
    assert f"ELBO          {NO_LIKELIHOOD}" in capsys.readouterr().out
