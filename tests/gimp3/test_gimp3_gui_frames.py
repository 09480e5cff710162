"""The animation's procedure in the real GIMP 3 GUI (Xvfb, xdotool, screenshots; see
tests/gimp3/test_gimp3_gui.py): its dialog opens from Filters > Animation (through the action
search) with the style suggested from the other image and no duplicate mnemonic, the values typed
through its mnemonics reach the engine, OK makes a new image window with one layer per frame while
the animation's own window stays as it was, and Cancel in the run window takes the new image of a
second run away again.

    ./tests/run -s -m gui tests/gimp3/test_gimp3_gui_frames.py     (root; about 2 minutes)
"""

import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers.checks import check, failed_labels
from helpers.fake_engine import write_fake_engine
from helpers.gui_session import GuiSession, gui_chroot_problem, layers_in_title
from helpers.real_gimp import bind_paths, choose_engine, engine_python_for_this_checkout, install_plugin, unavailable
from helpers.repo import REPO

pytestmark = [pytest.mark.gui, pytest.mark.gimp, pytest.mark.slow]

SCENE_SCRIPT = REPO / "tests" / "gimp3" / "gui_frames_scene.py"
FRAME_NAMES = ["Frame 1 (100ms) (replace)", "Frame 2 (100ms)", "Frame 3 (100ms) (combine)",
               "Frame 4 (100ms)", "Frame 5 (200ms)", "Frame 6 (100ms)"]
DIALOG = r"^Neural Style Transfer \(frames\)\.\.\.$"
RUN_WINDOW = r"^Neural Style Transfer \(frames\): "


class SeveralWindows(GuiSession):
    """GIMP with a window per image (not its single-window mode): the new image's window is found
    by its title, beside the animation's, which keeps its own."""

    def write_gimprc(self):
        GuiSession.write_gimprc(self)
        # The mode is in the session's file: the chroot's own, with that one entry turned off.
        system = Path(self.root + "/etc/gimp/3.0/sessionrc").read_text()
        (self.home / ".config" / "GIMP" / "3.0" / "sessionrc").write_text(
            system.replace("(single-window-mode yes)", "(single-window-mode no)"))


def without_convergence(work):
    """The engine interpreter, wrapped so that stylize-frames runs go on to their last step: on an
    untrained network a frame converges within seconds, before a script can press Cancel."""
    engine_python = engine_python_for_this_checkout(work)
    wrapper = work / "engine-python-no-converge"
    wrapper.write_text('#!/bin/sh\ncase " $* " in *" stylize-frames "*) exec %s "$@" --no-converge ;; '
                       'esac\nexec %s "$@"\n' % (engine_python, engine_python))
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture(scope="module")
def frames_gui(tmp_path_factory):
    root = Path(os.environ.get("NST_GIMP3_CHROOT",
                               os.path.expanduser("~/.cache/nst-gimp-dev/gimp3-trixie")))
    problem = gui_chroot_problem(root)
    if problem:
        unavailable(problem)
    work = tmp_path_factory.mktemp("gimp3-gui-frames")
    engine = choose_engine()
    folder, config, _how = install_plugin(work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins",
                                          without_convergence(work), work / "data")
    config_path = folder / "nst_config.json"  # an engine process per run: its command in the log
    config_path.write_text(json.dumps(dict(json.loads(config_path.read_text()),
                                           engine_service="off")))
    photo = Image.open(str(REPO / "examples" / "chelsea.png")).convert("RGB").resize((120, 80))
    frames = []
    for index in range(len(FRAME_NAMES)):
        frames.append(str(work / ("frame-%d.png" % (index + 1))))
        photo.crop((4 * index, 8, 4 * index + 64, 56)).save(frames[-1])
    scene = work / "scene.json"
    scene.write_text(json.dumps({
        "frames": frames, "names": FRAME_NAMES, "size": [96, 72], "frame_size": [64, 48],
        "offsets": [16, 12], "style": str(REPO / "examples" / "great_wave.jpg"),
        "file": str(work / "walk.xcf"), "ready": str(work / "scene-ready")}))
    (work / "tmp").mkdir()
    env = {"NST_WEIGHTS": "random", "TMPDIR": str(work / "tmp"), "NST_GUI_SCENE": str(scene)}
    if engine == "fake":
        env["NST_ENGINE_PYTHON"] = write_fake_engine(str(work / "fake-python"))
    session = SeveralWindows(root, work, binds=bind_paths(work), env=env)
    print("\nGIMP 3 GUI, animation (engine: %s); screenshots in %s" % (engine, session.shots))
    try:
        session.start(["--batch-interpreter=python-fu-eval", "-b",
                       'exec(open("%s").read())' % SCENE_SCRIPT])
        yield dict(session=session, config=config, engine=engine, work=work)
    finally:
        session.stop()


