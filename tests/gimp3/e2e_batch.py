# Batch code for tests/gimp3/test_gimp3_e2e.py: runs INSIDE a real GIMP 3 (python-fu-eval), where Gimp,
# Gio, GLib, GObject and Gegl are already imported. It builds a scene, calls the plug-in's procedure
# through the PDB, and writes what it finds as JSON for the test to judge; it judges nothing itself.
#
# Parameters come from the JSON file named by NST_E2E_PARAMS:
#   scenario  "success" (two runs, the second with a selection), "failure" (the engine fails, the
#             style is the target itself, several drawables are selected) or "cancel" (the test
#             kills the plug-in during a run, then a second run follows) or "cases" (layer cases:
#             grayscale, masked target; refused: indexed, group, layer mask, channel) or "live"
#             (NST_PREVIEW_EVERY set: previews update one layer in place; a run stopped with
#             SIGUSR1 to its engine keeps its layer; one ended with SIGTERM leaves none; two
#             selected layers each get one; the plug-in's NST_PREVIEW_LOG says what it showed)
#             or "regions" (two channels, two flat styles, one run, Repeat, a refused channel)
#             or "frames" (python-fu-nst-style-transfer-frames on a 6-frame animation: a new image;
#             three selected frames; a refusal; with "live", a run stopped with SIGUSR1 and one
#             ended with SIGTERM after the first preview of frame 2)
#   content, style: picture files; output: where to write the findings; size, iterations.
import hashlib
import json
import os
import traceback

import gi
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl  # noqa: E402

PROCEDURE = "python-fu-nst-style-transfer"
FRAMES_PROCEDURE = "python-fu-nst-style-transfer-frames"
params = json.load(open(os.environ["NST_E2E_PARAMS"]))
findings = {"scenario": params["scenario"], "errors": []}


def pixels(drawable):
    width, height = drawable.get_width(), drawable.get_height()
    buffer = drawable.get_buffer()
    data = buffer.get(Gegl.Rectangle.new(0, 0, width, height), 1.0, "R'G'B'A u8",
                      Gegl.AbyssPolicy.CLAMP)
    return bytes(data)


def describe(layer):
    _ok, offset_x, offset_y = layer.get_offsets()
    parent = layer.get_parent()
    return {
        "name": layer.get_name(),
        "size": [layer.get_width(), layer.get_height()],
        "offsets": [offset_x, offset_y],
        "position": layer.get_image().get_item_position(layer),
        "parent": parent.get_name() if parent else None,
        "has_mask": layer.get_mask() is not None,
        "pixels_sha1": hashlib.sha1(pixels(layer)).hexdigest(),
    }


def stack(image):
    return [describe(layer) for layer in image.get_layers()]


def load_layer(image, path, name, width, height, offsets):
    layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path))
    layer.set_name(name)
    image.insert_layer(layer, None, 0)
    layer.scale(width, height, False)
    layer.set_offsets(*offsets)
    return layer


def build_scene():
    """A 160x120 canvas: a white background, the target photo (smaller, offset) and a small
    half-transparent layer above it; the style lives in a second image."""
    image = Gimp.Image.new(160, 120, Gimp.ImageBaseType.RGB)
    background = Gimp.Layer.new(image, "Background", 160, 120, Gimp.ImageType.RGB_IMAGE, 100,
                                Gimp.LayerMode.NORMAL)
    image.insert_layer(background, None, 0)
    background.fill(Gimp.FillType.WHITE)
    width, height = params["target_size"]
    target = load_layer(image, params["content"], "Photo", width, height,
                        tuple(params["target_offsets"]))
    top = Gimp.Layer.new(image, "Top", 20, 20, Gimp.ImageType.RGBA_IMAGE, 60,
                         Gimp.LayerMode.NORMAL)
    image.insert_layer(top, None, 0)
    top.fill(Gimp.FillType.FOREGROUND)
    style_image = Gimp.Image.new(48, 48, Gimp.ImageBaseType.RGB)
    style = load_layer(style_image, params["style"], "Great Wave", 48, 48, (0, 0))
    return image, target, style, style_image


def run_procedure(image, drawables, style, procedure_name=PROCEDURE, **values):
    procedure = Gimp.get_pdb().lookup_procedure(procedure_name)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    config.set_property("style-layer", style)
    for name, value in values.items():
        config.set_property(name, value)
    result = procedure.run(config)
    status = result.index(0)
    message = result.index(1) if result.length() > 1 else None
    return {"status": status.value_nick, "message": message}


