"""The method and its run: the SSIM-weighted style transfer itself (losses, network, optimisation,
schedule, stop rule, time left, colour, devices, image files). Knows nothing of the command line or
HTTP; the CLI and the service call :class:`nst_core.engine.stylizer.Stylizer`.

Importing this package is cheap: each module imports torch itself, when it is imported.
"""
