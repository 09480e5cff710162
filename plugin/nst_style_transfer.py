#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Neural Style Transfer for GIMP: Filters > Artistic > Neural Style Transfer...

Paints the active layer in the style of another layer (from any open image) and adds the result as a
new layer directly above it. The work runs in a separate process, the nst_core engine (PyTorch),
reached only through its command line and JSON lines protocol (docs/PROTOCOL.md): torch is never
imported into GIMP's Python.

One source for both GIMPs: GIMP 2.10 runs it on its own gimpfu (Python 2.7); GIMP 3 runs it on
nst_gimpfu3, our gimpfu-compatible shim over GIMP 3's API. Keep this file Python 2.7-compatible.
"""

from __future__ import absolute_import, division, print_function

import os
import sys

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if PLUGIN_DIR not in sys.path:
    sys.path.insert(0, PLUGIN_DIR)  # the helper modules sit beside this file

try:
    # GIMP 2.10: the real gimpfu.
    from gimpfu import (register, main, pdb, gimp, fail, PF_IMAGE, PF_DRAWABLE, PF_LAYER,
                        PF_OPTION, PF_SPINNER, PF_FLOAT, PF_TOGGLE)
except ImportError:
    # GIMP 3 has no gimpfu: the same surface from our shim (deliberately not named gimpfu.py, so
    # that it can never shadow the real one on GIMP 2.10).
    from nst_gimpfu3 import (register, main, pdb, gimp, fail, PF_IMAGE, PF_DRAWABLE, PF_LAYER,
                             PF_OPTION, PF_SPINNER, PF_FLOAT, PF_TOGGLE)

import nst_engine
import nst_protocol
import nst_runfiles

PROCEDURE_NAME = "python-fu-nst-style-transfer"

# GIMP enum values, the same numbers in GIMP 2.10 and 3 (GimpImageBaseType, GimpAddMaskType,
# GimpMaskApplyMode); the shim turns them into GIMP 3's enum objects.
IMAGE_RGB, IMAGE_INDEXED = 0, 2
ADD_MASK_FROM_SELECTION = 4
MASK_DISCARD = 1

# Choice lists: gimpfu passes the index into the labels; the engine's names for the choices travel
# beside them (a sixth element, which GIMP 2.10's gimpfu ignores and the GIMP 3 shim uses as the
# choice's name, the value a PDB caller passes on GIMP 3).
def choice_labels(choices):
    return tuple(label for _name, label in choices)


def choice_names(choices):
    return tuple(name for name, _label in choices)


PARAMETERS = [
    (PF_IMAGE, "image", "Input image", None),
    (PF_DRAWABLE, "drawable", "Layer to style", None),
    (PF_LAYER, "style_layer", "_Style layer (from any open image)", None),
    (PF_OPTION, "preset", "_Quality preset", 0, choice_labels(nst_protocol.PRESET_CHOICES),
     choice_names(nst_protocol.PRESET_CHOICES)),
    (PF_SPINNER, "iterations", "_Iterations (0 = the preset's)", 0, (0, 10000, 10)),
    (PF_SPINNER, "size", "Working si_ze, long side in px (0 = the preset's)", 0, (0, 8192, 32)),
    # The fifth element of a PF_FLOAT is ignored by GIMP 2.10's gimpfu; the shim uses it as the
    # range on GIMP 3.
    (PF_FLOAT, "style_weight", "St_yle weight (1.0 = balanced; Paper ignores it)", 1.0,
     (0.0, 10000.0, 0.1)),
    (PF_FLOAT, "content_weight", "_Content weight (1.0 = balanced; Paper ignores it)", 1.0,
     (0.0, 10000.0, 0.1)),
    (PF_TOGGLE, "use_ssim", "Use SSI_M weighting", True),
    (PF_TOGGLE, "preserve_colors", "_Preserve the layer's colors", False),
    (PF_SPINNER, "seed", "Random s_eed", 0, (0, 2147483647, 1)),
    (PF_OPTION, "device", "_Device", 0, choice_labels(nst_protocol.DEVICE_CHOICES),
     choice_names(nst_protocol.DEVICE_CHOICES)),
]

HELP = """Paints the active layer in the style of the style layer (neural style transfer after
Prabhu & McAteer 2020) and adds the result as a new layer "Styled: <style layer>" directly above the
active layer, with its size and position. With a selection, the new layer gets a layer mask made
from it. Undo removes it in one step. The work runs in the separate nst_core engine (PyTorch); the
progress bar shows its iterations and the time left, and cancelling stops it.
Parameters: style-layer: the picture whose style to copy, a layer of any open image.
preset: standard (SSIM-weighted, balanced), fast (a quick preview) or paper (the paper's exact
method). iterations and size: optimisation steps and working long side in pixels; 0 takes the
preset's value. style-weight and content-weight: in the preset's own formulation, where 1.0 and 1.0
are balanced; more style weight gives more style. The paper preset is exact by definition and
ignores both. use-ssim: the SSIM weighting of each style layer (off = plain Gatys).
preserve-colors: keep the layer's own colours. seed: the same seed on the same device gives the same
result. device: auto, cpu, cuda or mps.
The engine is found through nst_config.json beside the plug-in (written by the installer) or the
NST_ENGINE_PYTHON environment variable; its log goes to the log_dir named there."""


class StyleTransferSettings(object):
    """The dialog's values, as the engine understands them."""

    def __init__(self, preset_index, iterations, size, style_weight, content_weight, use_ssim,
                 preserve_colors, seed, device_index):
        self.preset = choice_name(nst_protocol.PRESET_CHOICES, preset_index, "quality preset")
        self.device = choice_name(nst_protocol.DEVICE_CHOICES, device_index, "device")
        # GIMP 2.10's spinner hands over floats: the engine wants whole numbers.
        self.iterations = int(round(iterations))
        self.size = int(round(size))
        self.seed = int(round(seed))
        self.style_weight = float(style_weight)
        self.content_weight = float(content_weight)
        self.use_ssim = bool(use_ssim)
        self.preserve_colors = bool(preserve_colors)

    def engine_options(self):
        return nst_protocol.engine_options(
            preset=self.preset, iterations=self.iterations, size=self.size,
            style_weight=self.style_weight, content_weight=self.content_weight,
            use_ssim=self.use_ssim, preserve_colors=self.preserve_colors, seed=self.seed,
            device=self.device)