def open_frames_dialog(session, image_window):
    """Filters > Animation > Neural Style Transfer (frames)..., through GIMP's action search (/)."""
    session.activate(image_window)
    session.key("slash", pause=1.5)
    session.type_text("Neural Style Transfer (frames)", pause=1.5)
    deadline = time.time() + 90
    while time.time() < deadline:
        search = session.find_windows("^Search Actions$")
        if search:
            session.activate(search[-1])
            session.key("Return", pause=2.0)
        dialogs = session.find_windows(DIALOG)
        if dialogs:
            return dialogs[-1]
        time.sleep(1.0)
    session.screenshot("00-no-dialog")
    return session.wait_for_window(DIALOG, timeout=5)


def type_values(session, dialog, values):
    """Types each (mnemonic, value) into its field."""
    session.activate(dialog)
    for keys, value in values:
        session.key(keys, "ctrl+a", pause=0.3)
        session.type_text(value, pause=0.3)
        session.key("Tab", pause=0.3)


def new_image_windows(session):
    """The windows of images the runs made: untitled, of the animation's canvas size (the style's
    is 48x48); a star before the title as they are not saved yet."""
    return session.find_windows(r"^\*?\[Untitled\].* 96x72 ")


def wait_for(condition, timeout, step=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


def test_the_animations_dialog_run_and_cancel_in_the_real_gimp3_gui(frames_gui):
    session = frames_gui["session"]
    assert wait_for(lambda: (frames_gui["work"] / "scene-ready").exists(), 120), \
        "the scene did not open:\n" + session.gimp_log()[-3000:]
    image_window = session.wait_for_window(r"^walk\.xcf-", timeout=60)
    title_before = session.window_name(image_window)
    time.sleep(2)
    results = [check("the animation's window shows its 6 layers",
                     layers_in_title(session, image_window) == 6, title_before)]
    dialog = open_frames_dialog(session, image_window)
    time.sleep(2.0)
    session.screenshot("01-dialog", window=dialog)
    clashes = [line for line in session.gimp_log().splitlines() if "duplicate mnemonic" in line]
    results.append(check("GIMP reports no duplicate mnemonic", not clashes, "; ".join(clashes)))
    type_values(session, dialog, [("alt+i", "4"), ("alt+z", "32"), ("alt+w", "150")])
    session.screenshot("02-values", window=dialog)
    session.key("alt+o", pause=0.5)
    results.append(check("OK closes the dialog", session.wait_until_gone(dialog, timeout=30)))
    made = wait_for(lambda: [w for w in new_image_windows(session)
                             if layers_in_title(session, w) == 6], timeout=300)
    session.screenshot("03-new-image")
    results += [
        check("the run makes a new image window with 6 layers", len(made) == 1,
              str(session.window_names())),
        check("the run window closes at the end",
              wait_for(lambda: not session.find_windows(RUN_WINDOW), timeout=120)),
        check("the animation's window is as it was (title: name, layers, not modified)",
              session.window_name(image_window) == title_before,
              "%s -> %s" % (title_before, session.window_name(image_window))),
    ]
    engine_log = Path(frames_gui["config"]["log_dir"]) / "nst_engine.log"
    commands = [line.split() for line in (engine_log.read_text().splitlines()
                                          if engine_log.exists() else []) if "stylize-frames" in line]
    first = commands[0] if commands else []

    def value_of(option):
        return first[first.index(option) + 1] if option in first else None
    results.append(check("the values typed through Alt+I, Alt+Z and Alt+W reached the engine, with "
                         "the dialog's live preview",
                         (value_of("--iterations"), value_of("--size"), value_of("--temporal-weight"))
                         == ("4", "32", "150.0") and "--preview-every" in first, " ".join(first[-20:])))

    # A second, long run: Cancel in the run window once its new image has appeared.
    dialog = open_frames_dialog(session, image_window)
    time.sleep(2.0)
    type_values(session, dialog, [("alt+i", "2000"), ("alt+z", "64")])
    session.key("alt+o", pause=0.5)
    session.wait_until_gone(dialog, timeout=30)
    run_window = wait_for(lambda: session.find_windows(RUN_WINDOW), timeout=60)
    results.append(check("a run window of the plug-in's own, saying which frame, stays open",
                         bool(run_window), str(session.window_names())))
    second = wait_for(lambda: len(new_image_windows(session)) == 2, timeout=180)
    session.screenshot("04-second-run")
    results.append(check("the second run's new image appears during the run (first preview)",
                         bool(second), str(session.window_names())))
    if run_window:
        session.activate(run_window[-1])
        session.key("alt+c", pause=1.0)
    gone = wait_for(lambda: not session.find_windows(RUN_WINDOW), timeout=120)
    time.sleep(2.0)
    session.screenshot("05-after-cancel")
    results += [
        check("Cancel ends the run", bool(gone), str(session.window_names())),
        check("... and takes its new image away: the first run's stays",
              len(new_image_windows(session)) == 1, str(session.window_names())),
        check("... with no error message", not session.find_windows("[Ee]rror|[Mm]essage"),
              str(session.window_names())),
        check("the animation's window is still as it was",
              session.window_name(image_window) == title_before, session.window_name(image_window)),
    ]
    failed = failed_labels(results)
    if failed:
        print(session.gimp_log()[-3000:])
    assert failed == []
