"""Sample quality of any generative model, with the floor a perfect model would reach.

N samples of the model and N held-out real images (the floor) are each compared with N reference
images, in the feature space of a digit classifier trained here (:mod:`.classifier`): Fréchet
distance (:mod:`.frechet`, Heusel et al. 2017), improved precision and recall with k = 3
(:mod:`.precision_recall`, Kynkäänniemi et al. 2019) and the classifier's label entropies
(:mod:`.classifier_score`). The sets (:func:`reference_sets`): reference = N images of the valid
split taken by a fixed permutation (seed 0), floor = the next N of that permutation, or N images of
the test split (by the same kind of permutation) when the valid split has fewer than 2N; N is cut
to what the splits hold, and the result says so. Neither set is ever seen by the classifier.

    ref = prepare_reference("binarized_mnist", n=1000)      # classifier, reference features, floor row
    row = score_samples(samples, ref)                         # one model's row, at the same N
    result = sample_quality(samples, "binarized_mnist")       # both in one call
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import pyro
import torch
from tqdm.auto import tqdm

from ppl_models.data import Dataset, Split, load_data
from ppl_models.evaluate.checks import at_least
from ppl_models.evaluate.classifier import FeatureClassifier, check_event_shape, check_images, load_classifier
from ppl_models.evaluate.classifier_score import classifier_score
from ppl_models.evaluate.frechet import fit_gaussian, frechet_distance
from ppl_models.evaluate.precision_recall import DEFAULT_K, precision_recall
from ppl_models.evaluate.samples import sample_observations

PERMUTATION_SEED = 0  # the fixed permutation the reference and floor images are taken by


@dataclass(frozen=True)
class QualityRow:
    """Every sample-quality metric of one set of N images against the reference set."""

    fd: float  # Fréchet distance of Gaussians fitted to the features (lower is better)
    precision: float  # fraction of the images inside the reference manifold
    recall: float  # fraction of the reference inside the images' manifold
    label_entropy: float  # H(y) of the predicted labels over all images, nats (diversity; ln 10 = 2.303 at most)
    mean_entropy: float  # mean per-image entropy H(y | x), nats (confidence; lower is surer)
    inception_score: float  # exp(H(y) - E H(y | x)), in [1, 10]

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ReferenceSets:
    """N reference images and N held-out real images (the floor), never seen by the classifier."""

    reference: torch.Tensor  # [N, *event_shape]
    floor: torch.Tensor  # [N, *event_shape]
    n: int  # N
    reference_from: str  # where the reference came from, e.g. "binarized_mnist/valid[perm[:1000]]"
    floor_from: str  # where the floor came from
    note: str | None  # why N is smaller than asked, or why the floor comes from the test split


@dataclass(frozen=True)
class QualityReference:
    """What every model's row is compared with: the classifier, the reference features and the floor row."""

    sets: ReferenceSets  # the images
    classifier: FeatureClassifier  # the feature extractor
    features: torch.Tensor  # [N, D] features of the reference set
    floor: QualityRow  # the floor set's row: what a perfect model reaches at this N
    k: int  # neighbours of precision and recall
    data: str  # the dataset name (or file) the sets come from

    @property
    def n(self) -> int:
        """N, the size of every set compared."""
        return self.sets.n


@dataclass(frozen=True)
class SampleQuality:
    """A model's sample-quality row beside the floor, at equal N."""

    model: QualityRow  # the model's N samples against the reference
    floor: QualityRow  # N held-out real images against the reference
    n: int  # N
    k: int  # neighbours of precision and recall
    classifier: dict  # the feature classifier: source, event_shape, accuracy, accuracy_binarized, sha256, file
    data: str  # the dataset the reference sets come from
    reference_from: str  # which images the reference set is
    floor_from: str  # which images the floor set is
    note: str | None  # why N is smaller than asked, or why the floor comes from the test split
    samples: str = "draws"  # "draws" (x ~ p(x)) or "means" (decoder means E[x | z])
    seconds: float = 0.0  # wall time, sampling included

    def to_json(self) -> dict:
        """A JSON-ready dict (``model`` and ``floor`` as dicts)."""
        return dataclasses.asdict(self)


def _permuted(split: Split, n: int, start: int = 0) -> torch.Tensor:
    perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(PERMUTATION_SEED))
    return split.x[perm[start : start + n]]


