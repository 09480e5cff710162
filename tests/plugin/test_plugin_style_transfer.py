"""The plug-in's one-layer procedure (plugin/nst_styled_layers.py, Filters > Artistic > Neural Style
Transfer...) against the in-memory gimpfu and the fake engine.

The plug-in is installed into a test folder the way the installer does it (its files plus
nst_config.json naming the fake engine) and imported with helpers/fake_gimpfu.py as its gimpfu.
"""

import json
import os

import pytest
from PIL import ImageChops

from helpers.fake_gimpfu import GRAY, INDEXED, FakeGimpError, error
from helpers.plugin_runs import add_style_image, call_procedure, live_preview, registered, snapshot, watch_runs
from helpers.plugin_setup import PluginHarness

PROC = "python-fu-nst-style-transfer"
DEFAULTS = dict(preset=0, iterations=0, size=0, style_strength=5.0, use_ssim=True,
                preserve_colors=False, seed=0, device=0)


@pytest.fixture
def harness(tmp_path, monkeypatch):
    setup = PluginHarness(tmp_path, monkeypatch)
    yield setup
    setup.close()


def scene(world, base_type=0):
    """A canvas with a background, a smaller offset target layer and a top layer; a second image
    holds the style."""
    image = world.new_image(200, 150, base_type)
    world.add_layer(image, "Background", 200, 150, color=(250, 250, 250, 255))
    target = world.add_layer(image, "Photo", 90, 60, offsets=(30, 40), color=(200, 40, 40, 255))
    world.add_layer(image, "Top", 50, 50, offsets=(0, 0), color=(0, 0, 0, 128))
    return image, target, add_style_image(world)


def run(harness, image, drawable, style, **overrides):
    return call_procedure(harness.plugin.style_transfer, image, drawable, style, DEFAULTS, overrides)


# ---------------------------------------------------------------------------------------------
# registration


def test_registers_the_procedure_in_filters_artistic(harness):
    # the animation's procedure, the second: tests/plugin/test_plugin_animation.py
    registration = harness.world.registrations[0]
    assert registration["proc_name"] == PROC
    assert registered(registration) == (
        "<Image>/Filters/Artistic", "Neural Style Transfer...", "RGB*, GRAY*",
        ["image", "drawable", "style_layer", "preset", "iterations", "size", "style_strength", "use_ssim",
         "preserve_colors", "seed", "device", "region", "region_item", "region_weight",
         "region2", "region2_item", "region2_style", "region2_weight"])
    defaults = dict((param[1], param[3]) for param in registration["params"][2:])
    assert defaults == dict(DEFAULTS, style_layer=None, region=0, region_item=None, region_weight=1.0,
                            region2=0, region2_item=None, region2_style=None, region2_weight=1.0)


def test_main_runs_only_as_a_program(harness):
    assert harness.world.main_called is False


# ---------------------------------------------------------------------------------------------
# a successful run


def test_adds_one_styled_layer_directly_above_the_target(harness):
    world = harness.world
    image, target, style = scene(world)
    before_stack, before_pixels = snapshot(world, image)
    images_before = list(world.images)

    run(harness, image, target, style)

    after = world.layer_stack(image)
    assert len(after) == len(before_stack) + 1
    new_index = [entry[1] for entry in after].index("Styled: Great Wave")
    assert after[new_index + 1][1] == "Photo", "the new layer is not directly above the target"
    new_layer = image.layers[new_index]
    assert (new_layer.width, new_layer.height, new_layer.offsets) == (90, 60, (30, 40))
    assert new_layer.mask is None
    assert ImageChops.difference(new_layer.pixels.convert("RGB"),
                                 target.pixels.convert("RGB")).getbbox() is not None
    # Everything that was there is untouched.
    remaining = [entry for entry in after if entry[1] != "Styled: Great Wave"]
    assert remaining == before_stack
    assert [item.pixels.tobytes() for item in world.all_items(image) if item is not new_layer] \
        == before_pixels
    # One undo group, closed; scratch images gone; progress shown; nothing left in temp.
    assert (image.undo_depth, image.undo_groups_closed) == (0, 1)
    assert world.images == images_before
    assert harness.run_folders() == []
    assert world.messages == []


