"""The animation's procedure (plugin/nst_animation.py, Filters > Animation > Neural Style Transfer
(frames)...) against the in-memory gimpfu and the fake engine's stylize-frames: the frames' order, the
new image (names with their delay tags, offsets, order; the source untouched), the checks' messages,
stop, cancel, the progress text and the live preview. In a real GIMP 3: tests/gimp3/test_gimp3_e2e.py.
"""

import pytest
from PIL import ImageChops

from helpers import mnemonics
from helpers.fake_gimpfu import INDEXED, error
from helpers.plugin_runs import add_style_image, call_procedure, live_preview, registered, snapshot, watch_runs
from helpers.plugin_setup import PluginHarness

PROC = "python-fu-nst-style-transfer-frames"
DEFAULTS = dict(preset=0, iterations=0, size=0, style_strength=5.0, use_ssim=True,
                preserve_colors=False, seed=0, device=0, temporal_weight=100.0)
# Bottom first, as GIMP plays them; the tags of GIMP's animation naming in some of the names.
FRAME_NAMES = ["Frame 1 (100ms) (replace)", "Frame 2 (100ms)", "Frame 3 (250ms) (combine)", "Frame 4"]
FRAME_SIZE, FRAME_OFFSETS = (60, 40), (12, 8)


@pytest.fixture
def harness(tmp_path, monkeypatch):
    setup = PluginHarness(tmp_path, monkeypatch)
    monkeypatch.delenv("FAKE_ENGINE_HANG_FRAME", raising=False)
    monkeypatch.delenv("NST_PREVIEW_EVERY", raising=False)
    yield setup
    setup.close()


def animation(world, names=FRAME_NAMES, base_type=0):
    """A 100x70 canvas with one layer per frame (the first name at the bottom), each its own colour;
    a second image holds the style. Returns (image, frames bottom first, style)."""
    image = world.new_image(100, 70, base_type)
    frames = []
    for index, name in enumerate(names):
        frames.append(world.add_layer(image, name, FRAME_SIZE[0], FRAME_SIZE[1], offsets=FRAME_OFFSETS,
                                      color=(40 + 50 * index, 200 - 40 * index, 90, 255)))
    return image, frames, add_style_image(world)


def run(harness, image, drawable, style, **overrides):
    return call_procedure(harness.plugin.style_transfer_frames, image, drawable, style, DEFAULTS,
                          overrides)


def new_images(world, before):
    return [image for image in world.images if image not in before]


def styled(frame):
    """What the fake engine makes of a frame: its pixels inverted."""
    return ImageChops.invert(frame.pixels.convert("RGB"))


def same_pixels(layer, picture):
    return ImageChops.difference(layer.pixels.convert("RGB"), picture).getbbox() is None


# ---------------------------------------------------------------------------------------------
# registration


def test_registers_a_second_procedure_in_filters_animation(harness):
    by_name = dict((r["proc_name"], r) for r in harness.world.registrations)
    assert sorted(by_name) == ["python-fu-nst-style-transfer", PROC]
    registration = by_name[PROC]
    assert registered(registration) == (
        "<Image>/Filters/Animation", "Neural Style Transfer (frames)...", "RGB*, GRAY*",
        ["image", "drawable", "style_layer", "preset", "iterations", "size", "style_strength", "use_ssim",
         "preserve_colors", "seed", "device", "temporal_weight"])
    defaults = dict((param[1], param[3]) for param in registration["params"][2:])
    assert defaults == dict(DEFAULTS, style_layer=None)
    assert registration["function"] is harness.plugin.style_transfer_frames


def test_the_shared_parameters_are_the_one_picture_procedures_own(harness):
    frames_params = dict((param[1], param) for param in
                         dict((r["proc_name"], r) for r in harness.world.registrations)[PROC]["params"])
    for param in harness.nst_styled_layers.PARAMETERS:
        if param[1] in frames_params and param[1] != "drawable":
            assert frames_params[param[1]] is param, param[1]
    weight = frames_params["temporal_weight"]
    assert weight[3] == 100.0 and tuple(weight[4][:2]) == (0.0, 1000.0)


