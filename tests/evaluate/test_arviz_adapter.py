"""The ArviZ adapter: PSIS sign and axis conventions, InferenceData layout, NetCDF files, silent import."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from ppl_models.evaluate import arviz_adapter as A

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
S = 4000  # draws per data point


def _gpd_log_weights(rng: np.random.Generator, xi: float, shape: tuple[int, ...]) -> np.ndarray:
    """log w with w = 1 + Y, Y ~ generalized Pareto(shape xi, scale 1): right tail of shape xi, w >= 1."""
    return np.log1p((rng.uniform(size=shape) ** -xi - 1) / xi)


@pytest.fixture(scope="module")
def known_tails() -> dict[str, np.ndarray]:
    """[S, N] log weights per family: heavy right tail (xi = 0.8), bounded above, light (normal)."""
    rng = np.random.default_rng(0)
    heavy = _gpd_log_weights(rng, 0.8, (S, 16))
    return {"heavy": heavy, "bounded": -_gpd_log_weights(rng, 0.8, (S, 16)), "light": rng.normal(0.0, 0.1, (S, 8))}


def test_khat_recovers_known_tail_shape_and_pins_the_sign(known_tails):
    lw = np.concatenate([known_tails["heavy"], known_tails["bounded"], known_tails["light"]], axis=1)
    smoothed, khat = A.psislw(torch.as_tensor(lw))
    assert smoothed.shape == (S, 40) and khat.shape == (40,)  # one k per column: samples are axis 0
    heavy, bounded, light = khat[:16], khat[16:32], khat[32:]
    assert abs(np.median(heavy) - 0.8) < 0.15
    assert heavy.min() > max(bounded.max(), light.max())
    assert bounded.max() < 0.5 and light.max() < 0.5
    # Negated log weights (the 1.x arviz_stats convention, or samples read along the wrong sign) swap
    # the verdicts: the heavy rows would be certified good and the bounded ones flagged.
    _, flipped = A.psislw(-lw)
    assert np.median(flipped[:16]) < 0.5 and abs(np.median(flipped[16:32]) - 0.8) < 0.15


def test_psis_log_likelihood_matches_plain_importance_sampling_for_light_tails(known_tails):
    lw = known_tails["light"]
    est = A.psis_log_likelihood(lw)
    plain = logsumexp(lw, axis=0) - np.log(S)
    assert est.shape == (8,)
    np.testing.assert_allclose(est, plain, atol=1e-3)
    np.testing.assert_allclose(est, 0.1**2 / 2, atol=5e-3)  # log E[w] = sd^2 / 2 for log w ~ N(0, sd)
    smoothed, _ = A.psislw(lw)
    np.testing.assert_allclose(logsumexp(smoothed, axis=0) - np.log(S), est)  # not normalized


def test_smoothing_runs_in_float64_whatever_the_input_dtype(known_tails):
    lw = known_tails["heavy"][:, :4]
    smoothed64, khat64 = A.psislw(lw)
    smoothed32, khat32 = A.psislw(torch.as_tensor(lw, dtype=torch.float32))
    assert smoothed32.dtype == np.float64 and khat32.dtype == np.float64
    np.testing.assert_allclose(khat32, khat64, atol=1e-4)
    # ArviZ smooths in the input dtype: integer log weights would come back truncated to integers.
    lw_int = np.round(lw * 5).astype(np.int64)
    assert A._arviz().psislw(lw_int.T.copy(), normalize=False)[0].dtype.kind == "i"
    smoothed_int, khat_int = A.psislw(lw_int)
    np.testing.assert_array_equal(khat_int, A.psislw(lw_int.astype(np.float64))[1])
    assert smoothed_int.dtype == np.float64 and not np.array_equal(smoothed_int, np.round(smoothed_int))


def test_constant_rows_are_exact_and_finite():
    rng = np.random.default_rng(1)
    quantized = torch.tensor(-1000.0 + 1e-5 * rng.normal(size=(S, 1)), dtype=torch.float32)  # 2 values
    columns = [np.zeros((S, 1)), np.full((S, 1), 3.0), quantized.double().numpy(), rng.normal(size=(S, 1))]
    lw = np.concatenate(columns, axis=1)
    smoothed, khat = A.psislw(lw)
    assert np.isfinite(khat).all() and (khat < 0.5).all()
    np.testing.assert_array_equal(khat[:3], A.CONSTANT_ROW_KHAT)
    np.testing.assert_array_equal(smoothed[:, :3], lw[:, :3])
    np.testing.assert_allclose(A.psis_log_likelihood(lw)[:2], [0.0, 3.0])
    # What ArviZ itself says about a constant row (the reason for the mapping):
    assert A._arviz().psislw(np.zeros((1, S)), normalize=False)[1][0] == np.inf


def test_invalid_rows_give_nan():
    rng = np.random.default_rng(2)
    lw = rng.normal(size=(S, 4))
    lw[5, 0] = np.nan
    lw[:, 1] = -np.inf
    lw[7, 2] = np.inf
    lw[: S // 2, 3] = -np.inf  # zero weights are fine
    smoothed, khat = A.psislw(lw)
    assert np.isnan(khat[:3]).all() and np.isnan(smoothed[:, :3]).all()
    assert np.isfinite(khat[3]) and khat[3] < 0.5
    with pytest.raises(ValueError, match=r"\[S, N\]"):
        A.psislw(np.zeros(S))


D, N = 40, 3


@pytest.fixture(scope="module")
def idata():
    g = torch.Generator().manual_seed(0)
    latents = {"z": torch.randn(D, N, 2, generator=g), "scale": torch.rand(D, N, generator=g)}
    log_weights = torch.randn(D, N, generator=g)
    _, khat = A.psislw(log_weights)
    return A.to_inference_data(
        latents,
        log_likelihood=torch.randn(D, N, generator=g),
        log_weights=log_weights,
        observed=torch.rand(N, 4, 5, generator=g),
        point_stats={"khat": khat, "ess": np.array([np.nan, 2.0, 3.0]), "gap": torch.ones(N)},
        attrs={"model": "vae", "particles": 40, "nll": 85.5, "iwae": True, "strategy": None},
        obs_index=[10, 20, 30],
    )


def test_inference_data_groups_and_dims(idata):
    assert set(idata.groups()) == {"posterior", "log_likelihood", "sample_stats", "point_diagnostics", "observed_data"}
    dims = {g: {v: idata[g][v].dims for v in idata[g].data_vars} for g in idata.groups()}
    assert dims == {
        "posterior": {"z": ("chain", "draw", "obs", "z_dim_0"), "scale": ("chain", "draw", "obs")},
        "log_likelihood": {"x": ("chain", "draw", "obs")},
        "sample_stats": {"log_weight": ("chain", "draw", "obs")},
        "point_diagnostics": {"khat": ("obs",), "ess": ("obs",), "gap": ("obs",)},
        "observed_data": {"x": ("obs", "x_dim_0", "x_dim_1")},
    }
    assert idata.posterior.sizes["chain"] == 1 and idata.posterior.sizes["draw"] == D
    for group in idata.groups():
        np.testing.assert_array_equal(idata[group]["obs"].values, [10, 20, 30])
        assert idata[group].attrs == {"model": "vae", "particles": 40, "nll": 85.5, "iwae": "True", "strategy": "None"}


def test_shape_mismatches_are_refused():
    with pytest.raises(ValueError, match="z must be"):
        A.to_inference_data({"z": torch.zeros(D, N + 1)}, torch.zeros(D, N), torch.zeros(D, N), torch.zeros(N, 2))
    with pytest.raises(ValueError, match="point_stats"):
        A.to_inference_data({}, torch.zeros(D, N), torch.zeros(D, N), torch.zeros(N), point_stats={"k": torch.ones(2)})
    with pytest.raises(ValueError, match="name dimensions"):
        A.to_inference_data({}, torch.zeros(D, N), torch.zeros(D, N), torch.zeros(N), observed_name="obs")
    with pytest.raises(TypeError, match="attribute"):
        A.to_inference_data({}, torch.zeros(D, N), torch.zeros(D, N), torch.zeros(N), attrs={"bad": [1, 2]})


def test_netcdf_round_trip_and_datatree(idata, tmp_path):
    import xarray as xr

    path = A.save_inference_data(idata, tmp_path / "diagnostics.nc")
    assert path == tmp_path / "diagnostics.nc" and [p.name for p in tmp_path.iterdir()] == ["diagnostics.nc"]
    back = A.load_inference_data(path)
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        xr.testing.assert_identical(back[group], idata[group])
    A.save_inference_data(back, path)  # overwrite in place: nothing kept open by the eager load
    with xr.open_datatree(path, engine=A.NETCDF_ENGINE) as tree:
        assert {"posterior", "point_diagnostics", "observed_data"} <= set(tree.children)
        assert tree["posterior"]["z"].dims == ("chain", "draw", "obs", "z_dim_0")
        np.testing.assert_array_equal(tree["point_diagnostics"]["ess"].values, idata.point_diagnostics["ess"].values)


def test_summary_and_plots_work(idata):
    az = A._arviz()
    summary = az.summary(idata, kind="stats")  # one chain: kind="all" logs that r_hat needs two
    assert len(summary) == N * 2 + N and np.isfinite(summary["mean"]).all()
    with warnings.catch_warnings():  # ArviZ 0.23 with matplotlib 3.11 warns about an API it calls
        warnings.simplefilter("ignore", DeprecationWarning)
        axes = az.plot_posterior(idata, var_names=["scale"])
    assert np.asarray(axes).size == N
    ax = A.plot_khat(idata.point_diagnostics["khat"], n_samples=D)
    assert len(ax.collections[0].get_offsets()) == N
    plt.close("all")


def _python(code: str, cache: Path) -> subprocess.Popen:
    """Start ``python -W error::FutureWarning -c code`` with a fresh user cache (no ArviZ stamp)."""
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), MPLCONFIGDIR=matplotlib.get_cachedir())  # keep the font cache
    cmd = [sys.executable, "-W", "error::FutureWarning", "-c", code]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_arviz_import_is_lazy_and_silent(tmp_path):
    code = (
        "import sys; import ppl_models.evaluate.arviz_adapter as A; assert 'arviz' not in sys.modules; "
        "A._arviz(); assert 'arviz' in sys.modules"
    )
    # Control: in a fresh cache a plain import does raise the warning (so this test can fail). A cache
    # of its own: the silenced import still writes the day's stamp. Both run at once, to save time.
    adapter, control = _python(code, tmp_path / "adapter"), _python("import arviz", tmp_path / "plain")
    _, adapter_err = adapter.communicate(timeout=120)
    _, control_err = control.communicate(timeout=120)
    assert adapter.returncode == 0 and adapter_err == "", adapter_err
    assert control.returncode != 0 and "FutureWarning" in control_err and "major refactor" in control_err
    assert (tmp_path / "adapter" / "arviz" / "daily_warning").exists()
