"""Regions in the real GIMP 3 GUI (Xvfb, xdotool, screenshots; see tests/gimp3/test_gimp3_gui.py):
the dialog shows the region rows filled in, OK paints two styles by region in one new layer, and
Filters > Repeat (Ctrl+F) runs again with the same regions.

GIMP fills the dialog from the values of the last run (its plug-in-settings file). The test
writes that file as a run with two region rows would have left it (the channel "Upper" for the
style layer Red, the rest for Blue), because GIMP 3's item choosers open a popup that xdotool
cannot drive reliably. The run from the dialog then saves the values itself, and Repeat reads
what that run saved: a region setup that GIMP did not keep fails the Repeat checks.

    ./tests/run -s -m gui            (root; about 2 minutes)
"""

import json
import os
import time
from pathlib import Path

import numpy
import pytest
from PIL import Image

from helpers.checks import check, failed_labels
from helpers.fake_engine import write_fake_engine
from helpers.gui_session import GuiSession, gui_chroot_problem, open_dialog, wait_until_no_run_window
from helpers.real_gimp import bind_paths, choose_engine, engine_python_for_this_checkout, install_plugin, unavailable
from helpers.repo import REPO

pytestmark = [pytest.mark.gui, pytest.mark.gimp, pytest.mark.slow]

SCENE_SCRIPT = REPO / "tests" / "gimp3" / "gui_regions_scene.py"
PHOTO_SIZE = (160, 120)
# As in the headless regions test: enough steps for the untrained network to move each region's
# colour to its flat style's.
ITERATIONS, WORKING_SIZE = 30, 64
SETTINGS_NAME = "GimpProcedureConfigRun-python-fu-nst-style-transfer.last"


@pytest.fixture(scope="module")
def regions_gui(tmp_path_factory):
    root = Path(os.environ.get("NST_GIMP3_CHROOT",
                               os.path.expanduser("~/.cache/nst-gimp-dev/gimp3-trixie")))
    problem = gui_chroot_problem(root)
    if problem:
        unavailable(problem)
    work = tmp_path_factory.mktemp("gimp3-gui-regions")
    engine = choose_engine()
    profile = work / "home" / ".config" / "GIMP" / "3.0"
    folder, config, _how = install_plugin(profile / "plug-ins",
                                          engine_python_for_this_checkout(work), work / "data")
    # An engine process per run: its command lines are in the engine log.
    config_path = folder / "nst_config.json"
    config_path.write_text(json.dumps(dict(json.loads(config_path.read_text()),
                                           engine_service="off")))
    photo = work / "photo.png"
    Image.open(str(REPO / "examples" / "chelsea.png")).convert("RGB").resize(PHOTO_SIZE).save(
        str(photo))
    scene = work / "scene.json"
    scene.write_text(json.dumps({"photo": str(photo), "size": list(PHOTO_SIZE),
                                 "file": str(work / "regions.xcf"),
                                 "ids": str(work / "scene-ids.json")}))
    (work / "tmp").mkdir()
    env = {"NST_WEIGHTS": "random", "TMPDIR": str(work / "tmp"), "NST_GUI_SCENE": str(scene)}
    if engine == "fake":
        env["NST_ENGINE_PYTHON"] = write_fake_engine(str(work / "fake-python"))
    session = GuiSession(root, work, binds=bind_paths(work), env=env)
    print("\nGIMP 3 GUI, regions (engine: %s); screenshots in %s" % (engine, session.shots))
    try:
        session.start(["--batch-interpreter=python-fu-eval", "-b",
                       'exec(open("%s").read())' % SCENE_SCRIPT])
        yield dict(session=session, config=config, engine=engine, work=work, profile=profile)
    finally:
        session.stop()


def wait_for_file(path, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.stat().st_size:
            return json.loads(path.read_text())
        time.sleep(0.5)
    return None


def write_last_values(profile, ids):
    """The plug-in's last-used values as GIMP keeps them (GimpConfig's text format): the
    iterations and size, and two region rows with their items remembered by id."""
    settings = profile / "plug-in-settings"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / SETTINGS_NAME).write_text(
        "# settings\n"
        '(style-layer-last-id "%(red)d")\n'
        "(iterations %(iterations)d)\n"
        "(size %(size)d)\n"
        '(region "item")\n'
        '(region-item-last-id "%(upper)d")\n'
        '(region2 "rest")\n'
        '(region2-style-last-id "%(blue)d")\n'
        "# end of settings\n" % dict(ids, iterations=ITERATIONS, size=WORKING_SIZE))


