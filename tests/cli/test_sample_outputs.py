"""`ppl sample --out`: the samples themselves (.npy/.pt) for any model, and a picture (.png) that
suits the data: an image grid for images, a pairs plot for vectors."""

import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from ppl_models.cli.main import main

PPCA = textwrap.dedent('''
    """Probabilistic PCA: x = W z + b + noise, z ~ N(0, I_2)."""
    from dataclasses import dataclass

    import pyro
    import pyro.distributions as dist
    import torch
    from torch import nn

    from ppl_models.registry import register_model


    @dataclass(frozen=True)
    class PPCAConfig:
        latent_dim: int = 2


    @register_model("ppca", PPCAConfig, "probabilistic PCA")
    class PPCA(nn.Module):
        observed_sites = ("x",)

        def __init__(self, config: PPCAConfig, event_shape: torch.Size):
            super().__init__()
            self.config, self.event_shape = config, event_shape
            self.loading = nn.Linear(config.latent_dim, event_shape.numel())
            self.register_buffer("zero", torch.zeros(config.latent_dim))

        def model(self, x=None, batch_size=None):
            with pyro.plate("data", x.shape[0] if x is not None else batch_size):
                z = pyro.sample("z", dist.Normal(self.zero, 1.0).to_event(1))
                return pyro.sample("x", dist.Normal(self.loading(z), 0.5).to_event(1), obs=x)
''')
D = 6


@pytest.fixture(scope="module")
def ppca_run(tmp_path_factory):
    """A PPCA user model trained for two epochs on 6-d data with mean -3 (far outside [0, 1])."""
    root = tmp_path_factory.mktemp("ppca")
    (root / "ppca.py").write_text(PPCA)
    g = np.random.default_rng(0)
    x = g.normal(size=(300, 2)) @ g.normal(size=(2, D)) - 3.0 + 0.3 * g.normal(size=(300, D))
    np.save(root / "train.npy", x.astype(np.float32))
    out = root / "run"
    assert main(["train", f"{root / 'ppca.py'}:ppca", "--data", str(root / "train.npy"), "--epochs", "2",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def test_npy_holds_unclipped_vector_samples(ppca_run, tmp_path):
    assert main(["sample", str(ppca_run), "-n", "50", "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy", allow_pickle=False)
    assert s.shape == (50, D) and s.dtype == np.float32
    assert (s < 0).any() and not ((s >= 0) & (s <= 1)).all()


def test_pt_holds_a_plain_tensor(ppca_run, tmp_path):
    assert main(["sample", str(ppca_run), "-n", "50", "--mean", "--out", str(tmp_path / "s.pt")]) == 0
    s = torch.load(tmp_path / "s.pt", weights_only=True)
    assert isinstance(s, torch.Tensor) and s.shape == (50, D) and s.dtype == torch.float32


def test_png_of_vector_samples_is_a_pairs_plot(ppca_run, tmp_path):
    assert main(["sample", str(ppca_run), "-n", "50", "--out", str(tmp_path / "s.png")]) == 0
    width, height = Image.open(tmp_path / "s.png").size
    assert height > 100 and width > 100  # not a one-pixel strip
    for name in ("mean.png", "draws.png"):  # the pictures training saved are pairs plots too
        assert Image.open(ppca_run / "samples" / name).size[1] > 100


def test_an_unknown_suffix_is_refused_before_sampling(ppca_run, tmp_path, capsys):
    assert main(["sample", str(ppca_run), "-n", "5", "--out", str(tmp_path / "s.txt")]) == 2
    err = capsys.readouterr().err
    assert "'.txt'" in err and ".png" in err and ".npy" in err and ".pt" in err
    assert not (tmp_path / "s.txt").exists()


def test_an_image_model_still_writes_a_grid_and_its_samples(tmp_path):
    run = tmp_path / "vae"
    assert main(["train", "vae", "--data", "digits", "--epochs", "1", "--latent-dim", "2", "--hidden", "16",
                 "--out", str(run), "--no-progress"]) == 0
    assert main(["sample", str(run), "-n", "9", "--out", str(tmp_path / "grid.png")]) == 0
    grid = Image.open(tmp_path / "grid.png")
    assert grid.mode == "L" and grid.size == (3 * 33 + 1, 3 * 33 + 1)  # 3x3 cells of 8x8 digits at 4x, 1 px padding
    assert main(["sample", str(run), "-n", "9", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy", allow_pickle=False).shape == (9, 8, 8)
