"""The checkout's paths, the engine's command line, and the real VGG-16 file the quality tests use."""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DEFAULT_REAL_WEIGHTS = REPO.parent / "shared" / "data" / "weights" / "vgg16-imagenet-caffe-features.pth"


def real_weights_path(env=os.environ):
    """The real ImageNet VGG-16 (Caffe preprocessing) the quality tests use: ``NST_TEST_WEIGHTS`` names
    the file, else ../shared/data/weights/ next to the checkout."""
    named = env.get("NST_TEST_WEIGHTS")
    return Path(os.path.expanduser(named)).resolve() if named else DEFAULT_REAL_WEIGHTS


def engine_command(*args):
    return [sys.executable, "-m", "nst_core", *map(str, args)]