def test_progress_bar_follows_the_engine(harness):
    world = harness.world
    image, target, style = scene(world)
    run(harness, image, target, style)
    values = world.progress_values
    assert values[0] == 0.0 and values[-1] == 1.0
    assert values == sorted(values)
    assert len(values) >= 4
    texts = [text for text in world.progress_texts if text]
    assert any("iteration 2 of 3" in text and "left" in text for text in texts)
    assert any(text.startswith("Style transfer: starting on cpu") for text in texts)


def test_a_slow_cpu_run_says_so_and_what_is_quicker(harness):
    """The engine's first estimate says the CPU run takes over a minute: from then on the progress
    text says so, and suggests the Fast preset (or, on the Fast preset, a smaller size)."""
    world = harness.world
    image, target, style = scene(world)
    harness.monkeypatch.setenv("FAKE_ENGINE_ETA", "150")
    run(harness, image, target, style)
    noted = [text for text in world.progress_texts if text and "more than a minute" in text]
    assert noted and "up to about 2 min 30 s" in noted[0] and "the Fast preset" in noted[0]
    assert any("iteration 3 of 3" in text for text in noted)  # it stays with the later steps
    assert not any("more than a minute" in text for text in world.progress_texts[:2] if text)

    world.progress_texts[:] = []
    run(harness, image, target, style, preset=1)  # fast
    noted = [text for text in world.progress_texts if text and "more than a minute" in text]
    assert noted and "a smaller working size" in noted[0] and "Fast preset" not in noted[0]

    world.progress_texts[:] = []
    harness.monkeypatch.setenv("FAKE_ENGINE_ETA", "20")
    run(harness, image, target, style)
    assert not any("more than a minute" in text for text in world.progress_texts if text)


def test_dialog_values_reach_the_engine_command_line(harness):
    world = harness.world
    image, target, style = scene(world)
    # GIMP 2.10's spinners hand over floats.
    run(harness, image, target, style, preset=1, iterations=250.0, size=384.0,
        style_strength=7.5, use_ssim=False, preserve_colors=True, seed=7.0, device=1)
    argv = harness.recorded_engine_call()["argv"]
    assert argv[:3] == ["-m", "nst_core", "stylize"]
    content, style_png, dash_o, result = argv[3:7]
    assert dash_o == "-o"
    assert os.path.basename(content) == "content.png"
    assert os.path.basename(style_png) == "style.png"
    assert os.path.basename(result) == "result.png"
    assert argv[7:] == ["--progress", "jsonl", "--preset", "fast", "--size", "384",
                        "--iterations", "250", "--style-strength", "7.5", "--no-ssim",
                        "--preserve-colors", "--seed", "7", "--device", "cpu"]
    assert "--style-weight" not in argv and "--content-weight" not in argv


def test_paper_preset_passes_no_weights(harness):
    image, target, style = scene(harness.world)
    run(harness, image, target, style, preset=2, device=3)
    argv = harness.recorded_engine_call()["argv"]
    assert "--style-weight" not in argv and "--content-weight" not in argv
    assert "--style-strength" not in argv
    assert argv[argv.index("--preset") + 1] == "paper"
    assert argv[argv.index("--device") + 1] == "mps"


def test_exported_layers_are_the_layers_own_pixels(harness, monkeypatch):
    """content.png is the target at its own size (no offsets); style.png the style layer."""
    world = harness.world
    image, target, style = scene(world)
    world.add_mask(target)
    saved = {}
    original = harness.world.pdb.file_png_save_defaults

    def keep_copy(img, drawable, filename, raw):
        original(img, drawable, filename, raw)
        saved[os.path.basename(filename)] = (drawable.pixels.copy(), drawable.offsets,
                                             drawable.mask)
    monkeypatch.setattr(harness.world.pdb, "file_png_save_defaults", keep_copy)
    run(harness, image, target, style)
    content_pixels, offsets, mask = saved["content.png"]
    assert content_pixels.size == (90, 60) and offsets == (0, 0) and mask is None
    assert content_pixels.tobytes() == target.pixels.tobytes()
    assert saved["style.png"][0].size == (64, 64)
    assert target.mask is not None  # the user's layer keeps its mask


