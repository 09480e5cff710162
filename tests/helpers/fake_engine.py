"""A stand-in for the engine's Python: `FAKE -m nst_core stylize CONTENT STYLE -o OUT ...`, and
`FAKE -m nst_core stylize-frames FRAME... STYLE -o FOLDER ...` (PROTOCOL.md "Frames").

write_fake_engine(path) makes an executable copy of this file with a shebang to the Python running
the tests, so that the plug-in can start it exactly as it starts the real engine's interpreter. What
it does is chosen by environment variables (the plug-in passes the environment through):

FAKE_ENGINE_MODE    ok (default): start, progress events, a result whose pixels are the content's
                    inverted, done. Others: weights_missing, bad_input, out_of_memory (an error
                    event and the protocol's exit code), crash (a traceback on stderr, exit 1, no
                    event), no_module (like a Python without nst_core), no_output (done, but no
                    file), silent (exit 0 without a word), hang (waits on stdin like the engine:
                    `cancel` or end-of-file stop it with exit 4).
FAKE_ENGINE_MODE_FILE  a file holding the mode, read at each start (overrides FAKE_ENGINE_MODE):
                    lets a test change the mode between runs inside one GIMP session.
FAKE_ENGINE_KEEP_MASKS  a folder to copy each --style-mask file to (mask-0.png, ...), for tests
                    that look at the masks the plug-in made after it removed its run folder.
FAKE_ENGINE_RECORD  a JSON file to write argv, pid, parent pid and some environment variables to.
FAKE_ENGINE_MARKER  a file created when the engine is stopped through stdin (hang mode).
FAKE_ENGINE_WARN    a warning message to send.
FAKE_ENGINE_PROTOCOL  the protocol version its `start` event gives (default 1).
FAKE_ENGINE_ETA     the time left (seconds) its estimates give (default: a few hundredths).

With --preview-every (and --preview-dir) it sends a `preview` event after each progress event,
naming a PNG (written atomically) of the content at the content's size, darker at each step, so that
consecutive previews differ; the preview files are removed at the end of the run, as the engine does.

stylize-frames: each frame between `frame_start` and `frame_done`, its progress with the sequence's
fields, the results (each frame inverted, named after it) written into FOLDER at the end, then `done`
with `outputs`. The modes that fail, fail before the first frame. In hang mode the frames before
FAKE_ENGINE_HANG_FRAME (default 2) run to their end; that frame waits after its first step:
`stop` ends it and writes the frames so far, that one included; `cancel` writes nothing.

In every mode that succeeds it first checks that its stdin is still open: the protocol says a
closed stdin means "the caller died, stop". Its events carry the fields docs/PROTOCOL.md lists
(tests/plugin/test_plugin_engine.py checks them with the checks tests/cli/test_cli.py makes on the real engine).
"""

import json
import os
import select
import stat
import sys
import threading
import time

EXIT_CODES = {"internal": 1, "bad_input": 2, "weights_missing": 3, "cancelled": 4,
              "out_of_memory": 5}


def write_fake_engine(path, python=None):
    """An executable copy of this program at path, run by `python` (default: this one)."""
    with open(__file__) as handle:
        source = handle.read()
    with open(path, "w") as handle:
        handle.write("#!%s\n" % (python or sys.executable))
        handle.write(source)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_engine_in(folder, monkeypatch):
    """For a test: the fake engine in folder, recording its call to folder/record.json, in its
    default mode whatever the test's environment says."""
    for name in ("FAKE_ENGINE_MODE", "FAKE_ENGINE_HANG_FRAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAKE_ENGINE_RECORD", os.path.join(str(folder), "record.json"))
    return write_fake_engine(os.path.join(str(folder), "fake-python"))


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


# The stylize options the fake understands, as the real engine's parser would: an option the
# plug-in sends that is not here fails like argparse does (exit 2), so a test notices.
OPTIONS_WITH_VALUE = ("-o", "--progress", "--preset", "--size", "--iterations", "--content-weight",
                      "--style-weight", "--style-strength", "--seed", "--device",
                      "--preview-every", "--preview-dir")
