"""nst_core: SSIM-weighted neural style transfer (Prabhu & McAteer, 2020) as a library and a CLI.

Importing this package is cheap: torch loads only when a function that needs it is first used, so
``nst-core --help`` and the plug-in side stay fast.
"""

__version__ = "0.1.0"
