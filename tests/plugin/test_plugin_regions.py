"""Regions in the plug-in (plugin/nst_regions.py, the region rows of plugin/nst_styled_layers.py)
against the in-memory gimpfu and the fake engine: each kind of region becomes a mask aligned to the
target layer (which is offset and smaller than the image), the engine gets one mask per style, the
result is one layer in one undo step, and every refusal leaves the image as it was."""

import pytest
from PIL import Image

from helpers.fake_gimpfu import error
from helpers.plugin_setup import PluginHarness

DEFAULTS = dict(preset=0, iterations=0, size=0, style_strength=5.0, use_ssim=True,
                preserve_colors=False, seed=0, device=0)
# The region sources, as the dialog's choice indices (nst_regions.SOURCE_CHOICES).
OFF, ITEM, ALPHA, SELECTION, REST = range(5)
TARGET_OFFSETS, TARGET_SIZE = (30, 40), (90, 60)


@pytest.fixture
def harness(tmp_path, monkeypatch):
    setup = PluginHarness(tmp_path, monkeypatch)
    setup.kept = tmp_path / "kept-masks"
    setup.kept.mkdir()
    monkeypatch.setenv("FAKE_ENGINE_KEEP_MASKS", str(setup.kept))
    yield setup
    setup.close()


def scene(world):
    """A 200x150 canvas, the target 'Photo' (90x60 at 30,40), two styles in a second image."""
    image = world.new_image(200, 150)
    world.add_layer(image, "Background", 200, 150, color=(250, 250, 250, 255))
    target = world.add_layer(image, "Photo", TARGET_SIZE[0], TARGET_SIZE[1], offsets=TARGET_OFFSETS,
                             color=(200, 40, 40, 255))
    styles = world.new_image(64, 64)
    wave = world.add_layer(styles, "Great Wave", 64, 64, color=(20, 60, 200, 255))
    ink = world.add_layer(styles, "Ink", 64, 64, color=(10, 10, 10, 255))
    return image, target, wave, ink


def run(harness, image, target, style, region=OFF, item=None, weight=1.0, region2=OFF, item2=None,
        style2=None, weight2=1.0):
    v = DEFAULTS
    return harness.plugin.style_transfer(
        image, target, style, v["preset"], v["iterations"], v["size"], v["style_strength"], v["use_ssim"],
        v["preserve_colors"], v["seed"], v["device"], region, item, weight, region2, item2, style2, weight2)


def snapshot(world, image):
    return world.layer_stack(image), [item.pixels.tobytes() for item in world.all_items(image)], \
        image.undo_steps


def engine_regions(harness):
    argv = harness.recorded_engine_call()["argv"]
    if "--style-mask" not in argv:
        return None, None, argv
    at = argv.index("--style-mask")
    masks = argv[at + 1:argv.index("--region-weight")]
    weights = [float(w) for w in argv[argv.index("--region-weight") + 1:][:len(masks)]]
    return masks, weights, argv


def kept_mask(harness, index=0):
    """The mask the engine got, as 0/1 rows (white = 1), and its size."""
    with Image.open(harness.kept / ("mask-%d.png" % index)) as mask:
        assert mask.mode == "RGB"  # no alpha: the grey level is the region (PROTOCOL.md)
        grey = mask.convert("L")
        return grey.size, [[1 if grey.getpixel((x, y)) > 127 else 0 for x in range(grey.size[0])]
                           for y in range(grey.size[1])]


def box_rows(size, box):
    """0/1 rows of a size, 1 inside box (x0, y0, x1, y1) in the target's coordinates."""
    return [[1 if box[0] <= x < box[2] and box[1] <= y < box[3] else 0 for x in range(size[0])]
            for y in range(size[1])]


def check_one_result(world, image, before_count, name):
    assert len(world.all_items(image)) == before_count + 1
    assert image.undo_steps == 1 and image.undo_depth == 0
    assert image.layers[0].name == name or image.layers[1].name == name


