# -*- coding: utf-8 -*-
"""Neural Style Transfer for animations: Filters > Animation > Neural Style Transfer (frames)...

Paints the frames of an animation in the style of a layer, coherently from frame to frame (each frame
starts from the styled frame before it, carried along the motion: `nst-core stylize-frames`,
docs/PROTOCOL.md "Frames"), and puts them in a NEW image of the same canvas: one layer per frame, with
the frame's name (its "(100ms)" and "(combine)"/"(replace)" tags too), offsets and place in the
stack, so that Filters > Animation > Playback and GIF export take it as it is. The source image is
only read.

The frames are the image's top-level layers in GIMP's animation order (the bottom layer is frame 1),
or, with several layers selected (GIMP 3), those, bottom first.

nst_style_transfer.py registers this procedure (register_procedure). It shares the one-layer
procedure's settings (nst_settings), layer checks and export (nst_source_layers) and run machinery
(nst_run: progress, run window, previews). Python 2.7-compatible like the rest of the plug-in; no
torch.
"""

from __future__ import absolute_import, division, print_function

import os

import nst_gimp
import nst_run
import nst_settings
from nst_client import engine_config, protocol, run_folders
from nst_client.process import remove_quietly
from nst_gimp import PF_DRAWABLE, PF_SLIDER, gimp, pdb
from nst_settings import IMAGE_PARAMETER, STYLE_PARAMETERS, STYLE_TOOLTIPS
from nst_source_layers import export_layer_png, item_name, style_problem, target_problem

PROCEDURE_NAME = "python-fu-nst-style-transfer-frames"
LABEL = "Neural Style Transfer (frames)..."
MENU = "<Image>/Filters/Animation"
TITLE = "Neural Style Transfer (frames)"

TEMPORAL_WEIGHT_TOOLTIP = (
    "How strongly each frame holds to the styled frame before it, carried along the motion: higher "
    "is steadier (less flicker) where the picture moves little, 0 only starts each frame from the "
    "one before. %g is the engine's default; it costs no time." % protocol.TEMPORAL_WEIGHT_DEFAULT)

HELP = """Paints the frames of an animation in the style of the style layer, coherently: frame 1 is styled
as Filters > Artistic > Neural Style Transfer would, each later one starts from the styled frame before
it, carried along the motion between the two, and a temporal weight holds it there, so that the
animation does not flicker. The frames are the image's layers in GIMP's animation order (the bottom
layer is frame 1), or the selected layers (several, GIMP 3), bottom first; they must be single layers
of one size and position. The result is a new image of the same canvas with one layer per frame,
named, placed and stacked as the frames (delay and combine tags kept), ready for Filters > Animation
> Playback and GIF export; the image itself is not changed. The style layer is a layer of any open
image that is not one of the frames. From the dialog on GIMP 3 a run window shows "frame k of n" and
the time left for the whole sequence, the new image appears at the first preview and fills in frame
by frame, Stop and keep ends the frame under way and keeps the frames done, Cancel leaves no new
image. Parameters: those of python-fu-nst-style-transfer (without the regions), and temporal-weight:
0 to %g, %g = the engine's default, higher = steadier, 0 = each frame only starts from the one before.
The same engine, config and log as that procedure; its help page is the plug-in's %s.""" % (
    protocol.TEMPORAL_WEIGHT_MAX, protocol.TEMPORAL_WEIGHT_DEFAULT, "nst_help.html")

# What the run window's buttons do in a frames run.
RUN_HINT = ("Stop and keep: finish the frame under way and make the new image of the frames done so "
            "far. Cancel: end now; no new image is made.")


# The gimpfu parameters: the one-layer procedure's style parameters (not its regions: stylize-frames
# takes one style and no masks) after a frames drawable, and the temporal weight.
PARAMETERS = ([IMAGE_PARAMETER, (PF_DRAWABLE, "drawable", "Frames (the selected layers, or all)", None)]
              + STYLE_PARAMETERS
              + [(PF_SLIDER, "temporal_weight", "Temporal _weight (higher = steadier, less flicker; 0 = free)",
                  protocol.TEMPORAL_WEIGHT_DEFAULT, (0.0, protocol.TEMPORAL_WEIGHT_MAX, 10.0))])
