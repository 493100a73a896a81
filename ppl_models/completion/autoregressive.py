"""Completion with an autoregressive model (PixelCNN, PixelRNN): ancestral sampling of the hidden pixels.

The model is p(x) = prod_i p(x_i | x_<i) in raster order (van den Oord et al. 2016, "Pixel Recurrent
Neural Networks"). Drawing the pixels in that order with the observed ones clamped gives the proposal

    q(x_h) = prod_{i hidden} p(x_i | x_<i),   so that   p(x_obs, x_h) / q(x_h) = prod_{i observed} p(x_i | x_<i).

- **Exact** (every observed pixel of the image precedes every hidden one, e.g. the bottom half
  hidden): the product over observed pixels does not depend on x_h, so q is p(x_h | x_obs) itself,
  and log p(x_h | x_obs) = sum over hidden i of log p(x_i | x_<i), from one forward pass on the true image.
- **Importance resampling** otherwise (e.g. the top half hidden; Rubin 1988, "Using the SIR algorithm
  to simulate posterior distributions"): M proposals per image with log w = sum over observed i of
  log p(x_i | x_<i) along each, an unbiased estimate of p(x_obs) by their mean; log p(x_h | x_obs) =
  log p(x) (exact) - log of that mean, and the completions are resampled from the M by their
  normalized weights. The mean of the weights is unbiased for p(x_obs), so its log is biased low
  (Jensen) and the estimate of log p(x_h | x_obs) biased high (optimistic), less so as M grows.

The predictive mean is Rao-Blackwellized where that is valid: at a hidden pixel after every observed
one, p(x_i | x_<i, x_obs) = p(x_i | x_<i), so each draw contributes its conditional mean E[x_i | x_<i];
at a hidden pixel with observed pixels after it (only in the resampling case) the weight depends on
x_i itself, so each proposal contributes its drawn value (the self-normalized IS estimate).
"""

from __future__ import annotations

import math
import time

import torch
from tqdm.auto import tqdm

from ppl_models.completion.method import Completion, CompletionMethod, CompletionSettings, paste, register_method
from ppl_models.models.autoregressive import AutoregressiveImage

ROWS_PER_BATCH_IMAGE = 8  # images through the network per pass: settings.batch_size * this (draws or proposals)


def observed_first(hidden: torch.Tensor) -> torch.Tensor:
    """Per image of ``hidden`` ``[N, H, W]``: whether every observed pixel precedes every hidden one in
    raster order (then ancestral sampling with the observed pixels clamped is exact). ``[N]`` bool."""
    flat = hidden.flatten(1)
    index = torch.arange(flat.shape[1], device=flat.device)
    last_observed = torch.where(flat, -1, index).amax(1)
    first_hidden = torch.where(flat, index, flat.shape[1]).amin(1)
    return last_observed < first_hidden


