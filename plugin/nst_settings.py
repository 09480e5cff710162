# -*- coding: utf-8 -*-
"""The settings both procedures share: the quality presets and devices, the style parameters of their
dialogs with their tooltips, and StyleTransferSettings, the dialog's values as the engine understands
them. Python 2.7-compatible; no torch.
"""

from __future__ import absolute_import, division, print_function

import os

from nst_client import engine_config, protocol
from nst_gimp import PF_IMAGE, PF_LAYER, PF_OPTION, PF_SLIDER, PF_SPINNER, PF_TOGGLE

# The plug-in's folder: the installer's config and the help page sit beside its files.
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))

# What each preset runs when "Iterations" or "Working size" is 0: shown in the dialog, so that the
# artist sees the real numbers. The engine's own table is nst_core.params.PRESETS (the plug-in
# cannot import nst_core: no torch in GIMP); tests/plugin/test_plugin_dialog.py checks the two agree.
PRESET_DEFAULTS = (
    ("standard", {"iterations": 500, "size": 512}),
    ("fast", {"iterations": 150, "size": 512}),
    ("paper", {"iterations": 1000, "size": 512}),
)


def preset_values_text(key):
    """"standard 500, fast 150, paper 1000", or "512" when every preset has the same value."""
    values = [(name, preset[key]) for name, preset in PRESET_DEFAULTS]
    if len(set(value for _name, value in values)) == 1:
        return str(values[0][1])
    return ", ".join("%s %s" % pair for pair in values)


# The devices the installer found (`nst-core doctor --json`, kept in nst_config.json as "devices");
# None when it did not say (an older install), then every device is offered.
def installed_devices():
    try:
        config = engine_config.read_config_file(engine_config.config_path(PLUGIN_DIR))
    except protocol.EngineError:
        return None
    devices = config.get("devices")
    if not isinstance(devices, list):
        return None
    return [str(device) for device in devices]


FOUND_DEVICES = installed_devices()
# Scripts pass the device names (GIMP 3) or indices (GIMP 2.10), so the list is the same on every
# machine; a device the installer did not find says so in its label, and the GIMP 3 dialog greys
# it out.
MISSING_DEVICES = [name for name in ("cuda", "mps")
                   if FOUND_DEVICES is not None and name not in FOUND_DEVICES]


def device_label(name, label):
    if name in MISSING_DEVICES:
        return label.replace(")", ": not found on this machine)")
    return label


# Choice lists: gimpfu passes the index into the labels; the engine's names for the choices travel
# beside them (a sixth element, which GIMP 2.10's gimpfu ignores and the GIMP 3 shim uses as the
# choice's name, the value a PDB caller passes on GIMP 3).
PRESET_CHOICES = protocol.PRESET_CHOICES
DEVICE_CHOICES = tuple((name, device_label(name, label)) for name, label in protocol.DEVICE_CHOICES)


def choice_labels(choices):
    return tuple(label for _name, label in choices)


def choice_names(choices):
    return tuple(name for name, _label in choices)


STYLE_STRENGTH_RANGE = protocol.STYLE_STRENGTH_RANGE
STYLE_STRENGTH_DEFAULT = protocol.STYLE_STRENGTH_DEFAULT