TOOLTIPS = dict(
    STYLE_TOOLTIPS,
    style_layer="The picture whose style is copied: a layer of any open image that is not one of the "
                "frames (open the painting as a second image). Its size matters little.",
    temporal_weight=TEMPORAL_WEIGHT_TOOLTIP)


def register_procedure():
    """Registers the procedure on the plug-in's gimpfu (GIMP 2.10's, or the shim on GIMP 3); returns
    the registered function."""

    def style_transfer_frames(image, drawable, style_layer, preset, iterations, size,
                              style_strength, use_ssim, preserve_colors, seed, device,
                              temporal_weight=protocol.TEMPORAL_WEIGHT_DEFAULT):
        """The registered procedure: checks, runs the engine, makes the new image, or fails
        clearly. drawable is one layer, or (GIMP 3, several layers selected) a list of them."""
        selected = list(drawable) if isinstance(drawable, (list, tuple)) else [drawable]
        try:
            settings = nst_settings.StyleTransferSettings(preset, iterations, size, style_strength,
                                                          use_ssim, preserve_colors, seed, device)
            style_frames(image, selected, style_layer, settings, temporal_weight)
        except protocol.EngineError as exc:
            if exc.code == "cancelled" and nst_gimp.run_is_interactive():
                return  # Cancel in the run window: no new image, nothing to report
            nst_gimp.fail("%s: %s" % (TITLE, exc.message))

    nst_gimp.register(
        PROCEDURE_NAME,
        "Paint the frames of an animation in the style of a layer, without flicker, into a new image",
        HELP,
        "nst-core contributors",
        "MIT License",
        "2026",
        LABEL,
        "RGB*, GRAY*",
        PARAMETERS,
        [],
        style_transfer_frames,
        menu=MENU,
    )
    if nst_gimp.set_dialog_options is not None:
        nst_gimp.set_dialog_options(
            PROCEDURE_NAME, tooltips=TOOLTIPS, help_page=nst_settings.HELP_PAGE,
            unavailable_choices={"device": nst_settings.MISSING_DEVICES},
            required_layers={"style_layer": "Choose a style layer: the picture whose style to copy, "
                             "a layer of any open image that is not one of the frames."},
            several_drawables=True, on_shown=nst_run.warm_up_engine)
    return style_transfer_frames


# ---------------------------------------------------------------------------------------------
# The frames and their checks


def top_level_layers(image):
    """The image's top-level layers, top first: GIMP 3's Gimp.Image hands them out with
    get_layers(), gimpfu 2.10's image object holds them as .layers."""
    get_layers = getattr(image, "get_layers", None)
    return list(get_layers() if get_layers is not None else image.layers)


def bad_input(message):
    return protocol.EngineError("bad_input", message)


def frame_layers(image, selected):
    """The frames in animation order, frame 1 first: the selected layers when there are several
    (bottom first; they must sit side by side in one level of the stack), else every top-level
    layer of the image (GIMP plays the bottom one first). EngineError with what to do otherwise."""
    if len(selected) < 2:
        return list(reversed(top_level_layers(image)))
    for layer in selected:
        if layer is not None and pdb.gimp_item_is_layer(layer) and pdb.gimp_item_is_group(layer):
            raise group_problem(layer)
        problem = target_problem(image, layer)
        if problem:
            raise bad_input(problem)
    parents = [pdb.gimp_item_get_parent(layer) for layer in selected]
    if any(parent != parents[0] for parent in parents[1:]):
        raise bad_input(
            "The selected frames lie in different layer groups, so their order is not clear. "
            "Select frames of one level of the layer stack (or move them out of their groups) "
            "and run the filter again.")
    # position 0 is the top of its level: the bottom frame, the first, has the largest
    return sorted(selected, key=lambda layer: -pdb.gimp_image_get_item_position(image, layer))


def group_problem(layer):
    return bad_input(
        "'%s' is a layer group, and each frame must be a single layer. Merge the group "
        "(Layer > Merge Layer Group), or select only the frame layers, and run the filter again."
        % item_name(layer))