def test_its_labels_have_their_own_mnemonics_and_tooltips_that_say_more(harness):
    params = harness.nst_animation.PARAMETERS[2:]
    labels = [param[2] for param in params]
    assert all(mnemonics.mnemonic(label) for label in labels) and mnemonics.mnemonic_clashes(labels) == []
    tooltips = harness.nst_animation.TOOLTIPS
    for param in params:
        assert len(tooltips[param[1]].split()) >= 12, param[1]
    assert "not one of the frames" in tooltips["style_layer"]


# ---------------------------------------------------------------------------------------------
# a successful run


def test_the_frames_become_a_new_image_with_one_layer_each(harness):
    world = harness.world
    image, frames, style = animation(world)
    before, images_before = snapshot(world, image), list(world.images)

    run(harness, image, frames[-1], style)

    (new,) = new_images(world, images_before)
    assert (new.width, new.height, new.base_type) == (100, 70, 0)
    # The same names (tags and all), sizes, offsets and order: top first, the last frame on top.
    assert [(entry[1], entry[3], entry[4], entry[5]) for entry in world.layer_stack(new)] == \
        [(name, FRAME_SIZE[0], FRAME_SIZE[1], FRAME_OFFSETS) for name in reversed(FRAME_NAMES)]
    # Each layer holds its own frame, styled: the frames went to the engine bottom first.
    for layer, frame in zip(reversed(new.layers), frames):
        assert same_pixels(layer, styled(frame)), layer.name
    assert snapshot(world, image) == before, "the source image changed"
    assert (image.undo_depth, image.undo_steps) == (0, 0)
    assert new.undo_enabled and new.undo_steps == 0
    assert [display.image for display in world.displays] == [new]
    assert harness.run_folders() == [] and world.messages == []
    argv = harness.recorded_engine_call()["argv"]
    assert argv[:3] == ["-m", "nst_core", "stylize-frames"]
    assert [arg.rsplit("/", 1)[-1] for arg in argv[3:8]] == [
        "frame-001.png", "frame-002.png", "frame-003.png", "frame-004.png", "style.png"]
    assert argv[argv.index("--temporal-weight") + 1] == "100.0"


def test_the_dialogs_values_reach_the_engine(harness):
    image, frames, style = animation(harness.world)
    run(harness, image, frames[0], style, preset=1, iterations=40, size=128, temporal_weight=250.0,
        device=1)
    argv = harness.recorded_engine_call()["argv"]
    for option, value in (("--temporal-weight", "250.0"), ("--preset", "fast"),
                          ("--iterations", "40"), ("--size", "128"), ("--device", "cpu")):
        assert argv[argv.index(option) + 1] == value, option
    assert "--style-mask" not in argv


def test_several_selected_layers_are_the_frames_bottom_first(harness):
    world = harness.world
    names = ["Back", "A", "B", "C", "Front"]
    image, layers, style = animation(world, names)
    images_before = list(world.images)
    chosen = [layers[3], layers[1], layers[2]]  # as GIMP may hand them over: in any order
    run(harness, image, chosen, style)
    (new,) = new_images(world, images_before)
    assert [layer.name for layer in new.layers] == ["C", "B", "A"]
    for layer, frame in zip(reversed(new.layers), [layers[1], layers[2], layers[3]]):
        assert same_pixels(layer, styled(frame)), layer.name


def test_the_style_may_be_a_layer_of_the_same_image_that_is_not_a_frame(harness):
    world = harness.world
    image, layers, _style = animation(world, ["Painting", "One", "Two"])
    images_before = list(world.images)
    run(harness, image, layers[1:], layers[0])
    (new,) = new_images(world, images_before)
    assert [layer.name for layer in new.layers] == ["Two", "One"]


def test_a_grayscale_animation_gets_a_grayscale_image(harness):
    world = harness.world
    image, frames, style = animation(world, base_type=1)
    images_before = list(world.images)
    run(harness, image, frames[0], style)
    (new,) = new_images(world, images_before)
    assert new.base_type == 1 and len(new.layers) == len(FRAME_NAMES)


def test_a_gimp_without_displays_still_gets_the_new_image(harness):
    world = harness.world
    world.headless = True
    image, frames, style = animation(world)
    images_before = list(world.images)
    run(harness, image, frames[0], style)
    (new,) = new_images(world, images_before)
    assert len(new.layers) == len(FRAME_NAMES) and world.displays == []