def run_with_last_values(image, drawables):
    """What Filters > Repeat (Ctrl+F) does: Gimp.RunMode.WITH_LAST_VALS, no style layer given."""
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.WITH_LAST_VALS)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    result = procedure.run(config)
    message = result.index(1) if result.length() > 1 else None
    return {"status": result.index(0).value_nick, "message": message}


def run_files():
    """The plug-in's run folders (TMPDIR/nst-gimp-USER/run-*) still on disk."""
    import glob
    return sorted(glob.glob(os.path.join(params["temp_dir"], "nst-gimp-*", "run-*")))


def runs_roots():
    import glob
    return sorted(glob.glob(os.path.join(params["temp_dir"], "nst-gimp-*")))


def engine_values(**overrides):
    values = {"preset": params.get("preset", "standard"), "iterations": params["iterations"],
              "size": params["size"], "style-strength": 5.0, "use-ssim": True,
              "preserve-colors": False, "seed": 0, "device": "cpu"}
    values.update(overrides)
    return values


def dialog_api():
    """What the shim's interactive path calls (it cannot run headless): present in GimpUi?"""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi
    wanted = {"GimpUi.init": hasattr(GimpUi, "init"),
              "GimpUi.ProcedureDialog.fill": hasattr(GimpUi.ProcedureDialog, "fill"),
              "GimpUi.ProcedureDialog.run": hasattr(GimpUi.ProcedureDialog, "run"),
              "Gimp.get_images": hasattr(Gimp, "get_images"),
              "Gimp.Item.is_group_layer": hasattr(Gimp.Item, "is_group_layer")}
    return sorted(name for name, present in wanted.items() if not present)


def registration(name=PROCEDURE):
    procedure = Gimp.get_pdb().lookup_procedure(name)
    if procedure is None:
        return {"registered": False}
    return {
        "missing_dialog_api": dialog_api(),
        "registered": True,
        "menu_label": procedure.get_menu_label(),
        "menu_paths": list(procedure.get_menu_paths()),
        "image_types": procedure.get_image_types(),
        "arguments": [spec.name for spec in procedure.get_arguments()],
    }


def success_scenario():
    image, target, style, style_image = build_scene()
    findings["target_name"] = target.get_name()
    findings["before"] = stack(image)
    findings["style_before"] = stack(style_image)
    findings["run"] = run_procedure(image, [target], style, **engine_values())
    findings["after"] = stack(image)
    findings["style_after"] = stack(style_image)
    findings["run_folders_after_run"] = run_files()
    # Second run: with a selection, the new layer gets a mask from it.
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 50, 40, 30, 20)
    # ... and every other argument set to a non-default value, to follow them to the engine.
    findings["selection_run"] = run_procedure(image, [target], style, **engine_values(**{
        "style-strength": 7.5, "use-ssim": False, "preserve-colors": True, "seed": 7}))
    findings["after_selection_run"] = stack(image)
    # Filters > Repeat: GIMP runs the procedure with the last values, which cannot hold a layer.
    Gimp.Selection.none(image)
    findings["repeat_run"] = run_with_last_values(image, [target])
    findings["after_repeat_run"] = stack(image)
    findings["run_folders_at_end"] = run_files()
    findings["runs_roots"] = runs_roots()
    image.delete()
    style_image.delete()


def failure_scenario():
    image, target, style, style_image = build_scene()
    findings["before"] = stack(image)
    # NST_ENGINE_PYTHON names a program that fails: the engine "crashes".
    findings["engine_failure"] = run_procedure(image, [target], style, **engine_values())
    findings["after_engine_failure"] = stack(image)
    findings["same_layer"] = run_procedure(image, [target], target, **engine_values())
    findings["after_same_layer"] = stack(image)
    background = image.get_layers()[-1]
    findings["two_drawables"] = run_procedure(image, [target, background], style,
                                              **engine_values())
    findings["after_two_drawables"] = stack(image)
    findings["run_folders_at_end"] = run_files()
    image.delete()
    style_image.delete()


