# -*- coding: utf-8 -*-
"""The GIMP the plug-in runs on, chosen once for both procedures: GIMP 2.10's own gimpfu (Python 2.7),
or on GIMP 3, which has no gimpfu, the same surface from our shim nst_gimpfu3 and the plug-in's own
GIMP 3 UI (nst_gimp3_ui).

The other modules take the gimpfu surface from here (`from nst_gimp import pdb, gimp`); the GIMP 3
hooks, None on GIMP 2.10, they look up on this module when they use them (`nst_gimp.run_in_dialog`),
so that this file alone says which GIMP runs (the tests replace them here). Python 2.7-compatible.
"""

from __future__ import absolute_import, division, print_function

# The gimpfu surface is imported in the same words from gimpfu and from the shim (which
# tests/plugin/test_shim_gimpfu3.py compares), the plug-in's own GIMP 3 UI apart: not re-sorted.
# isort: off
try:
    # GIMP 2.10: the real gimpfu.
    from gimpfu import (PF_DRAWABLE, PF_IMAGE, PF_LAYER, PF_OPTION, PF_SLIDER, PF_SPINNER, PF_TOGGLE, fail, gimp,
                        main, pdb, register)
    # gimpfu 2.10 builds its own dialog: each parameter's label is also its tooltip, and its Help
    # button opens GIMP's manual.
    set_dialog_options = None
    # No live preview on GIMP 2.10 (README "Live preview"): gimpfu has no dialog that stays open
    # during a run, and its progress bar's Cancel kills the plug-in, which would leave a preview
    # layer behind; the result layer appears at the end, as before.
    replace_layer_pixels = None
    run_in_dialog = None
    layer_fingerprint = None

    def run_is_interactive():
        return False
except ImportError:
    # GIMP 3 has no gimpfu: the same surface from our shim (deliberately not named gimpfu.py, so
    # that it can never shadow the real one on GIMP 2.10), and the plug-in's own GIMP 3 UI.
    from nst_gimpfu3 import (PF_DRAWABLE, PF_IMAGE, PF_LAYER, PF_OPTION, PF_SLIDER, PF_SPINNER, PF_TOGGLE, fail,
                             gimp, main, pdb, register)
    from nst_gimpfu3 import run_is_interactive, set_dialog_options
    from nst_gimp3_ui import layer_fingerprint, replace_layer_pixels, run_in_dialog
# isort: on

__all__ = ["PF_DRAWABLE", "PF_IMAGE", "PF_LAYER", "PF_OPTION", "PF_SLIDER", "PF_SPINNER", "PF_TOGGLE", "fail",
           "gimp", "main", "pdb", "register", "set_dialog_options", "replace_layer_pixels", "run_in_dialog",
           "layer_fingerprint", "run_is_interactive"]

# GIMP enum values, the same numbers in GIMP 2.10 and 3 (GimpImageBaseType, GimpAddMaskType,
# GimpMaskApplyMode); the shim turns them into GIMP 3's enum objects.
IMAGE_RGB, IMAGE_GRAY, IMAGE_INDEXED = 0, 1, 2
ADD_MASK_FROM_SELECTION = 4
MASK_DISCARD = 1