def test_progress_says_which_frame_and_the_time_left_for_all_frames(harness):
    world = harness.world
    image, frames, style = animation(world)
    run(harness, image, frames[0], style)
    texts = [text for text in world.progress_texts if text]
    assert any(text.startswith("Frame 2 of 4: iteration 2 of 3, about") and
               text.endswith("left for all frames") for text in texts), texts
    assert any(text.startswith("Frame 1 of 4: iteration 1 of 3") and "estimating the time left" in text
               for text in texts)
    assert any(text.startswith("Frame 1 of 4: iteration 2 of 3") and "left for this frame" in text
               for text in texts)
    assert "Style transfer: 4 of 4 frames done, making the new image" in texts
    values = world.progress_values
    assert values[0] == 0.0 and values[-1] == 1.0 and all(0.0 <= v <= 1.0 for v in values)
    # the frames' own bars do not restart the sequence's: it reaches frame 4's quarter last
    assert max(values[:-1]) > 0.75


# ---------------------------------------------------------------------------------------------
# the checks: each refused before any work, with what to do, and no new image


def expect_refusal(harness, image, drawable, style, **overrides):
    world = harness.world
    before, images_before = snapshot(world, image), list(world.images)
    with pytest.raises(error) as caught:
        run(harness, image, drawable, style, **overrides)
    assert snapshot(world, image) == before
    assert world.images == images_before, "an image was left behind"
    assert harness.run_folders() == [] and not harness.record.exists(), "the engine ran"
    message = str(caught.value)
    assert message.startswith("Neural Style Transfer (frames): ")
    assert world.messages[-1] == message
    return message


def test_one_layer_is_no_animation(harness):
    image, frames, style = animation(harness.world, ["Only"])
    message = expect_refusal(harness, image, frames[0], style)
    assert "at least 2 frames" in message and "this image has one layer" in message
    assert "File > Open as Layers" in message and "Filters > Artistic" in message


def test_a_layer_group_among_the_frames_is_refused(harness):
    world = harness.world
    image, frames, style = animation(world)
    world.add_layer(image, "Extras", 10, 10, kind="group", position=1)
    message = expect_refusal(harness, image, frames[0], style)
    assert "'Extras' is a layer group" in message and "Layer > Merge Layer Group" in message


@pytest.mark.parametrize("change, words", [
    ({"width": 50}, "frame 3 ('Frame 3 (250ms) (combine)') is 50x40 at (12, 8) where frame 1"),
    ({"offsets": (0, 0)}, "is 60x40 at (0, 0) where frame 1 ('Frame 1 (100ms) (replace)') is 60x40 at (12, 8)"),
])
def test_frames_of_another_size_or_place_are_refused(harness, change, words):
    image, frames, style = animation(harness.world)
    for name, value in change.items():
        setattr(frames[2], name, value)
    message = expect_refusal(harness, image, frames[0], style)
    assert "one size and position" in message and words in message
    assert "Layer > Layer to Image Size" in message


def test_no_style_layer_says_what_to_choose(harness):
    image, frames, _style = animation(harness.world)
    assert "Choose a style layer" in expect_refusal(harness, image, frames[0], None)


def test_a_frame_as_the_style_is_refused(harness):
    """Styled with itself that frame would hardly change, and the dialog's first suggestion with
    one image open is a layer of it: refused, saying what to choose instead."""
    image, frames, _style = animation(harness.world)
    message = expect_refusal(harness, image, frames[0], frames[1])
    assert "'Frame 2 (100ms)' is frame 2 of the animation" in message
    assert "painting opened as a second image" in message


def test_selected_frames_from_different_groups_are_refused(harness):
    world = harness.world
    image, frames, style = animation(world, ["A", "B"])
    group = world.add_layer(image, "Folder", 10, 10, kind="group")
    inner = world.add_layer(image, "Inner", FRAME_SIZE[0], FRAME_SIZE[1], offsets=FRAME_OFFSETS,
                            parent=group)
    message = expect_refusal(harness, image, [frames[0], inner], style)
    assert "different layer groups" in message and "one level of the layer stack" in message


