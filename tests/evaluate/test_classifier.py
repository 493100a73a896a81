"""The feature classifier: held-out accuracy above stated thresholds, seeded training, and a cache
that is reused, verified by its sha256 and rebuilt when corrupt, stale or missing."""

import json
import shutil

import pytest
import torch

import ppl_models.evaluate.classifier as clf
from ppl_models.data import load_dataset
from ppl_models.evaluate.classifier import DigitClassifier, load_classifier, train_classifier


def test_the_digits_classifier_is_accurate_on_held_out_digits(classifier_cache):
    c = load_classifier((8, 8), cache_dir=classifier_cache)
    assert c.source == "digits" and c.event_shape == (8, 8)
    assert c.accuracy > 0.95  # measured 0.978 on the 180 test digits
    assert c.accuracy_binarized > 0.85  # binarized 8x8 digits (values/16 drawn as Bernoulli) are noisy: 0.906
    feats, probs = c.features_and_probs(load_dataset("digits").test.x)
    assert feats.shape == (180, 64) and torch.allclose(probs.sum(-1), torch.ones(180), atol=1e-5)


def test_the_mnist_classifier_is_accurate_on_held_out_t10k(shared_data_dir, tmp_path):
    # 28x28: full MNIST when the data dir has its training images, else mnist_t10k (8000 train, 1000 test)
    c = load_classifier((28, 28), data_dir=shared_data_dir, cache_dir=tmp_path, progress=False)
    assert c.source in ("mnist", "mnist_t10k")
    assert c.accuracy > 0.96 and c.accuracy_binarized > 0.95  # measured 0.976 / 0.975 on mnist_t10k


def test_training_is_seeded(digits):
    recipe = clf.Recipe(channels=(4, 8), kernel=3, hidden=16, epochs=1, batch_size=100, lr=3e-3,
                        binarized_fraction=0.5, seed=0)
    (a, sa), (b, sb) = train_classifier(digits, recipe, False), train_classifier(digits, recipe, False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert sa["accuracy"] == sb["accuracy"]


def test_a_second_load_reuses_the_cached_file(classifier_cache, monkeypatch, capsys):
    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the cache is valid")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    first = load_classifier((8, 8), cache_dir=classifier_cache)
    second = load_classifier((8, 8), cache_dir=classifier_cache)
    assert first.sha256 == second.sha256 and "training" not in capsys.readouterr().err
    meta = json.loads((classifier_cache / "digits-8x8.json").read_text())
    assert meta["sha256"] == first.sha256 and meta["source"] == "digits" and meta["recipe"]["epochs"] == 20


def _fake_training(calls):
    def train(dataset, recipe, progress=True):
        calls.append(recipe)
        torch.manual_seed(1)
        return DigitClassifier(recipe, dataset.event_shape).eval(), {"accuracy": 0.5, "accuracy_binarized": 0.4,
                                                                      "train_seconds": 0.0}
    return train


@pytest.mark.parametrize("damage", ["corrupt", "missing", "stale"])
def test_a_bad_cache_is_rebuilt_with_a_message(classifier_cache, tmp_path, monkeypatch, capsys, damage):
    for f in classifier_cache.iterdir():
        shutil.copy(f, tmp_path / f.name)
    weights = tmp_path / "digits-8x8.pt"
    if damage == "corrupt":
        raw = bytearray(weights.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        weights.write_bytes(bytes(raw))
    elif damage == "missing":
        weights.unlink()
    else:
        monkeypatch.setattr(clf, "VERSION", clf.VERSION + 1)
    calls = []
    monkeypatch.setattr(clf, "train_classifier", _fake_training(calls))
    rebuilt = load_classifier((8, 8), cache_dir=tmp_path)
    message = capsys.readouterr().err
    reason = {"corrupt": "fail their sha256 checksum", "missing": "not cached yet", "stale": "another recipe"}[damage]
    assert len(calls) == 1 and reason in message and len(message.strip().splitlines()) == 1
    assert rebuilt.accuracy == 0.5  # the rebuilt one, now cached with a valid checksum:
    assert load_classifier((8, 8), cache_dir=tmp_path).sha256 == rebuilt.sha256 and len(calls) == 1


def test_the_cache_directory_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(clf.ENV_CLASSIFIER_DIR, str(tmp_path / "c"))
    assert clf.classifier_dir() == tmp_path / "c"
    monkeypatch.delenv(clf.ENV_CLASSIFIER_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert clf.classifier_dir() == tmp_path / "ppl-models" / "classifiers"


def test_other_shapes_are_refused_naming_the_shape(classifier_cache):
    with pytest.raises(ValueError, match=r"images of shape \(16, 16\); there are classifiers only for \(28, 28\)"):
        load_classifier((16, 16), cache_dir=classifier_cache)
    c = load_classifier((8, 8), cache_dir=classifier_cache)
    with pytest.raises(ValueError, match=r"shape \[N, 8, 8\], got \(5, 64\)"):
        c.features_and_probs(torch.zeros(5, 64))
