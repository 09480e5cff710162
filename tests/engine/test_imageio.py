import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers.pictures import make_content
from nst_core import BadInput
from nst_core.engine.imageio import check_fits_memory, check_output_path, load_image, save_image


def write_png_header_only(path, width, height):
    """A PNG that claims a huge size: the header is all Pillow reads before the engine refuses it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_rgb_and_alpha(tmp_path):
    make_content(alpha=True).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.size == (96, 64) and img.rgb.dtype == np.float32 and img.rgb.shape == (64, 96, 3)
    assert img.alpha is not None and img.alpha.dtype == np.uint8 and img.alpha.min() == 40


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "I;16", "1"])
def test_other_modes_become_rgb(tmp_path, mode):
    source = make_content()
    if mode == "I;16":
        grey = np.asarray(source.convert("L")).astype(np.uint16) * 257
        image = Image.fromarray(grey)  # uint16 -> mode I;16
    else:
        image = source.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    image.save(path)
    img = load_image(path)
    assert img.rgb.shape == (64, 96, 3)
    if mode == "I;16":
        # 16-bit values are scaled to 8 bits, not clipped to white.
        expected = np.asarray(source.convert("L")).astype(np.float32)
        np.testing.assert_allclose(img.rgb[:, :, 0], expected, atol=1.0)
    assert img.alpha is None, "a fully opaque alpha channel is dropped: nothing to carry"


def test_palette_and_grey_transparency_keep_alpha(tmp_path):
    image = make_content().convert("P")
    used = image.getpixel((0, 0))
    image.save(tmp_path / "p.png", transparency=used)
    alpha = load_image(tmp_path / "p.png").alpha
    assert alpha is not None and alpha[0, 0] == 0 and alpha.max() == 255
    grey = make_content().convert("LA")
    grey.putalpha(100)
    grey.save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").alpha.max() == 100


def test_exif_orientation_is_honoured(tmp_path):
    image = make_content()  # 96 x 64, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "r.jpg").size == (64, 96)


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("folder", "is a folder"),
    ("text", "not an image"),
    ("truncated", "truncated or corrupt"),
    ("tiny", "too small"),
])
def test_bad_inputs_have_clear_messages(tmp_path, case, message):
    path = tmp_path / "in.png"
    if case == "folder":
        path.mkdir()
    elif case == "text":
        path.write_text("hello")
    elif case == "truncated":
        make_content(400, 300).save(path)
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif case == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    with pytest.raises(BadInput, match=message):
        load_image(path, "style")


def test_huge_images_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    write_png_header_only(path, 60000, 60000)
    with pytest.raises(BadInput, match=r"60000x60000 .*scale it down"):
        load_image(path)
    with pytest.raises(BadInput, match="GB are free"):
        check_fits_memory(4096, 3072, "content", available_bytes=10 * 2**20)


def test_save_is_atomic_and_keeps_alpha(tmp_path):
    image = make_content()
    alpha = np.full((64, 96), 128, np.uint8)
    out = save_image(image, tmp_path / "out.png", alpha=alpha)
    back = Image.open(out)
    assert back.mode == "RGBA" and np.asarray(back)[:, :, 3].max() == 128
    assert sorted(os.listdir(tmp_path)) == ["out.png"], "no temporary file is left"


def test_a_failed_save_leaves_nothing(tmp_path, monkeypatch):
    image = make_content()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        save_image(image, tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


def test_output_checks(tmp_path, content_png):
    with pytest.raises(BadInput, match="one of the input images"):
        check_output_path(content_png, [content_png])
    with pytest.raises(BadInput, match="does not exist"):
        check_output_path(tmp_path / "nope" / "out.png")
    with pytest.raises(BadInput, match="output format"):
        check_output_path(tmp_path / "out.xyz")
    with pytest.raises(BadInput, match="is a folder"):
        (tmp_path / "d.png").mkdir()
        check_output_path(tmp_path / "d.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # Root writes through permission bits; /sys is read-only to it in a container.
        folder = locked if os.geteuid() != 0 else "/sys"
        with pytest.raises(BadInput, match="not writable"):
            check_output_path(os.path.join(folder, "out.png"))
    finally:
        locked.chmod(0o700)