def test_an_indexed_animation_says_how_to_convert_it(harness):
    image, frames, style = animation(harness.world, base_type=INDEXED)
    assert "Image > Mode > RGB" in expect_refusal(harness, image, frames[0], style)


def test_a_nonsense_temporal_weight_is_refused(harness):
    image, frames, style = animation(harness.world)
    assert "temporal weight" in expect_refusal(harness, image, frames[0], style, temporal_weight=-5.0)


# ---------------------------------------------------------------------------------------------
# stop, cancel, failures


def asking_at_frame(harness, action, frame=2):
    """Plays the run window's Stop or Cancel: the engine is asked at the first step of `frame`
    (the fake engine waits there: hang mode)."""
    harness.engine_mode("hang")
    harness.monkeypatch.setenv("FAKE_ENGINE_HANG_FRAME", str(frame))
    asked = []

    def watch(engine, job, event):
        if event.get("event") == "progress" and event.get("frame") == frame and not asked:
            asked.append(getattr(engine, action)())
    watch_runs(harness, watch)
    return asked


def test_stop_keeps_the_frames_done_in_the_new_image(harness):
    world = harness.world
    image, frames, style = animation(world)
    before, images_before = snapshot(world, image), list(world.images)
    asked = asking_at_frame(harness, "stop", frame=2)
    run(harness, image, frames[0], style)
    assert asked == [True]
    (new,) = new_images(world, images_before)
    assert [layer.name for layer in new.layers] == [FRAME_NAMES[1], FRAME_NAMES[0]]
    assert same_pixels(new.layers[0], styled(frames[1]))
    assert snapshot(world, image) == before
    (message,) = world.messages
    assert "Stopped early: 2 of 4 frames were styled; the new image holds those." in message


def test_cancel_makes_no_image(harness):
    world = harness.world
    image, frames, style = animation(world)
    before, images_before = snapshot(world, image), list(world.images)
    asked = asking_at_frame(harness, "cancel", frame=3)
    with pytest.raises(error) as caught:
        run(harness, image, frames[0], style)
    assert asked == [True] and "ancel" in str(caught.value)
    assert world.images == images_before and world.displays == []
    assert snapshot(world, image) == before and harness.run_folders() == []


def test_a_cancel_from_the_run_window_is_no_error(harness):
    world = harness.world
    image, frames, style = animation(world)
    images_before = list(world.images)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_is_interactive", lambda: True)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_in_dialog",
                                lambda title, engine, job, on_event, describe, hand_over, hint=None:
                                engine.run(job, on_event))
    asking_at_frame(harness, "cancel", frame=1)
    run(harness, image, frames[0], style)  # no fail(): the user asked for it
    assert world.images == images_before and world.messages == []


def test_an_engine_failure_makes_no_image_and_says_why(harness):
    world = harness.world
    image, frames, style = animation(world)
    images_before = list(world.images)
    harness.engine_mode("out_of_memory")
    with pytest.raises(error) as caught:
        run(harness, image, frames[0], style)
    assert "Fake engine failure: out_of_memory" in str(caught.value)
    assert world.images == images_before and harness.run_folders() == []


# ---------------------------------------------------------------------------------------------
# the run window and the live preview (GIMP 3's replace_layer_pixels played by a fake)


def previewed_animation(harness):
    """An animation to be run with live previews: (image, frames, style, the images open before,
    the previews' pixel copies)."""
    image, frames, style = animation(harness.world)
    images_before = list(harness.world.images)
    return image, frames, style, images_before, live_preview(harness)