# The dialogs' parameters both procedures share: the image, then (after each procedure's own drawable:
# the layers to style, or the frames) these, in this order. Mnemonics (the underlined letters) are
# unique and differ from those of GIMP's own dialog buttons (Help, Reset, Cancel, OK, Load Saved
# Settings, Save Settings): tests/plugin/test_plugin_dialog.py.
IMAGE_PARAMETER = (PF_IMAGE, "image", "Input image", None)
STYLE_PARAMETERS = [
    (PF_LAYER, "style_layer", "St_yle layer (from any open image)", None),
    (PF_OPTION, "preset", "_Quality preset", 0, choice_labels(PRESET_CHOICES),
     choice_names(PRESET_CHOICES)),
    (PF_SPINNER, "iterations", "_Iterations, at most (0 = preset: %s)"
     % preset_values_text("iterations"), 0, (0, 10000, 10)),
    (PF_SPINNER, "size", "Working si_ze, long side in px (0 = preset: %s)"
     % preset_values_text("size"), 0, (0, 8192, 32)),
    (PF_SLIDER, "style_strength",
     "Style s_trength (5 = balanced, higher = more painterly; Paper ignores it)",
     STYLE_STRENGTH_DEFAULT, STYLE_STRENGTH_RANGE + (0.5,)),
    (PF_TOGGLE, "use_ssim", "Use SSI_M weighting", True),
    (PF_TOGGLE, "preserve_colors", "_Preserve the layer's colors", False),
    (PF_SPINNER, "seed", "Random s_eed", 0, (0, 2147483647, 1)),
    (PF_OPTION, "device", "_Device", 0, choice_labels(DEVICE_CHOICES),
     choice_names(DEVICE_CHOICES)),
]
# GIMP 3 shows these as the fields' tooltips (an argument's blurb); they say what a value does and
# what it costs. GIMP 2.10's gimpfu shows the label instead.
STYLE_TOOLTIPS = {
    "style_layer": "The picture whose style is copied: a layer of any open image (open the "
                   "painting as a second image). Its size matters little: it is scaled to the "
                   "working size.",
    "preset": "Standard: multi-scale, a clearly styled result, each scale run until the picture "
              "settles. Fast: at most %s steps, shorter coarse scales, and each scale stops sooner: "
              "about two thirds of the time, a good picture sooner, for a quick look. Paper: the "
              "paper's settings (it needs Caffe-format weights), %s steps in one scale, the "
              "slowest." % (
                  dict(PRESET_DEFAULTS)["fast"]["iterations"], dict(PRESET_DEFAULTS)["paper"]["iterations"]),
    "iterations": "The most optimisation steps; the run may stop earlier once the picture no "
                  "longer changes. Time grows with the steps. 0 takes the preset's: %s."
                  % preset_values_text("iterations"),
    "size": "The long side, in pixels, the painting is computed at; the new layer always has "
            "your layer's full size. Twice the size takes about four times as long and more "
            "memory. 0 takes the preset's: %s." % preset_values_text("size"),
    "style_strength": "How much of the style against how much of your picture: 0 keeps the "
                      "picture almost as it is, 5 is balanced, 10 paints it over. It costs no "
                      "time. The Paper preset uses the paper's fixed weights and ignores it.",
    "use_ssim": "On: each style layer's loss is weighted by the structural dissimilarity of its "
                "Gram matrices (the paper's method). Off: plain Gatys style transfer. Same time.",
    "preserve_colors": "Keep your layer's own colours and take only light and texture from the "
                       "style. Same time.",
    "seed": "The start of the random noise: the same seed on the same device gives the same "
            "result; change it for a variation.",
    "device": "Where the engine computes: Auto takes a GPU when there is one (much faster), "
              "else the CPU.%s" % (
                  (" Found on this machine by the installer: %s." % ", ".join(
                      name.upper() for name in FOUND_DEVICES)) if FOUND_DEVICES else ""),
}

# The plug-in's own help page, installed beside it (the installer copies plugin/*.html): it works
# offline and matches the installed version.
HELP_PAGE_NAME = "nst_help.html"
HELP_PAGE = os.path.join(PLUGIN_DIR, HELP_PAGE_NAME)


class StyleTransferSettings(object):
    """The dialog's values, as the engine understands them."""

    def __init__(self, preset_index, iterations, size, style_strength, use_ssim,
                 preserve_colors, seed, device_index):
        self.preset = choice_name(PRESET_CHOICES, preset_index, "quality preset")
        self.device = choice_name(DEVICE_CHOICES, device_index, "device")
        # GIMP 2.10's spinner hands over floats: the engine wants whole numbers.
        self.iterations = int(round(iterations))
        self.size = int(round(size))
        self.seed = int(round(seed))
        self.style_strength = float(style_strength)
        self.use_ssim = bool(use_ssim)
        self.preserve_colors = bool(preserve_colors)

    def engine_options(self):
        return protocol.engine_options(
            preset=self.preset, iterations=self.iterations, size=self.size,
            style_strength=self.style_strength, use_ssim=self.use_ssim,
            preserve_colors=self.preserve_colors, seed=self.seed, device=self.device)


def choice_name(choices, index, what):
    """The engine's name for a choice index."""
    try:
        index = int(index)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(choices):
        raise protocol.EngineError(
            "bad_parameter", "The %s must be a number from 0 to %d (got %r)."
            % (what, len(choices) - 1, index))
    return choices[index][0]