def test_selection_gives_the_new_layer_a_mask(harness):
    world = harness.world
    image, target, style = scene(world)
    image.selection = (50, 60, 20, 10)
    run(harness, image, target, style)
    new_layer = image.layers[1]
    assert new_layer.name == "Styled: Great Wave"
    assert new_layer.mask is not None
    # The mask is the selection in the layer's own coordinates (offsets 30, 40).
    assert new_layer.mask.pixels.getbbox() == (20, 20, 40, 30)


def test_target_inside_a_group_gets_its_result_inside_the_group(harness):
    world = harness.world
    image = world.new_image(100, 100)
    group = world.add_layer(image, "Group", 100, 100, kind="group")
    world.add_layer(image, "Above", 10, 10, parent=group, position=0)
    target = world.add_layer(image, "Inner", 40, 30, offsets=(5, 6), parent=group, position=1)
    style = world.add_layer(world.new_image(20, 20), "Style", 20, 20)
    run(harness, image, target, style)
    assert [child.name for child in group.children] == ["Above", "Styled: Style", "Inner"]
    assert group.children[1].offsets == (5, 6)


def test_grayscale_image_works(harness):
    world = harness.world
    image, target, style = scene(world, base_type=GRAY)
    run(harness, image, target, style)
    assert image.layers[1].name == "Styled: Great Wave"


def test_indexed_style_image_is_fine(harness):
    world = harness.world
    image, target, _style = scene(world)
    indexed = world.new_image(30, 30, INDEXED)
    style = world.add_layer(indexed, "Palette art", 30, 30)
    run(harness, image, target, style)
    assert image.layers[1].name == "Styled: Palette art"


def test_engine_warnings_are_shown_after_success(harness, monkeypatch):
    monkeypatch.setenv("FAKE_ENGINE_WARN", "working size capped to 512 to fit memory")
    image, target, style = scene(harness.world)
    run(harness, image, target, style)
    assert len(harness.world.messages) == 1
    assert "working size capped" in harness.world.messages[0]


def test_stale_run_folders_of_dead_runs_are_swept(harness):
    root = harness.temp_dir / ("nst-gimp-%s" % harness.nst_run.run_folders.safe_user_name())
    dead = root / "run-999999999-abcdef"
    dead.mkdir(parents=True)
    (dead / "content.png").write_bytes(b"left over")
    foreign = root / "keep-me"
    foreign.mkdir()
    image, target, style = scene(harness.world)
    run(harness, image, target, style)
    assert not dead.exists()
    assert foreign.exists()


def test_env_variable_overrides_the_installed_engine(harness, monkeypatch, tmp_path):
    from helpers.fake_engine import write_fake_engine
    other = write_fake_engine(str(tmp_path / "other-python"))
    monkeypatch.setenv("NST_ENGINE_PYTHON", other)
    monkeypatch.setenv("FAKE_ENGINE_RECORD", str(tmp_path / "other.json"))
    image, target, style = scene(harness.world)
    run(harness, image, target, style)
    assert json.loads((tmp_path / "other.json").read_text())["argv"][:3] == [
        "-m", "nst_core", "stylize"]


# ---------------------------------------------------------------------------------------------
# failures leave the image as it was, say what to do, and clean up


def expect_failure(harness, image, drawable, style, **overrides):
    world = harness.world
    before = snapshot(world, image)
    images_before = list(world.images)
    messages_before = list(world.messages)
    with pytest.raises(error) as caught:
        run(harness, image, drawable, style, **overrides)
    assert snapshot(world, image) == before, "a failed run changed the image"
    assert image.undo_depth == 0
    assert world.images == images_before, "a scratch image was left open"
    assert harness.run_folders() == [], "temporary files were left behind"
    message = str(caught.value)
    assert world.messages == messages_before + [message], "the user was not told"
    assert message.startswith("Neural Style Transfer: ")
    return message


@pytest.mark.parametrize("mode, words", [
    ("weights_missing", "Fake engine failure: weights_missing"),
    ("bad_input", "Fake engine failure: bad_input"),
    ("crash", "fake engine crashed on purpose"),
    ("no_module", "does not have nst_core installed"),
    ("no_output", "wrote no result"),
])
def test_engine_failures_are_reported_with_the_log(harness, mode, words):
    harness.engine_mode(mode)
    image, target, style = scene(harness.world)
    message = expect_failure(harness, image, target, style)
    assert words in message
    assert str(harness.log_path()) in message