def cancel_scenario():
    """The test kills the plug-in mid-run (what GIMP does when the user cancels); the next run
    must still work and sweep the dead run's files."""
    image, target, style, style_image = build_scene()
    findings["before"] = stack(image)
    with open(params["mode_file"], "w") as handle:
        handle.write("hang")  # the fake engine waits until its stdin closes
    findings["killed_run"] = run_procedure(image, [target], style, **engine_values())
    findings["after_killed_run"] = stack(image)
    findings["run_folders_after_kill"] = run_files()
    with open(params["mode_file"], "w") as handle:
        handle.write("ok")
    findings["next_run"] = run_procedure(image, [target], style, **engine_values())
    findings["after_next_run"] = stack(image)
    findings["run_folders_at_end"] = run_files()
    image.delete()
    style_image.delete()


def refusal(image, drawables, style):
    """Runs a case the plug-in must refuse; returns its status, message and whether the image's
    layer stack stayed the same."""
    before = stack(image)
    result = run_procedure(image, drawables, style, **engine_values())
    result["unchanged"] = stack(image) == before
    return result


def cases_scenario():
    """Layer cases: a grayscale image and a target with a layer mask work; an indexed image, a
    layer group, a layer mask, a channel, and a group as the style are refused clearly."""
    _image, _target, style, style_image = build_scene()
    cases = findings["cases"] = {}

    gray, gray_target, _s, _si = build_scene()
    gray.convert_grayscale()
    gray_before = stack(gray)
    cases["gray"] = run_procedure(gray, [gray_target], style, **engine_values())
    cases["gray"]["layers_before"] = len(gray_before)
    cases["gray"]["after"] = stack(gray)
    cases["gray"]["new_layer_is_gray"] = gray.get_layers()[1].is_gray()

    masked, masked_target, _s, _si = build_scene()
    masked_target.add_mask(masked_target.create_mask(Gimp.AddMaskType.WHITE))
    masked_before = stack(masked)
    cases["masked_target"] = run_procedure(masked, [masked_target], style, **engine_values())
    cases["masked_target"]["before"] = masked_before
    cases["masked_target"]["after"] = stack(masked)

    cases["mask_as_target"] = refusal(masked, [masked_target.get_mask()], style)

    indexed, indexed_target, _s, _si = build_scene()
    indexed.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE, 16,
                            False, False, "")
    cases["indexed"] = refusal(indexed, [indexed_target], style)

    grouped, _t, _s, _si = build_scene()
    group = Gimp.GroupLayer.new(grouped, "Folder")
    grouped.insert_layer(group, None, 0)
    cases["group_as_target"] = refusal(grouped, [group], style)
    style_group = Gimp.GroupLayer.new(style_image, "Styles")
    style_image.insert_layer(style_group, None, 0)
    cases["group_as_style"] = refusal(grouped, [grouped.get_layers()[2]], style_group)

    color = Gegl.Color.new("black")
    channel = Gimp.Channel.new(grouped, "Saved selection", 160, 120, 50.0, color)
    grouped.insert_channel(channel, None, 0)
    cases["channel_as_target"] = refusal(grouped, [channel], style)
    findings["run_folders_at_end"] = run_files()
    for image in Gimp.get_images():
        image.delete()


def read_preview_log():
    """The plug-in's NST_PREVIEW_LOG lines since the last call (the file is emptied)."""
    path = params["preview_log"]
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        lines = [json.loads(line) for line in handle if line.strip()]
    os.remove(path)
    return lines


