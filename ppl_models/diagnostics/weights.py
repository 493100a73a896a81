"""Is the importance-sampled log-likelihood trustworthy? Pareto k-hat, ESS and PSIS, per data point.

For each data point the S log weights log w_s = log p(x, z_s) - log q(z_s | x) are one
importance-sampling problem. Fitting a generalized Pareto distribution to the largest weights
gives its shape k-hat (Yao et al. 2018, "Yes, but did it work?"; Vehtari et al. 2024, "Pareto
smoothed importance sampling"): for k-hat < 0.5 the weights have finite variance and the estimate
converges fast; between 0.5 and 0.7 it converges slowly; above 0.7 the estimate is unreliable at
any practical S. The loo package refines the 0.7 threshold by sample size: min(1 - 1/log10 S, 0.7).
Pyro's ``psis_diagnostic`` sums the data plate into one weight and so gives one k for a whole data
set; here every data point gets its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ppl_models.evaluate.arviz_adapter import psislw

GOOD_K = 0.5  # below: finite variance, fast convergence
BAD_K = 0.7  # above: the estimate is unreliable


def sample_size_threshold(num_samples: int) -> float:
    """The loo package's k-hat threshold for S draws: min(1 - 1/log10 S, 0.7)."""
    return min(1.0 - 1.0 / math.log10(num_samples), BAD_K) if num_samples > 1 else -math.inf


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """ESS = 1 / sum_s w~_s^2 of the self-normalized weights, per column of ``log_w`` ``[S, N]``."""
    return (2 * log_w.logsumexp(0) - (2 * log_w).logsumexp(0)).exp()


@dataclass(frozen=True)
class WeightDiagnostics:
    """Per-data-point weight diagnostics (numpy arrays ``[N]``)."""

    khat: np.ndarray  # Pareto shape of the upper tail of the weights
    ess: np.ndarray  # effective sample size of the normalized weights (1..S)
    log_px_is: np.ndarray  # logsumexp_s log w_s - log S, the plain IS estimate
    log_px_psis: np.ndarray  # the same with Pareto-smoothed weights
    num_samples: int  # S


def weight_diagnostics(log_w: torch.Tensor) -> WeightDiagnostics:
    """k-hat, ESS and the plain and PSIS estimates of log p(x) from log weights ``[S, N]``."""
    smoothed, khat = psislw(log_w)
    s = log_w.shape[0]
    lw = log_w.double()
    log_px_is = (lw.logsumexp(0) - math.log(s)).cpu().numpy()
    log_px_psis = torch.from_numpy(smoothed).logsumexp(0).numpy() - math.log(s)
    return WeightDiagnostics(khat, effective_sample_size(lw).cpu().numpy(), log_px_is, log_px_psis, s)


@dataclass(frozen=True)
class KhatSummary:
    """k-hat over a set of data points: the fraction in each band and the worst points."""

    num_samples: int  # S, draws per point
    threshold: float  # the sample-size threshold min(1 - 1/log10 S, 0.7)
    good: float  # fraction with k-hat < 0.5
    ok: float  # fraction with 0.5 <= k-hat <= 0.7
    bad: float  # fraction with k-hat > 0.7
    above_threshold: float  # fraction with k-hat above the sample-size threshold
    mean: float  # mean k-hat
    quantiles: dict[str, float]  # 5%, 25%, 50%, 75%, 95%
    worst: list[dict]  # the five largest: {"index", "khat", "ess"}

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def summarize_khat(w: WeightDiagnostics, rows: np.ndarray | None = None, worst: int = 5) -> KhatSummary:
    """Band fractions, quantiles and the ``worst`` points of ``w.khat`` (indexed by ``rows`` if given)."""
    k = w.khat
    rows = np.arange(len(k)) if rows is None else np.asarray(rows)
    order = np.argsort(-k)[:worst]
    return KhatSummary(
        num_samples=w.num_samples, threshold=sample_size_threshold(w.num_samples),
        good=float(np.mean(k < GOOD_K)), ok=float(np.mean((k >= GOOD_K) & (k <= BAD_K))),
        bad=float(np.mean(k > BAD_K)), above_threshold=float(np.mean(k > sample_size_threshold(w.num_samples))),
        mean=float(k.mean()), quantiles=quantiles(k),
        worst=[{"index": int(rows[i]), "khat": float(k[i]), "ess": float(w.ess[i])} for i in order],
    )


def quantiles(values: np.ndarray) -> dict[str, float]:
    """The 5, 25, 50, 75 and 95% quantiles of ``values``, keyed ``"q05"`` ... ``"q95"``."""
    return {f"q{int(q * 100):02d}": float(np.quantile(values, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