def test_missing_engine_says_to_run_the_installer(harness):
    config = harness.folder / "nst_config.json"
    config.write_text(json.dumps({"engine_python": "/nowhere/bin/python", "log_dir": ""}))
    image, target, style = scene(harness.world)
    message = expect_failure(harness, image, target, style)
    assert "/nowhere/bin/python" in message and "installer" in message


def test_unconfigured_plugin_says_to_run_the_installer(harness):
    (harness.folder / "nst_config.json").unlink()
    image, target, style = scene(harness.world)
    message = expect_failure(harness, image, target, style)
    assert "not set up" in message and "installer" in message


def test_unwritable_temp_folder_is_reported(harness):
    root = harness.temp_dir / ("nst-gimp-%s" % harness.nst_run.run_folders.safe_user_name())
    root.write_text("a file where the run folders should go")
    image, target, style = scene(harness.world)
    message = expect_failure(harness, image, target, style)
    assert "Could not create a temporary folder" in message and str(root) in message


def test_failure_while_adding_the_layer_leaves_no_trace(harness):
    image, target, style = scene(harness.world)
    before = snapshot(harness.world, image)
    # The first set_offsets call is on the scratch copy: let exports through, fail on insertion.
    calls = []

    def flaky(*args):
        calls.append(args)
        if len(calls) > 2:
            raise RuntimeError("GIMP said no")
        layer, x, y = args
        layer.offsets = (x, y)
    harness.world.pdb.gimp_layer_set_offsets = flaky
    with pytest.raises(RuntimeError):
        run(harness, image, target, style)
    assert snapshot(harness.world, image) == before
    assert (image.undo_depth, image.undo_groups_closed) == (0, 1)
    assert harness.run_folders() == []


# ---------------------------------------------------------------------------------------------
# layer cases that are refused with a clear message


def test_indexed_image_is_refused(harness):
    image, target, style = scene(harness.world, base_type=INDEXED)
    assert "Image > Mode > RGB" in expect_failure(harness, image, target, style)


def test_layer_group_target_is_refused(harness):
    world = harness.world
    image, _target, style = scene(world)
    group = world.add_layer(image, "Folder", 200, 150, kind="group")
    assert "layer group" in expect_failure(harness, image, group, style)


def test_layer_mask_target_is_refused(harness):
    world = harness.world
    image, target, style = scene(world)
    mask = world.add_mask(target)
    assert "thumbnail" in expect_failure(harness, image, mask, style)


def test_channel_target_is_refused(harness):
    world = harness.world
    image, _target, style = scene(world)
    channel = world.add_channel(image, "Saved selection")
    assert "channel" in expect_failure(harness, image, channel, style)


def test_style_equal_to_target_is_refused(harness):
    image, target, _style = scene(harness.world)
    assert "is the layer being styled" in expect_failure(harness, image, target, target)


def test_missing_style_layer_is_refused(harness):
    image, target, _style = scene(harness.world)
    assert "Choose a style layer" in expect_failure(harness, image, target, None)


def test_style_group_and_mask_are_refused(harness):
    world = harness.world
    image, target, style = scene(world)
    group = world.add_layer(style.image, "Styles", 64, 64, kind="group")
    assert "layer group" in expect_failure(harness, image, target, group)
    mask = world.add_mask(style)
    assert "not a channel or a layer mask" in expect_failure(harness, image, target, mask)


def test_nonsense_parameters_are_refused_before_anything_runs(harness):
    image, target, style = scene(harness.world)
    assert "Style strength must lie between 0 and 10" in expect_failure(
        harness, image, target, style, style_strength=-2.0)
    assert "Style strength" in expect_failure(harness, image, target, style, style_strength=11)
    assert "quality preset" in expect_failure(harness, image, target, style, preset=7)
    assert not harness.record.exists(), "the engine was started for nonsense input"


