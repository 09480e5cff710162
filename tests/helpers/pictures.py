"""Small test pictures with structure (content) and with statistics far from it (style)."""

import numpy as np
from PIL import Image, ImageDraw


def make_content(width=96, height=64, alpha=False):
    """A small picture with structure: a gradient sky, a sun and a house."""
    y, x = np.mgrid[0:height, 0:width]
    sky = np.stack([60 + 100 * y / height, 120 + 80 * y / height, 230 - 60 * y / height], axis=2)
    image = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.65, height * 0.1, width * 0.85, height * 0.4], fill=(250, 220, 60))
    draw.rectangle([width * 0.15, height * 0.45, width * 0.5, height * 0.95], fill=(150, 60, 40))
    draw.polygon([(width * 0.1, height * 0.45), (width * 0.32, height * 0.2), (width * 0.55, height * 0.45)],
                 fill=(90, 30, 20))
    if alpha:
        image.putalpha(Image.fromarray((255 * (x > width // 8)).astype(np.uint8) | 40, "L"))
    return image


def make_style(width=80, height=80, seed=1):
    """Diagonal coloured stripes plus noise: statistics far from the content's."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    phase = (x + y) / 6.0
    rgb = np.stack([127 + 120 * np.sin(phase), 127 + 120 * np.sin(phase + 2), 127 + 120 * np.sin(phase + 4)], 2)
    rgb += rng.normal(0, 20, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
