"""Schedules over training steps: the learning rate (``--lr-schedule``, ``--lr-warmup``) and the KL
warm-up (``--kl-warmup``).

Both are pure functions of the optimizer step ``s`` (the number of steps already taken, 0-based) and
of the steps per epoch, so the checkpoint's ``step`` is their whole state: a resumed run continues
each schedule exactly where it was, bit for bit on CPU.

**Learning rate.** The trainer sets ``lr = --lr x on_nan scale x lr_factor(s)`` before every step, in
one place (``Trainer._apply_lr``), so a schedule composes with ``--on-nan retry`` (which multiplies
the scale) and with ``--lr`` changed on resume (the schedule then scales the new base rate). A
``torch.optim.lr_scheduler.LambdaLR`` would keep its own copy of the base rate (``initial_lr`` and
``base_lrs`` in the optimizer's and its own state) that goes stale when ``--lr`` changes on resume or
a retry lowers the rate; the factor below is what such a ``LambdaLR`` lambda would return. With
t = s / steps_per_epoch (epochs done, fractional):

- ``none``: 1.
- ``cosine``: 0.5 (1 + cos(pi p)), p = (s - W) / (T - W) clamped to [0, 1], with T = epochs x
  steps_per_epoch the run's total steps and W the warm-up steps: a decay to 0 over the run (a
  resume with more ``--epochs`` stretches the rest of it).
- ``exponential``: ``lr_gamma`` ** t, i.e. lr x gamma^epoch, applied smoothly per step.
- ``burda``: Burda et al. (2015, section 5): passes i = 0..7 of 3^i epochs each, the rate 10^(-i/7)
  times ``--lr`` in pass i (the paper's 0.001 x 10^(-i/7) with the default ``--lr 1e-3``); after the
  eighth pass (3280 epochs) it stays at pass 7's rate.

``--lr-warmup W`` multiplies any of them by min(1, (s + 1) / W) (linear warm-up over W steps).

**KL warm-up** (Sonderby et al. 2016; Cremer et al. 2018): the latent sites' terms log p(z) and
log q(z | x) are weighted by beta(s) = min(1, (s + 1) / (kl_warmup x steps_per_epoch)), so the
training loss is -(E log p(x | z) + beta (E log p(z) - E log q(z | x))) and beta climbs linearly
from near 0 to 1 over ``kl_warmup`` epochs. :class:`KLWeight` does it with Pyro's handlers for any
model: it scales every latent (non-observed) sample site of both the model and the guide, as
``poutine.scale`` does (and as the beta-VAE scales its KL, multiplying with it); observed sites keep
scale 1. Sites marked ``infer={"enumerate": "parallel"}`` are summed out exactly and not weighted;
a sampled latent without ``rsample`` is refused, since scaling its score-function term would bias
the gradient of the likelihood term too. Only the training steps run under it: validation bounds,
``ppl eval`` and every diagnostic see the true ELBO.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

LR_SCHEDULES = ("none", "cosine", "exponential", "burda")
BURDA_PASSES = 8  # passes i = 0..7 of 3^i epochs


def check_schedules(tc) -> None:
    """Range checks of the schedule and early-stopping fields of a :class:`~ppl_models.train.config.TrainConfig`.

    Raises:
        ValueError: naming the field; also ``kl_warmup`` with the ``iwae`` objective, whose bound has no
            separate KL term to weight (and which refuses sites of mixed scales).
    """
    if tc.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {tc.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if not (isinstance(tc.lr_warmup, int) and tc.lr_warmup >= 0):
        raise ValueError(f"lr_warmup must be a non-negative number of steps, got {tc.lr_warmup!r}")
    if not 0 < tc.lr_gamma <= 1:
        raise ValueError(f"lr_gamma must be in (0, 1], got {tc.lr_gamma}")
    if not 0 <= tc.kl_warmup < math.inf:
        raise ValueError(f"kl_warmup must be a non-negative number of epochs, got {tc.kl_warmup}")
    if tc.early_stop is not None and not (isinstance(tc.early_stop, int) and tc.early_stop >= 1):
        raise ValueError(f"early_stop must be at least 1 epoch, got {tc.early_stop!r}")
    if tc.kl_warmup and tc.objective == "iwae":
        raise ValueError("kl_warmup (--kl-warmup) weights the ELBO's KL term, and the iwae bound has none to weight "
                         "(it needs one scale for every site of a data point); use --objective elbo or "
                         "elbo-analytic with --kl-warmup, or iwae without it")


def burda_pass(epoch: int) -> int:
    """The pass i of Burda et al.'s schedule that 0-based ``epoch`` falls in (pass i starts at epoch (3^i - 1) / 2)."""
    i = 0
    while i < BURDA_PASSES - 1 and epoch >= (3 ** (i + 1) - 1) // 2:
        i += 1
    return i


def lr_factor(tc, step: int, steps_per_epoch: int) -> float:
    """The multiplier of the base learning rate for optimizer step ``step`` (0-based), per the module docstring."""
    warm = min(1.0, (step + 1) / tc.lr_warmup) if tc.lr_warmup else 1.0
    if tc.lr_schedule == "cosine":
        total, w = tc.epochs * steps_per_epoch, tc.lr_warmup
        p = min(1.0, max(0.0, (step - w) / max(1, total - w)))
        return warm * 0.5 * (1.0 + math.cos(math.pi * p))
    if tc.lr_schedule == "exponential":
        return warm * tc.lr_gamma ** (step / steps_per_epoch)
    if tc.lr_schedule == "burda":
        return warm * 10.0 ** (-burda_pass(step // steps_per_epoch) / 7)
    return warm


def lr_scheduled(tc) -> bool:
    """Whether the learning rate changes from step to step (else it is set only on load and retries)."""
    return tc.lr_schedule != "none" or tc.lr_warmup > 0


def kl_weight(tc, step: int, steps_per_epoch: int) -> float:
    """beta for optimizer step ``step`` (0-based): min(1, (step + 1) / (kl_warmup x steps_per_epoch)), else 1."""
    if not tc.kl_warmup:
        return 1.0
    return min(1.0, (step + 1) / (tc.kl_warmup * steps_per_epoch))


class KLWeight(Messenger):
    """Scale every latent sample site (model and guide alike) by ``weight``; observed sites, enumerated
    sites and plates' subsample sites are left alone (see the module docstring).

    Raises:
        ValueError: a latent site is sampled without ``rsample`` (e.g. a discrete latent not enumerated).
    """

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight

    def _process_message(self, msg) -> None:
        if (msg["type"] != "sample" or msg["is_observed"] or site_is_subsample(msg)
                or msg["infer"].get("enumerate") == "parallel"):
            return
        if not getattr(msg["fn"], "has_rsample", False):
            raise ValueError(f"--kl-warmup weights the reparameterized latent sites, but site {msg['name']!r} is "
                             f"sampled without rsample; mark it infer={{'enumerate': 'parallel'}} or train "
                             f"without --kl-warmup")
        msg["scale"] = self.weight * msg["scale"]


def kl_annealing(tc, step: int, steps_per_epoch: int):
    """The handler to run step ``step`` under: :class:`KLWeight` during the warm-up, else a no-op context."""
    weight = kl_weight(tc, step, steps_per_epoch)
    return KLWeight(weight) if weight < 1.0 else nullcontext()
