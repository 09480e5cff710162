# -*- coding: utf-8 -*-
"""Filters > Artistic > Neural Style Transfer...: paints the selected layer(s) in the style of another
layer (from any open image) and adds each result as a new layer directly above its layer, in one undo
step; regions can give parts of the layer styles of their own (nst_regions.py). The procedure, its
parameters and help, and the result layer; the run machinery it shares with the animation's procedure
is nst_run's. Registered by nst_style_transfer.py. Python 2.7-compatible; no torch.
"""

from __future__ import absolute_import, division, print_function

import os

import nst_gimp
import nst_regions
import nst_run
import nst_settings
from nst_client import engine_config, protocol, run_folders
from nst_client.process import remove_quietly
from nst_gimp import ADD_MASK_FROM_SELECTION, PF_DRAWABLE, PF_LAYER, PF_OPTION, PF_SLIDER, gimp, pdb
from nst_settings import (
    HELP_PAGE,
    HELP_PAGE_NAME,
    IMAGE_PARAMETER,
    MISSING_DEVICES,
    STYLE_PARAMETERS,
    STYLE_TOOLTIPS,
    StyleTransferSettings,
    preset_values_text,
)
from nst_source_layers import export_layer_png, item_name, style_problem, target_problem

PROCEDURE_NAME = "python-fu-nst-style-transfer"

PARAMETERS = ([IMAGE_PARAMETER, (PF_DRAWABLE, "drawable", "Layer to style", None)] + STYLE_PARAMETERS
              # Regions: a few fixed rows after the one-style parameters; all Off by default.
              + nst_regions.region_parameters(PF_OPTION, PF_DRAWABLE, PF_LAYER, PF_SLIDER))
TOOLTIPS = dict(STYLE_TOOLTIPS, **nst_regions.TOOLTIPS)

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
            nst_gimp.replace_layer_pixels(self.layer, path)
        nst_run.log_shown(what, self.image, self.layer, target=item_name(self.target),
                          stop_reason=stop_reason)

    def discard(self):
        if self.layer is not None:
            pdb.gimp_image_remove_layer(self.image, self.layer)
            self.layer = None


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
        if exc.code == "cancelled" and nst_gimp.run_is_interactive():
            return  # the user pressed Cancel in the run dialog: the image is as it was
        nst_gimp.fail("Neural Style Transfer: " + exc.message)


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
    config = engine_config.load_config(nst_settings.PLUGIN_DIR)
    preview_every = nst_run.preview_interval()

    runs_root, run_dir = nst_run.new_run_folder()
    progress = nst_run.ProgressReporter(show_in_gimp=not nst_run.uses_run_dialog(),
                                        quicker=nst_run.quicker_than(options))
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
            done = nst_run.run_job(engine, protocol.Job(
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


def register_procedure():
    """Registers the procedure on the plug-in's gimpfu (GIMP 2.10's, or the shim on GIMP 3); returns
    the registered function."""
    nst_gimp.register(
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
    if nst_gimp.set_dialog_options is not None:
        nst_gimp.set_dialog_options(PROCEDURE_NAME, tooltips=TOOLTIPS, help_page=HELP_PAGE,
                                    unavailable_choices={"device": MISSING_DEVICES},
                                    required_layers={"style_layer": "Choose a style layer: the picture "
                                                     "whose style to copy, a layer of any open image."},
                                    several_drawables=True, on_shown=nst_run.warm_up_engine)
    return style_transfer
