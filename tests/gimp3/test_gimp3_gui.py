"""The plug-in's dialog in a real GIMP 3 GUI: GIMP 3.0.4 in the Debian 13 chroot under
Xvfb, driven by xdotool, looked at through screenshots (tests/gimp3/gui_session.py).

Checks what headless GIMP cannot show: the suggested style layer's thumbnail is drawn, GIMP
reports no duplicate mnemonic, the fields have tooltips that say more than their labels, Reset >
Factory Defaults keeps a style layer, Help opens the plug-in's page (not GIMP's missing manual),
the mnemonics reach their fields, OK adds the layer, and Filters > Repeat adds another.

    ./tests/run -s -m gui            (root; about 2 minutes, a GIMP GUI start is ~30 s)

Screenshots stay in pytest's temporary folder (printed with -s). NST_E2E_ENGINE=fake|real chooses
the engine as in tests/gimp3/test_gimp3_e2e.py.
"""

import json
import os
import signal
import time
from pathlib import Path

import numpy
import pytest
from PIL import Image, ImageDraw

from helpers.checks import check, failed_labels
from helpers.fake_engine import write_fake_engine
from helpers.gui_session import GuiSession, gui_chroot_problem, layers_in_title, open_dialog, wait_until_no_run_window
from helpers.real_gimp import bind_paths, choose_engine, engine_python_for_this_checkout, install_plugin, unavailable
from helpers.repo import REPO

pytestmark = [pytest.mark.gui, pytest.mark.gimp, pytest.mark.slow]

# The style is a picture no GIMP theme has: magenta and yellow stripes; its thumbnail in the
# dialog is found by counting magenta pixels.
MAGENTA, YELLOW = (255, 0, 255), (255, 220, 0)


def magenta_pixels(path):
    pixels = numpy.asarray(Image.open(str(path)).convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((red > 200) & (blue > 200) & (green < 90)).sum())


def make_pictures(folder):
    photo = folder / "photo.png"
    Image.open(str(REPO / "examples" / "chelsea.png")).convert("RGB").resize((240, 160)).save(
        str(photo))
    style = folder / "painting.png"
    stripes = Image.new("RGB", (120, 120), MAGENTA)
    draw = ImageDraw.Draw(stripes)
    for x in range(0, 120, 24):
        draw.rectangle([x, 0, x + 11, 119], fill=YELLOW)
    stripes.save(str(style))
    return photo, style


@pytest.fixture(scope="module")
def gui(tmp_path_factory):
    root = Path(os.environ.get("NST_GIMP3_CHROOT",
                               os.path.expanduser("~/.cache/nst-gimp-dev/gimp3-trixie")))
    problem = gui_chroot_problem(root)
    if problem:
        unavailable(problem)
    work = tmp_path_factory.mktemp("gimp3-gui")
    engine = choose_engine()
    plug_ins = work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins"
    # As in the e2e test: this checkout's engine even when the venv's nst_core is another one's.
    folder, config, _how = install_plugin(plug_ins, never_converging(work), work / "data")
    # An engine process per run (as in the e2e test): the checks below read its command lines in
    # the engine log (the warm service's runs log their parameters instead). In the config file,
    # not the environment, so that the warm-up test can turn the service on.
    set_engine_service(folder, "off")
    env = {"NST_WEIGHTS": "random", "TMPDIR": str(work / "tmp")}
    (work / "tmp").mkdir()
    if engine == "fake":
        env["NST_ENGINE_PYTHON"] = write_fake_engine(str(work / "fake-python"))
    photo, style = make_pictures(work)
    session = GuiSession(root, work, binds=bind_paths(work), env=env)
    print("\nGIMP 3 GUI (chroot %s, display :%s), engine: %s; screenshots in %s"
          % (root, "?", engine, session.shots))
    started = time.time()
    try:
        session.start([str(style), str(photo)])  # the photo's window opens last: it is active
        print("  GIMP's GUI started in %.0f s" % (time.time() - started))
        yield dict(session=session, config=config, engine=engine, folder=folder)
    finally:
        session.stop()


