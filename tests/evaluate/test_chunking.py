"""Pass sizes of the likelihood estimate: the pure sizing rule, the probe (through a stand-in memory
gauge, so it runs on the CPU), and CPU evaluations that stay exactly what they were."""

from __future__ import annotations

import json
import math

import pyro
import pytest
import torch

from ppl_models.evaluate import chunking
from ppl_models.evaluate.chunking import Chunks, eval_chunks, even_split, size_chunks
from ppl_models.evaluate.likelihood import estimate_log_likelihood
from ppl_models.evaluate.run_eval import evaluate_run, load_eval_data
from ppl_models.inference import build_strategy
from ppl_models.train import RunDir, fit

KB = 1024


@pytest.mark.parametrize(("n", "cap", "size"), [(10, 10, 10), (10, 100, 10), (10, 4, 4), (10, 3, 3), (5000, 4000, 2500),
                                               (10000, 300, 295), (7, 1, 1)])
def test_even_split_takes_few_equal_pieces(n, cap, size):
    assert even_split(n, cap) == size
    pieces = math.ceil(n / size)
    assert size <= cap and pieces == math.ceil(n / cap) and size * pieces - n < pieces


def test_all_k_particles_in_one_pass_then_as_many_points_as_fit():
    # 1 GiB free, half of it usable, 10 KiB per unit: 52428 units; K=5000 fits, then 10 points a pass
    assert size_chunks(2**30, 10 * KB, 5000, 10000) == (even_split(10000, 10), 5000)
    assert size_chunks(2**30, 10 * KB, 5000, 10000, safety=1.0) == (even_split(10000, 20), 5000)


def test_everything_in_one_pass_when_it_fits():
    assert size_chunks(2**30, 1 * KB, 50, 1000) == (1000, 50)


def test_fewer_units_than_k_splits_the_particles_evenly():
    # 4000 units < K = 5000: two passes of 2500 draws over one point each
    assert size_chunks(4000 * 100, 100.0, 5000, 10000, safety=1.0) == (1, 2500)


