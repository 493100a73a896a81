"""The model registry: decorators, user model files (path.py:NAME) and entry points."""

import sys
import textwrap

import pytest
import torch

from ppl_models import registry
from ppl_models.registry import available_models, build_model, canonical_reference, get_model, model_config

MODEL_FILE = '''
from dataclasses import dataclass
import pyro, pyro.distributions as dist, torch
from torch import nn
from ppl_models import register_model

@dataclass(frozen=True)
class Cfg:
    latent_dim: int = 2  # size of z

@register_model("{name}", Cfg)
class Linear(nn.Module):
    """A linear-Gaussian factor model."""
    observed_sites = ("x",)
    def __init__(self, config, event_shape):
        super().__init__()
        self.w = nn.Linear(config.latent_dim, event_shape.numel())
        self.event_shape = event_shape
        self.register_buffer("zero", torch.zeros(config.latent_dim))
    def model(self, x=None, batch_size=None):
        with pyro.plate("data", x.shape[0] if x is not None else batch_size):
            z = pyro.sample("z", dist.Normal(self.zero, 1.0).to_event(1))
            loc = self.w(z).reshape(*z.shape[:-1], *self.event_shape)
            return pyro.sample("x", dist.Normal(loc, 0.5).to_event(len(self.event_shape)), obs=x)
'''


def write_model(tmp_path, name, body=MODEL_FILE):
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(body.format(name=name))
    return path


def test_builtin_models_are_listed_with_descriptions():
    models = available_models()
    assert "vae" in models and all(isinstance(d, str) and d for d in models.values())


def test_user_file_registers_and_builds_with_an_automatic_guide(tmp_path):
    path = write_model(tmp_path, "user-linear")
    ref = f"{path}:user-linear"
    entry = get_model(ref)
    assert entry.description == "A linear-Gaussian factor model." and entry.source == str(path.resolve())
    module = build_model(ref, model_config(ref, latent_dim=3), (4,))
    x = torch.randn(5, 4)
    loss = pyro_loss(module, x)
    assert torch.isfinite(loss) and loss.requires_grad
    # the file ran once: a second lookup does not execute it again
    assert get_model(ref) is entry


def pyro_loss(module, x):
    import pyro

    return pyro.infer.Trace_ELBO().differentiable_loss(module.model, module.guide, x)


def test_canonical_reference_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert canonical_reference("vae") == "vae"
    assert canonical_reference("m.py:NAME") == f"{tmp_path.resolve() / 'm.py'}:NAME"


def test_user_file_errors_name_the_problem(tmp_path):
    path = write_model(tmp_path, "user-named")
    with pytest.raises(ValueError, match=r"registers no model 'other'.*\['user-named'\]"):
        get_model(f"{path}:other")
    with pytest.raises(FileNotFoundError, match="missing.py"):
        get_model(f"{tmp_path / 'missing.py'}:x")
    with pytest.raises(ValueError, match="unknown model 'nope'.*vae"):
        get_model("nope")


def test_a_failing_model_file_registers_nothing(tmp_path):
    body = MODEL_FILE + "\nraise RuntimeError('broken on purpose')\n"
    path = write_model(tmp_path, "user-broken", body)
    with pytest.raises(RuntimeError, match="broken on purpose"):
        get_model(f"{path}:user-broken")
    assert "user-broken" not in available_models()


def test_model_files_have_their_own_namespace(tmp_path):
    # a file may reuse a built-in's name, and two files the same name: the reference picks the file
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = write_model(tmp_path / "a", "vae"), write_model(tmp_path / "b", "vae")
    assert get_model(f"{a}:vae").cls is not get_model(f"{b}:vae").cls
    assert get_model("vae").source == "ppl_models.models.vae" and "vae" in available_models()
    assert get_model(f"{a}:vae").source == str(a.resolve())


def test_one_file_registering_a_name_twice_is_an_error(tmp_path):
    path = write_model(tmp_path, "twice", MODEL_FILE + MODEL_FILE.replace("class Linear", "class Other"))
    with pytest.raises(ValueError, match="'twice' is already registered by Linear"):
        get_model(f"{path}:twice")


def test_data_shape_is_checked(tmp_path):
    body = MODEL_FILE.replace('    observed_sites = ("x",)', '    observed_sites = ("x",)\n    data_shape = (4,)')
    path = write_model(tmp_path, "user-shaped", body)
    ref = f"{path}:user-shaped"
    build_model(ref, model_config(ref), (4,))
    with pytest.raises(ValueError, match=r"expects observations of shape \(4,\).*\(8, 8\)"):
        build_model(ref, model_config(ref), (8, 8))


def test_entry_point_models_are_loaded(tmp_path, monkeypatch):
    # an installed package: its module on sys.path and a dist-info naming it in our entry point group
    write_model(tmp_path, "plugin-linear").rename(tmp_path / "plugin_models.py")
    dist_info = tmp_path / "plugin_models-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: plugin-models\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(f"""
        [{registry.ENTRY_POINT_GROUP}]
        linear = plugin_models
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_builtins_loaded", False)
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    try:
        assert "plugin-linear" in available_models()
        assert get_model("plugin-linear").source == "entry point linear = plugin_models"
    finally:
        sys.modules.pop("plugin_models", None)


def test_a_single_width_becomes_a_tuple_for_user_models_too(tmp_path):
    from ppl_models.registry import model_config

    (tmp_path / "widths.py").write_text(
        "import ppl_models as ppl\n"
        "from ppl_models.models.vae import VAE, VAEConfig\n"
        "@ppl.register_model('widths-vae', VAEConfig, 'the VAE, from a user file')\n"
        "class WidthsVAE(VAE):\n"
        "    pass\n")
    assert model_config(f"{tmp_path / 'widths.py'}:widths-vae", hidden=32).hidden == (32,)  # --set hidden=32
