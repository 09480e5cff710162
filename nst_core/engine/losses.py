"""The loss terms, each a small module holding its own target (METHOD.md sections 1 and 2).

The distinctive one is :class:`StyleLoss` with ``use_ssim``: the Gram-matrix loss of a layer times
(1 - SSIM(G~, A~)) / 2, where G~ and A~ are the Gram matrices seen as one-channel C x C images.
"""

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim
from torch import nn

from .ssim import GramSSIM


class _Gram(torch.autograd.Function):
    """F F^T / n with a backward pass of one matrix product instead of autograd's two and a sum.

    G is symmetric, so dL/dF = (dG + dG^T) F / n. That product runs in F's own dtype: under bf16
    autocast the features and the convolutions' backward are bf16 already, and the float32 copy of F
    that autograd would otherwise keep for the backward pass is not kept.
    """

    @staticmethod
    def forward(ctx, flat, divisor):
        ctx.save_for_backward(flat)
        ctx.divisor = divisor
        full = flat.float()
        return full @ full.transpose(1, 2) / divisor

    @staticmethod
    def backward(ctx, grad):
        (flat,) = ctx.saved_tensors
        symmetric = (grad + grad.transpose(1, 2)).to(flat.dtype)
        return (symmetric @ flat).div_(ctx.divisor), None


def gram_matrix(features, mask=None):
    """G = F F^T / (H W) per image: N x C x H x W -> N x C x C, always in float32.

    ``mask`` (N x 1 x H x W, 0..1) weights positions, so transparent parts of a style image count
    for nothing; then the divisor is the mask's sum instead of H W.
    """
    n, c, h, w = features.shape
    if mask is None:
        return _Gram.apply(features.reshape(n, c, h * w), float(h * w))
    flat = features.float().reshape(n, c, h * w)
    weights = F.interpolate(mask.float(), size=(h, w), mode="area").reshape(n, 1, h * w)
    return (flat * weights) @ flat.transpose(1, 2) / weights.sum(dim=2, keepdim=True).clamp_min(1e-8)


class ContentLoss(nn.Module):
    """mean((F - P)^2), optionally divided by mean(P^2) so its size does not depend on the backbone."""

    def __init__(self, target, normalize):
        super().__init__()
        target = target.detach().float()
        self.register_buffer("target", target)
        self.scale = 1.0 / max(float(target.pow(2).mean()), 1e-12) if normalize else 1.0

    def forward(self, features):
        return F.mse_loss(features.float(), self.target) * self.scale


class StyleLoss(nn.Module):
    """Gram loss E = mean((G - A)^2) of one layer, times the SSIM factor (1 - SSIM(G~, A~)) / 2.

    Returns ``(loss, factor)``; ``factor`` is 1 without SSIM. Both factors carry gradients, as in the
    reference implementation, which optimises the product. ``ssim_implementation`` "fast" is
    :class:`nst_core.ssim.GramSSIM`; "pytorch_msssim" calls the library, for checking (same values, slower).
    """

    def __init__(self, target_gram, normalize, use_ssim=True, ssim_scaling="max",
                 window=11, sigma=1.5, ssim_implementation="fast"):
        super().__init__()
        target_gram = target_gram.detach().float()
        if target_gram.dim() == 2:
            target_gram = target_gram.unsqueeze(0)  # a batch of one C x C Gram
        self.register_buffer("target", target_gram)
        self.scale = 1.0 / max(float(target_gram.pow(2).mean()), 1e-12) if normalize else 1.0
        self.use_ssim = use_ssim
        # G~ = G / max|A|: entries land in about [0, 1], so SSIM's data range of 1 means what it says.
        self.ssim_divisor = max(float(target_gram.abs().max()), 1e-12) if ssim_scaling == "max" else 1.0
        self.window, self.sigma = window, sigma
        self.fast_ssim = None
        if use_ssim and ssim_implementation == "fast":
            self.fast_ssim = GramSSIM(target_gram / self.ssim_divisor, 1.0, window, sigma)

    def ssim_factor(self, gram):
        g = gram / self.ssim_divisor
        if self.fast_ssim is not None:
            similarity = self.fast_ssim(g)
        else:
            # Each N x C x C Gram is an N-image batch of one-channel C x C pictures.
            g = g.unsqueeze(1)
            a = (self.target / self.ssim_divisor).unsqueeze(1).expand_as(g)
            similarity = ssim(g, a, data_range=1.0, win_size=self.window, win_sigma=self.sigma, size_average=True)
        return (1.0 - similarity) / 2.0

    def forward(self, features):
        return self.compare(gram_matrix(features))

    def compare(self, gram):
        """The loss of a Gram matrix already computed (N x C x C, float32)."""
        error = F.mse_loss(gram, self.target.expand_as(gram)) * self.scale
        if not self.use_ssim:
            return error, torch.ones((), device=gram.device)
        factor = self.ssim_factor(gram)
        return error * factor, factor


class TVLoss(nn.Module):
    """Total variation on the [0, 1] image: mean squared difference of neighbours, both directions."""

    def forward(self, image):
        x = image / 255.0
        return (x[:, :, 1:, :] - x[:, :, :-1, :]).pow(2).mean() + (x[:, :, :, 1:] - x[:, :, :, :-1]).pow(2).mean()
