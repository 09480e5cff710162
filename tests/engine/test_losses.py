"""The loss terms against independent, hand-written computations."""

import math

import numpy as np
import pytest
import torch

from nst_core.engine.losses import ContentLoss, StyleLoss, TVLoss, gram_matrix


def reference_ssim(x, y, data_range=1.0, window=11, sigma=1.5):
    """SSIM of two 2-D arrays straight from Wang et al. (2004): Gaussian window, valid filtering."""
    coords = np.arange(window) - window // 2
    g = np.exp(-(coords ** 2) / (2 * sigma ** 2))
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, w = x.shape
    values = []
    for i in range(h - window + 1):
        for j in range(w - window + 1):
            px, py = x[i:i + window, j:j + window], y[i:i + window, j:j + window]
            mx, my = (kernel * px).sum(), (kernel * py).sum()
            vx = (kernel * px * px).sum() - mx * mx
            vy = (kernel * py * py).sum() - my * my
            cov = (kernel * px * py).sum() - mx * my
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def features(seed, channels=16, size=12):
    generator = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(1, channels, size, size, generator=generator))


def test_gram_matrix_matches_hand_computation():
    f = features(0, channels=4, size=3)
    flat = f[0].reshape(4, 9).numpy().astype(np.float64)
    expected = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            expected[i, j] = sum(flat[i, k] * flat[j, k] for k in range(9)) / 9
    np.testing.assert_allclose(gram_matrix(f)[0].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_masked_gram_counts_only_opaque_positions():
    f = features(1, channels=3, size=4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :, :2] = 1.0
    left = gram_matrix(f[..., :, :2].contiguous())
    torch.testing.assert_close(gram_matrix(f, mask), left)
    torch.testing.assert_close(gram_matrix(f, torch.ones(1, 1, 4, 4)), gram_matrix(f))


def test_content_loss_is_mean_squared_error_and_normalises_by_target_energy():
    target = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    x = torch.tensor([[[[1.0, 0.0], [3.0, 8.0]]]])
    raw = ContentLoss(target, normalize=False)(x)
    assert raw.item() == pytest.approx((0 + 4 + 0 + 16) / 4)
    normalised = ContentLoss(target, normalize=True)(x)
    assert normalised.item() == pytest.approx(5.0 / ((1 + 4 + 9 + 16) / 4))


def test_ssim_factor_matches_an_independent_ssim():
    a, g = features(2, channels=24), features(3, channels=24)
    target = gram_matrix(a)[0]
    loss = StyleLoss(target, normalize=False, use_ssim=True, ssim_scaling="max")
    scale = float(target.abs().max())
    expected = (1 - reference_ssim(gram_matrix(g)[0].numpy() / scale, target.numpy() / scale)) / 2
    assert loss.ssim_factor(gram_matrix(g)).item() == pytest.approx(expected, abs=1e-5)


def test_ssim_factor_is_zero_for_identical_grams_and_grows_with_difference():
    a = features(4, channels=32)
    loss = StyleLoss(gram_matrix(a)[0], normalize=False)
    assert loss.ssim_factor(gram_matrix(a)).item() == pytest.approx(0.0, abs=1e-6)
    factors = []
    for noise in (0.05, 0.2, 0.8):
        noisy = torch.relu(a + noise * torch.randn(a.shape, generator=torch.Generator().manual_seed(5)))
        factors.append(loss.ssim_factor(gram_matrix(noisy)).item())
    assert 0 < factors[0] < factors[1] < factors[2] <= 1


def test_style_loss_is_gram_error_times_factor_and_gradients_flow_through_both():
    a, g = features(6, channels=32), features(7, channels=32).requires_grad_(True)
    target = gram_matrix(a)[0]
    with_ssim = StyleLoss(target, normalize=False, use_ssim=True)
    without = StyleLoss(target, normalize=False, use_ssim=False)
    value, factor = with_ssim(g)
    plain, one = without(g)
    assert one.item() == 1.0
    expected_error = torch.mean((gram_matrix(g)[0] - target) ** 2)
    assert plain.item() == pytest.approx(expected_error.item(), rel=1e-5)
    assert value.item() == pytest.approx(plain.item() * factor.item(), rel=1e-5)
    # The factor itself has a gradient (the product is optimised, not the error alone).
    (grad_factor,) = torch.autograd.grad(factor, g, retain_graph=True)
    assert grad_factor.abs().sum() > 0
    (grad_total,) = torch.autograd.grad(value, g)
    (grad_plain,) = torch.autograd.grad(without(g)[0] * factor.detach(), g)
    assert not torch.allclose(grad_total, grad_plain)


def test_normalised_style_loss_does_not_depend_on_activation_scale():
    a, g = features(8), features(9)
    small = StyleLoss(gram_matrix(a)[0], normalize=True)(g)[0]
    large = StyleLoss(gram_matrix(a * 100)[0], normalize=True)(g * 100)[0]
    assert small.item() == pytest.approx(large.item(), rel=1e-4)


def test_tv_loss_by_hand():
    image = torch.zeros(1, 3, 2, 2)
    image[..., 0, 0] = 255.0
    # Vertical differences: one of two per column is 1, horizontal likewise: mean 0.5 each way.
    assert TVLoss()(image).item() == pytest.approx(0.5 + 0.5)
    assert math.isclose(TVLoss()(torch.full((1, 3, 4, 4), 77.0)).item(), 0.0)


@pytest.mark.parametrize("channels", [16, 64, 130])
def test_fast_gram_ssim_equals_pytorch_msssim_in_value_and_gradient(channels):
    from pytorch_msssim import ssim

    from nst_core.engine.ssim import GramSSIM

    target = gram_matrix(features(10, channels=channels))[0]
    target = target / target.max()
    x = (gram_matrix(features(11, channels=channels))[0] / target.max()).requires_grad_(True)
    fast = GramSSIM(target)(x)
    library = ssim(x[None, None], target[None, None], data_range=1.0, win_size=11, win_sigma=1.5)
    assert fast.item() == pytest.approx(library.item(), abs=1e-6)
    (g_fast,) = torch.autograd.grad(fast, x)
    (g_library,) = torch.autograd.grad(library, x)
    torch.testing.assert_close(g_fast, g_library, rtol=1e-4, atol=1e-7)


def test_both_ssim_implementations_give_the_same_style_loss():
    a, g = features(12, channels=32), features(13, channels=32)
    target = gram_matrix(a)[0]
    fast = StyleLoss(target, normalize=True, ssim_implementation="fast")(g)
    library = StyleLoss(target, normalize=True, ssim_implementation="pytorch_msssim")(g)
    assert fast[0].item() == pytest.approx(library[0].item(), rel=1e-5)
    assert fast[1].item() == pytest.approx(library[1].item(), abs=1e-6)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_gram_matrix_gradient_equals_autograds_of_the_plain_product(dtype, tolerance):
    torch.manual_seed(3)
    base = torch.rand(2, 8, 6, 5) * 3
    upstream = torch.randn(2, 8, 8)  # not symmetric: the backward must symmetrise it itself
    plain = base.clone().requires_grad_(True)
    flat = plain.reshape(2, 8, 30)
    ((flat @ flat.transpose(1, 2) / 30) * upstream).sum().backward()
    ours = base.to(dtype).requires_grad_(True)
    gram = gram_matrix(ours)
    assert gram.dtype == torch.float32
    (gram * upstream).sum().backward()
    assert ours.grad.dtype == dtype
    torch.testing.assert_close(ours.grad.float(), plain.grad, rtol=tolerance, atol=tolerance * plain.grad.abs().max())