def wait_for_title(session, window, text, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in session.window_name(window):
            return True
        time.sleep(1.0)
    return False


def red_above_blue(before, after):
    """How much redder the changed pixels' upper half is than their lower half, in (R - B) of
    the screenshot's 0..255 values, with the changed pixels' count; (None, count) when too few
    pixels changed to tell. The canvas shows the new layer on top of the photo."""
    a = numpy.asarray(Image.open(str(before)).convert("RGB")).astype(int)
    b = numpy.asarray(Image.open(str(after)).convert("RGB")).astype(int)
    if a.shape != b.shape:
        return None, 0
    changed = numpy.abs(a - b).sum(axis=2) > 60
    rows = numpy.nonzero(changed.sum(axis=1) > 40)[0]  # the canvas' rows, not the docks' thumbnails
    if len(rows) < 20:
        return None, int(changed.sum())
    top, bottom = rows.min(), rows.max()
    middle = (top + bottom) // 2
    redness = b[..., 0] - b[..., 2]
    upper = redness[top:middle][changed[top:middle]]
    lower = redness[middle:bottom + 1][changed[middle:bottom + 1]]
    if not len(upper) or not len(lower):
        return None, int(changed.sum())
    return float(upper.mean() - lower.mean()), int(changed.sum())


def options_of(command):
    """{option: [values]} of an engine command line (values up to the next option)."""
    options, current = {}, None
    for word in command.split():
        if word.startswith("--"):
            current = word
            options[current] = []
        elif current:
            options[current].append(word)
    return options


def test_region_rows_a_run_and_repeat_in_the_real_gimp3_gui(regions_gui):
    session, profile = regions_gui["session"], regions_gui["profile"]
    ids = wait_for_file(Path(json.loads((regions_gui["work"] / "scene.json").read_text())["ids"]),
                        timeout=120)
    assert ids, "the scene script did not run; GIMP's output:\n" + session.gimp_log()[-3000:]
    image_window = session.wait_for_window(r"^regions\.xcf", timeout=60)
    write_last_values(profile, ids)
    time.sleep(2)
    session.activate(image_window)
    before = session.screenshot("00-before", window=image_window)
    results = []

    dialog = open_dialog(session, image_window)
    time.sleep(2.5)  # the choosers' thumbnails are drawn shortly after the dialog is shown
    session.screenshot("01-region-rows", window=dialog)
    session.key("alt+o", pause=0.5)
    results.append(check("OK closes the dialog", session.wait_until_gone(dialog, timeout=30)))
    added = wait_for_title(session, image_window, "2 layers", timeout=300)
    results.append(check("the run adds one layer", added, session.window_name(image_window)))
    results.append(check("the run dialog closes at the end of the run",
                         wait_until_no_run_window(session, timeout=300)))
    session.activate(image_window)
    time.sleep(1.5)
    after_run = session.screenshot("02-after-run", window=image_window)

    session.key("ctrl+f", pause=1.0)
    repeated = wait_for_title(session, image_window, "3 layers", timeout=300)
    results.append(check("Filters > Repeat adds another layer", repeated,
                         session.window_name(image_window)))
    wait_until_no_run_window(session, timeout=300)
    session.activate(image_window)
    time.sleep(1.5)
    session.screenshot("03-after-repeat", window=image_window)

    log = Path(regions_gui["config"]["log_dir"]) / "nst_engine.log"
    commands = [line for line in (log.read_text().splitlines() if log.exists() else [])
                if " stylize " in line]
    results.append(check("two engine runs", len(commands) == 2, "%d: %s" % (len(commands), commands)))
    for label, command in zip(("the dialog's run", "Repeat"), commands):
        options = options_of(command)
        results.append(check("%s sends two region masks and their weights" % label,
                             len(options.get("--style-mask", [])) == 2
                             and len(options.get("--region-weight", [])) == 2
                             and options.get("--iterations") == [str(ITERATIONS)]
                             and options.get("--size") == [str(WORKING_SIZE)], command[-300:]))
    if regions_gui["engine"] == "real":
        shift, changed = red_above_blue(before, after_run)
        # The photo's own halves differ little; red painted above and blue below add > 60.
        results.append(check("on the canvas the new layer is red above and blue below",
                             shift is not None and shift > 60,
                             "upper minus lower (R - B): %s over %d changed pixels"
                             % (shift, changed)))
    saved = profile / "plug-in-settings" / SETTINGS_NAME
    results.append(check("GIMP saved the run's values with the region rows",
                         saved.exists() and '(region2 "rest")' in saved.read_text(),
                         saved.read_text()[:800] if saved.exists() else "no file"))
    failed = failed_labels(results)
    if failed:
        print(session.gimp_log()[-3000:])
    assert failed == []