def set_engine_service(folder, value):
    path = folder / "nst_config.json"
    config = json.loads(path.read_text())
    config["engine_service"] = value
    path.write_text(json.dumps(config))


def never_converging(work):
    """The engine interpreter, wrapped so that its stylize runs go on to their last step
    (--no-converge): on an untrained network a run converges within seconds, before a script can
    press Stop and keep in the run dialog. The plug-in logs its own command line, without this."""
    engine_python = engine_python_for_this_checkout(work)
    wrapper = work / "engine-python-no-converge"
    wrapper.write_text('#!/bin/sh\ncase " $* " in *" stylize "*) exec %s "$@" --no-converge ;; esac\n'
                       'exec %s "$@"\n' % (engine_python, engine_python))
    wrapper.chmod(0o755)
    return str(wrapper)


def type_settings(session, dialog, iterations, size):
    """Types the iterations and the working size into the dialog through their mnemonics."""
    session.activate(dialog)
    for keys, value in (("alt+i", str(iterations)), ("alt+z", str(size))):
        session.key(keys, "ctrl+a", pause=0.3)
        session.type_text(value, pause=0.3)
        session.key("Tab", pause=0.3)


def tooltips_of_fields(session, dialog):
    """Hovers each row of the dialog's value column; returns the (width, height) of each tooltip
    window that appeared."""
    x, y, width, height = session.geometry(dialog)
    session.move(5, 5, pause=0.8)
    before = set(session.run("xdotool", "search", "--onlyvisible", "--class", ".",
                             check=False).split())
    sizes = []
    for row_y in range(y + 20, y + height - 120, 32):
        session.move(x + width - 120, row_y, pause=1.3)
        now = set(session.run("xdotool", "search", "--onlyvisible", "--class", ".",
                              check=False).split())
        for window in now - before:
            sizes.append(session.geometry(int(window))[2:])
        if len(sizes) == 3:
            session.screenshot("03-tooltip")
    session.move(5, 5, pause=0.8)
    return sizes


def wait_for_layers(session, window, count, timeout):
    """GIMP's image window title ends with "..., N layers) WxH"."""
    wanted = "%d layers" % count
    deadline = time.time() + timeout
    shot = 0
    while time.time() < deadline:
        if wanted in session.window_name(window):
            return True
        if shot < 3:
            shot += 1
            session.screenshot("06-running-%d" % shot)
        time.sleep(1.0)
    return False


