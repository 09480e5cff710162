"""Reading any image Pillow understands into RGB + alpha, and writing results atomically.

The engine works on float RGB in 0..255; alpha travels beside it untouched and is put back on the
result. Grey, palette, 16-bit, CMYK and EXIF-rotated inputs are normalised here, so nothing else
has to care.
"""

import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageOps

from ..errors import BadInput

MIN_SIDE = 16
# Pillow's own bomb guard fires at 179 MP with a message about attacks; the engine instead checks
# the header's size against free memory (``check_fits_memory``) before decoding anything.
Image.MAX_IMAGE_PIXELS = None

# What the engine holds per pixel of a full-size image, besides the network: float RGB input, the
# result, the upscaled canvas and its blend weights, uint8 copies: about 95 bytes a pixel in the
# time-to-quality benchmark's large-layer run (benchmarks/README.md).
WORKING_BYTES_PER_PIXEL = 100


@dataclass
class LoadedImage:
    rgb: np.ndarray  # float32, H x W x 3, 0..255
    alpha: Optional[np.ndarray]  # uint8, H x W, or None when fully opaque by construction
    path: str

    @property
    def size(self):
        """(width, height), as PIL counts."""
        return self.rgb.shape[1], self.rgb.shape[0]


def _open(path, role):
    if not os.path.exists(path):
        raise BadInput(f"{role} image not found: {path}")
    if os.path.isdir(path):
        raise BadInput(f"{role} image is a folder, not an image file: {path}")
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise BadInput(f"{role} image {path} is too large to open safely ({exc})") from None
    except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadInput(f"{role} image {path} is not an image this engine can read "
                       f"(PNG, JPEG, TIFF, WebP, BMP...): {exc}") from None


def check_fits_memory(width, height, role, available_bytes=None):
    """Refuse, before decoding, an image whose full-size buffers alone would not fit in memory."""
    if available_bytes is None:
        import psutil
        available_bytes = psutil.virtual_memory().available
    needed = width * height * WORKING_BYTES_PER_PIXEL
    if needed > available_bytes:
        raise BadInput(
            f"{role} image is {width}x{height} ({width * height / 1e6:.0f} MP): it needs about "
            f"{needed / 2**30:.1f} GB and {available_bytes / 2**30:.1f} GB are free; scale it down first")


def to_float_rgb_alpha(img):
    """Any Pillow mode -> (float32 RGB 0..255, uint8 alpha or None)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-/32-bit grey: Pillow's convert("L") clips instead of scaling, so scale by hand.
        grey = np.asarray(img, dtype=np.float64)
        top = 65535.0 if grey.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        grey = np.clip(grey * (255.0 / top), 0, 255).astype(np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if mode == "F":
        grey = np.asarray(img, dtype=np.float32)
        if grey.max(initial=0) <= 1.0:
            grey = grey * 255.0
        grey = np.clip(np.nan_to_num(grey), 0, 255)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info) \
        or (mode in ("L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        alpha = rgba[:, :, 3].copy()
        return rgba[:, :, :3].astype(np.float32), (None if alpha.min() == 255 else alpha)
    return np.asarray(img.convert("RGB")).astype(np.float32), None


def load_image(path, role="content", available_bytes=None):
    """Read ``path`` as RGB + alpha. ``role`` names the image in error messages."""
    path = os.fspath(path)
    img = _open(path, role)
    with img:
        width, height = img.size
        if width < MIN_SIDE or height < MIN_SIDE:
            raise BadInput(f"{role} image {path} is {width}x{height} pixels: too small to stylise "
                           f"(at least {MIN_SIDE}x{MIN_SIDE})")
        check_fits_memory(width, height, role, available_bytes)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # EXIF and colour-profile chatter
                img.load()
                img = ImageOps.exif_transpose(img)
            rgb, alpha = to_float_rgb_alpha(img)
        except (OSError, ValueError, SyntaxError) as exc:
            raise BadInput(f"{role} image {path} is truncated or corrupt: {exc}") from None
    return LoadedImage(rgb=np.ascontiguousarray(rgb), alpha=alpha, path=path)


def output_format(path):
    ext = os.path.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise BadInput(f"cannot tell the output format from {path!r}: use .png, .jpg, .tif or .webp")
    return fmt


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(path, inputs=()):
    """Fail before any work if the result could not be written, or would replace an input."""
    path = os.fspath(path)
    output_format(path)
    if os.path.isdir(path):
        raise BadInput(f"output {path} is a folder: give a file name such as {os.path.join(path, 'result.png')}")
    for source in inputs:
        if _same_file(path, source):
            raise BadInput(f"output {path} is one of the input images: choose another file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadInput(f"output folder {folder} does not exist")
    try:
        # A real probe: os.access says yes to root even on read-only mounts.
        fd, probe = tempfile.mkstemp(prefix=".nst-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInput(f"output folder {folder} is not writable ({exc.strerror}): choose another place") from None
    return os.path.abspath(path)


def _current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_image(image, path, alpha=None, fast=False):
    """Write ``image`` (PIL RGB) with optional alpha to ``path`` atomically; returns the absolute path.

    The file appears whole or not at all: a temporary file beside it is renamed over it at the end.
    ``fast``: least compression (a preview, written often and read once).
    """
    path = os.path.abspath(os.fspath(path))
    fmt = output_format(path)
    if alpha is not None:
        if fmt in ("JPEG", "BMP"):
            # These formats have no alpha: flatten over white, as an editor's export would.
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=Image.fromarray(alpha, "L"))
            image = background
        else:
            image = image.copy()
            image.putalpha(Image.fromarray(alpha, "L"))
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".nst-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
            if fast and fmt == "PNG":
                options["compress_level"] = 1
            image.save(handle, format=fmt, **options)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; a result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
