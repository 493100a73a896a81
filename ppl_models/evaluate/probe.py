"""Linear probe: how linearly decodable the labels are from a model's posterior means.

For every data point the features are the means of the guide's latent sites, E_q[z | x] (for a
hierarchical guide, each site's mean given the means of the sites before it), flattened and
concatenated in the order the guide samples them. A categorical site contributes its class
probabilities (the mean of its one-hot encoding), and later sites see its most probable class. A multinomial logistic regression on the
standardized features is fitted on the training split and scored on the test split. This is the
usual measure of representation quality for autoencoders and VAEs (e.g. the linear evaluation
protocol of Kolesnikov et al. 2019); it needs nothing from the model but its guide.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyro
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import Categorical as TorchCategorical

from ppl_models.atomic import atomic_write
from ppl_models.evaluate.checks import at_least
from ppl_models.evaluate.likelihood import evenly_spaced_indices
from ppl_models.models.likelihoods import check_probabilities
from ppl_models.models.protocol import check_event_shape, label_use
from ppl_models.paths import inside

MAX_ITER = 5000  # L-BFGS iterations of the logistic regression (it converges in a few hundred on digits)


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of a linear classifier on posterior-mean features."""

    accuracy: float  # fraction of test points classified correctly
    chance: float  # accuracy of always predicting the most frequent training label
    n_train: int  # training points the classifier was fitted on
    n_test: int  # test points it was scored on
    feature_dim: int  # size of one data point's feature vector

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


class _UseMeans(Messenger):
    """Record each unobserved sample site's mean as its features and set its value to the mean (the
    most probable value of a discrete site), so later sites are computed from earlier sites' means
    rather than from draws. A point mass's mean is its value."""

    def __init__(self):
        super().__init__()
        self.features: list[torch.Tensor] = []

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or site_is_subsample(msg):
            return
        fn = msg["fn"]
        if isinstance(fn, TorchCategorical):  # E[one-hot(y)]; torch's Categorical.mean is NaN
            feature, value = fn.probs, fn.mode
        else:
            try:
                feature = fn.mean
            except NotImplementedError:  # no closed-form mean (e.g. a transformed distribution): one draw
                feature = fn.sample()
            value = fn.mode if fn.support.is_discrete else feature
        self.features.append(feature)
        msg["value"] = value


@torch.no_grad()
def posterior_mean_features(module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Features ``[N, D]``: the means of the latent sites of ``module.guide(x)``, flattened and concatenated.

    Args:
        module: a model with a Pyro ``guide(x)``.
        x: data ``[N, ...]`` on the module's device.
        batch_size: data points per pass.
    """
    if label_use(module) == "condition":
        raise ValueError(f"{type(module).__name__}'s guide is conditioned on the labels (labels = 'condition'); "
                         f"features of q(z | x, y) would contain the label the probe is to predict")
    parts = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        means = _UseMeans()
        with pyro.validation_enabled(False), means:
            module.guide(xb)
        if not means.features:
            raise ValueError(f"{type(module).__name__}'s guide has no latent sample sites to take features from")
        parts.append(torch.cat([f.reshape(xb.shape[0], -1).float() for f in means.features], dim=-1))
    return torch.cat(parts)


def linear_probe(
    module, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    batch_size: int = 1000,
) -> ProbeResult:
    """Fit a multinomial logistic regression on the posterior-mean features of ``train_x`` and
    score it on ``test_x`` (features from :func:`posterior_mean_features`, standardized with the
    training split's statistics).

    Args:
        module: a model with a Pyro ``guide(x)``.
        train_x, train_y: training data ``[N, ...]`` and labels ``[N]``.
        test_x, test_y: test data and labels.
        batch_size: data points per pass of the guide.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if y is None or y.shape != (x.shape[0],):
            got = None if y is None else tuple(y.shape)
            raise ValueError(f"linear_probe: {name} labels must have shape ({x.shape[0]},), got {got}")
    if torch.unique(train_y).numel() < 2:
        raise ValueError(f"linear_probe: the training labels hold a single class {train_y[0].item()}")
    f_train = posterior_mean_features(module, train_x, batch_size).cpu().numpy()
    f_test = posterior_mean_features(module, test_x, batch_size).cpu().numpy()
    y_train, y_test = train_y.cpu().numpy(), test_y.cpu().numpy()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))  # lbfgs: multinomial loss
    clf.fit(f_train, y_train)
    accuracy = float((clf.predict(f_test) == y_test).mean())
    majority = torch.bincount(train_y.cpu()).argmax()
    chance = float((test_y.cpu() == majority).double().mean())
    return ProbeResult(accuracy, chance, int(f_train.shape[0]), int(f_test.shape[0]), int(f_train.shape[1]))


def probe_run(run_path: str | Path, limit: int | None = None, data_dir: str | None = None, seed: int = 0) -> dict:
    """The linear probe of a trained run: fitted on its dataset's train split, scored on its test
    split; also written to ``RUN/probe.json``.

    Args:
        run_path: the run directory.
        limit: use a fixed, evenly spread subset of this many points of each split.
        data_dir: dataset directory override.
        seed: seeds the fixed binarization of grey data for a run trained with ``--binarize dynamic``.
    """
    from ppl_models.data import load_data
    from ppl_models.train import RunDir

    at_least(limit, "--limit")
    run = RunDir(run_path)
    config, module = run.load_model("cpu")
    out_path = inside(run.path, "probe.json")
    dataset = load_data(config.train.data, data_dir, config.train.valid_data, config.train.test_data)
    splits = {}
    for name in ("train", "test"):
        split, where = dataset.split(name), f"{config.train.data}/{name}"
        if split.y is None:
            raise ValueError(f"{where} has no labels; the linear probe needs a labelled dataset")
        check_event_shape(split.x, config.event_shape, where, f"the run {run.path} was trained on")
        part = split.subset(evenly_spaced_indices(len(split), limit))
        x = part.x
        if config.train.binarize == "dynamic":  # the encoder was trained on binary images
            check_probabilities(x, where, part.rows)
            x = torch.bernoulli(x, generator=torch.Generator().manual_seed(seed + 1))
        splits[name] = (x, part.y)
    result = linear_probe(module, *splits["train"], *splits["test"])
    out = {**result.to_json(), "data": config.train.data, "model": config.model, "run": str(run.path)}
    text = json.dumps(out, indent=2).encode()
    atomic_write(out_path, lambda f: f.write(text))
    return out
