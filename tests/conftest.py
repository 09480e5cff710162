"""Shared fixtures. Tests never touch the user's real data folders: the engine's data folder and
torch's hub cache point into a temporary folder for the whole session."""

import os

import pytest

from helpers.pictures import make_content, make_style
from helpers.repo import real_weights_path

SHARED_WEIGHTS = real_weights_path()


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