# ... and those stylize-frames adds.
FRAMES_OPTIONS_WITH_VALUE = ("--temporal-weight", "--format")
FLAGS = ("--ssim", "--no-ssim", "--preserve-colors")
# Options that take one value or more (nargs="+"): their values run to the next option.
OPTIONS_WITH_VALUES = ("--style-mask", "--region-weight")


def parse_args(argv):
    if argv[:2] != ["-m", "nst_core"] or argv[2:3] not in (["stylize"], ["stylize-frames"]):
        sys.stderr.write("fake engine: unexpected command %r\n" % argv)
        sys.exit(2)
    command, rest = argv[2], argv[3:]
    known = OPTIONS_WITH_VALUE + OPTIONS_WITH_VALUES + FLAGS
    if command == "stylize-frames":
        known += FRAMES_OPTIONS_WITH_VALUE
    positional, options = [], {}
    index = 0
    while index < len(rest):
        arg = rest[index]
        if arg.startswith("-") and arg not in known:
            sys.stderr.write("nst-core %s: error: unrecognized arguments: %s\n" % (command, arg))
            sys.exit(2)
        if arg in OPTIONS_WITH_VALUES:
            values = []
            index += 1
            while index < len(rest) and not rest[index].startswith("--"):
                values.append(rest[index])
                index += 1
            options[arg] = values
        elif arg.startswith("-"):
            if index + 1 < len(rest) and not rest[index + 1].startswith("--"):
                options[arg] = rest[index + 1]
                index += 2
            else:
                options[arg] = True
                index += 1
        else:
            positional.append(arg)
            index += 1
    return positional, options


def stdin_closed():
    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(readable) and sys.stdin.buffer.read1(1) == b""


def wait_for_stop(marker):
    """Like the engine: `cancel` on stdin or end-of-file cancels the run; returns when `stop`
    asks it to finish with the result so far."""
    ended = threading.Event()
    command = []

    def watch():
        for line in sys.stdin:
            if line.strip() in ("cancel", "stop"):
                command.append(line.strip())
                break
        ended.set()

    threading.Thread(target=watch, daemon=True).start()
    while not ended.wait(0.05):
        pass
    if marker:
        with open(marker, "w") as handle:
            handle.write("%s through stdin\n" % ("stopped" if command == ["stop"] else "cancelled"))
    if command == ["stop"]:
        return
    emit("error", code="cancelled", exit_code=4, message="Cancelled.")
    sys.exit(4)


def fail_as_asked(mode):
    """The modes that fail before any work: without a word (silent), with the protocol's error event
    and exit code, or with a traceback and no event (crash). Returns in every other mode."""
    if mode == "silent":
        sys.exit(0)
    if mode in EXIT_CODES:
        emit("error", code=mode, exit_code=EXIT_CODES[mode],
             message="Fake engine failure: %s (expected file /nowhere/vgg19.pth)" % mode)
        sys.exit(EXIT_CODES[mode])
    if mode == "crash":
        sys.stderr.write("Traceback (most recent call last):\n  File \"fake\", line 1\n"
                         "RuntimeError: fake engine crashed on purpose\n")
        sys.exit(1)


def loaded(path):
    from PIL import Image  # only the modes that make a picture need pillow
    image = Image.open(path)
    image.load()
    return image


def emit_start(size, warn=True):
    """The run's (or a frame's) start event, and FAKE_ENGINE_WARN's warning when warn."""
    emit("start", protocol=int(os.environ.get("FAKE_ENGINE_PROTOCOL", "1")), version="0.0-fake",
         device="cpu", backbone="vgg19", weights="fake weights (none loaded)", content_size=size,
         working_size=size, iterations=3, scales=[size], upscale="none")
    if warn and os.environ.get("FAKE_ENGINE_WARN"):
        emit("warning", message=os.environ["FAKE_ENGINE_WARN"])


def emit_progress(iteration, eta, **fields):
    """Step `iteration` of 3 (fields: a frame's and its sequence's)."""
    emit("progress", iteration=iteration, total=3, fraction=iteration / 3.0, phase="stylize",
         scale=0, loss=3.0 / iteration, content_loss=1.0, style_loss=1.0, tv_loss=0.0,
         ssim_factors=[0.2], elapsed=0.01 * iteration, eta=eta, **fields)