def test_the_fake_pdb_catches_rule_breaking():
    """The double is strict: this is what makes the tests above able to fail."""
    from helpers.fake_gimpfu import FakeGimp
    world = FakeGimp()
    image = world.new_image(10, 10)
    layer = world.add_layer(image, "L", 10, 10)
    with pytest.raises(FakeGimpError):
        world.pdb.gimp_image_insert_layer(image, layer, None, 0)
    with pytest.raises(FakeGimpError):
        world.pdb.gimp_image_undo_group_end(image)
    world.pdb.gimp_image_delete(image)
    with pytest.raises(FakeGimpError):
        world.pdb.gimp_image_base_type(image)


# ---------------------------------------------------------------------------------------------
# live preview, stop and keep, cancel, several layers (GIMP 3's replace_layer_pixels is played by
# a fake that copies the file into the fake layer, as the shim does in a real GIMP 3)


def control_run(harness, action, after_previews=1):
    """Plays the run dialog's Stop or Cancel: asks the engine once this many previews of a job were
    shown; returns the jobs run."""
    previews = {}

    def watch(engine, job, event):
        if event.get("event") == "preview":
            previews[id(job)] = previews.get(id(job), 0) + 1
            if previews[id(job)] == after_previews:
                getattr(engine, action)()
    return watch_runs(harness, watch)


def styled_layers(world, image):
    return [item for item in world.all_items(image) if item.name.startswith("Styled:")]


def test_previews_make_one_layer_that_is_updated_in_place(harness):
    world = harness.world
    image, target, style = scene(world)
    before_stack, _pixels = snapshot(world, image)
    replaced = live_preview(harness)
    run(harness, image, target, style)
    (layer,) = styled_layers(world, image)
    after = world.layer_stack(image)
    assert len(after) == len(before_stack) + 1
    assert after[after.index(next(e for e in after if e[1] == "Photo")) - 1][1] == "Styled: Great Wave"
    assert (layer.width, layer.height, layer.offsets) == (90, 60, (30, 40))
    # The fake engine sends 3 previews: the first inserts the layer, the next two and the result
    # replace its pixels, each time different ones, in the same layer.
    assert [entry[0] for entry in replaced] == [layer, layer, layer]
    assert len(set(entry[1] for entry in replaced)) == 3
    command = harness.recorded_engine_call()["argv"]
    assert command[command.index("--preview-every") + 1] == "0.0"
    assert "--preview-dir" in command
    # The final pixels are the result's (the fake's inverted content), one undo step in all.
    assert layer.pixels.tobytes() == replaced[-1][1]
    assert (image.undo_depth, image.undo_steps) == (0, 1)
    assert harness.run_folders() == [] and world.messages == []


def test_without_previews_the_engine_is_not_asked_for_them(harness):
    image, target, style = scene(harness.world)
    run(harness, image, target, style)
    assert "--preview-every" not in harness.recorded_engine_call()["argv"]


def test_bad_preview_setting_is_refused_with_what_to_write(harness):
    live_preview(harness, seconds="soon")
    image, target, style = scene(harness.world)
    assert "NST_PREVIEW_EVERY" in expect_failure(harness, image, target, style)


def cancelled_after_a_preview(harness):
    """A scene whose run shows previews and is then cancelled: (world, image, target, style, the
    image's snapshot before the run)."""
    world = harness.world
    image, target, style = scene(world)
    before = snapshot(world, image)
    live_preview(harness)
    harness.engine_mode("hang")
    control_run(harness, "cancel")
    return world, image, target, style, before


def test_cancel_after_a_preview_removes_the_layer(harness):
    world, image, target, style, before = cancelled_after_a_preview(harness)
    message = expect_failure(harness, image, target, style)
    assert "cancel" in message.lower()
    assert snapshot(world, image) == before
    assert image.undo_depth == 0 and harness.run_folders() == []


def test_stop_keeps_the_result_so_far_in_the_layer(harness):
    world = harness.world
    image, target, style = scene(world)
    live_preview(harness)
    harness.engine_mode("hang")
    control_run(harness, "stop")
    run(harness, image, target, style)
    (layer,) = styled_layers(world, image)
    # the fake's result: the content inverted
    inverted = ImageChops.invert(target.pixels.convert("RGB"))
    assert ImageChops.difference(layer.pixels.convert("RGB"), inverted).getbbox() is None
    assert (image.undo_depth, image.undo_steps) == (0, 1)


def several_targets(world):
    image, target, style = scene(world)
    second = world.add_layer(image, "Sketch", 40, 30, offsets=(5, 5), color=(10, 200, 10, 255),
                             position=3)
    return image, [target, second], style


