"""Active units and posterior collapse on a trained VAE, and on one whose encoder ignores x for some coordinates."""

import math

import pyro
import torch

from ppl_models.diagnostics.draws import draw_posterior
from ppl_models.diagnostics.latents import site_usage
from ppl_models.train import RunDir, fit


def test_a_trained_vae_has_between_0_and_d_active_units_and_a_frozen_encoder_collapses(tmp_path, tiny_run_config, digits):
    config = tiny_run_config(epochs=3)
    model = fit(RunDir(tmp_path), config, digits, progress=False).eval()
    x = digits.test.x[:100]
    pyro.set_rng_seed(0)
    (usage,) = site_usage(draw_posterior(model.model, model.guide, x, num_samples=20))
    assert usage.dims == 4 and 0 <= usage.active_units <= 4 and len(usage.kl_per_dim) == 4

    # Freeze the encoder's output for coordinates 1..3 to q = N(0, 1) = the prior, whatever x is.
    last = model.encoder.net[-1]
    with torch.no_grad():
        for i in (1, 2, 3):
            for row in (i, 4 + i):  # loc row, raw-scale row
                last.weight[row].zero_()
            last.bias[i] = 0.0
            last.bias[4 + i] = math.log(math.e - 1)  # softplus(.) = 1
    (collapsed,) = site_usage(draw_posterior(model.model, model.guide, x, num_samples=20))
    assert collapsed.collapsed == [1, 2, 3] and max(collapsed.kl_per_dim[1:]) < 1e-4
    assert collapsed.active_units == (1 if collapsed.activity[0] > 0.01 else 0)
    assert max(collapsed.activity[1:]) < 1e-12