def exit_if_stdin_closed():
    """The protocol: a closed stdin means the caller died, so the run ends as cancelled."""
    if stdin_closed():
        emit("error", code="cancelled", exit_code=4, message="stdin closed before the end")
        sys.exit(4)


def main():
    argv = sys.argv[1:]
    mode = os.environ.get("FAKE_ENGINE_MODE", "ok")
    if os.environ.get("FAKE_ENGINE_MODE_FILE"):
        with open(os.environ["FAKE_ENGINE_MODE_FILE"]) as handle:
            mode = handle.read().strip() or mode
    record = os.environ.get("FAKE_ENGINE_RECORD")
    if record:
        with open(record, "w") as handle:
            json.dump({"argv": argv, "pid": os.getpid(), "ppid": os.getppid(), "mode": mode,
                       "env": {key: os.environ.get(key) for key in (
                           "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "NST_WEIGHTS",
                           "PYTHONUNBUFFERED", "FAKE_ENGINE_MODE", "PATH")}}, handle)
    if mode == "no_module":
        sys.stderr.write("%s: No module named nst_core\n" % sys.executable)
        sys.exit(1)
    positional, options = parse_args(argv)
    if argv[2] == "stylize-frames":
        return frames_main(positional, options, mode)
    content, style = positional[0], positional[1]
    output = options["-o"]
    problem = region_problem(positional[1:], options)
    if problem:
        emit("error", code="bad_input", exit_code=2, message=problem)
        sys.exit(2)
    sys.stderr.write("fake engine: %s + %s -> %s\n" % (content, style, output))
    fail_as_asked(mode)
    image = loaded(content)
    loaded(style)
    size = list(image.size)
    emit_start(size)
    previews = Previews(options, output)
    if mode == "hang":
        emit("progress", iteration=1, total=3, fraction=0.3, phase="stylize", scale=0,
             loss=1.0, content_loss=0.5, style_loss=0.5, tv_loss=0.0, ssim_factors=[],
             elapsed=0.1, eta=None)
        previews.send(image, 1)
        wait_for_stop(os.environ.get("FAKE_ENGINE_MARKER"))
        previews.remove()
        write_result(image, output)
        stopped = stats(size, iterations=1)
        stopped["stop_reason"] = "stopped"
        emit("done", output=os.path.abspath(output), stats=stopped)
        sys.exit(0)
    for iteration in (1, 2, 3):
        emit_progress(iteration, None if iteration == 1 else float(os.environ.get(
            "FAKE_ENGINE_ETA", 0.01 * (3 - iteration))))
        previews.send(image, iteration)
        time.sleep(0.01)
    previews.remove()
    exit_if_stdin_closed()
    if mode != "no_output":
        write_result(image, output)
    emit("done", output=os.path.abspath(output), stats=stats(size, iterations=3))
    sys.exit(0)


def frames_main(positional, options, mode):
    """stylize-frames FRAME... STYLE -o FOLDER: the frames' events, then the results (PROTOCOL.md
    "Frames")."""
    frames, style, folder = positional[:-1], positional[-1], os.path.abspath(options["-o"])
    sys.stderr.write("fake engine: %d frames + %s -> %s\n" % (len(frames), style, folder))
    fail_as_asked(mode)
    images = [loaded(frame) for frame in frames]
    loaded(style)
    if len(set(image.size for image in images)) > 1:
        emit("error", code="bad_input", exit_code=2, message="all frames must have one size")
        sys.exit(2)
    hang_frame = int(os.environ.get("FAKE_ENGINE_HANG_FRAME", "2")) if mode == "hang" else None
    count = len(frames)
    previews = Previews(options, folder)
    frame_stats, stopped = [], False
    for number, (frame, image) in enumerate(zip(frames, images), start=1):
        size = list(image.size)
        later = "first" if number == 1 else "flow"
        emit("frame_start", frame=number, frames=count, source=frame, mode=later,
             reliable_share=None if number == 1 else 0.9)
        emit_start(size, warn=number == 1)
        steps = 1 if number == hang_frame else 3
        for iteration in range(1, steps + 1):
            eta = None if iteration == 1 else 0.01 * (3 - iteration)
            sequence_eta = None if number == 1 or eta is None else eta + 0.03 * (count - number)
            emit_progress(iteration, eta, frame=number, frames=count,
                          sequence_fraction=(number - 1 + iteration / 3.0) / count,
                          sequence_eta=sequence_eta)
            previews.send(image, iteration)
            time.sleep(0.01)
        if number == hang_frame:
            wait_for_stop(os.environ.get("FAKE_ENGINE_MARKER"))  # exits on cancel
            stopped = True
        frame_stat = dict(stats(size, iterations=steps), frame=number, frame_mode=later)
        frame_stat["stop_reason"] = "stopped" if stopped else "max_iterations"
        frame_stats.append(frame_stat)
        emit("frame_done", frame=number, frames=count, steps=steps, seconds=0.03,
             stop_reason=frame_stat["stop_reason"], sequence_fraction=number / float(count),
             sequence_eta=0.03 * (count - number))
        if stopped:
            break
    previews.remove()
    exit_if_stdin_closed()
    if not os.path.isdir(folder):
        os.mkdir(folder)
    outputs = []
    for frame, image in zip(frames, images[:len(frame_stats)]):
        outputs.append(os.path.join(folder, os.path.splitext(os.path.basename(frame))[0] + ".png"))
        if mode != "no_output":
            write_result(image, outputs[-1])
    emit("done", output=folder, outputs=outputs, stats={
        "frames": frame_stats, "frames_done": len(outputs), "frames_given": count,
        "stop_reason": "stopped" if stopped else "done", "seconds": 0.03 * len(outputs)})
    sys.exit(0)