def reference_sets(dataset: Dataset, n: int = 1000, binarize: bool = False, seed: int = 0) -> ReferenceSets:
    """The reference and floor images of ``dataset`` at N = ``n`` (or fewer, where the splits are smaller).

    Reference: ``n`` images of the valid split by a fixed permutation (seed 0); floor: the next ``n``
    of that permutation, or, when the valid split has fewer than 2n images, the first ``n`` of the
    test split by a permutation of the same seed. N is cut to the smaller split if needed.

    Args:
        dataset: the data the model was trained on.
        n: N asked for.
        binarize: Bernoulli-binarize both sets (seeded by ``seed``), for a run trained with
            ``--binarize dynamic``, whose model draws binary images.
        seed: seeds the binarization.
    """
    at_least(n, "--quality-samples", 2)
    valid, test, name = dataset.valid, dataset.test, dataset.name
    if len(valid) >= 2 * n:
        ref, floor = _permuted(valid, n), _permuted(valid, n, n)
        note, floor_from = None, f"{name}/valid[perm[{n}:{2 * n}]]"
    else:
        asked, n = n, min(n, len(valid), len(test))
        ref, floor = _permuted(valid, n), _permuted(test, n)
        note = (f"{name}/valid has {len(valid)} images, fewer than 2 x {asked}: the floor comes from {name}/test"
                + (f"; N cut from {asked} to {n} (valid {len(valid)}, test {len(test)} images)" if n < asked else ""))
        floor_from = f"{name}/test[perm[:{n}]]"
    if binarize:
        gen = torch.Generator().manual_seed(seed + 1)
        ref, floor = (torch.bernoulli(s.clamp(0, 1), generator=gen) for s in (ref, floor))
    return ReferenceSets(ref, floor, n, f"{name}/valid[perm[:{n}]]", floor_from, note)


def score_features(features: torch.Tensor, probs: torch.Tensor, reference: torch.Tensor, k: int) -> QualityRow:
    """The :class:`QualityRow` of a set's classifier ``features`` ``[N, D]`` and ``probs`` ``[N, 10]`` against
    ``reference`` features ``[N, D]``."""
    pr = precision_recall(reference, features, k)
    cs = classifier_score(probs)
    return QualityRow(frechet_distance(fit_gaussian(features), fit_gaussian(reference)), pr.precision, pr.recall,
                      cs.label_entropy, cs.mean_entropy, cs.inception_score)


def prepare_reference(data: str | Dataset, n: int = 1000, *, data_dir: str | os.PathLike | None = None,
                      valid_data: str | None = None, test_data: str | None = None, binarize: bool = False,
                      seed: int = 0, k: int = DEFAULT_K, cache_dir: str | os.PathLike | None = None,
                      progress: bool = True) -> QualityReference:
    """Load the classifier for ``data``'s image shape, take the :func:`reference_sets` and score the floor.

    Compute it once and pass it to :func:`score_samples` for each model compared on ``data``.

    Args:
        data: a dataset name, a data file, or a loaded :class:`~ppl_models.data.Dataset`.
        n: N asked for (see :func:`reference_sets`).
        data_dir: dataset directory override.
        valid_data, test_data: the separate split files of a user dataset.
        binarize: binarize the real sets (runs trained with ``--binarize dynamic``).
        seed: seeds the binarization.
        k: neighbours of precision and recall.
        cache_dir: classifier cache override.
        progress: progress bar while the classifier trains (first use only).

    Raises:
        ValueError: for images of a shape there is no classifier for (naming it).
    """
    dataset = data if isinstance(data, Dataset) else load_data(data, data_dir, valid_data, test_data)
    check_event_shape(dataset.event_shape)
    classifier = load_classifier(dataset.event_shape, data_dir, cache_dir, progress)
    sets = reference_sets(dataset, n, binarize, seed)
    if sets.n <= k:
        raise ValueError(f"N = {sets.n} images are too few for precision and recall with k = {k}")
    features, _ = classifier.features_and_probs(sets.reference)
    floor = score_features(*classifier.features_and_probs(sets.floor), features, k)
    return QualityReference(sets, classifier, features, floor, k, dataset.name)


def score_samples(samples: torch.Tensor, reference: QualityReference) -> QualityRow:
    """The :class:`QualityRow` of ``samples`` ``[N, *event_shape]`` against ``reference`` (same N).

    Raises:
        ValueError: for another shape or another N than the reference's (FD is biased at small N,
            so only equal N compare).
    """
    check_images(samples, reference.classifier.event_shape)
    if samples.shape[0] != reference.n:
        raise ValueError(f"{samples.shape[0]} samples, but the reference sets have N = {reference.n}: compare "
                         "at equal N (the Fréchet distance is biased at small N)")
    bad = ~torch.isfinite(samples)
    if bool(bad.any()):
        raise ValueError(f"sample {int(bad.reshape(len(samples), -1).any(1).nonzero()[0])} is not finite")
    return score_features(*reference.classifier.features_and_probs(samples), reference.features, reference.k)