@pytest.mark.parametrize("previews", [False, True])
def test_several_layers_each_get_their_own_styled_layer_in_one_undo_step(harness, previews):
    world = harness.world
    image, targets, style = several_targets(world)
    before_stack, _pixels = snapshot(world, image)
    if previews:
        live_preview(harness)
    run(harness, image, targets, style)
    after = world.layer_stack(image)
    assert len(after) == len(before_stack) + 2
    names = [entry[1] for entry in after]
    for target in targets:
        above = names[names.index(target.name) - 1]
        assert above == "Styled: Great Wave", "no styled layer directly above %s" % target.name
    layers = styled_layers(world, image)
    assert sorted((layer.width, layer.height, layer.offsets) for layer in layers) == \
        sorted((t.width, t.height, t.offsets) for t in targets)
    assert (image.undo_depth, image.undo_steps) == (0, 1)
    assert harness.run_folders() == []


def test_stop_during_several_layers_keeps_the_finished_ones_and_says_which_were_not_styled(harness):
    world = harness.world
    image, targets, style = several_targets(world)
    live_preview(harness)
    harness.engine_mode("hang")
    jobs = control_run(harness, "stop")
    run(harness, image, targets, style)
    assert len(jobs) == 1  # the second layer's job never started
    (layer,) = styled_layers(world, image)
    names = [entry[1] for entry in world.layer_stack(image)]
    assert names[names.index("Photo") - 1] == "Styled: Great Wave"
    (message,) = world.messages
    assert "Stopped early" in message and "Sketch" in message


def test_cancel_during_several_layers_removes_every_layer_of_the_run(harness):
    world = harness.world
    image, targets, style = several_targets(world)
    before = snapshot(world, image)
    live_preview(harness)
    mode_file = harness.tmp_path / "mode"
    mode_file.write_text("ok")
    harness.monkeypatch.setenv("FAKE_ENGINE_MODE_FILE", str(mode_file))
    real_run_job = harness.nst_run.run_job
    jobs = []

    def run_job(engine, job, on_event, title):
        """The first layer runs to its end; the second one's engine waits, and is cancelled at
        its first preview (as the run dialog's Cancel does)."""
        jobs.append(job)
        if len(jobs) == 1:
            return real_run_job(engine, job, on_event, title)
        mode_file.write_text("hang")

        def watching(event):
            on_event(event)
            if event.get("event") == "preview":
                engine.cancel()
        return real_run_job(engine, job, watching, title)
    harness.monkeypatch.setattr(harness.nst_run, "run_job", run_job)
    expect_failure(harness, image, targets, style)
    assert len(jobs) == 2
    assert snapshot(world, image) == before  # the first layer's finished result went too
    assert image.undo_depth == 0


def test_dialog_runs_use_the_run_dialog_and_not_gimps_progress_bar(harness):
    """GIMP's status-bar progress offers a Cancel that kills the plug-in (leaving a preview layer):
    runs from the dialog show their progress, Stop and Cancel in the run dialog instead."""
    world = harness.world
    image, target, style = scene(world)
    replaced = live_preview(harness, seconds="")  # the dialog's own interval
    harness.monkeypatch.delenv("NST_PREVIEW_EVERY")
    shown = []

    def fake_run_in_dialog(title, engine, job, on_event, describe, hand_over, hint=None):
        shown.append((title, job.preview_every))

        def described(event):
            event = hand_over(event)  # as the worker thread does before it queues the event
            shown.append(describe(event))
            on_event(event)
        return engine.run(job, described)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_in_dialog", fake_run_in_dialog)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_is_interactive", lambda: True)
    run(harness, image, target, style)
    assert shown[0] == ("Neural Style Transfer: Photo", harness.nst_run.LIVE_PREVIEW_SECONDS)
    assert any(text and "iteration 2 of 3" in text and fraction for text, fraction in shown[1:])
    assert shown[-1] == ("Style transfer: done, adding the layer", 1.0)
    assert world.progress_values == [] and world.progress_texts == []
    assert len(styled_layers(world, image)) == 1 and replaced