def frames_problem(image, frames, style_layer):
    """Why these frames and this style cannot make an animation, or None when they can."""
    for frame in frames:
        if pdb.gimp_item_is_group(frame):
            return group_problem(frame).message
        problem = target_problem(image, frame)  # of these, only an indexed image's applies
        if problem:
            return problem
    if len(frames) < 2:
        return ("An animation needs at least 2 frames, one layer each, and this image has %s. Add "
                "the frames as layers (File > Open as Layers...; the bottom layer is frame 1), or "
                "style a single picture with Filters > Artistic > Neural Style Transfer."
                % ("one layer" if frames else "no layer"))
    first = frames[0]
    placement = frame_placement(first)
    for number, frame in enumerate(frames[1:], start=2):
        if frame_placement(frame) != placement:
            return ("All frames must have one size and position, and frame %d ('%s') is %s where "
                    "frame 1 ('%s') is %s. Make them alike (for example Layer > Layer to Image "
                    "Size on each frame) and run the filter again."
                    % (number, item_name(frame), placement_text(frame_placement(frame)),
                       item_name(first), placement_text(placement)))
    problem = style_problem(style_layer, None)
    if problem:
        return problem
    for number, frame in enumerate(frames, start=1):
        if frame == style_layer:
            # Styled with itself that frame would hardly change; most likely the dialog's first
            # suggestion, a layer of this image, was kept by accident.
            return ("The style layer '%s' is frame %d of the animation. Choose a layer that is not "
                    "a frame as the style, for example a painting opened as a second image (or, "
                    "in this image, select just the frame layers)." % (item_name(frame), number))
    return None


def frame_placement(layer):
    return (pdb.gimp_drawable_width(layer), pdb.gimp_drawable_height(layer),
            tuple(pdb.gimp_drawable_offsets(layer)))


def placement_text(placement):
    width, height, (offset_x, offset_y) = placement
    return "%dx%d at (%d, %d)" % (width, height, offset_x, offset_y)


# ---------------------------------------------------------------------------------------------
# The new image


class FramesImage(object):
    """The new image of one run: the source's canvas size and mode, one layer per styled frame, in
    the frames' order (frame 1 at the bottom), each named and placed as its frame. It is made at the
    first preview (a GIMP 3 dialog run shows the frame under way as it forms, and the frames fill in
    one by one) or, without previews, at the end; undo is off while it is built, so that its history
    starts with the finished animation. discard() takes it away again (a cancel, a failure)."""

    def __init__(self, source, frames, display):
        self.source = source
        self.frames = frames
        self.display_wanted = display
        self.image = None
        self.display = None
        self.layers = {}  # frame number (1-based) -> its layer
        self.previews_shown = 0
        self.preview_failure = None

    def _make_image(self):
        if self.image is None:
            self.image = pdb.gimp_image_new(pdb.gimp_image_width(self.source),
                                            pdb.gimp_image_height(self.source),
                                            pdb.gimp_image_base_type(self.source))
            pdb.gimp_image_undo_disable(self.image)
            if self.display_wanted:
                self._show()

    def _show(self):
        try:
            self.display = pdb.gimp_display_new(self.image)
        except Exception:  # no user interface (GIMP 2.10 in batch mode): the image is there anyway
            self.display = None

    def _put(self, number, path, what):
        """Frame `number`'s picture from path: into its layer, made when missing."""
        self._make_image()
        layer = self.layers.get(number)
        if layer is not None:
            nst_gimp.replace_layer_pixels(layer, path)
        else:
            frame = self.frames[number - 1]
            layer = pdb.gimp_file_load_layer(self.image, path)
            # Above the frames before it, below those after it that are there already.
            above = len([n for n in self.layers if n > number])
            try:
                pdb.gimp_image_insert_layer(self.image, layer, None, above)
            except Exception:
                pdb.gimp_item_delete(layer)
                raise
            self.layers[number] = layer
            pdb.gimp_item_set_name(layer, item_name(frame))
            width, height, (offset_x, offset_y) = frame_placement(frame)
            if (pdb.gimp_drawable_width(layer), pdb.gimp_drawable_height(layer)) != (width, height):
                pdb.gimp_layer_scale(layer, width, height, False)
            pdb.gimp_layer_set_offsets(layer, offset_x, offset_y)
        nst_run.log_shown(what, self.image, layer, frame=number)

    def show_preview(self, number, path):
        """Best effort: a preview that cannot be shown ends the previews, not the run."""
        if self.preview_failure is not None or not path or not os.path.exists(path):
            return  # gone already (the run window hands events over late): a newer one follows
        if not 1 <= number <= len(self.frames):
            return
        try:
            self._put(number, path, "preview")
        except Exception as exc:  # GIMP's errors vary by version: any of them ends the previews
            if not os.path.exists(path):
                return
            self.preview_failure = ("The live preview stopped (%s); the frames come at the end."
                                    % exc)
            return
        self.previews_shown += 1
        gimp.displays_flush()

    def finish(self, paths):
        """The styled frames, one file per frame done, in order: each into its frame's layer; a
        layer of a frame not done goes again. Returns the image."""
        for number, path in enumerate(paths, start=1):
            self._put(number, path, "result")
        for number in sorted(n for n in self.layers if n > len(paths)):
            pdb.gimp_image_remove_layer(self.image, self.layers.pop(number))
        pdb.gimp_image_undo_enable(self.image)
        if self.display_wanted and self.display is None:
            self._show()
        return self.image

    def discard(self):
        if self.image is None:
            return
        image, self.image, self.layers = self.image, None, {}
        if self.display is not None:
            display, self.display = self.display, None
            pdb.gimp_display_delete(display)  # the image's only display: it goes with it
        if pdb.gimp_image_is_valid(image):
            pdb.gimp_image_delete(image)


