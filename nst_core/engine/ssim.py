"""SSIM of Gram matrices against a fixed target, fast on every device.

The same quantity as ``pytorch_msssim.ssim(X, Y, data_range, win_size, win_sigma)`` (Wang et al. 2004:
Gaussian window, valid filtering, K1 = 0.01, K2 = 0.03), restructured because the engine computes it
for five C x C Grams on every iteration:
- the Gaussian blur runs as two depthwise 1-D convolutions, several times faster than pytorch_msssim's
  grouped 2-D convolution of a one-channel image (benchmarks/README.md; tests/engine/test_losses.py
  holds the two equal);
- the target's mean and variance maps are blurred once, not on every call.
"""

import torch
import torch.nn.functional as F
from torch import nn

K1, K2 = 0.01, 0.03


def gaussian_window(size=11, sigma=1.5):
    coords = torch.arange(size, dtype=torch.float32) - size // 2
    window = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return window / window.sum()


def blur(maps, window):
    """Valid Gaussian filtering of a stack of maps (M x H x W) along both axes."""
    count, height, width = maps.shape
    size = window.numel()
    kernel = window.to(maps).view(1, 1, size)
    rows = F.conv1d(maps.reshape(1, count * height, width), kernel.expand(count * height, 1, size),
                    groups=count * height)
    narrow = width - size + 1
    cols = rows.reshape(count, height, narrow).transpose(1, 2).reshape(1, count * narrow, height)
    out = F.conv1d(cols, kernel.expand(count * narrow, 1, size), groups=count * narrow)
    return out.reshape(count, narrow, height - size + 1).transpose(1, 2)


class GramSSIM(nn.Module):
    """``forward(x)``: mean SSIM of the C x C image ``x`` (any leading dims of size 1) against ``target``."""

    def __init__(self, target, data_range=1.0, window=11, sigma=1.5):
        super().__init__()
        target = target.detach().float().reshape(-1, *target.shape[-2:])[0]
        if min(target.shape) < window:
            raise ValueError(f"a {tuple(target.shape)} image is smaller than the {window}-pixel SSIM window")
        self.register_buffer("window", gaussian_window(window, sigma), persistent=False)
        self.c1 = (K1 * data_range) ** 2
        self.c2 = (K2 * data_range) ** 2
        mu_y, yy = blur(torch.stack([target, target * target]), self.window)
        self.register_buffer("target", target, persistent=False)
        self.register_buffer("mu_y", mu_y, persistent=False)
        self.register_buffer("var_y", yy - mu_y * mu_y, persistent=False)

    def forward(self, x):
        x = x.float().reshape(-1, *x.shape[-2:])[0]
        mu_x, xx, xy = blur(torch.stack([x, x * x, x * self.target]), self.window)
        var_x = xx - mu_x * mu_x
        cov = xy - mu_x * self.mu_y
        luminance = (2 * mu_x * self.mu_y + self.c1) / (mu_x * mu_x + self.mu_y * self.mu_y + self.c1)
        structure = (2 * cov + self.c2) / (var_x + self.var_y + self.c2)
        return (luminance * structure).mean()