def test_dialog_and_a_run_in_the_real_gimp3_gui(gui):
    session = gui["session"]
    image_window = session.wait_for_window(r"\[photo\]", timeout=60)
    time.sleep(2)
    results = []
    dialog = open_dialog(session, image_window)
    time.sleep(2.0)  # the thumbnail is set again shortly after the dialog is shown
    shot = session.screenshot("01-dialog", window=dialog)
    session.screenshot("01-screen")
    magenta = magenta_pixels(shot)
    results.append(check("the suggested style layer's thumbnail is visible in the chooser",
                         magenta >= 150, "%d magenta pixels in %s" % (magenta, shot)))
    log = session.gimp_log()
    clashes = [line for line in log.splitlines() if "duplicate mnemonic" in line]
    results.append(check("GIMP reports no duplicate mnemonic", not clashes, "; ".join(clashes)))

    sizes = tooltips_of_fields(session, dialog)
    results.append(check("the fields show tooltips, each longer than one line (not the label)",
                         len(sizes) >= 5 and all(height >= 50 for _w, height in sizes),
                         "tooltip sizes %s" % sizes))

    # Reset > Factory Defaults (the Reset button's menu, then its item), after a change to the
    # style strength that the reset must undo (checked on the engine's command line below).
    session.activate(dialog)
    session.key("alt+t", "ctrl+a", pause=0.3)
    session.type_text("9", pause=0.3)
    session.key("Tab", pause=0.3)
    session.key("alt+r", pause=1.0)
    session.screenshot("04-reset-menu")
    session.key("alt+f", pause=2.0)
    shot = session.screenshot("04-after-factory-defaults", window=dialog)
    magenta = magenta_pixels(shot)
    results.append(check("after Reset > Factory Defaults a style layer is still chosen and shown",
                         magenta >= 150, "%d magenta pixels" % magenta))

    # Help: the plug-in's page, never GIMP's "user manual is missing". The chroot has no web
    # browser, so the plug-in says where the page is instead.
    session.key("alt+h", pause=2.0)
    help_windows = session.find_windows("help$")
    manual = session.find_windows("[Mm]anual")
    session.screenshot("05-help")
    results.append(check("Help answers with the plug-in's own page, not GIMP's manual",
                         help_windows and not manual,
                         "windows: %s" % session.window_names()))
    for window in help_windows + manual:  # close what opened, so that the dialog has the keys
        session.activate(window)
        session.key("Escape", pause=1.0)

    # The mnemonics reach their fields: small, quick settings typed through them.
    type_settings(session, dialog, iterations=3, size=64)
    session.screenshot("05-settings", window=dialog)
    session.key("alt+o", pause=0.5)
    results.append(check("OK closes the dialog", session.wait_until_gone(dialog, timeout=30)))
    added = wait_for_layers(session, image_window, 2, timeout=300)
    session.screenshot("07-result")
    results.append(check("the run adds one layer (the window title counts 2 layers)", added,
                         session.window_name(image_window)))

    # Filters > Repeat (Ctrl+F): GIMP cannot keep the style layer in its last values. The layer
    # comes at the first preview; GIMP stores the last values when the run has ended, which is
    # when an artist would repeat it.
    results.append(check("the run dialog closes at the end of the run",
                         wait_until_no_run_window(session, timeout=300)))
    session.activate(image_window)
    session.key("ctrl+f", pause=1.0)
    repeated = wait_for_layers(session, image_window, 3, timeout=300)
    session.screenshot("08-repeat")
    results.append(check("Filters > Repeat adds another layer (3 layers)", repeated,
                         session.window_name(image_window)))

    engine_log = Path(gui["config"]["log_dir"]) / "nst_engine.log"
    commands = [line for line in (engine_log.read_text().splitlines()
                                  if engine_log.exists() else []) if "stylize" in line]
    first = commands[0].split() if commands else []
    results.append(check("the values typed through Alt+I and Alt+Z reached the engine",
                         "--iterations" in first and first[first.index("--iterations") + 1] == "3"
                         and "--size" in first and first[first.index("--size") + 1] == "64",
                         " ".join(first[-14:])))
    results.append(check("Reset > Factory Defaults had set the style strength back to 5",
                         "--style-strength" in first
                         and first[first.index("--style-strength") + 1] == "5.0",
                         " ".join(first[-14:])))
    # (the dialog's run asks for live previews, Repeat's does not: compared without them)
    first_settings = without_previews(first)
    results.append(check("Repeat ran with the same settings",
                         len(commands) == 2
                         and without_previews(commands[1].split())[-14:] == first_settings[-14:],
                         " ".join(commands[1].split()[-14:]) if len(commands) > 1 else "no run"))
    failed = failed_labels(results)
    if failed:
        print(session.gimp_log()[-3000:])
    assert failed == []


def without_previews(words):
    """A command line without its --preview-every and --preview-dir options."""
    kept, skip = [], 0
    for word in words:
        if skip:
            skip -= 1
            continue
        if word in ("--preview-every", "--preview-dir"):
            skip = 1
            continue
        kept.append(word)
    return kept


def pixels_differ(first, second, hidden=None):
    """How many pixels differ between two screenshots of the same size (0 when they are equal);
    hidden: (x, y, w, h) in the screenshots to leave out (the run dialog, whose text changes)."""
    a = numpy.asarray(Image.open(str(first)).convert("RGB")).astype(int)
    b = numpy.asarray(Image.open(str(second)).convert("RGB")).astype(int)
    if a.shape != b.shape:
        return -1
    changed = numpy.abs(a - b).sum(axis=2) > 30
    if hidden:
        x, y, width, height = hidden
        changed[max(0, y):max(0, y + height), max(0, x):max(0, x + width)] = False
    return int(changed.sum())