# ----- no regions: the run of before -------------------------------------------------------------

def test_with_every_row_off_the_engine_gets_no_masks(harness):
    image, target, wave, _ink = scene(harness.world)
    run(harness, image, target, wave)
    masks, _weights, argv = engine_regions(harness)
    assert masks is None and "--region-weight" not in argv
    assert len([arg for arg in argv if arg.endswith(".png")]) == 3  # content, style, result


# ----- each kind of region, aligned to the target -----------------------------------------------

def test_a_channel_and_the_rest_paint_two_styles_in_one_layer(harness):
    world = harness.world
    image, target, wave, ink = scene(world)
    sky = world.add_channel(image, "Sky", box=(0, 0, 200, 70))  # image coordinates
    count = len(world.all_items(image))
    run(harness, image, target, wave, ITEM, sky, 2.0, REST, None, ink, 0.5)
    masks, weights, argv = engine_regions(harness)
    assert masks[1] == "rest" and weights == [2.0, 0.5]
    assert argv[4].endswith("style.png") and argv[5].endswith("style-1.png")  # two styles, in order
    size, rows = kept_mask(harness)
    assert size == TARGET_SIZE
    assert rows == box_rows(TARGET_SIZE, (0, 0, 90, 70 - TARGET_OFFSETS[1]))
    check_one_result(world, image, count, "Styled: Great Wave, Ink")
    assert sorted(p.name for p in harness.kept.iterdir()) == ["mask-0.png"]
    assert harness.run_folders() == []


def test_a_layer_mask_is_in_its_layers_coordinates(harness):
    world = harness.world
    image, target, wave, ink = scene(world)
    cut = world.add_layer(image, "Cut", 100, 100, offsets=(10, 20), color=(0, 0, 0, 0), position=2)
    world.add_mask(cut).pixels = Image.new("L", (100, 100), 0)
    cut.mask.pixels.paste(255, (0, 0, 50, 100))  # the left half of the layer
    run(harness, image, target, wave, OFF, None, 1.0, ITEM, cut.mask, ink, 1.0)
    masks, _weights, _argv = engine_regions(harness)
    assert masks[0] == "rest"  # row 1 off, row 2 on: the style layer takes what region 2 leaves
    with Image.open(harness.kept / "mask-1.png") as mask:
        grey = mask.convert("L")
        rows = [[1 if grey.getpixel((x, y)) > 127 else 0 for x in range(90)] for y in range(60)]
    # the mask's left half: image x 10..59, y 20..119 -> target x 0..29, y 0..59
    assert rows == box_rows(TARGET_SIZE, (0, 0, 60 - TARGET_OFFSETS[0], 60))


def test_a_layers_alpha_is_its_region_and_a_layer_with_a_mask_gives_its_mask(harness):
    world = harness.world
    image, target, wave, ink = scene(world)
    figure = world.add_layer(image, "Figure", 60, 60, offsets=(60, 50), color=(255, 255, 255, 255), position=2)
    run(harness, image, target, wave, ALPHA, figure, 1.0, REST, None, ink, 1.0)
    size, rows = kept_mask(harness)
    assert rows == box_rows(size, (60 - 30, 50 - 40, 90, 60))
    # 'Region item' on a layer with a mask takes the mask, not the alpha
    world.add_mask(figure).pixels = Image.new("L", (60, 60), 0)
    figure.mask.pixels.paste(255, (0, 0, 10, 60))
    run(harness, image, target, wave, ITEM, figure, 1.0, REST, None, ink, 1.0)
    size, rows = kept_mask(harness)
    assert rows == box_rows(size, (30, 10, 40, 60))


