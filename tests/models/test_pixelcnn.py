"""PixelCNN: the masks are causal (gradients), the NLL is the sum of the per-pixel conditionals a slow
reference loop computes, sampling with every pixel but one fixed reproduces that pixel's conditional,
the mask is applied functionally, and the config and shapes are checked."""

import pytest
import torch

from ppl_models.models.pixel_likelihoods import LEVELS
from ppl_models.models.masked_conv import MaskedConv2d, causal_mask
from ppl_models.models.pixelcnn import GatedLayer, PixelCNNConfig
from autoregressive_reference import reference_log_prob
from ppl_models.registry import build_model, model_config

H, W = 6, 5
POSITIONS = [0, 1, 4, 7, 12, 17, 29]  # raster indices: the first, first-row, row starts and ends, the last


def make(likelihood="bernoulli", gated=False, shape=(H, W), **fields):
    torch.manual_seed(0)
    fields = {"channels": 8, "layers": 2, **fields}
    return build_model("pixelcnn", model_config("pixelcnn", likelihood=likelihood, gated=gated, **fields), shape)


def dependence(f, i: int, shape=(H, W)) -> torch.Tensor:
    """Which input pixels (raster order) the output at pixel ``i`` of ``f`` has a nonzero gradient for."""
    x = torch.rand(1, *shape, dtype=torch.float64, requires_grad=True)
    r, c = divmod(i, shape[1])
    (grad,) = torch.autograd.grad(f(x)[0, r, c].sum(), x)
    return grad.reshape(-1) != 0


