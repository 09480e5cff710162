#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Neural Style Transfer for GIMP: Filters > Artistic > Neural Style Transfer...

Paints the active layer in the style of another layer (from any open image) and adds the result as a
new layer directly above it; the frames of an animation, into a new image: Filters > Animation >
Neural Style Transfer (frames)... (nst_animation.py, registered at the end of this file). The work
runs in a separate process, the nst_core engine (PyTorch), reached only through its command line and
JSON lines protocol (docs/PROTOCOL.md): torch is never imported into GIMP's Python.

One source for both GIMPs: GIMP 2.10 runs it on its own gimpfu (Python 2.7); GIMP 3 runs it on
nst_gimpfu3, our gimpfu-compatible shim over GIMP 3's API. Keep this file Python 2.7-compatible.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import sys
import threading
import time

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
if PLUGIN_DIR not in sys.path:
    sys.path.insert(0, PLUGIN_DIR)  # the helper modules sit beside this file

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

import nst_animation
import nst_regions
from nst_client import engine_config, local_service, protocol, run_folders

# Seconds between live previews on the canvas in runs from the dialog (GIMP 3). Scripts get none
# unless they set NST_PREVIEW_EVERY (seconds, or "off"), which also overrides the dialog's.
LIVE_PREVIEW_SECONDS = 1.0
PREVIEW_EVERY_ENV = "NST_PREVIEW_EVERY"
# For tests in a real GIMP (tests/gimp3/e2e_batch.py): a file to which each preview shown and each
# result gets a JSON line (the layer's id and pixel checksum read back from GIMP, the image's layer
# count), so that a test can see the one layer being updated in place.
PREVIEW_LOG_ENV = "NST_PREVIEW_LOG"

PROCEDURE_NAME = "python-fu-nst-style-transfer"

# GIMP enum values, the same numbers in GIMP 2.10 and 3 (GimpImageBaseType, GimpAddMaskType,
# GimpMaskApplyMode); the shim turns them into GIMP 3's enum objects.
IMAGE_RGB, IMAGE_GRAY, IMAGE_INDEXED = 0, 1, 2
ADD_MASK_FROM_SELECTION = 4
MASK_DISCARD = 1

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

