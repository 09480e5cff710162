"""Time from OK to the first preview on the canvas, as an artist gets it: GIMP 3's real GUI (the
Debian 13 chroot under Xvfb, tests/gimp3/gui_session.py), the plug-in as the installer sets it up
(the warm local engine service, started when the dialog opens), the default preset, the real VGG-16
weights. Not a test: it prints figures (benchmarks/README.md, "From OK to the first preview in GIMP").

    sudo PYTHONPATH=tests ~/.cache/nst-gimp-dev/venv/bin/python tests/gimp3/first_preview_gui.py \
        [--weights FILE] [--wait-in-dialog 5] [--runs 2]

Each run: Filters > Neural Style Transfer (through GIMP's action search), the given seconds in the
dialog (an artist choosing), OK, then the time until the window title counts one more layer (the
result layer appears at the first preview), then Cancel in the run window (the image as it was).
The layer is a 1024x683 photo (chelsea), the style Starry Night; nothing else should run meanwhile.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from PIL import Image

from helpers.gui_session import GuiSession, gui_chroot_problem, layers_in_title, open_dialog, wait_until_no_run_window
from helpers.real_gimp import bind_paths, engine_python_for_this_checkout, install_plugin
from helpers.repo import REPO


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=os.environ.get("NST_TEST_WEIGHTS") or str(
        REPO.parent / "shared" / "data" / "weights" / "vgg16-imagenet-caffe-features.pth"))
    parser.add_argument("--wait-in-dialog", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--root", default=os.environ.get(
        "NST_GIMP3_CHROOT", os.path.expanduser("~/.cache/nst-gimp-dev/gimp3-trixie")))
    args = parser.parse_args()
    problem = gui_chroot_problem(Path(args.root))
    if problem:
        raise SystemExit(problem)
    weights = Path(args.weights).resolve()
    if not weights.is_file():
        raise SystemExit("no weights at %s: pass --weights (VGG-16, Caffe preprocessing)" % weights)
    work = Path(tempfile.mkdtemp(prefix="first-preview-gui-"))
    plug_ins = work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins"
    _folder, config, _how = install_plugin(plug_ins, engine_python_for_this_checkout(work),
                                           work / "data")
    photo = work / "photo.png"
    Image.open(str(REPO / "examples" / "chelsea.png")).convert("RGB").resize((1024, 683)).save(
        str(photo))
    style = work / "starry.png"
    Image.open(str(REPO / "examples" / "starry_night.jpg")).convert("RGB").save(str(style))
    (work / "tmp").mkdir()
    env = {"NST_WEIGHTS": str(weights), "NST_WEIGHTS_FORMAT": "caffe", "TMPDIR": str(work / "tmp")}
    session = GuiSession(args.root, work, binds=bind_paths(work) + [str(weights.parent)], env=env)
    figures = []
    try:
        session.start([str(style), str(photo)])
        image_window = session.wait_for_window(r"\[photo\]", timeout=60)
        time.sleep(2.0)
        for run in range(args.runs):
            layers_before = layers_in_title(session, image_window)
            dialog = open_dialog(session, image_window)
            time.sleep(args.wait_in_dialog)
            session.activate(dialog)
            session.key("alt+o", pause=0.0)
            pressed = time.time()
            first_preview = None
            while time.time() < pressed + 300:
                if layers_in_title(session, image_window) == layers_before + 1:
                    first_preview = time.time() - pressed
                    break
                time.sleep(0.1)
            session.screenshot("run-%d-first-preview" % (run + 1))
            runs = session.find_windows("^Neural Style Transfer: ")
            if runs:
                session.activate(runs[-1])
                session.key("alt+c", pause=0.5)
            wait_until_no_run_window(session, timeout=120)
            time.sleep(2.0)
            figures.append({"run": run + 1, "seconds_in_dialog": args.wait_in_dialog,
                            "ok_to_first_preview_s": None if first_preview is None
                            else round(first_preview, 1)})
            print("first preview figures: %s" % figures[-1], flush=True)
    finally:
        session.stop()
    log = Path(config["log_dir"]) / "nst_engine.log"
    if log.exists():
        print("engine log (client lines):\n" + "\n".join(
            line for line in log.read_text().splitlines() if line.startswith("(client)")))
    print(json.dumps(figures))
    print("screenshots in %s" % session.shots)


if __name__ == "__main__":
    main()