# ---------------------------------------------------------------------------------------------
# The run


def shows_new_image():
    """Whether the new image gets a display: on GIMP 3 in runs from the dialog; GIMP 2.10's gimpfu
    does not say how the procedure was called, so there always (a batch GIMP has none to give)."""
    return nst_gimp.run_is_interactive() or nst_gimp.run_in_dialog is None


def style_frames(image, selected, style_layer, settings, temporal_weight):
    """Checks everything that can be checked before the engine starts, styles the frames in one
    engine job, in a run folder of its own, and returns the new image with the styled frames. Stop
    keeps the frames done (the new image has those only); a cancel or a failure leaves no new image
    and the source image as it was (it is only read). Raises EngineError with a message for the
    user."""
    frames = frame_layers(image, selected)
    problem = frames_problem(image, frames, style_layer)
    if problem:
        raise bad_input(problem)
    weight = protocol.check_temporal_weight(temporal_weight)
    options = settings.engine_options()
    config = engine_config.load_config(nst_settings.PLUGIN_DIR)
    preview_every = nst_run.preview_interval()
    runs_root, run_dir = nst_run.new_run_folder()
    quicker = nst_run.quicker_than(options)
    progress = nst_run.ProgressReporter(show_in_gimp=not nst_run.uses_run_dialog(), quicker=quicker,
                                        frames=len(frames))
    result = FramesImage(image, frames, shows_new_image())
    try:
        progress.begin("%s: exporting the frames" % TITLE)
        style_png = export_layer_png(style_layer, os.path.join(run_dir, "style.png"))
        frame_pngs = [export_layer_png(frame, os.path.join(run_dir, "frame-%03d.png" % number))
                      for number, frame in enumerate(frames, start=1)]
        engine = engine_config.make_engine(config, runs_root)
        job = protocol.FramesJob(frame_pngs, style_png, os.path.join(run_dir, "styled"), options,
                                 weight, preview_every)
        under_way = [1]

        def on_event(event):
            progress.on_event(event)
            kind = event.get("event")
            if kind == "frame_start" and isinstance(event.get("frame"), int):
                under_way[0] = event["frame"]
            elif kind == "preview" and event.get("path"):
                result.show_preview(under_way[0], event["path"])
                if event.get("snapshot"):
                    remove_quietly(event["path"])
        progress.say("%s: starting the engine" % TITLE)
        done = nst_run.run_job(engine, job, on_event, "%s: %d frames" % (TITLE, len(frames)),
                               nst_run.EventDescriber(quicker, frames=len(frames)), RUN_HINT)
        outputs = done.get("outputs") or []
        if not outputs:
            raise protocol.EngineError("protocol", "The engine finished without naming the "
                                       "styled frames. Engine log: %s" % done.get("log_path"))
        new_image = result.finish(outputs)
    except BaseException:
        result.discard()
        raise
    finally:
        run_folders.remove_run_folder(run_dir)
    if result.preview_failure:
        progress.warnings.append(result.preview_failure)
    if len(outputs) < len(frames):
        progress.warnings.append(
            "Stopped early: %d of %d frames were styled; the new image holds those."
            % (len(outputs), len(frames)))
    gimp.displays_flush()
    if progress.warnings:
        gimp.message("%s finished, with notes:\n%s" % (TITLE, "\n".join(progress.warnings)))
    return new_image
