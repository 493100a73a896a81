"""Improved precision and recall (k = 3): identical sets score 1, far-apart sets 0, and a hand-worked
one-dimensional case where a squeezed copy of the data has full precision and 0.7 recall."""

import pytest
import torch

from ppl_models.evaluate.precision_recall import knn_radii, precision_recall


def test_identical_sets_have_precision_and_recall_one():
    f = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    r = precision_recall(f, f.clone())
    assert (r.precision, r.recall, r.k) == (1.0, 1.0, 3)


def test_disjoint_far_apart_sets_have_precision_and_recall_zero():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(200, 8, generator=g), torch.randn(150, 8, generator=g) + 100.0
    r = precision_recall(real, fake)
    assert (r.precision, r.recall) == (0.0, 0.0)


def test_knn_radii_by_hand():
    line = torch.arange(10.0).unsqueeze(1)  # 0, 1, ..., 9
    # third nearest other point: the ends reach 3 away, every other point 2
    assert knn_radii(line, 3).tolist() == [3.0] + [2.0] * 8 + [3.0]
    assert knn_radii(line, 1).tolist() == [1.0] * 10


def test_a_squeezed_copy_has_full_precision_and_partial_recall():
    real = torch.arange(10.0).unsqueeze(1)  # 0..9: its balls cover [-3, 12]
    fake = 0.5 * real  # 0, 0.5, ..., 4.5: radii 1.5 at the ends, 1.0 inside, so its balls cover [-1.5, 6]
    r = precision_recall(real, fake)
    assert r.precision == 1.0  # every fake point is in [-3, 12]
    assert r.recall == pytest.approx(0.7)  # real points 0..6 are in [-1.5, 6]; 7, 8, 9 are not
    swapped = precision_recall(fake, real)
    assert (swapped.precision, swapped.recall) == (pytest.approx(0.7), 1.0)


def test_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"1 <= k < N, got k=3 and shape \(3, 2\)"):
        precision_recall(torch.zeros(3, 2), torch.zeros(10, 2))
    with pytest.raises(ValueError, match=r"real \(10, 2\) and generated \(10, 3\)"):
        precision_recall(torch.zeros(10, 2), torch.zeros(10, 3))