def choice_name(choices, index, what):
    """The engine's name for a choice index."""
    try:
        index = int(index)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(choices):
        raise nst_protocol.EngineError(
            "bad_parameter", "The %s must be a number from 0 to %d (got %r)."
            % (what, len(choices) - 1, index))
    return choices[index][0]


# ---------------------------------------------------------------------------------------------
# Checking the layers


def item_name(item):
    return pdb.gimp_item_get_name(item)


def target_problem(image, drawable):
    """Why the active drawable cannot be styled, or None when it can."""
    if pdb.gimp_image_base_type(image) == IMAGE_INDEXED:
        return ("Only RGB and grayscale images can be styled, and this one is indexed. "
                "Convert it with Image > Mode > RGB and run the filter again.")
    if drawable is None:
        return "There is no active layer. Select the layer to style in the Layers dialog."
    if pdb.gimp_item_is_layer_mask(drawable):
        return ("The layer mask is active, not the layer. Click the layer's own thumbnail in "
                "the Layers dialog and run the filter again.")
    if not pdb.gimp_item_is_layer(drawable):
        return ("A channel is active, not a layer. Select the layer to style in the Layers "
                "dialog and run the filter again.")
    if pdb.gimp_item_is_group(drawable):
        return ("'%s' is a layer group. Select one of its layers, or merge the group first "
                "(Layer > Merge Layer Group) and run the filter again." % item_name(drawable))
    return None


def style_problem(style_layer, drawable):
    """Why this style layer cannot be used, or None when it can."""
    if style_layer is None:
        return ("Choose a style layer: the picture whose style to copy. It can be a layer of "
                "any open image, for example a painting opened as a second image.")
    if pdb.gimp_item_is_layer_mask(style_layer) or not pdb.gimp_item_is_layer(style_layer):
        return "The style must be a layer, not a channel or a layer mask: choose a layer."
    if pdb.gimp_item_is_group(style_layer):
        return ("The style layer '%s' is a layer group. Choose one of its layers, or merge the "
                "group first (Layer > Merge Layer Group)." % item_name(style_layer))
    if style_layer == drawable:
        return ("The style layer is the layer being styled. Choose another layer as the style, "
                "for example a painting opened as a second image.")
    return None


# ---------------------------------------------------------------------------------------------
# Moving pixels between GIMP and the engine


def export_layer_png(drawable, path):
    """Writes the layer's own pixels, with alpha and without its mask, to an RGB(A) PNG.

    A throw-away RGB image holds a copy of the layer at (0, 0): this drops the offsets and the
    mask, turns grayscale or indexed pixels into RGB, and leaves the user's image untouched.
    """
    width = pdb.gimp_drawable_width(drawable)
    height = pdb.gimp_drawable_height(drawable)
    scratch = pdb.gimp_image_new(width, height, IMAGE_RGB)
    try:
        copy = pdb.gimp_layer_new_from_drawable(drawable, scratch)
        pdb.gimp_image_insert_layer(scratch, copy, None, 0)
        pdb.gimp_layer_set_offsets(copy, 0, 0)
        pdb.gimp_item_set_visible(copy, True)
        if pdb.gimp_layer_get_mask(copy) is not None:
            pdb.gimp_layer_remove_mask(copy, MASK_DISCARD)
        pdb.file_png_save_defaults(scratch, copy, path, path)
    finally:
        pdb.gimp_image_delete(scratch)
    return path