def test_the_selection_is_a_one_region_shortcut_and_masks_no_layer(harness):
    world = harness.world
    image, target, wave, _ink = scene(world)
    image.selection = (30, 40, 45, 60)  # the target's left half
    before = snapshot(world, image)[0]
    run(harness, image, target, wave, SELECTION)
    masks, weights, _argv = engine_regions(harness)
    assert len(masks) == 1 and weights == [1.0]
    size, rows = kept_mask(harness)
    assert rows == box_rows(size, (0, 0, 45, 60))
    # The region keeps the photo outside the selection: the new layer needs no mask from it.
    result = image.layers[image.layers.index(target) - 1]
    assert result.name == "Styled: Great Wave" and result.mask is None
    assert len(world.layer_stack(image)) == len(before) + 1


def test_swapped_rows_swap_the_masks(harness):
    """A check that fails if the plug-in sent the masks in another order than the styles."""
    world = harness.world
    image, target, wave, ink = scene(world)
    top = world.add_channel(image, "Top", box=(0, 0, 200, 70))
    bottom = world.add_channel(image, "Bottom", box=(0, 70, 200, 150))
    run(harness, image, target, wave, ITEM, top, 1.0, ITEM, bottom, ink, 1.0)
    _size, first = kept_mask(harness, 0)
    _size, second = kept_mask(harness, 1)
    assert first == box_rows(TARGET_SIZE, (0, 0, 90, 30)) and second == box_rows(TARGET_SIZE, (0, 30, 90, 60))
    argv = harness.recorded_engine_call()["argv"]
    styles = argv[4:6]
    assert styles[0].endswith("style.png") and styles[1].endswith("style-1.png")


# ----- refusals leave the image as it was -------------------------------------------------------

def other_size_channel(world, image):
    return world.add_channel(image, "Small", box=(0, 0, 10, 10), size=(100, 100))


REFUSALS = {
    "channel-of-another-size": (lambda w, i, t, s: dict(region=ITEM, item=other_size_channel(w, i),
                                                        region2=REST, style2=s),
                                "is 100x100, and this image is 200x150"),
    "region-misses-the-target": (lambda w, i, t, s: dict(region=ITEM, item=w.add_channel(i, "Corner", (0, 0, 20, 20)),
                                                         region2=REST, style2=s),
                                 "does not cover any of the layer 'Photo'"),
    "style-is-the-target": (lambda w, i, t, s: dict(region=REST, region2=ITEM, style2=t,
                                                    item2=w.add_channel(i, "Sky", (0, 0, 200, 70))),
                            "Region 2: The style layer is the layer being styled"),
    "region-with-no-style": (lambda w, i, t, s: dict(region=REST, region2=ITEM,
                                                     item2=w.add_channel(i, "Sky", (0, 0, 200, 70))),
                             "Region 2 has no style"),
    "no-item": (lambda w, i, t, s: dict(region=ITEM, region2=REST, style2=s), "needs its region item"),
    "two-rests": (lambda w, i, t, s: dict(region=REST, region2=REST, style2=s), "Only one region"),
    "rest-alone": (lambda w, i, t, s: dict(region=REST), "needs another region"),
    "no-selection": (lambda w, i, t, s: dict(region=SELECTION), "nothing is selected"),
    "alpha-of-a-channel": (lambda w, i, t, s: dict(region=ALPHA, item=w.add_channel(i, "Sky", (0, 0, 200, 70)),
                                                   region2=REST, style2=s), "not a layer"),
    "all-weights-zero": (lambda w, i, t, s: dict(region=ITEM, item=w.add_channel(i, "Sky", (0, 0, 200, 70)),
                                                 weight=0.0, region2=REST, style2=s, weight2=0.0),
                         "Every region weight is 0"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_region_is_a_message_and_the_image_is_untouched(harness, case):
    world = harness.world
    image, target, wave, ink = scene(world)
    make, words = REFUSALS[case]
    rows = make(world, image, target, ink)
    before = snapshot(world, image)
    with pytest.raises(error):
        run(harness, image, target, wave, **rows)
    assert words in world.messages[-1], world.messages[-1]
    assert snapshot(world, image) == before
    assert image.undo_depth == 0 and world.context_stack == []
    assert harness.run_folders() == []
