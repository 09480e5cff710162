#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Neural Style Transfer for GIMP: the plug-in's entry file, which registers its two procedures.

Filters > Artistic > Neural Style Transfer... paints the active layer in the style of another layer
(from any open image) and adds the result as a new layer directly above it (nst_styled_layers.py);
Filters > Animation > Neural Style Transfer (frames)... paints the frames of an animation into a new
image (nst_animation.py). The work runs in a separate process, the nst_core engine (PyTorch), reached
only through its command line and JSON lines protocol (docs/PROTOCOL.md) by the client in nst_client/:
torch is never imported into GIMP's Python.

GIMP 3 runs this file as __main__ from plug-ins/nst_style_transfer/nst_style_transfer.py, the name it
requires, so nothing imports it; the procedures and what they share (nst_gimp: GIMP 2.10's gimpfu or
our shim nst_gimpfu3 on GIMP 3; nst_settings, nst_source_layers, nst_run) are modules beside it. Keep
every file Python 2.7-compatible.
"""

from __future__ import absolute_import, division, print_function

import os
import sys

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if PLUGIN_DIR not in sys.path:
    sys.path.insert(0, PLUGIN_DIR)  # the helper modules and nst_client/ sit beside this file

import nst_animation
import nst_styled_layers
from nst_gimp import main

style_transfer = nst_styled_layers.register_procedure()
style_transfer_frames = nst_animation.register_procedure()

if __name__ == "__main__":
    main()