def engine_processes(command="stylize"):
    """Process ids of engine runs of this test (`python -m nst_core COMMAND` on a run folder under
    the test's temp folder)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as handle:
                argv = handle.read().split(b"\0")
        except (IOError, OSError):
            continue
        text = [arg.decode("utf-8", "replace") for arg in argv]
        if "nst_core" in text and command in text and any(
                arg.startswith(params["temp_dir"]) for arg in text):
            found.append(int(name))
    return found


def signal_engine_after_previews(signum, previews, report, run_over):
    """A thread that, once the plug-in has shown this many previews, sends signum to the engine
    (SIGUSR1: the engine's stop-and-keep; SIGTERM: its cancel); report gets what it did. It gives
    up when the event run_over is set (the run ended first: report then lacks "pids")."""
    import threading
    import time

    def watch():
        deadline = time.time() + 600
        while time.time() < deadline and not run_over.is_set():
            path = params["preview_log"]
            shown = 0
            if os.path.exists(path):
                with open(path) as handle:
                    shown = sum(1 for line in handle if '"preview"' in line)
            if shown >= previews:
                pids = engine_processes()
                for pid in pids:
                    os.kill(pid, signum)
                report.update(signal=int(signum), pids=pids, after_previews=shown)
                return
            time.sleep(0.05)
        report["timeout"] = True
    thread = threading.Thread(target=watch)
    thread.daemon = True
    thread.start()
    return thread


def run_signalled_after_a_preview(name, signal_number, values):
    """A run on a fresh scene whose engine gets signal_number after its first preview; its findings
    under NAME_signal, NAME_run, after_NAME_run and NAME_log."""
    import threading
    image, target, style, _si = build_scene()
    report = findings["%s_signal" % name] = {}
    run_over = threading.Event()
    watcher = signal_engine_after_previews(signal_number, 1, report, run_over)
    findings["%s_run" % name] = run_procedure(image, [target], style, **values)
    run_over.set()
    watcher.join(5)
    findings["after_%s_run" % name] = stack(image)
    findings["%s_log" % name] = read_preview_log()
    image.delete()


def live_scenario():
    import signal
    values = engine_values(iterations=params["live_iterations"])
    # 1. previews update one layer in place
    image, target, style, style_image = build_scene()
    findings["before"] = stack(image)
    import time
    findings["preview_run_started"] = time.time()
    findings["preview_run"] = run_procedure(image, [target], style, **values)
    findings["after_preview_run"] = stack(image)
    findings["preview_log"] = read_preview_log()
    image.delete()
    # 2. stop and keep: SIGUSR1 to the engine after the first preview
    run_signalled_after_a_preview("stop", signal.SIGUSR1, values)
    # 3. the engine cancelled (SIGTERM) after a preview: the preview layer goes again
    run_signalled_after_a_preview("cancel", signal.SIGTERM, values)
    # 4. two selected layers: each gets its own styled layer
    image, target, style, _si = build_scene()
    background = image.get_layers()[-1]
    findings["several_before"] = stack(image)
    findings["several_run"] = run_procedure(image, [target, background], style,
                                            **engine_values(iterations=params["iterations"]))
    findings["after_several_run"] = stack(image)
    findings["several_log"] = read_preview_log()
    findings["run_folders_at_end"] = run_files()
    for image in Gimp.get_images():
        image.delete()


def flat_layer(image, name, hex_colour):
    layer = Gimp.Layer.new(image, name, image.get_width(), image.get_height(),
                           Gimp.ImageType.RGB_IMAGE, 100, Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    Gimp.context_push()
    Gimp.context_set_foreground(Gegl.Color.new(hex_colour))
    layer.fill(Gimp.FillType.FOREGROUND)
    Gimp.context_pop()
    return layer


def saved_selection(image, name, x, y, width, height):
    """Select > Save to Channel of a rectangle, as a user makes a region."""
    image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, width, height)
    channel = Gimp.Selection.save(image)
    channel.set_name(name)
    Gimp.Selection.none(image)
    return channel


def half_means(layer):
    """The mean (R, G, B) of the layer's upper and lower halves."""
    data = pixels(layer)
    width, height = layer.get_width(), layer.get_height()
    halves = []
    for rows in (range(0, height // 2), range(height // 2, height)):
        sums, count = [0, 0, 0], 0
        for y in rows:
            row = data[y * width * 4:(y + 1) * width * 4]
            for channel in range(3):
                sums[channel] += sum(row[channel::4])
            count += width
        halves.append([value / float(count) for value in sums])
    return halves


def newest_styled(image, before_ids):
    return [layer for layer in image.get_layers() if layer.get_id() not in before_ids]


def regions_scenario():
    """Two channels (the target's upper and lower half, in image coordinates while the target is
    offset), two flat style layers of very different colours, one run; then Repeat; then a refusal."""
    image, target, _style, style_image = build_scene()
    offset_y = params["target_offsets"][1]
    half = params["target_size"][1] // 2
    upper = saved_selection(image, "Upper", 0, 0, image.get_width(), offset_y + half)
    lower = saved_selection(image, "Lower", 0, offset_y + half, image.get_width(),
                            image.get_height() - offset_y - half)
    red = flat_layer(style_image, "Red", "#e61414")
    blue = flat_layer(style_image, "Blue", "#1414e6")
    findings["before"] = stack(image)
    ids = [layer.get_id() for layer in image.get_layers()]
    values = engine_values(iterations=params["region_iterations"], **{
        "region": "item", "region-item": upper, "region2": "item", "region2-item": lower,
        "region2-style": blue})
    findings["run"] = run_procedure(image, [target], red, **values)
    findings["after"] = stack(image)
    added = newest_styled(image, ids)
    findings["halves"] = half_means(added[0]) if len(added) == 1 else None
    findings["content_halves"] = half_means(target)
    # Filters > Repeat: the same regions again (the items are remembered by their ids)
    ids = [layer.get_id() for layer in image.get_layers()]
    findings["repeat_run"] = run_with_last_values(image, [target])
    findings["after_repeat"] = stack(image)
    added = newest_styled(image, ids)
    findings["repeat_halves"] = half_means(added[0]) if len(added) == 1 else None
    # A channel of another image size: refused, the image as it was
    other = Gimp.Image.new(100, 100, Gimp.ImageBaseType.RGB)
    small = saved_selection(other, "Small", 0, 0, 50, 50)
    findings["before_refusal"] = stack(image)
    findings["channels_before_refusal"] = [c.get_name() for c in image.get_channels()]
    findings["refusal"] = run_procedure(image, [target], red, **engine_values(**{
        "region": "item", "region-item": small, "region2": "rest", "region2-style": blue}))
    findings["after_refusal"] = stack(image)
    findings["channels_after_refusal"] = [c.get_name() for c in image.get_channels()]
    # The other kinds of region, each the upper half of the target against blue in the rest
    width, upper_height = image.get_width(), offset_y + half
    figure = Gimp.Layer.new(image, "Figure", width, upper_height, Gimp.ImageType.RGBA_IMAGE, 100,
                            Gimp.LayerMode.NORMAL)  # at (0, 0): not the target's offsets
    image.insert_layer(figure, None, 0)
    figure.fill(Gimp.FillType.WHITE)
    cut = Gimp.Layer.new(image, "Cut", width, image.get_height(), Gimp.ImageType.RGBA_IMAGE, 100,
                         Gimp.LayerMode.NORMAL)
    image.insert_layer(cut, None, 0)
    image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, width, upper_height)
    cut.add_mask(cut.create_mask(Gimp.AddMaskType.SELECTION))
    kinds = {"selection": {"region": "selection"},
             "alpha": {"region": "alpha", "region-item": figure},
             "layer_mask": {"region": "item", "region-item": cut.get_mask()}}
    for name, rows in sorted(kinds.items()):
        if name == "selection":
            image.select_rectangle(Gimp.ChannelOps.REPLACE, 0, 0, width, upper_height)
        else:
            Gimp.Selection.none(image)
        ids = [layer.get_id() for layer in image.get_layers()]
        values = engine_values(iterations=params["region_iterations"], **dict(
            rows, **{"region2": "rest", "region2-style": blue}))
        findings["%s_run" % name] = run_procedure(image, [target], red, **values)
        added = newest_styled(image, ids)
        findings["%s_halves" % name] = half_means(added[0]) if len(added) == 1 else None
        findings["%s_has_mask" % name] = added[0].get_mask() is not None if len(added) == 1 else None
    findings["run_folders_at_end"] = run_files()
    for image in Gimp.get_images():
        image.delete()


def build_animation():
    """A 96x72 canvas with one layer per frame file (frame 1 at the bottom, as GIMP plays them), each
    smaller than the canvas and offset, named with GIMP's animation tags; the style in a second
    image."""
    image = Gimp.Image.new(96, 72, Gimp.ImageBaseType.RGB)
    width, height = params["frame_size"]
    frames = [load_layer(image, path, name, width, height, tuple(params["frame_offsets"]))
              for path, name in zip(params["frame_files"], params["frame_names"])]
    style_image = Gimp.Image.new(48, 48, Gimp.ImageBaseType.RGB)
    style = load_layer(style_image, params["style"], "Great Wave", 48, 48, (0, 0))
    return image, frames, style, style_image


def frames_values(**overrides):
    values = engine_values(**overrides)
    values["temporal-weight"] = params.get("temporal_weight", 100.0)
    return values


def images_made_by(call):
    """Runs call(); returns (its result, [the layer stack of each image it left open])."""
    before = [other.get_id() for other in Gimp.get_images()]
    result = call()
    made = [other for other in Gimp.get_images() if other.get_id() not in before]
    return result, [{"size": [other.get_width(), other.get_height()], "layers": stack(other),
                     "base_type": int(other.get_base_type())} for other in made]


def signal_frames_engine_at(signum, frame, report, run_over):
    """A thread that, once the plug-in has shown a preview of `frame`, sends signum to the
    stylize-frames engine (SIGUSR1: stop and keep; SIGTERM: cancel); report gets what it did."""
    import threading
    import time

    def watch():
        deadline = time.time() + 600
        while time.time() < deadline and not run_over.is_set():
            path = params["preview_log"]
            lines = []
            if os.path.exists(path):
                with open(path) as handle:
                    lines = [json.loads(line) for line in handle if line.strip()]
            if any(line["what"] == "preview" and line["frame"] == frame for line in lines):
                pids = engine_processes("stylize-frames")
                for pid in pids:
                    os.kill(pid, signum)
                report.update(signal=int(signum), pids=pids)
                return
            time.sleep(0.05)
        report["timeout"] = True
    thread = threading.Thread(target=watch)
    thread.daemon = True
    thread.start()
    return thread


def frames_run_signalled(name, signal_number):
    import threading
    image, frames, style, style_image = build_animation()
    report = findings["%s_signal" % name] = {}
    run_over = threading.Event()
    watcher = signal_frames_engine_at(signal_number, 2, report, run_over)
    findings["%s_run" % name], findings["%s_new_images" % name] = images_made_by(
        lambda: run_procedure(image, [frames[0]], style, FRAMES_PROCEDURE,
                              **frames_values(iterations=params["live_iterations"])))
    run_over.set()
    watcher.join(5)
    findings["%s_log" % name] = read_preview_log()
    findings["%s_source_after" % name] = stack(image)
    for other in (image, style_image):
        other.delete()


def frames_scenario():
    import signal
    findings["frames_registration"] = registration(FRAMES_PROCEDURE)
    image, frames, style, style_image = build_animation()
    findings["before"] = stack(image)
    findings["style_before"] = stack(style_image)
    # 1. every layer a frame: a new image
    findings["run"], findings["new_images"] = images_made_by(
        lambda: run_procedure(image, [frames[0]], style, FRAMES_PROCEDURE, **frames_values()))
    findings["after"] = stack(image)
    findings["style_after"] = stack(style_image)
    findings["run_log"] = read_preview_log()
    findings["run_folders_after_run"] = run_files()
    if params.get("first_run_only"):
        for other in (image, style_image):
            other.delete()
        return
    # 2. three selected layers, handed over out of order: those are the frames, bottom first
    findings["selected_run"], findings["selected_new_images"] = images_made_by(
        lambda: run_procedure(image, [frames[4], frames[1], frames[2]], style, FRAMES_PROCEDURE,
                              **frames_values()))
    read_preview_log()
    # 3. a frame as the style: refused, nothing made
    findings["refusal"], findings["refusal_new_images"] = images_made_by(
        lambda: run_procedure(image, [frames[0]], frames[1], FRAMES_PROCEDURE, **frames_values()))
    findings["after_refusal"] = stack(image)
    for other in (image, style_image):
        other.delete()
    if params.get("live"):
        # 4. stop and keep during frame 2 (the engine's SIGUSR1): frames 1 and 2 are kept
        frames_run_signalled("stop", signal.SIGUSR1)
        # 5. the engine cancelled (SIGTERM) during frame 2: the new image goes again
        frames_run_signalled("cancel", signal.SIGTERM)
    findings["run_folders_at_end"] = run_files()
    findings["images_at_end"] = len(Gimp.get_images())


SCENARIOS = {"frames": frames_scenario, "regions": regions_scenario, "success": success_scenario, "failure": failure_scenario, "cancel": cancel_scenario,
             "cases": cases_scenario, "live": live_scenario}

try:
    findings["registration"] = registration()
    if findings["registration"]["registered"]:
        SCENARIOS[params["scenario"]]()
except Exception:
    findings["errors"].append(traceback.format_exc())
finally:
    with open(params["output"], "w") as handle:
        json.dump(findings, handle, indent=1, sort_keys=True)
