"""ArviZ behind one door: Pareto-smoothed importance sampling, InferenceData export and NetCDF files.

This is the only module of the package that imports ArviZ, and it does so lazily (``_arviz()``), so
commands that never need it stay fast. Moving to ArviZ 1.x (``arviz_base`` / ``arviz_stats`` /
``arviz_plots``) means changing only this module:

- the import: 1.x no longer emits the 0.x "major refactor" FutureWarning;
- ``psislw``: see the comment there (1.x negates its input, always normalizes, raises on flat tails);
- InferenceData becomes ``xarray.DataTree``: ``save_inference_data`` already writes through
  ``to_datatree()``, and ``load_inference_data`` becomes ``xarray.open_datatree``;
- ``plot_khat`` moves to ``arviz_plots``.

Files are netCDF4/HDF5 written with the ``h5netcdf`` engine (a dependency of ArviZ 0.23). They can be
read by ``load_inference_data`` and by ``xarray.open_datatree(path, engine="h5netcdf")``. Pin the
engine: xarray guesses it from the installed backends and prefers ``netcdf4`` when that is installed.
"""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from ppl_models.atomic import atomic_write

if TYPE_CHECKING:
    import arviz
    from matplotlib.axes import Axes

__all__ = [
    "CONSTANT_ROW_KHAT",
    "NETCDF_ENGINE",
    "load_inference_data",
    "plot_khat",
    "psis_log_likelihood",
    "psislw",
    "save_inference_data",
    "to_inference_data",
]

NETCDF_ENGINE = "h5netcdf"
OBS_DIM = "obs"
# A row whose log weights span at most this much (weights within a factor e^0.001 of each other) is
# treated as constant: importance sampling is exact there, and there is no tail to fit.
CONSTANT_ROW_SPREAD = 1e-3
# k-hat reported for such rows. ArviZ 0.x returns +inf for them (it finds fewer than 5 draws above the
# tail cutoff, the same answer as for a degenerate row), and arviz_stats 1.x raises "All tail values
# are the same": both would flag an exact posterior as the worst case. Bounded weights have k <= 0.
CONSTANT_ROW_KHAT = 0.0


@functools.cache
def _arviz():
    """Import ArviZ once, without its once-a-day 'major refactor' FutureWarning reaching the user.

    The message starts with a newline, and warning filters match the start of the message.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"\s*ArviZ is undergoing a major refactor", FutureWarning)
        import arviz

    return arviz


def _numpy(values: torch.Tensor | np.ndarray, dtype: Any = None) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def psislw(log_weights: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto-smooth importance log weights, one column per data point (Vehtari et al. 2024).

    ``log_weights`` is ``[S, N]``, draws first, as our code stores them. Returns ``(smoothed, khat)``:
    the smoothed log weights ``[S, N]``, float64 and NOT normalized (``logsumexp(smoothed, 0) - log S``
    is the PSIS estimate of log p(x)), and the Pareto shape k-hat ``[N]`` (< 0.5 good, > 0.7 bad).
    Columns that are (nearly) constant are returned unchanged with ``CONSTANT_ROW_KHAT``; columns with
    a NaN or +inf, or with every weight zero, give NaN. k-hat is +inf where fewer than 5 draws lie
    strictly above the tail cutoff (S < 25, ties, or all but a few weights negligible): the tail
    cannot be fitted, and the estimate should not be trusted.
    """
    lw = _numpy(log_weights, np.float64)  # ArviZ smooths in the input dtype (ints would be truncated)
    if lw.ndim != 2:
        raise ValueError(f"log_weights must be [S, N], got shape {lw.shape}")
    smoothed = np.full_like(lw, np.nan)
    khat = np.full(lw.shape[1], np.nan)
    top = lw.max(axis=0)  # NaN if any NaN
    valid = np.isfinite(top)
    with np.errstate(invalid="ignore"):  # inf - inf in the invalid columns
        flat = valid & (top - lw.min(axis=0) <= CONSTANT_ROW_SPREAD)
    smoothed[:, flat], khat[flat] = lw[:, flat], CONSTANT_ROW_KHAT
    fit = valid & ~flat
    if fit.any():
        # ArviZ 0.x: az.psislw(log_weights, reff, normalize) smooths along the LAST axis, so it gets
        # the transpose [N, S] and returns one k per row. ArviZ 1.x: arviz_stats' psislw takes the
        # log-likelihood and smooths its NEGATION (for PSIS-LOO), so pass -log_weights there; it also
        # always normalizes: add back the offset of any unsmoothed (body) draw to keep this contract.
        # tests/evaluate/test_arviz_adapter.py pins the sign with known tails.
        sm, k = _arviz().psislw(np.ascontiguousarray(lw[:, fit].T), reff=1.0, normalize=False)
        smoothed[:, fit], khat[fit] = np.asarray(sm).T, np.asarray(k)
    return smoothed, khat