def relative_rectangle(session, window, inside):
    """window's rectangle in the coordinates of the window `inside` (its screenshot)."""
    x, y, width, height = session.geometry(window)
    inside_x, inside_y, _w, _h = session.geometry(inside)
    return x - inside_x, y - inside_y, width, height


def start_long_run(session, image_window):
    """The dialog, then OK on a run long enough to watch (1000 steps at 128 px, without
    convergence: see never_converging); returns the run dialog's window, or None."""
    dialog = open_dialog(session, image_window)
    time.sleep(2.0)
    type_settings(session, dialog, iterations=1000, size=128)
    session.key("alt+o", pause=0.5)
    session.wait_until_gone(dialog, timeout=30)
    deadline = time.time() + 60
    while time.time() < deadline:
        runs = session.find_windows("^Neural Style Transfer: ")
        if runs:
            return runs[-1]
        time.sleep(0.5)
    return None


def test_live_preview_stop_and_cancel_in_the_real_gimp3_gui(gui):
    """The run dialog of a run from the dialog: the result layer appears at the first preview and
    the picture forms on the canvas (two screenshots during the run differ); Stop and keep ends
    the run with the layer, and one Undo takes it back; Cancel ends it with the image as it
    was."""
    session = gui["session"]
    image_window = session.wait_for_window(r"\[photo\]", timeout=60)
    results = []
    layers_before = layers_in_title(session, image_window)
    run_window = start_long_run(session, image_window)
    results.append(check("a run dialog of the plug-in's own stays open during the run",
                         run_window is not None, str(session.window_names())))
    # the first preview inserts the layer
    deadline = time.time() + 180
    while time.time() < deadline and layers_in_title(session, image_window) != layers_before + 1:
        time.sleep(0.5)
    first_preview_layers = layers_in_title(session, image_window)
    results.append(check("the result layer appears during the run (at the first preview)",
                         first_preview_layers == layers_before + 1 and run_window is not None
                         and run_window in session.find_windows("^Neural Style Transfer: "),
                         "%s -> %s layers" % (layers_before, first_preview_layers)))
    session.move(5, 5, pause=0.2)
    try:
        hidden = relative_rectangle(session, run_window, image_window) if run_window else None
    except Exception:  # the run is over already
        hidden = None
    shots = []
    for index in range(4):
        shots.append(session.screenshot("10-live-%d" % index, window=image_window))
        time.sleep(1.0)
    changed = [pixels_differ(a, b, hidden) for a, b in zip(shots, shots[1:])]
    # The run dialog as the artist sees it (a window's own screenshot blacks out what covers it,
    # so this one is of the whole screen): drawn, with its text, not a blank rectangle.
    if run_window is not None and run_window in session.find_windows("^Neural Style Transfer: "):
        screen = session.screenshot("10-live-screen")
        x, y, width, height = session.geometry(run_window)
        pixels = numpy.asarray(Image.open(str(screen)).convert("L"))[y:y + height, x:x + width]
        results.append(check("the run dialog is drawn (its text and buttons, not a blank window)",
                             pixels.size > 0 and pixels.std() > 10,
                             "grey-level spread %.1f in %s" % (pixels.std() if pixels.size else 0,
                                                               screen)))
    results.append(check("the picture forms: screenshots 1 s apart during the run differ "
                         "(outside the run dialog)",
                         any(count > 100 for count in changed), "changed pixels %s" % changed))
    results.append(check("still one new layer while the previews come",
                         layers_in_title(session, image_window) == layers_before + 1))
    if run_window is not None and run_window in session.find_windows("^Neural Style Transfer: "):
        session.activate(run_window)
        session.key("alt+s", pause=0.5)  # Stop and keep
        stopped = session.wait_until_gone(run_window, timeout=120)
        session.screenshot("11-stopped")
        results.append(check("Stop and keep ends the run; the layer stays",
                             stopped and layers_in_title(session, image_window)
                             == layers_before + 1, session.window_name(image_window)))
        # The whole run (the layer, every preview's pixels, the result) is one undo step.
        session.activate(image_window)
        session.key("ctrl+z", pause=1.5)
        session.screenshot("11-undone")
        results.append(check("one Undo takes the whole run back (the layer is gone)",
                             layers_in_title(session, image_window) == layers_before,
                             session.window_name(image_window)))
    else:
        results.append(check("Stop and keep pressed during the run", False,
                             "the run was over before (make it longer)"))
    # Cancel: the image as it was
    layers_before_cancel = layers_in_title(session, image_window)
    run_window = start_long_run(session, image_window)
    deadline = time.time() + 180
    while time.time() < deadline and \
            layers_in_title(session, image_window) != layers_before_cancel + 1:
        time.sleep(0.5)
    if run_window is not None and run_window in session.find_windows("^Neural Style Transfer: "):
        session.activate(run_window)
        session.key("alt+c", pause=0.5)
        cancelled = session.wait_until_gone(run_window, timeout=120)
        time.sleep(2.0)
        session.screenshot("12-cancelled")
        # GIMP shows a plug-in's failed calls in a "GIMP Message" window: none may come up.
        errors = session.find_windows("[Ee]rror|Neural Style Transfer$|^GIMP Message")
        results.append(check("Cancel ends the run: the preview layer is gone, no error shown",
                             cancelled and layers_in_title(session, image_window)
                             == layers_before_cancel and not errors,
                             "%s; windows %s" % (session.window_name(image_window),
                                                 session.window_names())))
    else:
        results.append(check("a run dialog for the cancelled run", False))
    engine_log = Path(gui["config"]["log_dir"]) / "nst_engine.log"
    print("  engine log tail:\n" + "\n".join(engine_log.read_text().splitlines()[-6:])
          if engine_log.exists() else "  no engine log")
    failed = failed_labels(results)
    if failed:
        print(session.gimp_log()[-3000:])
    assert failed == []


