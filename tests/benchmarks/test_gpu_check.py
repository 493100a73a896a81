"""``benchmarks/gpu_check.sh --device cpu --quick`` prints every figure with finite numbers, and the
references its step benchmarks time (hand-written conv VAE, Pyro's stock losses) compute our losses."""

from __future__ import annotations

import importlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pyro
import pytest
import torch

from ppl_models.objectives import build_objective
from ppl_models.registry import build_model, model_config

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "benchmarks"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

contenders = importlib.import_module("step_contenders")
FIGURE = re.compile(r"^\[figure (\d)\] (.*)$", re.M)
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf)(?![\w.])", re.I)


def test_gpu_check_smoke_test_prints_every_figure_with_finite_numbers(shared_data_dir, tmp_path):
    env = {**os.environ, "PPL_DATA_DIR": str(shared_data_dir), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(BENCH_DIR / "gpu_check.sh"), "--device", "cpu", "--quick", "--out",
                           str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "== hardware" in out and "uptime:" in out and "torch " in out
    lines: dict[str, list[str]] = {}
    for number, text in FIGURE.findall(out.split("== figures", 1)[1]):
        lines.setdefault(number, []).append(text)
    assert sorted(lines) == ["1", "2", "3", "4"], out[-3000:]
    for number, texts in lines.items():
        for text in texts:
            values = [v for v in NUMBER.findall(text)]
            assert values and all(math.isfinite(float(v)) for v in values), (number, text)
            assert "n/a" not in text and "skipped" not in text and "not reached" not in text, (number, text)
    assert len(lines["1"]) == 4 and all("plan/hand" in t and "stock/plan" in t for t in lines["1"])
    assert any("s/epoch" in t for t in lines["2"]) and any("time to valid NLL" in t for t in lines["2"])
    assert any("image·samples/s" in t for t in lines["3"])
    assert (tmp_path / "out" / "step_scaling.png").stat().st_size > 0
    assert (tmp_path / "out" / "gpu_check.log").read_text().count("[figure") >= len(sum(lines.values(), []))


def test_gpu_check_refuses_an_unknown_device(tmp_path):
    done = subprocess.run(["bash", str(BENCH_DIR / "gpu_check.sh"), "--device", "tpu", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "--device must be cpu or cuda" in done.stderr


@pytest.fixture
def conv_vae():
    torch.manual_seed(0)
    return build_model("conv_vae", model_config("conv_vae", channels=(4, 8), hidden=(16,), latent_dim=3), (8, 8))


@pytest.mark.parametrize(("objective", "particles"), [("elbo-analytic", 1), ("iwae", 4)])
def test_the_hand_written_conv_vae_step_computes_our_loss_and_gradients(conv_vae, objective, particles):
    x = (torch.rand(5, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    hand = contenders.hand_written(conv_vae)
    pyro.set_rng_seed(2)
    ours = build_objective(objective, particles).differentiable_loss(conv_vae.model, conv_vae.guide, x)
    ours.backward()
    pyro.set_rng_seed(2)
    theirs = hand.loss(x) if particles == 1 else hand.iwae_loss(x, particles)
    theirs.backward()
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-4)
    grads = {n: p.grad for n, p in conv_vae.named_parameters()}
    for name, p in hand.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize(("objective", "particles"), [("elbo-analytic", 1), ("iwae", 4)])
def test_the_stock_svi_losses_are_our_objectives(conv_vae, objective, particles):
    x = (torch.rand(5, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    svi = importlib.import_module("stock_svi").stock_svi(conv_vae, contenders.stock_loss(objective, particles))
    pyro.set_rng_seed(2)
    stock = svi.loss(svi.model, svi.guide, x)
    pyro.set_rng_seed(2)
    ours = build_objective(objective, particles).differentiable_loss(conv_vae.model, conv_vae.guide, x)
    assert stock == pytest.approx(ours.item(), rel=1e-5)
    pyro.clear_param_store()
