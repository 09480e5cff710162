"""Colour preservation (Gatys et al., 2016, "Preserving Color in Neural Artistic Style Transfer").

``luminance``: transfer on luminance only (style luminance matched to the content's mean and spread)
and put the content's chroma back on the result. ``histogram``: recolour the style image so its
colour mean and covariance match the content's, then transfer as usual.
Arrays are float32 H x W x 3 RGB in 0..255.
"""

import numpy as np

# NTSC YIQ: Y is luminance, I and Q carry the colour.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]], dtype=np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(rgb):
    return rgb @ _RGB_TO_YIQ.T


def yiq_to_rgb(yiq):
    return yiq @ _YIQ_TO_RGB.T


def luminance(rgb):
    return rgb @ _RGB_TO_YIQ[0]


def grey_rgb(lum):
    return np.repeat(lum[:, :, None], 3, axis=2).astype(np.float32)


def luminance_only(content_rgb, style_rgb):
    """Grey versions of both images, the style's luminance moved to the content's mean and spread."""
    content_lum = luminance(content_rgb)
    style_lum = luminance(style_rgb)
    spread = content_lum.std() / max(float(style_lum.std()), 1e-6)
    style_lum = (style_lum - style_lum.mean()) * spread + content_lum.mean()
    return grey_rgb(content_lum), grey_rgb(np.clip(style_lum, 0, 255))


def restore_chroma(result_rgb, content_rgb):
    """The result's luminance with the content's I and Q channels."""
    yiq = rgb_to_yiq(content_rgb)
    yiq[:, :, 0] = luminance(result_rgb)
    return np.clip(yiq_to_rgb(yiq), 0, 255).astype(np.float32)


def _sqrtm(cov, inverse=False):
    values, vectors = np.linalg.eigh(cov)
    values = np.clip(values, 1e-5, None)
    power = -0.5 if inverse else 0.5
    return (vectors * values ** power) @ vectors.T


def match_color_statistics(style_rgb, content_rgb):
    """Affine recolouring of the style so its colour mean and covariance equal the content's."""
    s = style_rgb.reshape(-1, 3).astype(np.float64)
    c = content_rgb.reshape(-1, 3).astype(np.float64)
    mu_s, mu_c = s.mean(0), c.mean(0)
    transform = _sqrtm(np.cov(c, rowvar=False)) @ _sqrtm(np.cov(s, rowvar=False), inverse=True)
    out = (s - mu_s) @ transform.T + mu_c
    return np.clip(out, 0, 255).reshape(style_rgb.shape).astype(np.float32)