def after_observed(hidden: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` bool: the pixels after the image's last observed pixel in raster order, where
    p(x_i | x_<i, x_obs) = p(x_i | x_<i)."""
    flat = hidden.flatten(1)
    index = torch.arange(flat.shape[1], device=flat.device)
    last_observed = torch.where(flat, -1, index).amax(1, keepdim=True)
    return (index > last_observed).reshape(hidden.shape)


@torch.no_grad()
def ancestral_pool(dist: AutoregressiveImage, x: torch.Tensor, hidden: torch.Tensor,
                   m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``m`` ancestral draws per image with the observed pixels clamped (van den Oord et al. 2016's
    sampling, pixel by pixel in raster order), and what each gives.

    Args:
        dist: p(x) for the batch (batch shape ``[B]``).
        x: images ``[B, H, W]``.
        hidden: ``[B, H, W]`` bool, True = drawn.
        m: draws per image.

    Returns:
        ``(draws [m, B, H, W], log_w [m, B], value [m, B, H, W])``: log_w is the sum over observed
        pixels of log p(x_i | x_<i) along each draw; value is each draw's contribution to the
        predictive mean (its conditional mean E[x_i | x_<i] after the last observed pixel, its
        drawn value before it; see the module docstring).
    """
    draws = dist.sample((m,), given=x, known=~hidden)
    out = dist.outputs(draws)  # one pass gives the per-pixel log-probabilities and conditional means
    log_p = dist.pixel.log_prob(out, draws)
    log_w = torch.where(hidden, log_p.new_zeros(()), log_p).sum((-2, -1))
    value = torch.where(after_observed(hidden), dist.pixel.mean(out), draws)
    return draws, log_w, value


@torch.no_grad()
def exact_completion(dist: AutoregressiveImage, x: torch.Tensor, hidden: torch.Tensor,
                     samples: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact completion of images whose observed pixels all precede the hidden ones: ancestral
    sampling is then p(x_h | x_obs) itself (see the module docstring).

    Returns ``(draws [S, B, H, W], mean [B, H, W], log_p_hidden [B])``: ``samples`` draws of
    p(x_h | x_obs), the Rao-Blackwellized predictive mean over them, and sum over hidden i of
    log p(x_i | x_<i) at the true image.
    """
    log_p = dist.pixel.log_prob(dist.outputs(x), x)
    log_p_hidden = torch.where(hidden, log_p, log_p.new_zeros(())).sum((-2, -1))
    draws, _, value = ancestral_pool(dist, x, hidden, samples)
    return draws, value.mean(0), log_p_hidden


@torch.no_grad()
def resampled_completion(dist: AutoregressiveImage, x: torch.Tensor, hidden: torch.Tensor, samples: int,
                         pool: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampling-importance-resampling (Rubin 1988) of ``pool`` ancestral proposals per image (see the
    module docstring).

    Returns ``(draws [S, B, H, W], mean [B, H, W], log_p_hidden [B], ess [B])``: ``samples``
    completions resampled (multinomially, with replacement) by the normalized weights, the
    weighted predictive mean, log p(x) - log mean_m w_m, and the effective sample size
    1 / sum_m wbar_m^2 of each image's pool.
    """
    proposals, log_w, value = ancestral_pool(dist, x, hidden, pool)
    log_p_observed = log_w.logsumexp(0) - math.log(pool)
    log_p_hidden = dist.log_prob(x) - log_p_observed
    weights = torch.softmax(log_w, 0)  # [M, B]
    picks = torch.multinomial(weights.T, samples, replacement=True).T  # [S, B]
    draws = proposals[picks, torch.arange(x.shape[0], device=picks.device)]
    mean = (weights[..., None, None] * value).sum(0).clamp(0, 1)  # images lie in [0, 1]; rounding may step out
    return draws, mean, log_p_hidden, 1 / weights.square().sum(0)


def _chunks(index: torch.Tensor, per_pass: int) -> list[torch.Tensor]:
    return list(index.split(max(1, per_pass))) if index.numel() else []


def _describe(exact: int, resampled: int, pool: int) -> tuple[str, str]:
    """The row's ``variant`` and ``nll_by`` for ``exact`` and ``resampled`` images."""
    sir = f"importance resampling, M={pool}"
    sir_nll = f"log p(x) exact - log p(x_obs) by IS with the ancestral proposal, M={pool}"
    exact_nll = "exact: sum over hidden i of log p(x_i | x_<i)"
    if resampled == 0:
        return "exact", exact_nll if exact else "exact: nothing hidden"
    if exact == 0:
        return sir, sir_nll
    return (f"exact where observed pixels come first, else {sir}",
            f"{exact_nll} ({exact} images); {sir_nll} ({resampled} images)")


@register_method("autoregressive", "ancestral sampling of the hidden pixels with a PixelCNN/PixelRNN: exact when "
                 "the observed pixels come first, else importance resampling")
class AutoregressiveCompletion(CompletionMethod):
    """Complete images with an autoregressive model by ancestral sampling (see the module docstring):
    exact when every observed pixel precedes the hidden ones, importance resampling of
    ``settings.autoregressive_pool`` proposals per image otherwise."""

    def not_applicable(self, module: torch.nn.Module, hidden: torch.Tensor) -> str | None:
        """A reason unless ``module`` is an exact autoregressive model whose ``distribution(n)`` is an
        :class:`AutoregressiveImage`."""
        why = "not applicable: needs an autoregressive model (pixelcnn, pixelrnn)"
        if not getattr(module, "exact_likelihood", False) or not callable(getattr(module, "distribution", None)):
            return f"{why}; {type(module).__name__} is not one"
        if not isinstance(module.distribution(1), AutoregressiveImage):
            return f"{why}; {type(module).__name__}.distribution is not an AutoregressiveImage"
        return None

    def complete(self, module: torch.nn.Module, x: torch.Tensor, hidden: torch.Tensor,
                 settings: CompletionSettings) -> list[Completion]:
        """Complete ``x`` ``[N, H, W]`` where ``hidden`` ``[N, H, W]`` is True; one :class:`Completion` row.

        Images are processed in groups of about ``settings.batch_size * ROWS_PER_BATCH_IMAGE``
        network rows (draws or proposals of several images together); an image with nothing hidden
        is returned unchanged with log p = 0.
        """
        start = time.perf_counter()
        why = self.not_applicable(module, hidden)
        if why is not None:
            raise ValueError(f"autoregressive completion: {why}")
        n, samples, pool = x.shape[0], settings.samples, settings.autoregressive_pool
        hidden = hidden.to(x.device).expand_as(x)
        some = hidden.flatten(1).any(1)
        exact = some & observed_first(hidden)
        resampled = some & ~exact
        draws = x.detach().cpu().expand(samples, *x.shape).clone()
        mean = x.detach().cpu().clone()
        log_p_hidden = torch.zeros(n, dtype=x.dtype)
        ess = torch.full((n,), float("nan"), dtype=torch.float64)
        rows = settings.batch_size * ROWS_PER_BATCH_IMAGE
        work = [(True, c) for c in _chunks(exact.nonzero().squeeze(1), rows // samples)]
        work += [(False, c) for c in _chunks(resampled.nonzero().squeeze(1), rows // pool)]
        for is_exact, index in tqdm(work, disable=None if settings.progress else True, desc="autoregressive",
                                    unit="chunk"):
            xb, hb = x[index], hidden[index]
            dist = module.distribution(len(index))
            if is_exact:
                d, m, lp = exact_completion(dist, xb, hb, samples)
            else:
                d, m, lp, e = resampled_completion(dist, xb, hb, samples, pool)
                ess[index.cpu()] = e.double().cpu()
            i = index.cpu()
            draws[:, i], mean[i], log_p_hidden[i] = d.cpu().to(x.dtype), m.cpu().to(x.dtype), lp.cpu().to(x.dtype)
        x_cpu, hidden_cpu = x.detach().cpu(), hidden.cpu()
        n_exact, n_resampled = int(exact.sum()), int(resampled.sum())
        variant, nll_by = _describe(n_exact, n_resampled, pool)
        extra: dict = {"exact_images": n_exact, "resampled_images": n_resampled,
                       "nothing_hidden": n - n_exact - n_resampled}
        if n_resampled:
            sir_ess = ess[resampled.cpu()]
            extra |= {"pool": pool, "ess_mean": sir_ess.mean().item(), "ess_min": sir_ess.min().item()}
        return [Completion(self.name, variant, paste(x_cpu, draws, hidden_cpu), paste(x_cpu, mean, hidden_cpu),
                           log_p_hidden, nll_by, time.perf_counter() - start, extra)]
