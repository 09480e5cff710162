"""What the tests of the plug-in's two procedures share about a run (a PluginHarness's): the style image,
calling a procedure with its dialog's defaults, the state a run must leave as it was, and playing
GIMP 3's side of a run (the live preview's pixel copy, the run window's Stop and Cancel)."""

from PIL import Image


def registered(registration):
    """(menu, label, image types, the parameters' names) of a procedure registered with the fake
    gimpfu."""
    return (registration["menu"], registration["label"], registration["imagetypes"],
            [param[1] for param in registration["params"]])


def add_style_image(world):
    """A second image holding the style layer, as the artist opens a painting; returns the layer."""
    style_image = world.new_image(64, 64)
    return world.add_layer(style_image, "Great Wave", 64, 64, color=(20, 60, 200, 255))


def call_procedure(function, image, drawable, style, defaults, overrides):
    """The registered function called as GIMP calls it; defaults: its arguments after the style
    layer, by name and in their order, which overrides change."""
    values = dict(defaults, **overrides)
    return function(image, drawable, style, *[values[name] for name in defaults])


def snapshot(world, image):
    """The image's layer stack and every item's pixels, to compare after a run."""
    return world.layer_stack(image), [item.pixels.tobytes() for item in world.all_items(image)]


def live_preview(harness, seconds="0"):
    """Previews on (as in a GIMP 3 dialog run): NST_PREVIEW_EVERY and a fake pixel copy that
    records each replacement (layer, its pixels' checksum)."""
    harness.monkeypatch.setenv("NST_PREVIEW_EVERY", seconds)
    replaced = []

    def fake_replace_layer_pixels(layer, path):
        picture = Image.open(path).convert("RGBA")
        assert picture.size == (layer.width, layer.height)
        layer.pixels = picture
        replaced.append((layer, picture.tobytes()))
    harness.monkeypatch.setattr(harness.nst_gimp, "replace_layer_pixels", fake_replace_layer_pixels)
    return replaced


def watch_runs(harness, watch):
    """Every engine job the procedures run hands each event, after their own handler had it, to
    watch(engine, job, event), as the run window's buttons see it; returns the jobs run."""
    real_run_job = harness.nst_run.run_job
    jobs = []

    def run_job(engine, job, on_event, *args):
        jobs.append(job)

        def watching(event):
            on_event(event)
            watch(engine, job, event)
        return real_run_job(engine, job, watching, *args)
    harness.monkeypatch.setattr(harness.nst_run, "run_job", run_job)
    return jobs
