"""Pictures between the forms a run meets: files and PIL images in, tensors on the device while it
works (1 x 3 x H x W, RGB 0..255), and the finished PIL picture out.
"""

import hashlib
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import BadInput
from . import color
from .imageio import LoadedImage, load_image, to_float_rgb_alpha


def as_loaded(image, role):
    """A path, PIL image, H x W x 3/4 array or LoadedImage -> LoadedImage."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, role)
    if isinstance(image, Image.Image):
        rgb, alpha = to_float_rgb_alpha(image)
        return LoadedImage(np.ascontiguousarray(rgb), alpha, f"<{role} image>")
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] in (3, 4):
        scale = 255.0 if image.dtype.kind == "f" and image.max(initial=0) <= 1.0 else 1.0
        rgb = np.ascontiguousarray(image[:, :, :3], dtype=np.float32) * scale
        alpha = image[:, :, 3].astype(np.uint8) if image.shape[2] == 4 else None
        return LoadedImage(rgb, alpha, f"<{role} array>")
    raise BadInput(f"{role} image must be a path, a PIL image or an H x W x 3 array, not {type(image).__name__}")


def to_tensor(rgb, device):
    # contiguous: L-BFGS flattens gradients with .view(), which a permuted (strided) tensor refuses.
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def to_numpy(tensor):
    return tensor.detach().squeeze(0).permute(1, 2, 0).float().cpu().numpy()


def resize(tensor, size):
    """Bicubic resize to (width, height), antialiased when shrinking so small scales are not aliased."""
    width, height = size
    if tensor.shape[-1] == width and tensor.shape[-2] == height:
        return tensor
    shrinking = width < tensor.shape[-1] or height < tensor.shape[-2]
    return F.interpolate(tensor, size=(height, width), mode="bicubic", align_corners=False,
                         antialias=shrinking).clamp_(0, 255)


def smaller_copy(image, size):
    """``image`` shrunk to (width, height) for the pyramid's copies: bilinear with antialiasing, no
    clamping, so gradients flow through it; the content's copy is made the same way."""
    width, height = size
    return F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def finish_image(result, content, params):
    """A result tensor at the content's size -> the picture a caller gets.

    The content's colours are put back (``preserve_colors="luminance"``) and its alpha is attached.
    The final result and every preview go through here, so they look alike.
    """
    rgb = to_numpy(result)
    if params.preserve_colors == "luminance":
        rgb = color.restore_chroma(rgb, content.rgb)
    image = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    if content.alpha is not None:
        image.putalpha(Image.fromarray(content.alpha, "L"))
    return image


def bring_to_size(image, content_tensor, size, with_detail):
    """``image`` resized to ``size``; ``with_detail`` adds back the content's fine detail that the
    smaller size could not hold (the content minus its own round trip through that size)."""
    result = resize(image, size)
    if with_detail and tuple(image.shape[-2:]) != tuple(content_tensor.shape[-2:]):
        small = (image.shape[-1], image.shape[-2])
        result = (result + content_tensor - resize(resize(content_tensor, small), size)).clamp_(0, 255)
    return result


def digest(rgb, alpha):
    """A stable key for a picture's pixels (and alpha): the style cache's key across calls."""
    digest = hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16)
    if alpha is not None:
        digest.update(alpha.tobytes())
    return digest.hexdigest()