def result_of(row: QualityRow, reference: QualityReference, samples: str = "draws",
              seconds: float = 0.0) -> SampleQuality:
    """The :class:`SampleQuality` of a model's ``row`` beside ``reference``'s floor."""
    sets = reference.sets
    return SampleQuality(row, reference.floor, sets.n, reference.k, reference.classifier.info(), reference.data,
                         sets.reference_from, sets.floor_from, sets.note, samples, round(seconds, 2))


def sample_quality(samples: torch.Tensor, data: str | Dataset, n: int | None = None, *,
                   reference: QualityReference | None = None, **prepare) -> SampleQuality:
    """Sample quality of ``samples`` ``[M, *event_shape]`` beside the floor, at N = ``n`` (default M).

    Args:
        samples: model samples; the first N are used (N may be cut to what ``data``'s splits hold).
        data: a dataset name, a data file or a :class:`~ppl_models.data.Dataset`.
        n: N asked for; at most M.
        reference: a :func:`prepare_reference` result to reuse (then ``data``, ``n`` and ``prepare``
            are not read).
        **prepare: other arguments of :func:`prepare_reference` (``data_dir``, ``binarize``, ``k`` ...).
    """
    n = samples.shape[0] if n is None else n
    if n > samples.shape[0]:
        raise ValueError(f"N = {n} asked for, but only {samples.shape[0]} samples given")
    reference = reference or prepare_reference(data, n, **prepare)
    return result_of(score_samples(samples[: reference.n], reference), reference)


def draw_samples(model, n: int, batch_size: int = 100, seed: int = 0, mean: bool = False, data: Split | None = None,
                 progress: bool = True) -> torch.Tensor:
    """``n`` samples of ``model`` (:func:`~ppl_models.evaluate.samples.sample_observations`) in batches, on the CPU.

    Args:
        model: the model module.
        n: how many.
        batch_size: samples per pass (autoregressive models sample slowly: the bar shows progress).
        seed: seeds the draws (``pyro.set_rng_seed``).
        mean: decoder means instead of draws.
        data: the split :func:`~ppl_models.evaluate.samples.sample_inputs` reads, for models that need inputs.
        progress: show a progress bar.
    """
    at_least(n, "--quality-samples")
    at_least(batch_size, "--batch-size")
    pyro.set_rng_seed(seed)
    out = []
    with tqdm(total=n, desc="samples", unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            part = data if data is None else data.subset(torch.arange(start, start + size) % len(data))
            out.append(sample_observations(model, size, mean=mean, data=part).detach().to("cpu", torch.float32))
            bar.update(size)
    return torch.cat(out)


def run_sample_quality(model, config, n: int = 1000, *, data_dir: str | os.PathLike | None = None, seed: int = 0,
                       batch_size: int = 100, mean: bool = False, progress: bool = True,
                       cache_dir: str | os.PathLike | None = None) -> SampleQuality:
    """Sample quality of a trained run's ``model`` (``config``: its :class:`~ppl_models.train.run.RunConfig`) on
    its own dataset: the reference sets first (N may be cut), then N samples, scored beside the floor."""
    t0 = time.perf_counter()
    t = config.train
    dataset = load_data(t.data, data_dir, t.valid_data, t.test_data)
    reference = prepare_reference(dataset, n, data_dir=data_dir, binarize=t.binarize == "dynamic", seed=seed,
                                  cache_dir=cache_dir, progress=progress)
    samples = draw_samples(model, reference.n, batch_size, seed, mean, dataset.test, progress)
    return result_of(score_samples(samples, reference), reference, "means" if mean else "draws",
                     time.perf_counter() - t0)


def quality_lines(result: dict) -> list[str]:
    """Printable lines of a :meth:`SampleQuality.to_json` dict: a header and a table of the model and floor rows."""
    c = result["classifier"]
    lines = [f"  sample quality (N={result['n']}, k={result['k']}; classifier trained on {c['source']}: test "
             f"accuracy {c['accuracy']:.4f}, sha256 {c['sha256'][:12]})",
             f"    reference {result['reference_from']}; floor {result['floor_from']}; model: {result['samples']}",
             f"    {'':22}{'FD':>9} {'precision':>9} {'recall':>7} {'H(y)':>6} {'E H(y|x)':>8} {'IS':>6}"]
    for label, row in (("model", result["model"]), ("floor (held-out real)", result["floor"])):
        cells = [row[k] for k in ("fd", "precision", "recall", "label_entropy", "mean_entropy", "inception_score")]
        lines.append(f"    {label:22}{cells[0]:9.3f} {cells[1]:9.3f} {cells[2]:7.3f} {cells[3]:6.3f} "
                     f"{cells[4]:8.3f} {cells[5]:6.2f}")
    if result.get("note"):
        lines.append(f"    note: {result['note']}")
    return lines