def test_the_frame_under_way_forms_in_the_new_image(harness):
    world = harness.world
    image, frames, style, images_before, replaced = previewed_animation(harness)
    shown = []
    real_show = harness.nst_animation.FramesImage.show_preview

    def show_preview(self, number, path):
        real_show(self, number, path)
        shown.append((number, [layer.name for layer in self.image.layers]))
    harness.monkeypatch.setattr(harness.nst_animation.FramesImage, "show_preview", show_preview)
    run(harness, image, frames[0], style)
    # 3 previews a frame: the first makes the frame's layer (on top), the next two replace it
    assert [number for number, _names in shown] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert shown[3][1] == [FRAME_NAMES[1], FRAME_NAMES[0]]
    (new,) = new_images(world, images_before)
    assert [layer.name for layer in new.layers] == list(reversed(FRAME_NAMES))
    # the results replaced the previews in the same layers
    for layer, frame in zip(reversed(new.layers), frames):
        assert same_pixels(layer, styled(frame)), layer.name
    assert len(replaced) == 4 * 2 + 4
    assert world.displays and world.displays[0].image is new
    assert harness.run_folders() == [] and world.messages == []


def test_cancel_after_previews_takes_the_new_image_and_its_display_away(harness):
    world = harness.world
    image, frames, style, images_before, _replaced = previewed_animation(harness)
    asking_at_frame(harness, "cancel", frame=3)
    with pytest.raises(error):
        run(harness, image, frames[0], style)
    assert world.images == images_before and world.displays == []


def test_stop_after_previews_keeps_only_the_frames_done(harness):
    world = harness.world
    image, frames, style, images_before, _replaced = previewed_animation(harness)
    asking_at_frame(harness, "stop", frame=3)
    run(harness, image, frames[0], style)
    (new,) = new_images(world, images_before)
    assert [layer.name for layer in new.layers] == [FRAME_NAMES[2], FRAME_NAMES[1], FRAME_NAMES[0]]


def test_dialog_runs_show_the_frames_progress_in_the_run_window(harness):
    world = harness.world
    image, frames, style = animation(world)
    live_preview(harness)
    harness.monkeypatch.delenv("NST_PREVIEW_EVERY")
    seen = []

    def fake_run_in_dialog(title, engine, job, on_event, describe, hand_over, hint=None):
        seen.append((title, job.preview_every, hint))

        def described(event):
            event = hand_over(event)
            seen.append(describe(event))
            on_event(event)
        return engine.run(job, described)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_in_dialog", fake_run_in_dialog)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_is_interactive", lambda: True)
    run(harness, image, frames[0], style)
    title, preview_every, hint = seen[0]
    assert title == "Neural Style Transfer (frames): 4 frames"
    assert preview_every == harness.nst_run.LIVE_PREVIEW_SECONDS
    assert "frames done so far" in hint and "no new image" in hint
    texts = [text for text, _fraction in seen[1:] if text]
    assert any(text.startswith("Frame 3 of 4: iteration 2 of 3, about") for text in texts)
    assert world.progress_texts == []  # GIMP's own progress bar stays out of it


def test_a_frame_shown_but_not_done_gets_no_layer(harness, tmp_path):
    """Whatever a transport sent before it ended (a preview of a frame it did not finish), the new
    image holds the frames done only."""
    world = harness.world
    image, frames, _style = animation(world)
    live_preview(harness)
    paths = []
    for index, frame in enumerate(frames):
        paths.append(str(tmp_path / ("styled-%d.png" % index)))
        styled(frame).save(paths[-1])
    result = harness.nst_animation.FramesImage(image, frames, display=False)
    result.show_preview(1, paths[0])
    result.show_preview(3, paths[2])
    new = result.finish(paths[:2])
    assert [layer.name for layer in new.layers] == [FRAME_NAMES[1], FRAME_NAMES[0]]
    assert same_pixels(new.layers[0], styled(frames[1])) and world.displays == []


def test_a_slow_cpu_sequence_says_so_as_soon_as_frame_1_gives_an_estimate(harness):
    describe = harness.nst_run.EventDescriber(harness.nst_run.quicker_than({"preset": "standard"}),
                                              frames=6)
    describe({"event": "frame_start", "frame": 1, "frames": 6, "mode": "first"})
    describe({"event": "start", "device": "cpu", "working_size": [512, 340]})
    text, _fraction = describe({"event": "progress", "frame": 1, "iteration": 2, "total": 500,
                                "fraction": 0.01, "elapsed": 3.0, "eta": 300.0,
                                "sequence_eta": None})
    assert text.startswith("Frame 1 of 6: iteration 2 of 500, about 5 min 00 s left for this frame\n")
    assert "On the CPU this may take more than a minute" in text
