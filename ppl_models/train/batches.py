"""Minibatches of an epoch, and the labels a semi-supervised run may see.

Most models see one shuffled sequence of minibatches. A semi-supervised model (labels =
"semi-supervised", e.g. M2) is given labelled and unlabelled batches separately, each all one kind,
as in Kingma et al. (2014): its program observes y in the first and sums over y in the second.
"""

from __future__ import annotations

import math

import torch

from ppl_models.models.protocol import UNKNOWN_LABEL


def hide_labels(y: torch.Tensor, keep: int, seed: int = 0) -> torch.Tensor:
    """A copy of ``y`` with all but ``keep`` labels set to ``UNKNOWN_LABEL``.

    The kept labels are spread over the classes as evenly as possible (``keep // classes`` each, the
    remainder to the first classes) and drawn with a fixed seed, so a run sees the same labels
    every time.

    Args:
        y: labels ``[N]``.
        keep: how many to keep (at most N).
        seed: seed of the draw.
    """
    if keep > y.shape[0]:
        raise ValueError(f"cannot keep {keep} labels of {y.shape[0]} training points")
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(y[y != UNKNOWN_LABEL])
    chosen = []
    per_class = [keep // len(classes) + (i < keep % len(classes)) for i in range(len(classes))] if len(classes) else []
    for c, k in zip(classes.tolist(), per_class):
        members = (y == c).nonzero().squeeze(1)
        if k > members.numel():
            raise ValueError(f"cannot keep {k} labels of class {c}: it has {members.numel()} training points")
        chosen.append(members[torch.randperm(members.numel(), generator=g)[:k]])
    out = torch.full_like(y, UNKNOWN_LABEL)
    if chosen:
        idx = torch.cat(chosen)
        out[idx] = y[idx]
    return out


def steps_per_epoch(n: int, batch_size: int, known: torch.Tensor | None) -> int:
    """Number of minibatches in an epoch (labelled and unlabelled batches counted apart if ``known``)."""
    if known is None:
        return math.ceil(n / batch_size)
    n_known = int(known.sum())
    return math.ceil(n_known / batch_size) + math.ceil((n - n_known) / batch_size)


def split_batches(perm: torch.Tensor, batch_size: int, known: torch.Tensor) -> list[tuple[torch.Tensor, bool]]:
    """An epoch's ``(indices, labelled)`` batches: the permutation's labelled and unlabelled points
    batched apart, the labelled batches spread evenly among the others.

    Args:
        perm: a permutation of the training indices (CPU).
        batch_size: points per batch.
        known: bool ``[N]``, True where the label is known.
    """
    # torch splits an empty tensor into one empty chunk: a split with no labelled (or no hidden)
    # labels has no batches of that kind at all
    labelled = [b for b in perm[known[perm]].split(batch_size) if b.numel()]
    unlabelled = [b for b in perm[~known[perm]].split(batch_size) if b.numel()]
    total = len(labelled) + len(unlabelled)
    # labelled batch j goes to slot round((j + 0.5) * total / len(labelled)) - like Bresenham's line
    slots = {min(total - 1, int((j + 0.5) * total / len(labelled))) for j in range(len(labelled))} if labelled else set()
    out, li, ui = [], iter(labelled), iter(unlabelled)
    for s in range(total):
        out.append((next(li), True) if s in slots else (next(ui), False))
    return out
