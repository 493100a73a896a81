"""The GAN losses against their formulas (Goodfellow et al. 2014) on fixed inputs."""

import pytest
import torch

from ppl_models.objectives.adversarial import (discriminator_loss, generator_loss, minimax_generator_loss,
                                               non_saturating_generator_loss)

REAL = torch.tensor([2.0, -1.0, 0.5, 8.0], dtype=torch.float64)
FAKE = torch.tensor([-3.0, 0.0, 1.5, -9.0], dtype=torch.float64)


def test_the_discriminator_loss_is_minus_the_value_of_the_game():
    d_real, d_fake = torch.sigmoid(REAL), torch.sigmoid(FAKE)
    value = torch.log(d_real).sum() + torch.log(1 - d_fake).sum()  # V(D, G) as written in the paper
    assert torch.allclose(discriminator_loss(REAL, FAKE), -value, rtol=1e-12)


def test_the_generator_losses_match_their_formulas():
    d_fake = torch.sigmoid(FAKE)
    assert torch.allclose(minimax_generator_loss(FAKE), torch.log(1 - d_fake).sum(), rtol=1e-12)
    assert torch.allclose(non_saturating_generator_loss(FAKE), -torch.log(d_fake).sum(), rtol=1e-12)
    assert generator_loss("minimax") is minimax_generator_loss
    with pytest.raises(ValueError, match="non-saturating, minimax"):
        generator_loss("wasserstein")


def test_where_d_rejects_the_samples_only_the_non_saturating_loss_has_a_gradient():
    logits = torch.tensor([-8.0], dtype=torch.float64, requires_grad=True)  # D(G(z)) = 3e-4
    (g_minimax,) = torch.autograd.grad(minimax_generator_loss(logits), logits)
    (g_ns,) = torch.autograd.grad(non_saturating_generator_loss(logits), logits)
    assert torch.allclose(g_minimax, -torch.sigmoid(logits.detach()))  # -D(G(z)): vanishes
    assert torch.allclose(g_ns, torch.sigmoid(logits.detach()) - 1)  # -(1 - D(G(z))): about -1
    assert abs(g_ns.item()) > 1000 * abs(g_minimax.item())
