"""Per-data-point (non-amortized) SVI: free variational parameters phi_i for every data point.

The algorithm of the CS236 notes on latent-variable models (and of stochastic variational
inference, Hoffman et al. 2013):

1. sample a minibatch of data points x_i;
2. optimize their phi_i to convergence, phi_i* ~= argmax_phi ELBO(x_i; theta, phi), from where
   they were left the last time (a relative tolerance and a cap on the steps);
3. take a gradient step on theta with phi_i* held fixed, and go to 1.

The same fit, with theta frozen, gives posteriors for test data; run from the encoder's output
instead of the prior it measures how far the encoder is from the best q it could give.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pyro
import torch
from pyro import poutine

from ppl_models.inference.local_guide import LatentSite, LocalGuide, LocalParams, latent_sites, prior_init
from ppl_models.inference.strategy import Strategy, register_strategy, svi_step
from ppl_models.objectives.reparam_elbo import ReparamELBO

if TYPE_CHECKING:
    from ppl_models.train.config import TrainConfig

DEFAULT_MAX_STEPS = 200  # cap on the optimizer steps that fit one batch's phi_i
DEFAULT_LR = 5e-2  # Adam step size for phi_i
CHECK_EVERY = 10  # steps per convergence check (one host read-back each)


def fit_local(module: torch.nn.Module, x: torch.Tensor, sites: list[LatentSite], params: LocalParams,
              max_steps: int, lr: float, tol: float, num_particles: int = 1, window: int = CHECK_EVERY,
              halvings: int = 0) -> tuple[LocalParams, int]:
    """Maximize the ELBO of each data point in ``x`` over its own ``(loc, log_scale)``, model frozen.

    Adam runs until the mean loss over the last ``window`` steps improves on the previous
    window's by less than ``tol`` relative, or until ``max_steps``; with ``halvings`` > 0, such a
    window first halves the step size, up to ``halvings`` times, and only then ends the fit. The ELBO has ``num_particles``
    samples (one by default), with the KL in closed form where torch knows it. The model's
    parameters get no gradient.

    Args:
        module: the model, with a Pyro ``model(x)``.
        x: a batch ``[B, ...]``.
        sites: the model's latent sites.
        params: starting ``(loc, log_scale)`` per site.
        max_steps: the cap on optimizer steps.
        lr: Adam step size.
        tol: relative improvement below which the fit has converged (0: always run ``max_steps``).
        num_particles: samples of the ELBO per step (more: less noise in the stopping rule).
        window: steps per convergence check (one host read-back each).
        halvings: how often a window without progress halves the step size before the fit stops.

    Returns:
        The fitted parameters (detached) and the number of steps taken.
    """
    elbo = ReparamELBO(analytic_kl=True, num_particles=num_particles)
    names = list(params)
    leaves = [t.detach().clone().requires_grad_() for name in names for t in params[name]]
    local = {name: (leaves[2 * i], leaves[2 * i + 1]) for i, name in enumerate(names)}
    optimizer = torch.optim.Adam(leaves, lr=lr)
    previous, total, steps = None, torch.zeros((), device=x.device), 0
    with torch.enable_grad():
        while steps < max_steps:
            loss = elbo.differentiable_loss(module.model, LocalGuide(sites, local), x)
            for leaf, grad in zip(leaves, torch.autograd.grad(loss, leaves)):
                leaf.grad = grad
            optimizer.step()
            total += loss.detach()
            steps += 1
            if steps % window == 0:
                current, total = total.item() / window, torch.zeros((), device=x.device)
                if tol > 0 and previous is not None and previous - current < tol * abs(previous):
                    if halvings == 0:
                        break
                    halvings -= 1
                    for group in optimizer.param_groups:
                        group["lr"] /= 2
                previous = current
    return {name: (loc.detach(), log_scale.detach()) for name, (loc, log_scale) in local.items()}, steps


def _model_parameter_count(module: torch.nn.Module, x: torch.Tensor) -> int:
    # The parameters log p(x, z) depends on, found by differentiating it once.
    with torch.enable_grad(), pyro.validation_enabled(False):
        log_p = poutine.trace(module.model).get_trace(x).log_prob_sum()
    params = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(log_p, params, allow_unused=True)
    return sum(p.numel() for p, g in zip(params, grads) if g is not None)


@register_strategy("per-datapoint", "free parameters per data point, fitted to convergence before each model step")
class PerDatapoint(Strategy):
    """Non-amortized SVI with a table of ``(loc, log_scale)`` per training point, kept across epochs.

    Args:
        module: the model; its latent sites must be continuous and inside the data plate.
        config: training configuration (``local_steps``: cap, default 200; ``local_lr``: Adam step
            size, default 5e-2; ``local_tol``: relative tolerance).
        train_x: the training data; the table has one row per data point.
    """

    def __init__(self, module: torch.nn.Module, config: TrainConfig, train_x: torch.Tensor):
        super().__init__(module, config, train_x)
        self.sites = latent_sites(module, train_x)
        self.max_steps = config.local_steps or DEFAULT_MAX_STEPS
        self.lr = config.local_lr or DEFAULT_LR
        self.tol = config.local_tol
        self.table = prior_init(self.sites, train_x.shape[0], train_x.device, train_x.dtype)
        self.inner_steps = 0  # optimizer steps spent on phi_i in the last training step
        self.model_parameters = _model_parameter_count(module, train_x[:2])

    def step(self, objective, module, optimizer, x, idx):
        """Fit the batch's phi_i (warm-started from the table), store them, then step on theta."""
        start = {name: (loc[idx], log_scale[idx]) for name, (loc, log_scale) in self.table.items()}
        fitted, self.inner_steps = fit_local(module, x, self.sites, start, self.max_steps, self.lr, self.tol)
        for name, (loc, log_scale) in fitted.items():
            self.table[name][0][idx] = loc
            self.table[name][1][idx] = log_scale
        return svi_step(objective, module, optimizer, x, guide=LocalGuide(self.sites, fitted))

    def guide_for(self, module: torch.nn.Module, x: torch.Tensor) -> Callable:
        """Posteriors for new data ``x``: phi fitted from the prior with the model frozen."""
        start = prior_init(self.sites, x.shape[0], x.device, x.dtype)
        return LocalGuide(self.sites, fit_local(module, x, self.sites, start, self.max_steps, self.lr, self.tol)[0])

    def num_parameters(self, module: torch.nn.Module) -> int:
        """The model's parameters plus two numbers per latent dimension per training point (the
        amortized guide's network, unused here, is not counted)."""
        return self.model_parameters + sum(loc.numel() + log_scale.numel() for loc, log_scale in self.table.values())

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The per-data-point table."""
        return {f"{name}.{part}": t for name, pair in self.table.items() for part, t in zip(("loc", "log_scale"), pair)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the table (copied onto its device)."""
        for name, (loc, log_scale) in self.table.items():
            loc.copy_(state[f"{name}.loc"])
            log_scale.copy_(state[f"{name}.log_scale"])
