"""--precision bf16: networks under bfloat16 autocast, everything probabilistic in float32."""

from __future__ import annotations

import pyro
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from torch.overrides import TorchFunctionMode

from ppl_models.api import train
from ppl_models.data import load_dataset
from ppl_models.registry import build_model, model_config
from ppl_models.train.config import TrainConfig
from ppl_models.train.metrics import MetricsLog
from ppl_models.train.loop import fit
from ppl_models.train.precision import MixedPrecision, denormals_flushed, flushed_denormals
from ppl_models.train.run import RunDir


class LinearDtypes(TorchFunctionMode):
    """Records the dtype of every ``F.linear`` result (what autocast produced, before any cast back)."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.dtype] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.nn.functional.linear:
            self.seen.append(out.dtype)
        return out


@pytest.mark.parametrize("name", ["vae", "conv_vae", "two_layer_vae"])
def test_layers_run_in_bf16_while_sites_and_log_densities_stay_float32(name):
    torch.manual_seed(0)
    module = build_model(name, model_config(name), (8, 8))
    mixed = MixedPrecision(module, "cpu")
    x = torch.rand(5, 8, 8).round()
    with mixed.active(), LinearDtypes() as linear:
        guide = poutine.trace(module.guide).get_trace(x)
        model = poutine.trace(poutine.replay(module.model, trace=guide)).get_trace(x)
    assert linear.seen and all(d == torch.bfloat16 for d in linear.seen)  # the matrix products ran in bfloat16
    for tr in (guide, model):
        tr.compute_log_prob()
        for site in tr.nodes.values():
            if site["type"] == "sample" and not site_is_subsample(site):
                assert site["value"].dtype == torch.float32, site["name"]
                assert site["log_prob"].dtype == torch.float32, site["name"]
    with LinearDtypes() as linear:
        module.guide(x)  # outside the block the networks are untouched: float32 as without the wrapper
    assert linear.seen and all(d == torch.float32 for d in linear.seen)


def test_outside_the_block_the_wrapped_module_computes_exactly_what_it_did():
    torch.manual_seed(0)
    module = build_model("vae", model_config("vae"), (8, 8))
    x = torch.rand(5, 8, 8).round()
    before = module.encoder(x.reshape(5, -1))
    MixedPrecision(module, "cpu")
    after = module.encoder(x.reshape(5, -1))
    for a, b in zip(before, after):
        assert torch.equal(a, b)


def test_a_bf16_run_trains_as_well_as_fp32_and_its_parameters_stay_float32(tmp_path):
    runs = {p: train("vae", out=tmp_path / p, epochs=3, seed=0, precision=p, device="cpu", progress=False)
            for p in ("fp32", "bf16")}
    bounds = {p: float(MetricsLog.read(r.path / "metrics.csv")[-1]["valid_elbo"]) for p, r in runs.items()}
    assert bounds["bf16"] == pytest.approx(bounds["fp32"], rel=0.02)  # measured: -114.22 against -114.06
    assert bounds["bf16"] != bounds["fp32"]  # the bfloat16 products did change the numbers
    assert all(p.dtype == torch.float32 for p in runs["bf16"].model.parameters())


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        TrainConfig(precision="fp16")
    pyro.clear_param_store()


def test_the_eager_plan_under_bf16_repeats_the_pyro_path_bit_for_bit(tmp_path):
    runs = [train("vae", out=tmp_path / c, epochs=1, seed=0, precision="bf16", compile=c, device="cpu", progress=False)
            for c in ("off", "plan")]
    assert "the execution plan (eager)" in (runs[1].path / "events.log").read_text()
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)


def test_flush_denormal_holds_during_training_only_and_repeats_exactly(tmp_path):
    assert not denormals_flushed()
    with flushed_denormals(True):
        assert denormals_flushed() and float(torch.tensor(1e-39) * 1.0) == 0.0
    assert not denormals_flushed()

    runs = [train("vae", out=tmp_path / str(i), epochs=1, seed=0, flush_denormal=True, device="cpu", progress=False)
            for i in range(2)]
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)
    seen: list[bool] = []  # the mode at every step of a third run, through fit's after_step hook
    fit(RunDir(tmp_path / "watched"), RunDir(runs[0].path).load_config(), load_dataset("digits"), progress=False,
        verbose=False, after_step=lambda step, model: seen.append(denormals_flushed()))
    assert len(seen) == 15 and all(seen) and not denormals_flushed()