def test_a_cancel_from_the_run_dialog_is_no_error(harness):
    world, image, target, style, before = cancelled_after_a_preview(harness)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_is_interactive", lambda: True)
    harness.monkeypatch.setattr(harness.nst_gimp, "run_in_dialog",
                                lambda title, engine, job, on_event, describe, hand_over, hint=None:
                                engine.run(job, on_event))
    run(harness, image, target, style)  # no fail(): the user asked for it
    assert snapshot(world, image) == before and world.messages == []


def test_a_preview_gone_before_it_is_shown_is_skipped_and_the_next_ones_still_come(harness):
    """In the run dialog the events reach GIMP through GTK's main loop, so a preview may be shown
    after the engine removed its file: it is skipped, and the previews go on."""
    world = harness.world
    image, target, style = scene(world)
    replaced = live_preview(harness)
    real_run_job = harness.nst_run.run_job
    previews = []

    def run_job(engine, job, on_event, title):
        def late(event):
            if event.get("event") == "preview":
                previews.append(event)
                if len(previews) == 2:
                    event = dict(event, path=event["path"] + ".gone")
            on_event(event)
        return real_run_job(engine, job, late, title)
    harness.monkeypatch.setattr(harness.nst_run, "run_job", run_job)
    run(harness, image, target, style)
    # previews 1 (inserts) and 3 shown, 2 skipped, then the result: 2 replacements, no note
    assert len(previews) == 3 and len(replaced) == 2
    assert world.messages == []


def test_the_run_dialog_shows_snapshots_the_engine_cannot_remove_first(harness, tmp_path):
    """The run dialog hands previews to GIMP later than the engine announces them, and the engine
    keeps only its newest files: each preview is copied as it arrives, the event names the copy."""
    run = harness.nst_run
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    engine_file = run_dir / ".result.png.preview-1-1.png"
    engine_file.write_bytes(b"\x89PNG preview one")
    job = run.protocol.Job("c.png", ["s.png"], str(run_dir / "result.png"))
    snapshots = run.PreviewSnapshots(job)
    queued = snapshots({"event": "preview", "path": str(engine_file), "iteration": 3})
    engine_file.unlink()  # the engine moved on before GIMP's thread got to the event
    assert queued["snapshot"] and queued["iteration"] == 3
    assert open(queued["path"], "rb").read() == b"\x89PNG preview one"
    assert os.path.dirname(queued["path"]) == str(run_dir)
    gone = snapshots({"event": "preview", "path": str(engine_file)})
    assert gone["path"] is None, "a file already gone is skipped, not shown"
    progress = {"event": "progress", "iteration": 4}
    assert snapshots(progress) is progress


def test_opening_the_dialog_warms_up_the_local_service_only(harness, monkeypatch):
    """warm_up_engine (the GIMP 3 dialog's on_shown): with engine_service "local" it starts the
    service for the dialog's default device in the background; with "off" it starts nothing."""
    assert harness.nst_run.warm_up_engine() is None  # the harness's config: engine_service off

    config_path = harness.folder / "nst_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(dict(config, engine_service="local")))
    asked = []
    # the installed copy, which the plug-in imports too
    monkeypatch.setattr(harness.nst_run.local_service.LocalServiceEngine, "warm_up",
                        lambda self, device: asked.append((self.config.engine_python, device)))
    worker = harness.nst_run.warm_up_engine()
    worker.join(10)
    assert asked == [(str(harness.engine), "auto")]


def test_the_run_dialog_keeps_a_slow_cpu_runs_note_under_the_progress(harness):
    describe = harness.nst_run.EventDescriber(harness.nst_run.quicker_than({"preset": "standard"}))
    describe({"event": "start", "device": "cpu", "working_size": [512, 340]})
    text, fraction = describe({"event": "progress", "iteration": 2, "total": 500, "fraction": 0.01,
                               "elapsed": 3.0, "eta": 300.0})
    assert text.startswith("Style transfer: iteration 2 of 500, about 5 min 00 s left\n")
    assert "more than a minute (up to about 5 min 03 s): the Fast preset" in text
    text, fraction = describe({"event": "progress", "iteration": 3, "total": 500, "fraction": 0.02,
                               "elapsed": 4.0, "eta": 250.0})
    assert "\nOn the CPU this may take more than a minute" in text and fraction == 0.02
