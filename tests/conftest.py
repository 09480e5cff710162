"""Shared fixtures. Tests never touch the user's real data folders: the engine's data folder and
torch's hub cache point into a temporary folder for the whole session."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_WEIGHTS = REPO.parent / "shared" / "data" / "weights" / "vgg16-imagenet-caffe-features.pth"


def real_weights_path(env=os.environ):
    """The real ImageNet VGG-16 (Caffe preprocessing) the quality tests use: ``NST_TEST_WEIGHTS`` names
    the file, else ../shared/data/weights/ next to the checkout."""
    named = env.get("NST_TEST_WEIGHTS")
    return Path(os.path.expanduser(named)).resolve() if named else DEFAULT_REAL_WEIGHTS


SHARED_WEIGHTS = real_weights_path()
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session", autouse=True)
def isolated_engine_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine-home")
    saved = {k: os.environ.get(k) for k in ("NST_DATA_DIR", "TORCH_HOME", "NST_WEIGHTS", "NST_WEIGHTS_FORMAT")}
    os.environ["NST_DATA_DIR"] = str(root / "data")
    os.environ["TORCH_HOME"] = str(root / "torch")
    os.environ.pop("NST_WEIGHTS", None)
    os.environ.pop("NST_WEIGHTS_FORMAT", None)
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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


@pytest.fixture
def content_png(tmp_path):
    path = tmp_path / "content.png"
    make_content().save(path)
    return path


@pytest.fixture
def style_png(tmp_path):
    path = tmp_path / "style.png"
    make_style().save(path)
    return path


@pytest.fixture(scope="session")
def random_engine():
    from nst_core.engine.stylizer import Stylizer

    return Stylizer(backbone="vgg19", weights="random", device="cpu")


@pytest.fixture(scope="session")
def real_weights():
    if not SHARED_WEIGHTS.is_file():
        pytest.skip(f"real VGG-16 weights not present at {SHARED_WEIGHTS} (NST_TEST_WEIGHTS=FILE names another)")
    return SHARED_WEIGHTS


def engine_command(*args):
    return [sys.executable, "-m", "nst_core", *map(str, args)]