def psis_log_likelihood(log_weights: torch.Tensor | np.ndarray) -> np.ndarray:
    """PSIS estimate of log p(x) per data point, ``[N]``, from ``[S, N]`` log weights.

    ``logsumexp_s smoothed_s - log S``: the importance-sampled estimate with the largest weights
    replaced by their Pareto fit; NaN where ``psislw`` gives NaN.
    """
    from scipy.special import logsumexp

    smoothed, _ = psislw(log_weights)
    return logsumexp(smoothed, axis=0) - math.log(smoothed.shape[0])


def _attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """netCDF attributes: numbers and strings as they are; bools and None as ``str()`` ("True", "None")."""
    out: dict[str, Any] = {}
    for key, value in (attrs or {}).items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or value is None:
            value = str(value)
        if not isinstance(value, (int, float, str)):
            raise TypeError(f"attribute {key!r} must be a number, string, bool or None, not {type(value).__name__}")
        out[str(key)] = value
    return out


def to_inference_data(
    latents: Mapping[str, torch.Tensor | np.ndarray],
    log_likelihood: torch.Tensor | np.ndarray,
    log_weights: torch.Tensor | np.ndarray,
    observed: torch.Tensor | np.ndarray,
    observed_name: str = "x",
    point_stats: Mapping[str, np.ndarray | torch.Tensor] | None = None,
    attrs: Mapping[str, Any] | None = None,
    obs_index: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> "arviz.InferenceData":
    """Pack guide draws and per-point diagnostics of N data points into an ``az.InferenceData``.

    D draws per point, one chain. Groups and dims:
    ``posterior`` (one variable per latent site, ``[D, N, *site]`` -> ``chain, draw, obs,
    {site}_dim_0, ...``), ``log_likelihood`` (``observed_name``, ``[D, N]`` -> ``chain, draw, obs``),
    ``sample_stats`` (``log_weight``, ``[D, N]``), ``point_diagnostics`` (each ``point_stats`` entry
    ``[N]`` -> ``obs``; NaN for "not applicable"; omitted when ``point_stats`` is None) and
    ``observed_data`` (``observed_name``, ``[N, *event]`` -> ``obs, {observed_name}_dim_0, ...``).
    Every group shares the ``obs`` coordinate (``obs_index``, e.g. row numbers in the split, or
    0..N-1) and carries ``attrs``. "chain", "draw" and "obs" cannot name a variable.
    """
    import xarray as xr

    clash = {"chain", "draw", OBS_DIM} & {*latents, observed_name, *(point_stats or {})}
    if clash:
        raise ValueError(f"{sorted(clash)} name dimensions of the InferenceData; rename the site or stat")
    log_weights = _numpy(log_weights)
    if log_weights.ndim != 2:
        raise ValueError(f"log_weights must be [D, N], got shape {log_weights.shape}")
    n_draws, n_obs = log_weights.shape
    obs = np.arange(n_obs) if obs_index is None else _numpy(obs_index)
    if obs.shape != (n_obs,):
        raise ValueError(f"obs_index must have {n_obs} entries, got shape {obs.shape}")
    sample_coords = {"chain": [0], "draw": np.arange(n_draws), OBS_DIM: obs}
    group_attrs = _attrs(attrs)

    def per_draw(name: str, values: torch.Tensor | np.ndarray) -> xr.DataArray:
        values = _numpy(values)
        if values.shape[:2] != (n_draws, n_obs):
            raise ValueError(f"{name} must be [{n_draws}, {n_obs}, ...], got shape {values.shape}")
        dims = ("chain", "draw", OBS_DIM, *(f"{name}_dim_{i}" for i in range(values.ndim - 2)))
        return xr.DataArray(values[None], dims=dims)

    def dataset(variables: Mapping[str, xr.DataArray], coords: Mapping[str, Any]) -> xr.Dataset:
        return xr.Dataset(dict(variables), coords=dict(coords), attrs=dict(group_attrs))

    groups = {
        "posterior": dataset({site: per_draw(site, v) for site, v in latents.items()}, sample_coords),
        "log_likelihood": dataset({observed_name: per_draw(observed_name, log_likelihood)}, sample_coords),
        "sample_stats": dataset({"log_weight": per_draw("log_weight", log_weights)}, sample_coords),
    }
    if point_stats is not None:
        stats = {name: _numpy(v) for name, v in point_stats.items()}
        for name, v in stats.items():
            if v.shape != (n_obs,):
                raise ValueError(f"point_stats[{name!r}] must be [{n_obs}], got shape {v.shape}")
        stat_vars = {name: xr.DataArray(v, dims=(OBS_DIM,)) for name, v in stats.items()}
        groups["point_diagnostics"] = dataset(stat_vars, {OBS_DIM: obs})
    x = _numpy(observed)
    if x.shape[:1] != (n_obs,):
        raise ValueError(f"observed must be [{n_obs}, ...], got shape {x.shape}")
    x_dims = (OBS_DIM, *(f"{observed_name}_dim_{i}" for i in range(x.ndim - 1)))
    groups["observed_data"] = dataset({observed_name: xr.DataArray(x, dims=x_dims)}, {OBS_DIM: obs})
    return _arviz().InferenceData(**groups)


def save_inference_data(idata: "arviz.InferenceData", path: str | Path) -> Path:
    """Write ``idata`` to ``path`` as compressed netCDF4 (h5netcdf engine), atomically; returns the path.

    The file is built in memory (``DataTree.to_netcdf`` without a path) and handed to
    ``atomic_write``, so a crash leaves the old file or the new one. Readable by
    ``load_inference_data`` and ``xarray.open_datatree(path, engine="h5netcdf")``.
    """
    path = Path(path)
    tree = idata.to_datatree()  # ArviZ 1.x: idata already is a DataTree
    encoding = {
        node.path: {name: {"zlib": True} for name, var in node.dataset.data_vars.items() if var.dtype.kind in "biuf"}
        for node in tree.subtree
        if node.has_data
    }
    data = tree.to_netcdf(None, engine=NETCDF_ENGINE, encoding=encoding)
    atomic_write(path, lambda f: f.write(data))
    return path


def load_inference_data(path: str | Path) -> "arviz.InferenceData":
    """Read a file written by ``save_inference_data`` (``az.from_netcdf``, h5netcdf engine).

    Loads eagerly, so no file handle stays open and the file may be replaced right after.
    """
    az = _arviz()
    with az.rc_context({"data.load": "eager"}):
        return az.from_netcdf(str(path), engine=NETCDF_ENGINE)


def plot_khat(
    khat: np.ndarray | torch.Tensor | Sequence[float], ax: "Axes | None" = None, n_samples: int | None = None, **kwargs
) -> "Axes":
    """Scatter the k-hat of each data point with ``az.plot_khat``; returns the axes.

    With ``n_samples`` (S) the "good" line is the sample-size-dependent min(1 - 1/log10 S, 0.7)
    (Vehtari et al. 2024), otherwise 0.7. NaN and inf values are left out of the scatter.
    """
    import xarray as xr

    az = _arviz()
    from arviz.stats.stats_utils import ELPDData  # az.plot_khat deprecates plain arrays (FutureWarning)

    good_k = min(1 - 1 / math.log10(n_samples), 0.7) if n_samples and n_samples > 1 else 0.7
    values = _numpy(khat, np.float64).ravel()
    pareto_k = xr.DataArray(values, dims=(OBS_DIM,), coords={OBS_DIM: np.arange(values.size)}, name="pareto_k")
    with warnings.catch_warnings():  # ArviZ 0.23 calls a matplotlib 3.11 API that is deprecated
        warnings.filterwarnings("ignore", "Passing a dict or None as alias_mapping", DeprecationWarning)
        return az.plot_khat(ELPDData(data=[pareto_k, good_k], index=["pareto_k", "good_k"]), ax=ax, **kwargs)
