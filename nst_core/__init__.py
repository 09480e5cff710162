"""nst_core: SSIM-weighted neural style transfer (Prabhu & McAteer, 2020) as a library and a CLI.

    from nst_core import stylize, Stylizer, StyleParams
    result = stylize("cat.png", ["wave.jpg"], StyleParams.preset("fast"), output="cat-wave.png")
    frames = stylize_frames(Stylizer(), ["f1.png", "f2.png"], ["wave.jpg"])  # an animation, without flicker

Importing this package is cheap: torch loads only when ``stylize`` or ``Stylizer`` is first touched,
so ``nst-core --help`` stays fast.
"""

__version__ = "0.1.0"

from .errors import BadInput, Cancelled, NSTError, OutOfMemory, WeightsMissing  # noqa: E402
from .params import PRESETS, StyleParams  # noqa: E402

_LAZY = {"stylize": "engine.stylizer", "Stylizer": "engine.stylizer", "StyleResult": "engine.stylizer",
         "stylize_frames": "engine.frames", "FrameSequence": "engine.frames",
         "Progress": "events", "Started": "events", "Warned": "events", "Preview": "events"}

__all__ = ["stylize", "Stylizer", "StyleResult", "stylize_frames", "FrameSequence", "StyleParams", "PRESETS",
           "Progress", "Started", "Warned",
           "Preview", "NSTError", "BadInput", "WeightsMissing", "Cancelled", "OutOfMemory", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'nst_core' has no attribute {name!r}")