def test_the_dialog_warms_up_the_engine_service_while_it_is_open(gui):
    """With the warm local service (the installer's default), opening the dialog starts the service
    (torch and the network load while the artist chooses); the run after OK reuses it."""
    session = gui["session"]
    if gui["engine"] == "fake":
        pytest.skip("the fake engine has no service")
    image_window = session.wait_for_window(r"\[photo\]", timeout=60)
    log_dir = Path(gui["config"]["log_dir"])
    engine_log = log_dir / "nst_engine.log"
    set_engine_service(gui["folder"], "local")
    results = []
    try:
        log_before = engine_log.read_text() if engine_log.exists() else ""
        dialog = open_dialog(session, image_window)
        deadline = time.time() + 120
        warmed = ""
        while time.time() < deadline and "warm-up: started the engine service" not in warmed:
            time.sleep(0.5)
            warmed = engine_log.read_text()[len(log_before):] if engine_log.exists() else ""
        results.append(check("opening the dialog started the engine service (before OK)",
                             "warm-up: started the engine service" in warmed,
                             warmed.strip()[-300:]))
        layers_before = layers_in_title(session, image_window)
        type_settings(session, dialog, iterations=3, size=64)
        session.key("alt+o", pause=0.5)
        added = wait_for_layers(session, image_window, layers_before + 1, timeout=300)
        wait_until_no_run_window(session, timeout=120)
        after = engine_log.read_text()[len(log_before):]
        results.append(check("the run after OK reused that service and added its layer",
                             added and "reusing the engine service" in after
                             and after.count("started the engine service") == 1,
                             after.strip()[-400:]))
    finally:
        set_engine_service(gui["folder"], "off")
        for state in log_dir.glob("nst_service-*.json"):
            pid = json.loads(state.read_text()).get("pid")
            if isinstance(pid, int):
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
    assert failed_labels(results) == []
