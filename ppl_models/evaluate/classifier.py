"""The feature extractor of the sample-quality metrics: a small LeNet-like digit classifier trained here.

No pretrained weights are downloaded (and no Inception network is used): for 28x28 images the
classifier is trained on labelled MNIST (the full training set when the data directory has it,
else a fixed 8000-image split of the 10,000 labelled t10k images, dataset ``mnist_t10k``), for 8x8
images on the ``digits`` train split. Each batch mixes grey images with Bernoulli-binarized copies,
so the features mean something for binary samples, grey decoder means and GAN outputs alike.
Features are the penultimate layer (LeCun et al. 1998's LeNet in miniature; the role Inception's
pool layer plays in Heusel et al. 2017's FID).

The trained weights are cached in ``$PPL_CLASSIFIER_DIR`` or ``user_cache_dir()/classifiers`` (never
in the data directory, which may be read-only) beside a JSON sidecar holding their sha256, the
recipe, the data source and the held-out accuracy. A missing file, a failed checksum or a changed
recipe means training again (seeded: the same weights on the same machine and thread count).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ppl_models.atomic import atomic_write
from ppl_models.data import DataError, Dataset, load_dataset
from ppl_models.data.datadir import user_cache_dir

ENV_CLASSIFIER_DIR = "PPL_CLASSIFIER_DIR"  # overrides where trained classifiers are cached
CLASSES = 10  # digit labels 0..9
VERSION = 1  # bump when the network or the training code changes: cached weights are retrained


@dataclass(frozen=True)
class Recipe:
    """How a feature classifier is built and trained (stored with the weights; a change retrains)."""

    channels: tuple[int, int]  # channels of the two convolutions
    kernel: int  # their kernel size (odd: 'same' padding)
    hidden: int  # width of the penultimate (feature) layer
    epochs: int  # passes over the training split
    batch_size: int  # images per step
    lr: float  # Adam step size
    binarized_fraction: float  # share of each batch replaced by Bernoulli draws of its grey images
    seed: int  # seeds the initialisation, the batch order and the binarization


RECIPES: dict[str, Recipe] = {  # by the labelled dataset trained on (~400-500 steps each: seconds on a CPU)
    "mnist": Recipe(channels=(8, 16), kernel=5, hidden=64, epochs=1, batch_size=100, lr=2e-3,
                    binarized_fraction=0.5, seed=0),
    "mnist_t10k": Recipe(channels=(8, 16), kernel=5, hidden=64, epochs=5, batch_size=100, lr=2e-3,
                         binarized_fraction=0.5, seed=0),
    "digits": Recipe(channels=(16, 32), kernel=3, hidden=64, epochs=20, batch_size=50, lr=3e-3,
                     binarized_fraction=0.5, seed=0),
}
SOURCES: dict[tuple[int, ...], tuple[str, ...]] = {  # by event shape: labelled datasets, the first that loads wins
    (28, 28): ("mnist", "mnist_t10k"),
    (8, 8): ("digits",),
}


class DigitClassifier(nn.Module):
    """conv-relu-pool, conv-relu-pool, linear-relu (the features), linear (10 logits).

    Args:
        recipe: the sizes.
        event_shape: ``(H, W)`` with H and W divisible by 4.
    """

    def __init__(self, recipe: Recipe, event_shape: tuple[int, int]):
        super().__init__()
        c1, c2 = recipe.channels
        pad = recipe.kernel // 2
        self.event_shape = tuple(event_shape)
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, recipe.kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, recipe.kernel, padding=pad), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        h, w = event_shape
        self.hidden = nn.Sequential(nn.Linear(c2 * (h // 4) * (w // 4), recipe.hidden), nn.ReLU())
        self.out = nn.Linear(recipe.hidden, CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features ``[N, hidden]`` of images ``x`` ``[N, H, W]`` (values ~[0, 1])."""
        return self.hidden(self.conv((x - 0.5).unsqueeze(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, 10]``."""
        return self.out(self.features(x))


@dataclass(frozen=True)
class FeatureClassifier:
    """A trained digit classifier with what is known about it."""

    network: DigitClassifier  # the network, in eval mode on the CPU
    event_shape: tuple[int, ...]  # the image shape it reads
    source: str  # the labelled dataset it was trained on (e.g. mnist_t10k)
    accuracy: float  # accuracy on that dataset's held-out test split (grey images)
    accuracy_binarized: float  # the same on Bernoulli-binarized test images
    sha256: str  # checksum of the cached weights file
    path: Path  # the cached weights file
    train_seconds: float  # how long training took when it was trained

    @torch.no_grad()
    def features_and_probs(self, x: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``[N, hidden]`` and class probabilities ``[N, 10]`` of images ``x`` ``[N, H, W]``."""
        check_images(x, self.event_shape)
        feats, probs = [], []
        for xb in x.detach().to("cpu", torch.float32).split(batch_size):
            f = self.network.features(xb)
            feats.append(f)
            probs.append(torch.softmax(self.network.out(f), -1))
        return torch.cat(feats), torch.cat(probs)

    def info(self) -> dict:
        """What a result should record about the classifier."""
        return {"source": self.source, "event_shape": list(self.event_shape), "accuracy": self.accuracy,
                "accuracy_binarized": self.accuracy_binarized, "sha256": self.sha256, "file": str(self.path)}


def check_images(x: torch.Tensor, event_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming the shapes unless ``x`` is ``[N, *event_shape]`` with N >= 1."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or tuple(x.shape[1:]) != tuple(event_shape) or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"the feature classifier reads images of shape [N, {', '.join(map(str, event_shape))}], "
                         f"got {shape}")


def check_event_shape(event_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` naming the shape unless there is a classifier for images of ``event_shape``."""
    if tuple(event_shape) not in SOURCES:
        known = " and ".join(str(s) for s in SOURCES)
        raise ValueError(f"sample-quality metrics need a digit classifier for images of shape {tuple(event_shape)}; "
                         f"there are classifiers only for {known} images")


def classifier_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where classifiers are cached: ``cache_dir``, else ``$PPL_CLASSIFIER_DIR``, else
    ``user_cache_dir()/classifiers``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_CLASSIFIER_DIR)
    return Path(env).expanduser() if env else user_cache_dir() / "classifiers"


def training_data(event_shape: tuple[int, ...], data_dir: str | os.PathLike | None = None) -> Dataset:
    """The labelled dataset a classifier for ``event_shape`` trains on: the first of :data:`SOURCES` that
    loads (full MNIST only when its files are already there: nothing is downloaded for it)."""
    check_event_shape(event_shape)
    names = SOURCES[tuple(event_shape)]
    for name in names[:-1]:
        try:
            return load_dataset(name, data_dir, download=False)
        except DataError:
            continue
    return load_dataset(names[-1], data_dir)


def _binarize_some(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """``x`` with a ``fraction`` of its rows replaced by Bernoulli draws of themselves."""
    pick = torch.rand(x.shape[0], generator=generator) < fraction
    draws = torch.bernoulli(x.clamp(0, 1), generator=generator)
    return torch.where(pick.view(-1, *([1] * (x.dim() - 1))), draws, x)


@torch.no_grad()
def _accuracy(net: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.cat([net(xb).argmax(-1) for xb in x.split(500)]).eq(y).double().mean())


def train_classifier(dataset: Dataset, recipe: Recipe, progress: bool = True) -> tuple[DigitClassifier, dict]:
    """Train a :class:`DigitClassifier` on ``dataset``'s train split by Adam on the cross-entropy, seeded.

    Training runs on one CPU thread (restored afterwards): the network is tiny, so more threads gain
    little and contend on a busy machine, and one thread makes the weights the same whatever the core count.

    Returns:
        the network (eval mode) and ``{"accuracy", "accuracy_binarized", "train_seconds"}``, the
        accuracies on the test split (grey, and binarized with a fixed seed).
    """
    if dataset.train.y is None or dataset.test.y is None:
        raise DataError(f"dataset {dataset.name!r} has no labels; the feature classifier needs labelled digits")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(dataset, recipe, progress)
    finally:
        torch.set_num_threads(threads)


def _train(dataset: Dataset, recipe: Recipe, progress: bool) -> tuple[DigitClassifier, dict]:
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(recipe.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = DigitClassifier(recipe, dataset.event_shape)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    x, y = dataset.train.x, dataset.train.y
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    net.train()
    with tqdm(total=steps, desc=f"digit classifier ({dataset.name})", disable=not progress, leave=False) as bar:
        for _ in range(recipe.epochs):
            for idx in torch.randperm(len(x), generator=gen).split(recipe.batch_size):
                xb = _binarize_some(x[idx], recipe.binarized_fraction, gen)
                loss = nn.functional.cross_entropy(net(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update()
    net.eval()
    xt, yt = dataset.test.x, dataset.test.y
    binary = torch.bernoulli(xt.clamp(0, 1), generator=torch.Generator().manual_seed(recipe.seed + 1))
    return net, {"accuracy": _accuracy(net, xt, yt), "accuracy_binarized": _accuracy(net, binary, yt),
                 "train_seconds": round(time.perf_counter() - t0, 2)}


def _sidecar(weights: Path) -> Path:
    return weights.with_suffix(".json")


def _stale_reason(weights: Path, meta_expected: dict) -> tuple[str | None, bytes | None, dict | None]:
    """Why the cached classifier at ``weights`` cannot be used (None if it can), its bytes and its sidecar."""
    if not weights.exists() or not _sidecar(weights).exists():
        return "not cached yet", None, None
    try:
        raw = weights.read_bytes()
        meta = json.loads(_sidecar(weights).read_text())
    except (OSError, ValueError) as e:
        return f"unreadable ({e})", None, None
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in meta_expected.items()):
        return "trained by another recipe or version", None, None
    if hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
        return "its weights fail their sha256 checksum", None, None
    return None, raw, meta


def load_classifier(event_shape: tuple[int, ...], data_dir: str | os.PathLike | None = None,
                    cache_dir: str | os.PathLike | None = None, progress: bool = True) -> FeatureClassifier:
    """The feature classifier for images of ``event_shape`` ((28, 28) or (8, 8)), from the cache or trained now.

    The cached weights are used when their sha256 matches the sidecar and the sidecar's recipe,
    version and data source match; otherwise (missing, corrupt, stale) the classifier is trained
    again, with a one-line message on stderr, and cached.

    Args:
        event_shape: the image shape.
        data_dir: dataset directory (for the labelled training data).
        cache_dir: cache directory override (default :func:`classifier_dir`).
        progress: show a progress bar while training.

    Raises:
        ValueError: for another event shape (naming it), or missing training data.
    """
    dataset = training_data(event_shape, data_dir)
    recipe = RECIPES[dataset.name]
    name = f"{dataset.name}-{'x'.join(map(str, event_shape))}"
    weights = classifier_dir(cache_dir) / f"{name}.pt"
    expected = {"version": VERSION, "recipe": json.loads(json.dumps(dataclasses.asdict(recipe))),
                "source": dataset.name, "event_shape": list(event_shape)}
    reason, raw, meta = _stale_reason(weights, expected)
    if reason is None:
        net = DigitClassifier(recipe, tuple(event_shape))
        net.load_state_dict(torch.load(io.BytesIO(raw), weights_only=True))
        net.eval()
    else:
        print(f"feature classifier {weights}: {reason}; training it on {dataset.name} "
              f"({len(dataset.train)} images, {recipe.epochs} epochs)", file=sys.stderr)
        net, scores = train_classifier(dataset, recipe, progress)
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        raw = buffer.getvalue()
        meta = {**expected, **scores, "sha256": hashlib.sha256(raw).hexdigest(), "n_train": len(dataset.train),
                "n_test": len(dataset.test), "torch": torch.__version__}
        weights.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(weights, lambda f: f.write(raw))
        text = json.dumps(meta, indent=2).encode()
        atomic_write(_sidecar(weights), lambda f: f.write(text))
    for p in net.parameters():
        p.requires_grad_(False)
    return FeatureClassifier(net, tuple(event_shape), dataset.name, meta["accuracy"], meta["accuracy_binarized"],
                             meta["sha256"], weights, meta["train_seconds"])
