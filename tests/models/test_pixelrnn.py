"""PixelRNN (Row LSTM): the whole network is causal (gradients) and sees the pixel above and to the
left, the Row LSTM layer is the paper's recurrence (against a direct reference), the NLL is the sum of
the per-pixel conditionals a slow reference loop computes, sampling with every pixel but one fixed
reproduces that pixel's conditional, the masks are applied functionally, and the config is checked."""

import math

import pytest
import torch
import torch.nn.functional as F

from ppl_models.models.pixelrnn import PixelRNNConfig
from ppl_models.models.masked_conv import MaskedConv2d, causal_mask
from ppl_models.models.row_lstm import MaskedRowConv, RowLSTM
from autoregressive_reference import reference_log_prob
from ppl_models.registry import build_model, model_config

H, W = 5, 6  # not square, so a transposed row and column would show
POSITIONS = [0, 1, 5, 6, 13, 20, 29]  # raster indices: the first, in the first row, its end, row starts, middle, last


def make(likelihood="bernoulli", shape=(H, W), **fields):
    torch.manual_seed(0)
    fields = {"hidden": 8, "layers": 2, **fields}
    return build_model("pixelrnn", model_config("pixelrnn", likelihood=likelihood, **fields), shape)


def dependence(net, i: int, shape=(H, W)) -> torch.Tensor:
    """Which input pixels (raster order) the outputs at pixel ``i`` have a nonzero gradient for."""
    x = torch.rand(1, *shape, dtype=torch.float64, requires_grad=True, generator=torch.Generator().manual_seed(i))
    r, c = divmod(i, shape[1])
    (grad,) = torch.autograd.grad(net(x)[0, r, c].sum(), x)
    return grad.reshape(-1) != 0


