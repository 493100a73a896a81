"""The catalogue of bad input, met as a user meets it: through the ``ppl`` command line.

Every case is a command that must stop with exit status 2 before anything is trained (no
checkpoint appears, no result file is written) and whose error names the problem: the file, the
index and the value, the shape found and expected, the flag and its value, or the valid names.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_models.cli.main import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "your_own_model.py"
TINY = "--epochs 1 --hidden 8 --latent-dim 2 --no-progress"
USER_MODELS = '''
    import pyro
    import pyro.distributions as dist
    import torch
    from torch import nn

    from ppl_models import register_model


    @register_model("mnist-shaped", None, "a Bernoulli model of 28x28 images only")
    class MnistShaped(nn.Module):
        observed_sites = ("x",)
        data_shape = (28, 28)

        def __init__(self, config, event_shape):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(*event_shape))

        def model(self, x=None, batch_size=None):
            with pyro.plate("data", x.shape[0] if x is not None else batch_size):
                return pyro.sample("x", dist.Bernoulli(logits=self.logits).to_event(2), obs=x)


    @register_model("coin", None, "Bernoulli pixels shifted by a latent logit; its own likelihood")
    class Coin(nn.Module):
        observed_sites = ("x",)

        def __init__(self, config, event_shape):
            super().__init__()
            self.logits = nn.Parameter(torch.zeros(*event_shape))

        def model(self, x=None, batch_size=None):
            with pyro.plate("data", x.shape[0] if x is not None else batch_size):
                z = pyro.sample("z", dist.Normal(0.0, 1.0))
                logits = self.logits + z.reshape(*z.shape, 1, 1)
                return pyro.sample("x", dist.Bernoulli(logits=logits).to_event(2), obs=x)
'''


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> dict:
    """Data files (good and bad), corrupt dataset directories, a user model file and two tiny runs."""
    from ppl_models.data import load_dataset

    root = tmp_path_factory.mktemp("bad-input")
    d = load_dataset("digits")
    x, y = d.train.x[:200].numpy(), d.train.y[:200].numpy()
    xv, yv = d.valid.x[:40].numpy(), d.valid.y[:40].numpy()
    save = lambda name, array: np.save(root / name, array)  # noqa: E731
    save("plain.npy", x)
    save("plain_v.npy", xv)
    np.savez(root / "ok.npz", x=x, y=y)
    np.savez(root / "ok_v.npz", x=xv, y=yv)
    grey = (x * 255).round()
    save("grey255.npy", grey.astype(np.float32))
    save("grey255_u8.npy", grey.astype(np.uint8))
    above = x.copy()
    above[8, 1, 1] = 1.5  # row 8: in the carved training split (position 30) and in --limit 50 (position 2)
    save("above1.npy", above)
    neg = x.copy()
    neg[9, 0, 3] = -0.25
    save("negative.npy", neg)
    nan, inf = x.copy(), xv.copy()
    nan[3, 2, 1], inf[4, 0, 0] = np.nan, np.inf
    save("nan.npy", nan)
    save("inf.npy", inf)
    save("empty.npy", np.zeros((0, 8, 8), np.float32))
    save("two_rows.npy", x[:2])
    np.savez(root / "short_labels.npz", x=x, y=y[:199])
    big = y.copy()
    big[5] = 12
    np.savez(root / "label12.npz", x=x, y=big)
    low = y.copy()
    low[5] = -3
    np.savez(root / "label_minus3.npz", x=x, y=low)
    save("x28.npy", np.zeros((20, 28, 28), np.float32))
    np.savez(root / "x28.npz", x=np.zeros((20, 28, 28), np.float32), y=np.arange(20) % 10)
    save("vectors.npy", x.reshape(200, 64))
    save("mask_float.npy", np.ones((8, 8), np.float32))
    save("mask_7x8.npy", np.ones((7, 8), bool))
    save("mask_nothing.npy", np.zeros((8, 8), bool))
    (root / "garbage.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    (root / "models.py").write_text(textwrap.dedent(USER_MODELS))

    row = b" ".join([b"0"] * 784) + b"\n"
    amat = root / "amat" / "binarized_mnist"
    amat.mkdir(parents=True)
    (amat / "binarized_mnist_train.amat").write_bytes(row + row.replace(b"0", b"2", 1) + row)
    short = root / "short" / "binarized_mnist"
    short.mkdir(parents=True)
    (short / "binarized_mnist_train.amat").write_bytes(b" ".join([b"1"] * 783) + b"\n")
    notgz = root / "notgz" / "binarized_mnist"
    notgz.mkdir(parents=True)
    (notgz / "binarized_mnist_train.amat.gz").write_bytes(b"plain text, not gzip")
    for name, header in (("idxmagic", b"\x01\x00\x08\x03"), ("idxdims", b"\x00\x00\x08\x02")):
        mnist = root / name / "mnist"
        mnist.mkdir(parents=True)
        (mnist / "t10k-images-idx3-ubyte").write_bytes(header + (10_000).to_bytes(4, "big") * 3)
        (mnist / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + (10_000).to_bytes(4, "big"))

    flags = ["--valid-data", str(root / "ok_v.npz"), "--test-data", str(root / "ok_v.npz"), *TINY.split()]
    gauss, dyn = root / "run-gauss", root / "run-dynamic"
    assert main(["train", "vae", "--data", str(root / "ok.npz"), "--out", str(gauss), *flags]) == 0
    assert main(["train", "vae", "--data", str(root / "ok.npz"), "--out", str(dyn), "--binarize", "dynamic", *flags]) == 0
    moved = root / "run-moved"  # a run whose data files were since replaced by 28x28 images
    shutil.copytree(gauss, moved)
    config = (moved / "config.json").read_text()
    (moved / "config.json").write_text(config.replace(str(root / "ok.npz"), str(root / "x28.npz"))
                                       .replace(str(root / "ok_v.npz"), str(root / "x28.npz")))
    return {"root": root, "run": gauss, "dyn": dyn, "moved": moved,
            "grey_first": _first(grey > 1), "grey_value": float(grey[_first(grey > 1)]),
            "nonbinary": _first((x != 0) & (x != 1)), "nonbinary_value": float(x[_first((x != 0) & (x != 1))])}


def _link_out(target_name: str):
    """A setup that puts a symlink ``RUN/target_name`` -> a file outside the run, in a copy of the run."""
    def setup(c: dict, tmp: Path) -> None:
        shutil.copytree(c["run"], tmp / "run-copy")
        (tmp / "elsewhere").mkdir()
        os.symlink(tmp / "elsewhere" / "stolen.json", tmp / "run-copy" / target_name)
    return setup


def _runs_link(c: dict, tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "elsewhere").mkdir()
    os.symlink(tmp / "elsewhere", tmp / "out" / "runs")


def _train(data: str, extra: str = "", split_files: str = "ok_v.npz") -> str:
    """``ppl train vae`` on ``{root}/data`` with separate split files (so split index = file row)."""
    files = f"--valid-data {{root}}/{split_files} --test-data {{root}}/{split_files}" if split_files else ""
    return f"train vae --data {{root}}/{data} {files} --out {{out}} {TINY} {extra}"


# (id, argv template, substrings the error must contain[, setup][, xfail reason])
CASES = [
    # --- data outside the likelihood's support -------------------------------------------------
    ("grey255-gaussian", _train("grey255.npy", split_files="plain_v.npy"),
     ["grey255.npy/train", "gaussian likelihood needs finite values in [0, 1]", "element {grey_first} is {grey_value}",
      "divide them by 255"]),
    ("grey255-uint8-bernoulli", _train("grey255_u8.npy", "--likelihood bernoulli", "plain_v.npy"),
     ["grey255_u8.npy/train", "needs values in {{0, 1}}", "element {grey_first} is", "divide them by 255, then pass "
      "--binarize dynamic"]),
    ("above-one", _train("above1.npy", split_files="plain_v.npy"), ["above1.npy/train", "element (8, 1, 1) is 1.5"]),
    ("negative-gaussian-learned", _train("negative.npy", "--likelihood gaussian-learned", "plain_v.npy"),
     ["negative.npy/train", "gaussian-learned", "element (9, 0, 3) is -0.25"]),
    ("grey-under-bernoulli", _train("plain.npy", "--likelihood bernoulli", "plain_v.npy"),
     ["plain.npy/train", "element {nonbinary} is {nonbinary_value}", "pass --binarize dynamic or a gaussian likelihood"]),
    ("user-model-own-likelihood", "train {root}/models.py:coin --data {root}/plain.npy --valid-data {root}/plain_v.npy "
     "--test-data {root}/plain_v.npy --out {out} --epochs 1 --no-progress",
     ["plain.npy/train", "element {nonbinary} is {nonbinary_value}", "outside the support", "'x' of Coin"]),
    ("carved-split-names-the-file-row", _train("above1.npy", split_files=""),
     ["above1.npy/train", "element (30, 1, 1) (source row 8) is 1.5"]),
    ("eval-grey255", "eval {run} --data {root}/grey255.npy", ["grey255.npy", "divide them by 255"]),
    ("eval-limit-names-the-file-row", "eval {run} --data {root}/above1.npy --limit 50",
     ["above1.npy", "element (2, 1, 1) (source row 8) is 1.5"]),
    ("train-dynamic-grey255", _train("grey255.npy", "--binarize dynamic", "plain_v.npy"),
     ["grey255.npy/train", "--binarize dynamic", "divide them by 255"]),
    ("eval-dynamic-grey255", "eval {dyn} --data {root}/grey255.npy",
     ["grey255.npy", "--binarize dynamic draws each pixel from Bernoulli(x)", "is {grey_value}", "divide them by 255"]),
    # --- NaN / Inf, empty splits, labels ---------------------------------------------------------
    ("nan-pixel", _train("nan.npy", split_files="plain_v.npy"), ["nan.npy: x[3, 2, 1] is nan"]),
    ("inf-pixel-in-valid-file", _train("plain.npy", split_files="inf.npy"), ["inf.npy: x[4, 0, 0] is inf"]),
    ("eval-nan-pixel", "eval {run} --data {root}/nan.npy", ["nan.npy: x[3, 2, 1] is nan"]),
    ("empty-train-file", _train("empty.npy", split_files="plain_v.npy"), ["empty.npy: the file holds no data points"]),
    ("empty-test-file", "train vae --data {root}/plain.npy --test-data {root}/empty.npy --out {out} " + TINY,
     ["empty.npy: the file holds no data points"]),
    ("eval-empty-file", "eval {run} --data {root}/empty.npy", ["empty.npy: the file holds no data points"]),
    ("too-few-rows-to-carve", _train("two_rows.npy", split_files=""), ["two_rows.npy: 2 rows are too few to carve"]),
    ("label-count", _train("short_labels.npz"), ["short_labels.npz: labels y have shape (199,) but x has 200 rows"]),
    ("eval-label-count", "eval {run} --data {root}/short_labels.npz", ["short_labels.npz: labels y have shape (199,)"]),
    ("labels-in-some-files-only", _train("ok.npz", split_files="plain_v.npy"),
     ["plain_v.npy: has no labels y, but", "ok.npz has"]),
    ("label-out-of-range", "train cvae --data {root}/label12.npz --valid-data {root}/ok_v.npz --test-data "
     "{root}/ok_v.npz --out {out} " + TINY, ["label12.npz/train: label element (5,) is 12", "classes 0..9"]),
    ("negative-label", _train("label_minus3.npz"), ["label_minus3.npz: y[5] is -3"]),
    # --- wrong shapes --------------------------------------------------------------------------
    ("model-declares-28x28", "train {root}/models.py:mnist-shaped --data digits --out {out} --epochs 1",
     ["expects observations of shape (28, 28)", "have shape (8, 8)"]),
    ("split-files-of-two-shapes", _train("plain.npy", split_files="x28.npy"),
     ["x28.npy: observations have shape (28, 28), but the training file", "plain.npy has shape (8, 8)"]),
    ("eval-28x28-file", "eval {run} --data {root}/x28.npy",
     ["x28.npy: observations have shape (28, 28), but the run", "trained on shape (8, 8)"]),
    ("eval-flat-vectors", "eval {run} --data {root}/vectors.npy", ["vectors.npy: observations have shape (64,)"]),
    ("eval-run-data-replaced", "eval {moved}", ["x28.npz/test: observations have shape (28, 28)", "shape (8, 8)"]),
    ("probe-run-data-replaced", "probe {moved}", ["x28.npz/train: observations have shape (28, 28)"]),
    ("conv-vae-on-vectors", _train("vectors.npy", split_files="").replace("train vae", "train conv_vae")
     .replace("--latent-dim 2", ""), ["conv_vae needs 2-D images", "shape [64]"]),
    # --- malformed files through the real loaders ----------------------------------------------
    ("amat-bad-value", "train vae --data binarized_mnist --data-dir {root}/amat --out {out} " + TINY,
     ["binarized_mnist_train.amat: line 2: invalid value '2'"]),
    ("amat-short-line", "train vae --data binarized_mnist --data-dir {root}/short --out {out} " + TINY,
     ["binarized_mnist_train.amat: line 1: found 783 values, expected 784"]),
    ("amat-gz-not-gzip", "train vae --data binarized_mnist --data-dir {root}/notgz --out {out} " + TINY,
     ["binarized_mnist_train.amat.gz: not a gzip file"]),
    ("idx-bad-magic", "train vae --data mnist_t10k --data-dir {root}/idxmagic --out {out} " + TINY,
     ["t10k-images-idx3-ubyte: bad IDX magic: bytes 0-1 are 0100"]),
    ("idx-wrong-dimensions", "train vae --data mnist_t10k --data-dir {root}/idxdims --out {out} " + TINY,
     ["t10k-images-idx3-ubyte: bad IDX magic: 2 dimensions (byte 3), expected 3"]),
    ("npy-garbage", _train("garbage.npy"), ["garbage.npy: cannot read the file"]),
    # --- unknown names, listing the valid ones -------------------------------------------------
    ("unknown-model", "train nope --out {out}", ["unknown model 'nope'", "autoencoder, beta_vae, conv_vae, cvae"]),
    ("unknown-dataset", "train vae --data nope --out {out}", ["unknown dataset 'nope'", "binarized_mnist, digits, mnist"]),
    ("unknown-objective", "train vae --objective nope --out {out}", ["unknown objective 'nope'", "elbo, elbo-analytic, iwae"]),
    ("unknown-strategy", "train vae --strategy nope --out {out}",
     ["unknown strategy 'nope'", "amortized, adversarial, per-datapoint, semi-amortized"]),
    ("iwae-on-a-beta-vae", "train beta_vae --data digits --objective iwae --particles 3 --out {out}",
     ["iwae needs one scale for every site", "beta-VAE's KL weight", "--objective elbo"]),
    ("iwae-on-m2", "train m2 --data digits --labelled 100 --objective iwae --particles 3 --out {out}",
     ["iwae needs one scale for every site", "M2's classification term", "--objective elbo"]),
    ("autoencoder-per-datapoint", "train autoencoder --data digits --strategy per-datapoint --out {out}",
     ["--strategy per-datapoint fits a posterior per data point", "Autoencoder is not a density model"]),
    ("autoencoder-semi-amortized", "train autoencoder --data digits --strategy semi-amortized --out {out}",
     ["--strategy semi-amortized", "use --strategy amortized"]),
    ("eval-unknown-strategy", "eval {run} --strategy nope", ["unknown strategy 'nope'", "amortized, adversarial, per-datapoint"]),
    ("quality-samples-alone", "eval {run} --quality-samples 50", ["--quality-samples sets N of --sample-quality"]),
    ("complete-unknown-mask", "complete {run} --mask middle --out {out}", ["unknown mask 'middle'", "quadrants:N"]),
    ("complete-mask-not-boolean", "complete {run} --mask {root}/mask_float.npy --out {out}",
     ["mask_float.npy: a mask must be boolean (True = hidden), got torch.float32"]),
    ("complete-mask-wrong-shape", "complete {run} --mask {root}/mask_7x8.npy --out {out}",
     ["mask_7x8.npy: the mask has shape [7, 8], but the images need [8, 8]"]),
    ("complete-mask-hides-nothing", "complete {run} --mask {root}/mask_nothing.npy --method pixels --out {out}",
     ["mask_nothing.npy hides nothing: pixels completion needs at least one hidden pixel"]),
    ("complete-unknown-method", "complete {run} --mask top-half --method inpaint --out {out}",
     ["unknown completion method 'inpaint'; choose from latent, pixels, cvae, autoregressive or all"]),
    ("compare-unknown-strategy", "compare-inference --data digits --strategies elbo,nope --out {out}",
     ["strategy 'nope'", "objective (elbo, elbo-analytic, iwae) or a strategy (amortized, adversarial, per-datapoint"]),
    ("unknown-likelihood", "train vae --likelihood nope --out {out}",
     ["unknown likelihood 'nope'", "bernoulli, gaussian, gaussian-learned"]),
    ("unknown-guide-family", "train vae --guide nope --out {out}", ["unknown guide family 'nope'", "normal, lowrank, iaf"]),
    ("unknown-grad-estimator", "train vae --objective iwae --grad-estimator nope --out {out}",
     ["unknown grad_estimator 'nope'", "standard, stl, dreg"]),
    ("unknown-activation", "train vae --activation nope --out {out}", ["unknown activation 'nope'", "relu"]),
    ("unknown-binarize", "train vae --binarize nope --out {out}", ["invalid choice: 'nope'", "'none', 'dynamic'"]),
    # --- nonsensical settings, on every command ------------------------------------------------
    ("particles-0", "train vae --particles 0 --out {out}", ["particles must be at least 1, got 0"]),
    ("batch-size-0", "train vae --batch-size 0 --out {out}", ["batch_size must be at least 1, got 0"]),
    ("batch-size-above-the-data", "train vae --data digits --batch-size 100000 --out {out}",
     ["--batch-size 100000 is larger than the 1437 training points of digits; use at most 1437"]),
    ("lr-0", "train vae --lr 0 --out {out}", ["lr must be positive and finite, got 0.0"]),
    ("lr-inf", "train vae --lr inf --out {out}", ["lr must be positive and finite, got inf"]),
    ("epochs-0", "train vae --epochs 0 --out {out}", ["epochs must be at least 1, got 0"]),
    ("latent-dim-0", "train vae --latent-dim 0 --out {out}", ["latent_dim must be a whole number >= 1, got 0"]),
    ("obs-scale-negative", "train vae --obs-scale -1 --out {out}", ["obs_scale must be a finite number > 0, got -1.0"]),
    ("device-name", "train vae --device nope --out {out}", ["--device", "nope"]),
    ("eval-nll-samples-0", "eval {run} --nll-samples 0", ["--nll-samples must be a whole number >= 1, got 0"]),
    ("eval-limit-0", "eval {run} --limit 0", ["--limit must be a whole number >= 1, got 0"]),
    ("eval-batch-size-negative", "eval {run} --batch-size -5", ["--batch-size must be a whole number >= 1, got -5"]),
    ("eval-local-steps-0", "eval {run} --strategy semi-amortized --local-steps 0", ["local_steps must be at least 1, got 0"]),
    ("sample-n-0", "sample {run} -n 0 --out {out}/grid.png", ["-n must be a whole number >= 1, got 0"]),
    ("probe-limit-0", "probe {run} --limit 0", ["--limit must be a whole number >= 1, got 0"]),
    ("compare-iwae-k-above-nll-samples", "compare-inference --data digits --strategies elbo --nll-samples 10 "
     "--iwae-k 50 --out {out}", ["--iwae-k values must lie in 1..10 (--nll-samples), got 50"]),
    ("compare-epochs-0", "compare-inference --data digits --strategies elbo --epochs 0 --out {out}",
     ["--epochs must be a whole number >= 1, got 0"]),
    ("compare-lr-negative", "compare-inference --data digits --strategies elbo --lr -1 --out {out}",
     ["--lr must be a finite number > 0, got -1.0"]),
    ("compare-particles-0", "compare-inference --data digits --strategies iwae:0 --out {out}",
     ["strategy 'iwae:0': particles must be at least 1, got 0"]),
    ("compare-same-strategy-twice", "compare-inference --data digits --strategies elbo,iwae:5,elbo --out {out}",
     ["--strategies lists 'elbo' twice"]),
    ("compare-no-strategy", "compare-inference --data digits --strategies , --out {out}", ["--strategies names no strategy"]),
    # --- output paths stay inside the run directory --------------------------------------------
    ("eval-output-links-out", "eval {tmp}/run-copy --data {root}/plain.npy",
     ["eval-data-plain.json", "outside the directory"], _link_out("eval-data-plain.json")),
    ("probe-output-links-out", "probe {tmp}/run-copy", ["probe.json", "outside the directory"], _link_out("probe.json")),
    ("compare-runs-link-out", "compare-inference --data digits --strategies elbo --out {tmp}/out",
     ["runs", "outside the directory"], _runs_link),
]


def _params():
    for case in CASES:
        name, argv, expected, setup, xfail = (*case, None, None)[:5]
        marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
        yield pytest.param(argv, expected, setup, id=name, marks=marks)


def _files(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.relative_to(path).parts[0] != "cache"}


@pytest.mark.parametrize("argv, expected, setup", list(_params()))
def test_bad_input_stops_before_training_with_an_error_naming_the_problem(
        ctx, argv, expected, setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    if setup is not None:
        setup(ctx, tmp_path)
    values = {**ctx, "out": tmp_path / "out", "tmp": tmp_path}
    before = {k: _files(path) for k, path in (("tmp", tmp_path), ("run", ctx["run"]), ("dyn", ctx["dyn"]),
                                              ("moved", ctx["moved"]))}
    capsys.readouterr()
    try:
        code = main(argv.format(**values).split())
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for text in expected:
        assert text.format(**values) in err, err
    after = {k: _files(path) for k, path in (("tmp", tmp_path), ("run", ctx["run"]), ("dyn", ctx["dyn"]),
                                             ("moved", ctx["moved"]))}
    assert after == before, "a file was written: nothing may be trained or saved"


def test_the_catalogue_has_distinct_cases_for_every_kind_of_bad_input():
    assert len(CASES) >= 30 and len({case[0] for case in CASES}) == len(CASES)


def test_a_user_model_with_its_own_likelihood_is_checked_through_its_trace(ctx):
    from ppl_models.models.protocol import check_observations
    from ppl_models.registry import build_model, get_model

    grey = torch.full((3, 8, 8), 200.0)
    coin = f"{ctx['root']}/models.py:coin"
    model = build_model(coin, get_model(coin).config_cls(), (8, 8))
    check_observations(model, torch.ones(3, 8, 8), None, "ones")  # binary data: fine
    with pytest.raises(ValueError, match=r"grey: element \(0, 0, 0\) is 200.0, outside the support"):
        check_observations(model, grey, None, "grey")  # its own Bernoulli: checked through its trace
    ink = f"{EXAMPLE}:ink-vae"
    model = build_model(ink, get_model(ink).config_cls(), (8, 8))
    check_observations(model, grey, None, "grey")  # its own Normal likelihood takes any real data, 0..255 too
