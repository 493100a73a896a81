"""The PNG figures of ``ppl diagnose``: k-hat histogram, KL per dimension, latent map, traversals,
reconstructions (worst k-hat first), the gap decomposition and the AIS/BDMC sandwich."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pyro import poutine

from ppl_models.atomic import atomic_savefig
from ppl_models.diagnostics.weights import BAD_K, GOOD_K, sample_size_threshold
from ppl_models.evaluate.samples import image_grid
from ppl_models.models.protocol import bind_labels
from ppl_models.paths import inside

# Cremer et al. 2018 report about 1.3-1.5 nats for each gap on MNIST with a factorized Gaussian guide;
# the figure draws 1.4 for each, as a reference scale rather than an exact figure.
CREMER_MNIST = {"approximation_gap": 1.4, "amortization_gap": 1.4}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    try:
        return atomic_savefig(fig, path, dpi=110)
    finally:
        _plt().close(fig)


def khat_histogram(khat: np.ndarray, num_samples: int, path: Path) -> Path:
    """Histogram of per-point k-hat with the 0.5, 0.7 and sample-size thresholds."""
    fig, ax = _plt().subplots(figsize=(6, 3.5))
    ax.hist(khat, bins=40, color="tab:blue", alpha=0.8)
    for k, style, label in ((GOOD_K, ":", "0.5"), (BAD_K, "--", "0.7"),
                            (sample_size_threshold(num_samples), "-.", f"min(1-1/log10 S, 0.7), S={num_samples}")):
        ax.axvline(k, color="k", ls=style, lw=1, label=label)
    ax.set(xlabel="Pareto k-hat of the importance weights", ylabel="data points",
           title=f"k-hat per data point ({np.mean(khat > BAD_K):.0%} above 0.7)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def kl_per_dimension(latents: list[dict], path: Path) -> Path | None:
    """Bars of the mean KL per coordinate of each site, collapsed coordinates in grey."""
    sites = [s for s in latents if s["kl_per_dim"] is not None]
    if not sites:
        return None
    fig, axes = _plt().subplots(len(sites), 1, figsize=(7, 2.6 * len(sites)), squeeze=False)
    for ax, s in zip(axes[:, 0], sites):
        kl = np.asarray(s["kl_per_dim"])
        colors = ["lightgrey" if i in set(s["collapsed"]) else "tab:blue" for i in range(len(kl))]
        ax.bar(np.arange(len(kl)), kl, color=colors)
        ax.set(xlabel=f"coordinate of `{s['site']}`", ylabel="mean KL (nats)",
               title=f"`{s['site']}`: {len(s['collapsed'])} collapsed (grey, KL < 0.01), "
                     f"{s['active_units']} of {s['dims']} active")
    return _save(fig, path)


def latent_map(means: torch.Tensor, labels: torch.Tensor | None, site: str, path: Path) -> Path | None:
    """The posterior means of ``site`` projected on their first two principal components."""
    flat = means.reshape(means.shape[0], -1).double().cpu()
    if flat.shape[0] < 3:
        return None
    centred = flat - flat.mean(0)
    coords = centred @ torch.linalg.svd(centred, full_matrices=False).Vh[:2].T if flat.shape[1] > 1 else centred
    coords = torch.cat([coords, torch.zeros(coords.shape[0], 2 - coords.shape[1], dtype=coords.dtype)], 1)
    coords = coords.numpy()
    fig, ax = _plt().subplots(figsize=(5, 4.5))
    if labels is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=6)
    else:
        sc = ax.scatter(coords[:, 0], coords[:, 1], s=6, c=labels.cpu().numpy(), cmap="tab10")
        fig.colorbar(sc, ax=ax, label="label")
    ax.set(xlabel="PC 1", ylabel="PC 2", title=f"E_q[{site}] per data point, first two principal components")
    return _save(fig, path)


@torch.no_grad()
def decode_means(model, x: torch.Tensor, latents: dict[str, torch.Tensor], y=None) -> torch.Tensor:
    """E[x | z] for the rows of ``x`` with the latent sites set to ``latents`` (each ``[M, ...]``)."""
    view = bind_labels(model, y, evaluation=True)
    trace = poutine.trace(poutine.condition(view.model, data=latents)).get_trace(x)
    return trace.nodes[model.observed_sites[0]]["fn"].mean.reshape(x.shape)


def _grid_figure(rows: list[torch.Tensor], titles: list[str], title: str, path: Path) -> Path:
    fig, axes = _plt().subplots(len(rows), 1, figsize=(1.1 * rows[0].shape[0], 1.4 * len(rows)), squeeze=False)
    for ax, images, name in zip(axes[:, 0], rows, titles):
        ax.imshow(image_grid(images.float().cpu(), nrow=images.shape[0]).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(name, fontsize=8, loc="left")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def reconstructions(model, result, path: Path, count: int = 10) -> Path | None:
    """Inputs above their reconstructions E[x | z], z a draw from q, the worst k-hat first."""
    draws, x = result.draws, result.x
    if x.dim() != 3 or not draws.latents:
        return None
    order = np.argsort(-result.per_point["khat"])[:count] if "khat" in result.per_point else np.arange(min(count, len(x)))
    idx = torch.as_tensor(order.copy(), device=x.device)
    z = {site: v[0, idx] for site, v in draws.latents.items()}
    y = None if result.y is None else result.y[idx]
    recon = decode_means(model, x[idx], z, y)
    names = ["inputs" + (", k-hat " + " ".join(f"{k:.2f}" for k in result.per_point["khat"][order]) if "khat" in result.per_point else ""),
             "E[x | z], z ~ q(z | x)"]
    return _grid_figure([x[idx], recon], names, "reconstructions, the worst k-hat first", path)


def traversals(model, result, latents: list[dict], path: Path, dims: int = 6, steps: int = 9) -> Path | None:
    """Decoded means as the most informative coordinates of the last latent site sweep their range."""
    x = result.x
    usable = [s for s in latents if s["site"] in result.draws.posterior_mean and s["kl_per_dim"] is not None]
    if x.dim() != 3 or not usable:
        return None
    site = usable[-1]
    means = result.draws.posterior_mean[site["site"]]
    flat = means.reshape(means.shape[0], -1)
    top = np.argsort(-np.asarray(site["kl_per_dim"]))[:dims]
    base = {s: m[:1] for s, m in result.draws.posterior_mean.items()}
    rows, names = [], []
    for d in top:
        lo, hi = torch.quantile(flat[:, d].double(), torch.tensor([0.02, 0.98], dtype=torch.float64)).tolist()
        z = {s: m.expand(steps, *m.shape[1:]).clone() for s, m in base.items()}
        z[site["site"]].reshape(steps, -1)[:, d] = torch.linspace(lo, hi, steps, dtype=means.dtype)
        y = None if result.y is None else result.y[:1].expand(steps)
        rows.append(decode_means(model, x[:1].expand(steps, *x.shape[1:]), z, y))
        names.append(f"`{site['site']}`[{d}] from {lo:.2f} to {hi:.2f} (KL {site['kl_per_dim'][d]:.2f})")
    return _grid_figure(rows, names, "latent traversals of the first point (2-98% range of E_q[z])", path)


def gap_bar(gaps: dict, path: Path) -> Path:
    """The inference gap as a stacked bar of its approximation and amortization parts, beside Cremer et al.'s."""
    fig, ax = _plt().subplots(figsize=(5, 4))
    for i, g in enumerate((gaps, CREMER_MNIST)):
        ax.bar(i, g["approximation_gap"], color="tab:orange", label="approximation" if i == 0 else None)
        ax.bar(i, g["amortization_gap"], bottom=g["approximation_gap"], color="tab:blue",
               label="amortization" if i == 0 else None)
        ax.text(i, g["approximation_gap"] + g["amortization_gap"], f"{g['approximation_gap'] + g['amortization_gap']:.2f}",
                ha="center", va="bottom")
    ax.set_xticks([0, 1], ["this run", "Cremer et al. 2018\n(MNIST, FFG: about\n1.3-1.5 nats each)"])
    ax.set(ylabel="nats per data point", title="inference gap = approximation + amortization")
    ax.legend()
    return _save(fig, path)