def test_the_memory_bound_holds_and_the_product_uses_most_of_it():
    free, per_unit = 3 * 2**30, 7321.0
    for k, n in [(5000, 10000), (1000, 10000), (1, 10000), (64, 37), (100000, 3)]:
        b, p = size_chunks(free, per_unit, k, n)
        assert 1 <= b <= n and 1 <= p <= k
        assert b * p * per_unit <= 0.5 * free
        budget = int(0.5 * free // per_unit)
        assert b * p >= min(budget, n * k) / 4  # even splitting loses less than a factor 2 per size


def test_max_units_caps_a_pass():
    b, p = size_chunks(10**15, 1.0, 5000, 10000, max_units=2**21)
    assert b * p <= 2**21 and p == 5000


def test_given_sizes_are_kept_and_the_other_is_sized():
    assert size_chunks(2**30, 10 * KB, 5000, 10000, batch_size=7, particle_chunk=3) == (7, 3)
    b, p = size_chunks(2**30, 10 * KB, 5000, 10000, particle_chunk=100)
    assert p == 100 and b == even_split(10000, 52428 // 100)
    b, p = size_chunks(2**30, 10 * KB, 5000, 10000, batch_size=100)
    assert b == 100 and p == even_split(5000, 524)
    # a given size larger than N or K only costs memory for what a pass really holds
    assert size_chunks(2**30, 10 * KB, 5000, 10000, batch_size=10**6)[1] == even_split(5000, 52428 // 10000)


def test_no_memory_still_runs_one_unit_a_pass():
    assert size_chunks(0, 10 * KB, 5000, 10000) == (1, 1)
    assert size_chunks(-5, 10 * KB, 3, 2) == (1, 1)


@pytest.mark.parametrize("bad", [dict(bytes_per_unit=0.0), dict(bytes_per_unit=float("nan")), dict(num_samples=0),
                                 dict(num_points=0), dict(safety=0.0), dict(safety=1.5), dict(max_units=0)])
def test_invalid_inputs_are_refused(bad):
    args = {"free_bytes": 2**30, "bytes_per_unit": 100.0, "num_samples": 10, "num_points": 10, **bad}
    with pytest.raises(ValueError):
        size_chunks(args.pop("free_bytes"), args.pop("bytes_per_unit"), args.pop("num_samples"),
                    args.pop("num_points"), **args)


class FakeGauge:
    """A memory gauge on the CPU: ``free`` bytes, and a peak of ``per_unit`` bytes per point x particle
    of the probe pass, read off the log weights it returns."""

    def __init__(self, free: int, per_unit: float):
        self.free, self.per_unit, self.probed = free, per_unit, []

    def free_bytes(self) -> int:
        return self.free

    def peak_bytes(self, fn) -> int:
        lw = fn()
        self.probed.append(tuple(lw.shape))
        return int(self.per_unit * lw.numel())


@pytest.fixture
def tiny_model(tiny_run_config):
    torch.manual_seed(0)
    return tiny_run_config().build().eval()


def test_cpu_data_keeps_the_defaults_and_draws_nothing(tiny_model):
    x = torch.rand(30, 8, 8)
    torch.manual_seed(3)
    assert eval_chunks(tiny_model, x, 5000) == Chunks(100, 100, "defaults")
    assert eval_chunks(tiny_model, x, 5000, batch_size=7) == Chunks(7, 100, "given, defaults for the rest")
    assert eval_chunks(tiny_model, x, 5000, batch_size=7, particle_chunk=9) == Chunks(7, 9, "given")
    drawn = torch.rand(3)
    torch.manual_seed(3)
    torch.testing.assert_close(drawn, torch.rand(3), rtol=0, atol=0)


def test_a_gauge_sizes_from_the_probe_and_leaves_the_random_streams_alone(tiny_model):
    x = torch.rand(200, 8, 8)
    gauge = FakeGauge(free=2**30, per_unit=2048.0)
    pyro.set_rng_seed(4)
    chunks = eval_chunks(tiny_model, x, 5000, memory=gauge)
    drawn = torch.randn(5)
    pyro.set_rng_seed(4)
    torch.testing.assert_close(drawn, torch.randn(5), rtol=0, atol=0)
    assert gauge.probed == [(chunking.PROBE_PARTICLES, chunking.PROBE_POINTS)]
    assert chunks.how == "sized to free memory" and chunks.bytes_per_unit == 2048.0 and chunks.free_bytes == 2**30
    assert (chunks.batch_size, chunks.particle_chunk) == size_chunks(2**30, 2048.0, 5000, 200)
    kept = eval_chunks(tiny_model, x, 5000, particle_chunk=64, memory=FakeGauge(2**30, 2048.0))
    assert kept.particle_chunk == 64 and kept.batch_size == 200


def test_sized_chunks_give_the_same_estimate_up_to_monte_carlo_noise(tiny_model):
    x = torch.rand(40, 8, 8)
    chunks = eval_chunks(tiny_model, x, 400, memory=FakeGauge(free=2**22, per_unit=1000.0))
    assert (chunks.batch_size, chunks.particle_chunk) != (100, 100)
    pyro.set_rng_seed(0)
    sized = estimate_log_likelihood(tiny_model, x, 400, chunks.batch_size, chunks.particle_chunk)
    pyro.set_rng_seed(0)
    fixed = estimate_log_likelihood(tiny_model, x, 400)
    assert math.isfinite(sized.nll) and abs(sized.nll - fixed.nll) < 0.05 * abs(fixed.nll)


@pytest.fixture
def run_path(tmp_path, digits, tiny_run_config):
    path = tmp_path / "run"
    fit(RunDir(path), tiny_run_config(epochs=1), digits, progress=False, verbose=False)
    return path


def _old_evaluation(path, nll_samples: int, seed: int = 0) -> dict:
    """What ``evaluate_run`` computed before pass sizing: 100 points x 100 samples a pass."""
    run = RunDir(path)
    config, model, _ = run.load_model_from("best", torch.device("cpu"))
    points = load_eval_data(config, model, "test", device="cpu", seed=seed)
    pyro.set_rng_seed(seed)
    with pyro.validation_enabled(False):
        strategy = build_strategy(model, config.train, points.x)
        return estimate_log_likelihood(model, points.x, nll_samples, batch_size=100, progress=False,
                                       guide_for=strategy.guide_for, y=points.y).to_json()


def test_cpu_evaluation_is_bit_identical_to_the_fixed_chunking(run_path):
    # 180 test points, K = 150: two batches of two particle chunks each, so the chunking shows in the draws
    old = _old_evaluation(run_path, 150)
    new = evaluate_run(run_path, nll_samples=150, device="cpu", progress=False)
    assert (new["elbo"], new["nll"], new["bits_per_dim"]) == (old["elbo"], old["nll"], old["bits_per_dim"])
    assert new["n"] == 180
    assert new["chunks"] == Chunks(100, 100, "defaults").to_json()
    assert new["settings"]["batch_size"] == 100 and "particle_chunk" not in new["settings"]
    again = evaluate_run(run_path, nll_samples=150, device="cpu", progress=False, batch_size=100, particle_chunk=100)
    assert again["file"] == new["file"] and again["nll"] == new["nll"]  # the same evaluation, the same file
    other = evaluate_run(run_path, nll_samples=150, device="cpu", progress=False, batch_size=60)
    assert other["nll"] != new["nll"] and other["file"] != new["file"]  # the test can tell chunkings apart
    chunk = evaluate_run(run_path, nll_samples=150, device="cpu", progress=False, particle_chunk=60)
    assert json.loads(open(chunk["file"]).read())["settings"]["particle_chunk"] == 60 and chunk["file"] != new["file"]


def test_ppl_eval_prints_the_sizes_it_chose(run_path, monkeypatch, capsys):
    from ppl_models.cli.main import main
    from ppl_models.evaluate import run_eval

    sized = Chunks(50, 30, "sized to free memory", 2048.0, 3 * 2**30)
    monkeypatch.setattr(run_eval, "eval_chunks", lambda *args, **kwargs: sized)
    assert main(["eval", str(run_path), "--nll-samples", "30", "--limit", "60"]) == 0
    out = capsys.readouterr().out
    assert "passes of 50 points x 30 samples, sized to 3.0 GiB free at 2.0 KiB per point x sample" in out
