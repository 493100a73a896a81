"""Semi-supervised batching: hidden labels and all-labelled or all-unlabelled batches."""

import torch

from ppl_models.train.batches import hide_labels, split_batches, steps_per_epoch


def test_hide_labels_keeps_a_balanced_fixed_subset():
    y = torch.arange(100) % 10
    kept = hide_labels(y, 23, seed=3)
    known = kept != -1
    assert int(known.sum()) == 23 and torch.equal(kept[known], y[known])
    counts = torch.bincount(kept[known], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert torch.equal(kept, hide_labels(y, 23, seed=3)) and not torch.equal(kept, hide_labels(y, 23, seed=4))


def test_split_batches_never_mix_and_cover_every_point_once():
    known = torch.zeros(103, dtype=torch.bool)
    known[:17] = True
    perm = torch.randperm(103, generator=torch.Generator().manual_seed(0))
    batches = split_batches(perm, 10, known)
    assert len(batches) == steps_per_epoch(103, 10, known) == 2 + 9
    for idx, labelled in batches:
        assert bool((known[idx] == labelled).all())
    assert sorted(torch.cat([b for b, _ in batches]).tolist()) == list(range(103))
    slots = [i for i, (_, lab) in enumerate(batches) if lab]
    assert slots[0] > 0 and slots[1] - slots[0] > 3  # spread out, not bunched at the start


def test_every_label_known_or_none_known_gives_no_empty_batch():
    perm = torch.randperm(45, generator=torch.Generator().manual_seed(1))
    for known in (torch.ones(45, dtype=torch.bool), torch.zeros(45, dtype=torch.bool)):
        batches = split_batches(perm, 10, known)
        assert len(batches) == steps_per_epoch(45, 10, known) == 5
        assert all(b.numel() > 0 and lab == bool(known[0]) for b, lab in batches)