def ais_sandwich(ais: dict, per_point: dict[str, np.ndarray], path: Path) -> Path:
    """Left: the BDMC bounds on simulated data against the annealing steps. Right: AIS against IS on
    the real points that got AIS."""
    fig, (left, right) = _plt().subplots(1, 2, figsize=(10, 4))
    bdmc = ais.get("bdmc")
    if isinstance(bdmc, list) and bdmc:
        steps = [b["steps"] for b in bdmc]
        lower, upper = [b["lower"] for b in bdmc], [b["upper"] for b in bdmc]
        left.plot(steps, lower, "o-", label="forward AIS (stochastic lower bound)")
        left.plot(steps, upper, "s-", label="reverse AIS (stochastic upper bound)")
        left.fill_between(steps, lower, upper, alpha=0.15)
        left.set_xscale("log")
        left.set_xticks(steps, [str(t) for t in steps])
        left.minorticks_off()
        left.legend(fontsize=8)
    else:
        left.text(0.5, 0.5, str(bdmc or "no BDMC run"), ha="center", va="center", wrap=True, fontsize=8)
    left.set(xlabel="annealing steps T", ylabel="mean log p(x) of simulated points (nats)", title="BDMC sandwich")
    has = np.isfinite(per_point.get("log_px_ais", np.array([])))
    if has.any():
        a, b = per_point["log_px_ais"][has], per_point["log_px_is"][has]
        right.scatter(a, b, s=8)
        lims = [min(a.min(), b.min()), max(a.max(), b.max())]
        right.plot(lims, lims, "k--", lw=1, label="IS = AIS")
        right.legend(fontsize=8)
    right.set(xlabel=f"log p(x), AIS (T={ais['steps']})", ylabel="log p(x), IS with the guide",
              title=f"real points: IS - AIS = {ais['is_minus_ais']:+.2f} nats on average")
    return _save(fig, path)


def save_figures(result, directory: Path, model=None, event_shape: tuple[int, ...] = ()) -> list[Path]:
    """Write every figure that applies into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    s, out = result.summary, []
    if "khat" in result.per_point:
        out.append(khat_histogram(result.per_point["khat"], s["samples"], inside(directory, "khat.png")))
    out.append(kl_per_dimension(s["latents"], inside(directory, "kl_per_dim.png")))
    for site, means in result.draws.posterior_mean.items():
        out.append(latent_map(means, result.y, site, inside(directory, f"latent_map_{site}.png")))
    if model is not None:
        out.append(reconstructions(model, result, inside(directory, "reconstructions.png")))
        out.append(traversals(model, result, s["latents"], inside(directory, "traversals.png")))
    if isinstance(s.get("gaps"), dict):
        out.append(gap_bar(s["gaps"], inside(directory, "gaps.png")))
    if isinstance(s.get("ais"), dict):
        out.append(ais_sandwich(s["ais"], result.per_point, inside(directory, "ais_bdmc.png")))
    return [p for p in out if p is not None]