def test_the_masks_hide_the_centre_for_type_a_only():
    assert causal_mask(3, 3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert causal_mask(3, 3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="mask_type must be 'A' or 'B'"):
        causal_mask(3, 3, "C")


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("i", POSITIONS)
def test_one_masked_layer_sees_only_the_pixels_before_it(mask_type, i):
    torch.manual_seed(0)
    conv = MaskedConv2d(1, 4, 5, mask_type).double()
    depends = dependence(lambda x: conv(x.unsqueeze(1)).permute(0, 2, 3, 1), i)
    allowed = torch.arange(H * W) < (i if mask_type == "A" else i + 1)  # A: pixels < i; B: pixels <= i
    assert not depends[~allowed].any()
    assert depends[i] == (mask_type == "B")  # type B sees the centre, type A does not
    r, c = divmod(i, W)  # and every allowed pixel inside the 5x5 window is seen
    window = torch.tensor([abs(j // W - r) <= 2 and abs(j % W - c) <= 2 for j in range(H * W)])
    assert torch.equal(depends, allowed & window)


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("i", POSITIONS)
def test_the_whole_network_is_causal(gated, i):
    net = make("logistic", gated).net.double()
    depends = dependence(net, i)
    assert not depends[i:].any()  # pixel i's outputs depend on pixels < i only
    # and on earlier pixels (below the first row: the first row's features are nearly constant at
    # initialization, and the head's ReLUs can zero their gradients)
    assert i < W or depends[:i].any()


def test_the_gated_stacks_have_no_blind_spot():
    # pixel (4, 2) of a 5x7 image with 3x3 kernels and 4 layers: every earlier pixel within reach
    # of the receptive field (one row and one column per layer) is seen, including the upper right
    shape, i = (5, 7), 4 * 7 + 2
    depends = dependence(make("bernoulli", True, shape, layers=4, kernel=3).net.double(), i, shape)
    assert depends[:i].all() and not depends[i:].any()
    blind = dependence(make("bernoulli", False, shape, layers=4, kernel=3).net.double(), i, shape)
    assert not blind[:i].all()  # masked 3x3 stacks miss pixels up and to the right (the blind spot)


def test_the_mask_is_applied_in_the_forward_pass_not_written_into_the_weight():
    conv = MaskedConv2d(1, 2, 3, "A")
    before = conv.weight.detach().clone()
    conv(torch.rand(2, 1, 4, 4)).sum().backward()
    assert torch.equal(conv.weight.detach(), before) and (before[..., 2, :] != 0).all()  # weights stay unmasked
    assert (conv.weight.grad * (1 - conv.mask) == 0).all()  # masked weights get no gradient
    assert "mask" not in conv.state_dict()  # rebuilt from the config, not saved


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical", "logistic"])
def test_the_nll_is_the_sum_of_the_per_pixel_conditionals(likelihood, gated):
    model = make(likelihood, gated).double()
    x = torch.rand(3, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = x.round() if likelihood == "bernoulli" else (x * 255).round() / 255
    with torch.no_grad():
        assert torch.allclose(model.distribution(3).log_prob(x), reference_log_prob(model, x), atol=1e-9)


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical", "logistic"])
def test_sampling_one_free_pixel_reproduces_its_conditional(likelihood):
    # every pixel but (3, 2) fixed: n draws of it, compared with the network's conditional by a
    # Pearson chi-square test at level 1e-4 (fixed seed; see chi_square_p_value). The categorical head
    # is sharpened (x 25) so that its conditional is far from uniform, and drawn 4000 times (its 256
    # outputs per pixel cost memory).
    model = make(likelihood)
    n, (r, c) = (4000 if likelihood == "categorical" else 20000), (3, 2)
    if likelihood == "categorical":
        with torch.no_grad():
            model.net.head[-1].weight.mul_(25)
    image = torch.rand(1, H, W, generator=torch.Generator().manual_seed(2))
    image = image.round() if likelihood == "bernoulli" else (image * 255).round() / 255
    known = torch.ones(H, W, dtype=torch.bool)
    known[r, c] = False
    torch.manual_seed(5)
    draws = model.distribution(n).sample(given=image, known=known)
    assert torch.equal(draws[:, known], image[:, known].expand(n, -1))
    with torch.no_grad():
        out = model.net(image)[0, r, c]
        probs = model.likelihood.log_prob(out.expand(LEVELS, -1), torch.arange(LEVELS) / 255).exp()
        if likelihood == "bernoulli":
            p1 = torch.sigmoid(out[0])
            probs = torch.zeros(LEVELS)
            probs[0], probs[-1] = 1 - p1, p1
    assert probs.max() > 0.05  # far from uniform (1/256) for each likelihood
    counts = torch.bincount((draws[:, r, c] * 255).round().long(), minlength=LEVELS)
    assert chi_square_p_value(counts, probs.double()) > 1e-4
    wrong = torch.roll(probs.double(), 1)  # the test can fail: the same draws against a shifted conditional
    assert chi_square_p_value(counts, wrong) < 1e-4


def chi_square_p_value(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square test of ``counts`` against ``probs``: bins expected to get fewer than 5
    draws are pooled into one, as the chi-square approximation needs."""
    from scipy.stats import chi2

    n = int(counts.sum())
    expected = probs * n
    big = expected >= 5
    obs = torch.cat([counts[big].double(), counts[~big].sum().double().reshape(1)])
    exp = torch.cat([expected[big], expected[~big].sum().reshape(1)])
    keep = exp > 0
    stat = float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum())
    return float(chi2.sf(stat, int(keep.sum()) - 1)) if obs[~keep].sum() == 0 else 0.0

def test_the_config_and_the_shape_are_checked():
    with pytest.raises(ValueError, match="pixelcnn: kernel must be odd"):
        PixelCNNConfig(kernel=4)
    with pytest.raises(ValueError, match="pixelcnn: layers must be a whole number >= 1, got 0"):
        PixelCNNConfig(layers=0)
    with pytest.raises(ValueError, match="channels must be a whole number >= 1"):
        model_config("pixelcnn", channels=0)
    with pytest.raises(ValueError, match="gated must be true or false"):
        PixelCNNConfig(gated="yes")
    with pytest.raises(ValueError, match="unknown pixel likelihood 'gaussian'"):
        PixelCNNConfig(likelihood="gaussian")
    with pytest.raises(ValueError, match=r"pixelcnn needs one-channel 2-D images \[H, W\], got observations of shape \[64\]"):
        build_model("pixelcnn", PixelCNNConfig(channels=4, layers=1), (64,))


@pytest.mark.parametrize("shape", [(8, 8), (28, 28)])
def test_any_image_size_works_with_the_default_kernels(shape):
    model = make("bernoulli", shape=shape, layers=1)
    assert model.net(torch.zeros(2, *shape)).shape == (2, *shape, 1)
    gated = GatedLayer(1, 4, 7, first=True)
    v, h = gated(torch.zeros(2, 1, *shape), torch.zeros(2, 1, *shape))
    assert v.shape == h.shape == (2, 4, *shape)