# Mnemonics (the underlined letters) are unique and differ from those of GIMP's own dialog buttons
# (Help, Reset, Cancel, OK, Load Saved Settings, Save Settings): tests/plugin/test_plugin_dialog.py.
PARAMETERS = [
    (PF_IMAGE, "image", "Input image", None),
    (PF_DRAWABLE, "drawable", "Layer to style", None),
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
# Regions: a few fixed rows after the one-style parameters (nst_regions.py); all Off by default.
PARAMETERS += nst_regions.region_parameters(PF_OPTION, PF_DRAWABLE, PF_LAYER, PF_SLIDER)

# GIMP 3 shows these as the fields' tooltips (an argument's blurb); they say what a value does and
# what it costs. GIMP 2.10's gimpfu shows the label instead.
TOOLTIPS = {
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
TOOLTIPS.update(nst_regions.TOOLTIPS)

# The plug-in's own help page, installed beside it (the installer copies plugin/*.html): it works
# offline and matches the installed version.
HELP_PAGE_NAME = "nst_help.html"
HELP_PAGE = os.path.join(PLUGIN_DIR, HELP_PAGE_NAME)

HELP = """Paints the active layer in the style of the style layer (neural style transfer after
Prabhu & McAteer 2020) and adds the result as a new layer "Styled: <style layer>" directly above the
active layer, with its size and position. With a selection, the new layer gets a layer mask made
from it. Undo removes it in one step. With several layers selected (GIMP 3) each gets its own.
The work runs in the separate nst_core engine (PyTorch). From the dialog on GIMP 3 a run window shows
the iterations and the time left, the layer appears at the first preview and forms as you watch,
Stop and keep ends the run keeping the result so far, Cancel leaves the image as it was; elsewhere
GIMP's progress bar shows the run (scripts get previews with NST_PREVIEW_EVERY=SECONDS).
Parameters: style-layer: the picture whose style to copy, a layer of any open image.
preset: standard (SSIM-weighted, balanced), fast (a quick preview) or paper (the paper's settings,
with Caffe-format weights). iterations and size: the most optimisation steps and the working long
side in pixels; 0 takes the preset's value (iterations: %s; size: %s). style-strength: 0 to 10, 5 = balanced,
higher = more painterly; the paper preset has the paper's fixed weights and ignores it.
use-ssim: the SSIM weighting of each style layer (off = plain Gatys).
preserve-colors: keep the layer's own colours. seed: the same seed on the same device gives the same
result. device: auto, cpu, cuda or mps.
The dialog's Help button (GIMP 3) opens the plug-in's own page, %s beside it.
The engine is found through nst_config.json beside the plug-in (written by the installer) or the
NST_ENGINE_PYTHON environment variable; its log goes to the log_dir named there.""" % (
    preset_values_text("iterations"), preset_values_text("size"), HELP_PAGE_NAME)



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


def insert_result_layer(image, target, result_path, name, mask_from_selection=True):
    """Adds the result as a new layer directly above target (inside the run's undo group).

    The new layer has the target's size and offsets; with a selection (and mask_from_selection:
    not with regions, which keep the photo outside themselves) it gets a mask from it.
    Whatever fails, the image is left as it was.
    """
    layer = pdb.gimp_file_load_layer(image, result_path)
    inserted = False
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
        if mask_from_selection and not pdb.gimp_selection_is_empty(image):
            mask = pdb.gimp_layer_create_mask(layer, ADD_MASK_FROM_SELECTION)
            pdb.gimp_layer_add_mask(layer, mask)
    except Exception:
        if inserted:
            pdb.gimp_image_remove_layer(image, layer)
        else:
            pdb.gimp_item_delete(layer)
        raise
    return layer


# ---------------------------------------------------------------------------------------------
# The live preview


def preview_interval(environ=None):
    """Seconds between the previews of this run, or None for no live preview (GIMP 2.10, scripts)."""
    environ = os.environ if environ is None else environ
    if replace_layer_pixels is None:
        return None
    text = environ.get(PREVIEW_EVERY_ENV, "").strip()
    if not text:
        return LIVE_PREVIEW_SECONDS if run_is_interactive() else None
    if text.lower() == "off":
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise protocol.EngineError(
            "bad_parameter", "%s is %r: set it to the seconds between live previews (for example "
            "1), or to off." % (PREVIEW_EVERY_ENV, text))
    return seconds


class UndoStep(object):
    """One undo group for the whole run, opened when the run first changes the image (a run that
    fails before that leaves no trace in the undo history)."""

    def __init__(self, image):
        self.image = image
        self.is_open = False

    def open(self):
        if not self.is_open:
            pdb.gimp_image_undo_group_start(self.image)
            self.is_open = True

    def close(self):
        if self.is_open:
            pdb.gimp_image_undo_group_end(self.image)
            self.is_open = False


class ResultLayer(object):
    """The result layer of one target: inserted above it at the first preview (or, without
    previews, at the end), its pixels replaced in place by each later preview and by the result."""

    def __init__(self, image, target, name, undo_step):
        self.undo_step = undo_step
        self.stopped = False
        self.image = image
        self.target = target
        self.name = name
        self.layer = None
        self.previews_shown = 0
        self.preview_failure = None
        self.mask_from_selection = True

    def show_preview(self, path):
        """Best effort: a preview that cannot be shown ends the previews, not the run."""
        if self.preview_failure is not None:
            return
        # The engine keeps only its newest previews: one shown late (the run dialog hands the
        # events over through GTK's main loop) may be gone already, and a newer one follows.
        if not path or not os.path.exists(path):
            return
        try:
            self.show(path)
        except Exception as exc:  # GIMP's errors vary by version: any of them ends the previews
            if not os.path.exists(path):
                return  # removed while GIMP read it: skipped like the above
            self.preview_failure = "The live preview stopped (%s); the result comes at the end." % exc
            return
        self.previews_shown += 1
        gimp.displays_flush()

    def show(self, path, what="preview", stop_reason=None):
        if self.layer is None:
            self.undo_step.open()
            self.layer = insert_result_layer(self.image, self.target, path, self.name,
                                             self.mask_from_selection)
        else:
            replace_layer_pixels(self.layer, path)
        log_path = os.environ.get(PREVIEW_LOG_ENV)
        if log_path and layer_fingerprint is not None:
            layer_id, checksum, layer_count = layer_fingerprint(self.image, self.layer)
            with open(log_path, "a") as handle:
                handle.write(json.dumps({"what": what, "time": time.time(),
                                         "layer": layer_id, "sha1": checksum,
                                         "layers": layer_count, "target": item_name(self.target),
                                         "stop_reason": stop_reason}) + "\n")

    def discard(self):
        if self.layer is not None:
            pdb.gimp_image_remove_layer(self.image, self.layer)
            self.layer = None


# ---------------------------------------------------------------------------------------------
# Progress


class ProgressReporter(object):
    """Shows the engine's events in GIMP's progress bar and keeps its warnings."""

    def __init__(self, show_in_gimp=True, quicker=None, frames=None):
        # False while the run dialog shows the progress: GIMP's status-bar progress would offer
        # its own Cancel, which kills the plug-in and leaves the preview layer behind.
        self.show_in_gimp = show_in_gimp
        self.warnings = []
        # the status bar: one line
        self.describe = EventDescriber(quicker, note_separator=" - ", frames=frames)

    def begin(self, text):
        if self.show_in_gimp:
            gimp.progress_init(text)

    def say(self, text):
        if self.show_in_gimp:
            pdb.gimp_progress_set_text(text)

    def on_event(self, event, prefix=""):
        if event.get("event") == "warning" and event.get("message"):
            self.warnings.append(event["message"])
        if not self.show_in_gimp:
            return
        text, fraction = self.describe(event)
        if text:
            pdb.gimp_progress_set_text(prefix + text)
        if fraction is not None:
            gimp.progress_update(fraction)


# ---------------------------------------------------------------------------------------------
# The procedure


def style_transfer(image, drawable, style_layer, preset, iterations, size, style_strength,
                   use_ssim, preserve_colors, seed, device, region=0, region_item=None,
                   region_weight=nst_regions.WEIGHT_DEFAULT, region2=0, region2_item=None,
                   region2_style=None, region2_weight=nst_regions.WEIGHT_DEFAULT):
    """The registered procedure: checks, runs the engine, adds the layer(s), or fails clearly.
    drawable is one layer, or (GIMP 3, several layers selected) a list of them."""
    targets = list(drawable) if isinstance(drawable, (list, tuple)) else [drawable]
    try:
        regions = nst_regions.read_rows(style_layer, (region, region_item, region_weight),
                                        (region2, region2_item, region2_style, region2_weight))
        add_styled_layers(image, targets, style_layer, StyleTransferSettings(
            preset, iterations, size, style_strength, use_ssim, preserve_colors, seed, device),
            regions)
    except protocol.EngineError as exc:
        if exc.code == "cancelled" and run_is_interactive():
            return  # the user pressed Cancel in the run dialog: the image is as it was
        fail("Neural Style Transfer: " + exc.message)


def run_job(engine, job, on_event, title, describe=None, hint=None):
    """Runs one engine job: in the run dialog (GIMP 3, from the dialog: progress, Stop and Cancel;
    describe: its EventDescriber, hint: what its buttons do, when not the defaults), else with
    GIMP's progress bar."""
    if uses_run_dialog():
        return run_in_dialog(title, engine, job, on_event,
                             describe or EventDescriber(quicker_than(job.options)),
                             PreviewSnapshots(job), hint)
    return engine.run(job, on_event)


QUICKER = "the Fast preset or a smaller working size"


def quicker_than(options):
    """What to suggest to a slow run (its engine options): the Fast preset, unless it uses it."""
    if options.get("preset") == "fast":
        return "a smaller working size"
    return QUICKER


class PreviewSnapshots(object):
    """The run dialog shows a preview later than the engine announces it (through GTK's main loop),
    and by then the engine may have removed or replaced that file. On the worker thread, as it
    arrives, each preview is copied to a file of its own in the run folder; the event says so
    (`snapshot`), and the main thread removes the copy once it has shown it (the run folder's
    removal takes any left)."""

    def __init__(self, job):
        self.folder = job.preview_folder()
        self.count = 0

    def __call__(self, event):
        if event.get("event") != "preview" or not event.get("path"):
            return event
        self.count += 1
        snapshot = os.path.join(self.folder, "shown-preview-%d.png" % self.count)
        try:
            shutil.copyfile(event["path"], snapshot)
        except (IOError, OSError):
            return dict(event, path=None)  # gone already: show_preview skips it, a newer one follows
        return dict(event, path=snapshot, snapshot=True)


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def uses_run_dialog():
    return run_in_dialog is not None and run_is_interactive()


class EventDescriber(object):
    """(text, fraction) of each event of one run, for the run dialog and GIMP's status bar; a
    slow CPU run's note (protocol.SlowRunNote) stays after the progress once it is known, on
    a line of its own unless note_separator says otherwise. frames: the number of frames of a
    frames run (protocol.FramesProgress: "Frame k of n", the whole sequence's time left)."""

    def __init__(self, quicker=None, note_separator="\n", frames=None):
        self.slow_run = protocol.SlowRunNote(quicker or QUICKER)
        self.note_separator = note_separator
        self.frames = protocol.FramesProgress(frames) if frames else None

    def __call__(self, event):
        if self.frames is not None:
            text, fraction = self.frames.text(event), self.frames.fraction(event)
            # A sequence's slow-run note weighs the time left for all its frames, known once frame 1
            # is done; until then frame 1's own, which alone may exceed the minute.
            sequence_eta = event.get("sequence_eta")
            note = self.slow_run.update(dict(event, eta=sequence_eta) if sequence_eta is not None
                                        else event)
            if text and note:
                text += self.note_separator + note
            return text, fraction
        fraction = None
        if event.get("event") == "progress":
            fraction = protocol.progress_fraction(event)
        elif event.get("event") == "done":
            fraction = 1.0
        note = self.slow_run.update(event)
        text = protocol.progress_text(event)
        if text and note:
            text += self.note_separator + note
        return text, fraction


def new_run_folder():
    """(the parent of the run folders, a fresh run folder of this run), the stale folders of
    runs GIMP killed swept first."""
    runs_root = run_folders.runs_root()
    run_folders.sweep_stale_runs(runs_root)
    try:
        return runs_root, run_folders.make_run_folder(runs_root)
    except (IOError, OSError) as exc:
        raise protocol.EngineError(
            "bad_input", "Could not create a temporary folder in %s (%s). Free some disk space, "
            "or point the TMPDIR (Windows: TEMP) environment variable to a writable folder."
            % (runs_root, exc))


def add_styled_layers(image, targets, style_layer, settings, regions=None):
    """Checks everything that can be checked before the engine starts, then styles each target in
    turn on one engine (through the warm local service the network and the style's targets are
    reused), in a run folder of its own. The whole run is one undo step; a failure or a cancel
    leaves the image as it was. A run stopped early (Stop, or the engine's stop command) keeps its
    result so far and styles no further target. regions: nst_regions.Region list (the first is
    style_layer's), [] or None for one style everywhere. Raises EngineError with a message for
    the user."""
    if not targets:
        targets = [None]
    for target in targets:
        problem = target_problem(image, target) or style_problem(style_layer, target)
        if problem:
            if len(targets) > 1 and target is not None:
                problem = "Layer '%s': %s" % (item_name(target), problem)
            raise protocol.EngineError("bad_input", problem)
    regions = regions or []
    if regions:
        def region_style_problem(layer):
            return next((p for p in (style_problem(layer, t) for t in targets) if p), None)
        problem = nst_regions.rows_problem(pdb, image, regions, region_style_problem)
        if problem:
            raise protocol.EngineError("bad_input", problem)
    options = settings.engine_options()
    config = engine_config.load_config(PLUGIN_DIR)
    preview_every = preview_interval()

    runs_root, run_dir = new_run_folder()
    progress = ProgressReporter(show_in_gimp=not uses_run_dialog(), quicker=quicker_than(options))
    results = []
    not_styled = []
    name = "Styled: %s" % ", ".join(item_name(layer) for layer in
                                   [style_layer] + [region.style_layer for region in regions[1:]])
    # One undo group for the whole run: the layers inserted by previews and the final pixels are
    # taken back by one Undo. (If GIMP kills the plug-in, its core closes the group: the preview
    # layer left then goes with one Undo.)
    undo_step = UndoStep(image)
    try:
        progress.begin("Neural Style Transfer: exporting the layers")
        style_png = export_layer_png(style_layer, os.path.join(run_dir, "style.png"))
        style_pngs = [style_png] + [
            export_layer_png(region.style_layer, os.path.join(run_dir, "style-%d.png" % index))
            for index, region in enumerate(regions) if index > 0]
        engine = engine_config.make_engine(config, runs_root)
        for index, target in enumerate(targets):
            if results and results[-1].stopped:
                not_styled.append(target)
                continue
            prefix = "Layer %d of %d: " % (index + 1, len(targets)) if len(targets) > 1 else ""
            suffix = "-%d" % index if len(targets) > 1 else ""
            content_png = export_layer_png(target, os.path.join(run_dir, "content%s.png" % suffix))
            result_png = os.path.join(run_dir, "result%s.png" % suffix)
            masks = nst_regions.region_files(pdb, image, regions, target, run_dir, suffix) \
                if regions else None
            result = ResultLayer(image, target, name, undo_step)
            result.mask_from_selection = not regions
            results.append(result)

            def on_event(event, result=result):
                progress.on_event(event, prefix)
                if event.get("event") == "preview" and event.get("path"):
                    result.show_preview(event["path"])
                    if event.get("snapshot"):
                        remove_quietly(event["path"])
            progress.say("Neural Style Transfer: %sstarting the engine" % prefix)
            done = run_job(engine, protocol.Job(
                content_png, style_pngs, result_png, options, preview_every, masks=masks,
                region_weights=[region.weight for region in regions] if regions else None),
                           on_event, "Neural Style Transfer: %s" % item_name(target))
            # The result replaces the last preview in the same layer (or, without previews, a
            # layer is added only now, after the engine succeeded).
            stop_reason = (done.get("stats") or {}).get("stop_reason")
            result.show(result_png, "result", stop_reason)
            result.stopped = stop_reason == "stopped"
            if result.preview_failure:
                progress.warnings.append(result.preview_failure)
    except BaseException:
        # A failure or a cancel: whatever this run added goes again.
        for result in results:
            result.discard()
        raise
    finally:
        undo_step.close()
        run_folders.remove_run_folder(run_dir)
    gimp.displays_flush()
    if not_styled:
        progress.warnings.append("Stopped early: the result so far was kept; not styled: %s."
                                 % ", ".join(item_name(target) for target in not_styled))
    if progress.warnings:
        gimp.message("Neural Style Transfer finished, with notes:\n"
                     + "\n".join(progress.warnings))


def warm_up_engine():
    """When the dialog opens (GIMP 3): start the warm local engine service in the background, so
    that torch and the network load while the artist chooses settings, not after OK. Only for
    engine_service "local"; the run reuses the service (or starts its own and logs why)."""
    try:
        config = engine_config.load_config(PLUGIN_DIR)
    except protocol.EngineError:
        return None  # the run says what is wrong with the installation
    if config.service != engine_config.SERVICE_LOCAL:
        return None
    engine = local_service.LocalServiceEngine(config, run_folders.runs_root())
    device = choice_name(DEVICE_CHOICES, 0, "device")  # the dialog's default device
    worker = threading.Thread(target=engine.warm_up, args=(device,))
    worker.daemon = True  # a cancelled dialog does not wait; the service exits when idle
    worker.start()
    return worker


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
if set_dialog_options is not None:
    set_dialog_options(PROCEDURE_NAME, tooltips=TOOLTIPS, help_page=HELP_PAGE,
                       unavailable_choices={"device": MISSING_DEVICES},
                       required_layers={"style_layer": "Choose a style layer: the picture whose "
                                        "style to copy, a layer of any open image."},
                       several_drawables=True, on_shown=warm_up_engine)
# The animation's procedure, Filters > Animation > Neural Style Transfer (frames)... (nst_animation.py),
# on this module's parameters, checks and run machinery.
style_transfer_frames = nst_animation.register_procedure(sys.modules[__name__])

if __name__ == "__main__":
    main()