def insert_result_layer(image, target, result_path, name):
    """Adds the result as a new layer directly above target, in one undo step.

    The new layer has the target's size and offsets; with a selection it gets a mask from it.
    Whatever fails, the image is left as it was.
    """
    layer = pdb.gimp_file_load_layer(image, result_path)
    inserted = False
    pdb.gimp_image_undo_group_start(image)
    try:
        parent = pdb.gimp_item_get_parent(target)
        position = pdb.gimp_image_get_item_position(image, target)
        pdb.gimp_image_insert_layer(image, layer, parent, position)
        inserted = True
        pdb.gimp_item_set_name(layer, name)
        width = pdb.gimp_drawable_width(target)
        height = pdb.gimp_drawable_height(target)
        if (pdb.gimp_drawable_width(layer), pdb.gimp_drawable_height(layer)) != (width, height):
            pdb.gimp_layer_scale(layer, width, height, False)
        offset_x, offset_y = pdb.gimp_drawable_offsets(target)
        pdb.gimp_layer_set_offsets(layer, offset_x, offset_y)
        if not pdb.gimp_selection_is_empty(image):
            mask = pdb.gimp_layer_create_mask(layer, ADD_MASK_FROM_SELECTION)
            pdb.gimp_layer_add_mask(layer, mask)
    except Exception:
        if inserted:
            pdb.gimp_image_remove_layer(image, layer)
        else:
            pdb.gimp_item_delete(layer)
        raise
    finally:
        pdb.gimp_image_undo_group_end(image)
    return layer


# ---------------------------------------------------------------------------------------------
# Progress


class ProgressReporter(object):
    """Shows the engine's events in GIMP's progress bar and keeps its warnings."""

    def __init__(self):
        self.warnings = []

    def begin(self, text):
        gimp.progress_init(text)

    def say(self, text):
        pdb.gimp_progress_set_text(text)

    def on_event(self, event):
        text = nst_protocol.progress_text(event)
        if text:
            pdb.gimp_progress_set_text(text)
        if event.get("event") == "progress":
            fraction = nst_protocol.progress_fraction(event)
            if fraction is not None:
                gimp.progress_update(fraction)
        elif event.get("event") == "warning" and event.get("message"):
            self.warnings.append(event["message"])
        elif event.get("event") == "done":
            gimp.progress_update(1.0)


# ---------------------------------------------------------------------------------------------
# The procedure


def style_transfer(image, drawable, style_layer, preset, iterations, size, style_weight,
                   content_weight, use_ssim, preserve_colors, seed, device):
    """The registered procedure: checks, runs the engine, adds the layer, or fails clearly."""
    try:
        add_styled_layer(image, drawable, style_layer, StyleTransferSettings(
            preset, iterations, size, style_weight, content_weight, use_ssim, preserve_colors,
            seed, device))
    except nst_protocol.EngineError as exc:
        fail("Neural Style Transfer: " + exc.message)


def add_styled_layer(image, drawable, style_layer, settings):
    """Checks everything that can be checked before the engine starts, then runs it in a run
    folder of its own; raises EngineError with a message for the user."""
    problem = target_problem(image, drawable) or style_problem(style_layer, drawable)
    if problem:
        raise nst_protocol.EngineError("bad_input", problem)
    options = settings.engine_options()
    config = nst_engine.load_config(PLUGIN_DIR)

    runs_root = nst_runfiles.runs_root()
    nst_runfiles.sweep_stale_runs(runs_root)
    try:
        run_dir = nst_runfiles.make_run_folder(runs_root)
    except (IOError, OSError) as exc:
        raise nst_protocol.EngineError(
            "bad_input", "Could not create a temporary folder in %s (%s). Free some disk space, "
            "or point the TMPDIR (Windows: TEMP) environment variable to a writable folder."
            % (runs_root, exc))
    progress = ProgressReporter()
    try:
        progress.begin("Neural Style Transfer: exporting the layers")
        content_png = export_layer_png(drawable, os.path.join(run_dir, "content.png"))
        style_png = export_layer_png(style_layer, os.path.join(run_dir, "style.png"))
        result_png = os.path.join(run_dir, "result.png")
        engine = nst_engine.make_engine(config, runs_root)
        progress.say("Neural Style Transfer: starting the engine")
        engine.run(nst_protocol.Job(content_png, [style_png], result_png, options),
                   progress.on_event)
        # Only now, after the engine succeeded, is the image touched: a cancelled run (GIMP kills
        # the plug-in) can never leave a partial layer behind.
        insert_result_layer(image, drawable, result_png,
                            "Styled: %s" % item_name(style_layer))
    finally:
        nst_runfiles.remove_run_folder(run_dir)
    gimp.displays_flush()
    if progress.warnings:
        gimp.message("Neural Style Transfer finished, with notes from the engine:\n"
                     + "\n".join(progress.warnings))


register(
    PROCEDURE_NAME,
    "Paint a layer in the style of another layer (neural style transfer)",
    HELP,
    "nst-core contributors",
    "MIT License",
    "2026",
    "Neural Style Transfer...",
    "RGB*, GRAY*",
    PARAMETERS,
    [],
    style_transfer,
    menu="<Image>/Filters/Artistic",
)

if __name__ == "__main__":
    main()
