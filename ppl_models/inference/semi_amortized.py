"""Semi-amortized variational inference (Kim et al. 2018, "Semi-Amortized Variational Autoencoders").

The encoder proposes lambda_0 = (loc, log scale) for each data point; N gradient steps on that
data point's ELBO refine it,

    lambda_{t+1} = lambda_t + lr * grad_lambda ELBO(x; theta, lambda_t),   (the step's norm capped at MAX_STEP)

and the model is trained on the bound at lambda_N. Training backpropagates through the refinement
(with second derivatives), so the encoder learns to propose a good starting point for it, as in
SA-VAE. At test time the same refinement runs with the model frozen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from ppl_models.inference.local_guide import LatentSite, LocalGuide, LocalParams, guide_params, latent_sites
from ppl_models.inference.strategy import Strategy, register_strategy, svi_step
from ppl_models.objectives.reparam_elbo import ReparamELBO

if TYPE_CHECKING:
    from ppl_models.train.config import TrainConfig

DEFAULT_STEPS = 10  # refinement steps per batch (Kim et al. use 10-20)
DEFAULT_LR = 1e-2  # refinement step size
MAX_STEP = 1.0  # largest change of one data point's (loc, log scale) per step, in norm (Kim et al. clip too)


def refine(module: torch.nn.Module, x: torch.Tensor, sites: list[LatentSite], params: LocalParams, steps: int,
           lr: float, create_graph: bool) -> LocalParams:
    """Take ``steps`` gradient-ascent steps of size ``lr`` on each data point's ELBO from ``params``.

    The ELBO is single-sample with the KL in closed form where torch knows it. Each data point's
    step is scaled down to norm ``MAX_STEP`` if longer, so a steep likelihood (a Gaussian with a
    small scale) cannot throw its log scale to infinity. With ``create_graph`` the result stays
    differentiable with respect to ``params`` and the model (for training through the
    refinement); otherwise it is detached.

    Args:
        module: the model, with a Pyro ``model(x)``.
        x: a batch ``[B, ...]``.
        sites: the model's latent sites.
        params: starting ``(loc, log_scale)`` per site, ``[B, ...]`` each.
        steps: number of refinement steps.
        lr: step size.
        create_graph: keep the graph through the steps.
    """
    elbo = ReparamELBO(analytic_kl=True)
    names = list(params)
    flat = [t for name in names for t in params[name]]
    if not create_graph:
        flat = [t.detach().requires_grad_() for t in flat]
    for _ in range(steps):
        loss = elbo.differentiable_loss(module.model, LocalGuide(sites, _pairs(names, flat)), x)
        grads = torch.autograd.grad(loss, flat, create_graph=create_graph)
        flat = [t - step for t, step in zip(flat, _capped_steps(grads, lr))]
        if not create_graph:
            flat = [t.detach().requires_grad_() for t in flat]
    if not create_graph:
        flat = [t.detach() for t in flat]
    return _pairs(names, flat)


def _capped_steps(grads: list[torch.Tensor], lr: float) -> list[torch.Tensor]:
    steps = [lr * g for g in grads]
    norm = sum(step.pow(2).flatten(1).sum(1) for step in steps).sqrt()  # one norm per data point
    factor = (MAX_STEP / norm.clamp_min(1e-12)).clamp(max=1.0)
    return [step * factor.reshape(-1, *([1] * (step.dim() - 1))) for step in steps]


def _pairs(names: list[str], flat: list[torch.Tensor]) -> LocalParams:
    return {name: (flat[2 * i], flat[2 * i + 1]) for i, name in enumerate(names)}


@register_strategy("semi-amortized", "encoder output refined by N gradient steps per data point (Kim et al. 2018)")
class SemiAmortized(Strategy):
    """Semi-amortized SVI: refine the encoder's q(z | x) by ``local_steps`` gradient steps of size ``local_lr``.

    Args:
        module: the model; its guide's sites must be diagonal Normals (the encoder guides are).
        config: training configuration (``local_steps``, default 10; ``local_lr``, default 1e-2).
        train_x: the training data.
    """

    def __init__(self, module: torch.nn.Module, config: TrainConfig, train_x: torch.Tensor):
        super().__init__(module, config, train_x)
        self.sites = latent_sites(module, train_x)
        self.steps = config.local_steps or DEFAULT_STEPS
        self.lr = config.local_lr or DEFAULT_LR

    def step(self, objective, module, optimizer, x, idx):
        """Refine the encoder's output, then step on the refined bound, backpropagating through the refinement."""
        params = refine(module, x, self.sites, guide_params(module, x, self.sites), self.steps, self.lr, True)
        return svi_step(objective, module, optimizer, x, guide=LocalGuide(self.sites, params))

    def guide_for(self, module: torch.nn.Module, x: torch.Tensor) -> Callable:
        """The refined guide for ``x`` with the model frozen."""
        with torch.enable_grad():
            start = {k: (a.detach(), b.detach()) for k, (a, b) in guide_params(module, x, self.sites).items()}
            return LocalGuide(self.sites, refine(module, x, self.sites, start, self.steps, self.lr, False))