class Previews(object):
    """The `preview` events of --preview-every: one per progress event (the fake is fast)."""

    def __init__(self, options, output):
        self.wanted = "--preview-every" in options
        self.folder = options.get("--preview-dir") or os.path.dirname(os.path.abspath(output))
        self.written = []

    def send(self, image, iteration):
        if not self.wanted:
            return
        from PIL import ImageEnhance
        path = os.path.join(self.folder, ".result.preview-%d-%d.png" % (os.getpid(),
                                                                       len(self.written) + 1))
        darker = ImageEnhance.Brightness(image.convert("RGBA")).enhance(1.0 - 0.25 * iteration)
        darker.save(path + ".part", "PNG")
        os.rename(path + ".part", path)
        self.written.append(path)
        emit("preview", path=path, iteration=iteration, loss=3.0 / iteration,
             size=list(image.size))

    def remove(self):
        for path in self.written:
            if os.path.exists(path):
                os.remove(path)


def region_problem(styles, options):
    """What the engine would refuse about --style-mask (count, files); with FAKE_ENGINE_KEEP_MASKS
    the masks are copied to that folder (the plug-in removes its run folder), named by position."""
    masks = options.get("--style-mask")
    if masks is None:
        return "--region-weight without --style-mask" if "--region-weight" in options else None
    if len(masks) != len(styles):
        return "--style-mask has %d mask(s) for %d style image(s)" % (len(masks), len(styles))
    keep = os.environ.get("FAKE_ENGINE_KEEP_MASKS")
    from PIL import Image
    for index, mask in enumerate(masks):
        if mask == "rest":
            continue
        try:
            Image.open(mask).load()
        except (IOError, OSError) as exc:
            return "style mask %s is not an image: %s" % (mask, exc)
        if keep:
            import shutil
            shutil.copyfile(mask, os.path.join(keep, "mask-%d.png" % index))
    return None


def write_result(image, output):
    """The content's pixels inverted, its alpha kept."""
    from PIL import ImageOps
    rgba = image.convert("RGBA")
    inverted = ImageOps.invert(rgba.convert("RGB")).convert("RGBA")
    inverted.putalpha(rgba.getchannel("A"))
    inverted.save(output, "PNG")


def stats(size, iterations):
    """The `done` event's stats, with every field PROTOCOL.md lists."""
    return {"seconds": 0.01 * iterations, "iterations": iterations, "best_iteration": iterations,
            "steps": iterations, "stop_reason": "max_iterations", "content_weight": 1.0, "style_weight": 2.0,
            "device": "cpu", "working_size": size, "output_size": size, "upscale": "none",
            "loss": 1.0, "content_loss": 0.5, "style_loss": 0.5, "ssim_factors": [0.2],
            "scales": [size], "capped": False}


if __name__ == "__main__":
    main()