def test_the_masks_hide_the_centre_for_type_a_only():
    assert causal_mask(3, 3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert causal_mask(1, 3, "B").tolist() == [[1, 1, 0]]  # the Row LSTM's input-to-state (B)
    with pytest.raises(ValueError, match=r"odd kernel sizes, got \(1, 4\)"):
        MaskedConv2d(2, 2, (1, 4), "B")
    with pytest.raises(ValueError, match=r"odd kernel sizes, got \(1, 4\)"):
        MaskedRowConv(2, 2, 4, include_centre=True)


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("i", POSITIONS)
def test_the_whole_network_is_causal_and_sees_the_pixel_above_and_to_the_left(layers, i):
    net = make("logistic", layers=layers).net.double()
    depends = dependence(net, i)
    assert not depends[i:].any()  # pixel i's outputs depend on pixels < i only
    r, c = divmod(i, W)
    if r > 0:
        assert depends[i - W]  # the pixel directly above
    if c > 0:
        assert depends[i - 1]  # the pixel to the left
    assert i > 0 or not depends.any()  # the first pixel depends on nothing


def test_the_receptive_field_is_a_triangle_with_a_blind_spot():
    # Row LSTM (one layer, k = 3, a 3x3 input mask): pixel (4, 2) sees row r - d up to column
    # c + d + 1 at most, so the far upper right of the image is outside its field (the paper, fig. 4)
    shape, i = (5, 9), 4 * 9 + 2
    depends = dependence(make("bernoulli", shape, layers=1, input_kernel=3).net.double(), i, shape).reshape(shape)
    assert depends[3, 2] and depends[0, 2] and depends[4, :2].all()
    assert not depends[1, 8] and not depends[3, 5]  # too far right of the triangle


def _reference_row_lstm(layer: RowLSTM, x: torch.Tensor) -> torch.Tensor:
    """The Row LSTM equations written directly (van den Oord et al. 2016, eq. 3): per row r,
    [o, f, i, g] = K_ss conv1d h_{r-1} + (K_is * mask) conv2d x, then c_r and h_r."""
    b, _, height, width = x.shape
    kernel = layer.input_to_state.weight.unsqueeze(2) * torch.tensor([[1.0, 1.0, 0.0]], dtype=x.dtype)  # [4h, C, 1, 3]
    is_ = F.conv2d(x, kernel, layer.input_to_state.bias, padding=(0, 1))
    h = torch.zeros(b, layer.hidden, width, dtype=x.dtype)
    c = torch.zeros_like(h)
    out = []
    for r in range(height):
        gates = F.conv1d(h, layer.state_to_state.weight, padding=1) + is_[:, :, r]
        o, f, i, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        out.append(h)
    return torch.stack(out, dim=2)


def test_the_row_lstm_layer_is_the_papers_recurrence():
    torch.manual_seed(0)
    layer = RowLSTM(3, 4, kernel=3).double()
    x = torch.randn(2, 3, H, W, dtype=torch.float64)
    channels_last = layer(x.permute(0, 2, 3, 1))  # the layer works on [B, H, W, C]
    assert torch.allclose(channels_last.permute(0, 3, 1, 2), _reference_row_lstm(layer, x), atol=1e-12)


def test_the_mask_is_applied_in_the_forward_pass_not_written_into_the_weight():
    model = make()
    conv = model.net.lstms[0].input_to_state
    before = conv.weight.detach().clone()
    model.distribution(2).log_prob(torch.rand(2, H, W).round()).sum().backward()
    assert torch.equal(conv.weight.detach(), before) and (before[..., 2] != 0).all()  # weights stay unmasked
    assert (conv.weight.grad[..., 2] == 0).all()  # masked weights get no gradient
    assert (model.net.input.weight.grad * (1 - model.net.input.mask) == 0).all()
    assert not any(k.endswith("mask") for k in model.state_dict())  # rebuilt from the config, not saved


def test_cropping_the_rows_below_changes_nothing():
    # the sampler runs the net on rows <= r only (rows_above_only); the outputs there must be the same
    net = make("categorical").net.double()
    x = torch.rand(3, H, W, dtype=torch.float64)
    full = net(x)
    for r in range(H):
        assert torch.allclose(net(x[:, : r + 1]), full[:, : r + 1], atol=1e-12)


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical", "logistic"])
def test_the_nll_is_the_sum_of_the_per_pixel_conditionals(likelihood):
    model = make(likelihood).double()
    x = torch.rand(3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = x.round() if likelihood == "bernoulli" else (x * 255).round() / 255
    with torch.no_grad():
        lp = model.distribution(3).log_prob(x)
        assert torch.allclose(lp, reference_log_prob(model, x), atol=1e-9)
        assert (lp < 0).all()


def test_sampling_one_free_pixel_reproduces_its_conditional():
    # every pixel but (3, 2) fixed: n = 20000 draws of it; its frequency of ones must be within 5
    # standard errors of the network's P(x = 1 | x_<i) (fixed seed). The output layer is scaled so
    # that this probability is far from 1/2, and the test fails against 1 - p.
    model = make()
    with torch.no_grad():
        model.net.output[-1].weight.mul_(20)
    n, (r, c) = 20000, (3, 2)
    image = torch.rand(1, H, W, generator=torch.Generator().manual_seed(2)).round()
    known = torch.ones(H, W, dtype=torch.bool)
    known[r, c] = False
    torch.manual_seed(5)
    draws = model.distribution(n).sample(given=image, known=known)
    assert torch.equal(draws[:, known], image[:, known].expand(n, -1))
    with torch.no_grad():
        p = torch.sigmoid(model.net(image)[0, r, c, 0]).item()
    se = math.sqrt(p * (1 - p) / n)
    freq = draws[:, r, c].mean().item()
    assert abs(p - 0.5) > 0.1 and abs(freq - p) < 5 * se and abs(freq - (1 - p)) > 5 * se


def test_the_config_and_the_shape_are_checked():
    with pytest.raises(ValueError, match="pixelrnn: kernel must be odd"):
        PixelRNNConfig(kernel=4)
    with pytest.raises(ValueError, match="pixelrnn: layers must be a whole number >= 1, got 0"):
        PixelRNNConfig(layers=0)
    with pytest.raises(ValueError, match="hidden must be a whole number >= 1"):
        model_config("pixelrnn", hidden=0)
    with pytest.raises(ValueError, match="pixelrnn: input_kernel must be a whole number >= 1, got 2.5"):
        PixelRNNConfig(input_kernel=2.5)
    with pytest.raises(ValueError, match="unknown pixel likelihood 'gaussian'"):
        PixelRNNConfig(likelihood="gaussian")
    with pytest.raises(ValueError, match=r"pixelrnn needs one-channel 2-D images \[H, W\], got observations of shape"):
        build_model("pixelrnn", PixelRNNConfig(hidden=4, layers=1), (64,))
    with pytest.raises(ValueError, match=r"images \[B, H, W\], got a tensor of shape \[2, 1, 8, 8\]"):
        make().net(torch.zeros(2, 1, 8, 8))


@pytest.mark.parametrize("shape", [(8, 8), (28, 28)])
def test_the_defaults_work_at_8x8_and_28x28(shape):
    torch.manual_seed(0)
    model = build_model("pixelrnn", PixelRNNConfig(), shape)
    x = torch.rand(2, *shape).round()
    assert model.net(x).shape == (2, *shape, 1)
    assert torch.isfinite(model.distribution(2).log_prob(x)).all()
