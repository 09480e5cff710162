# -*- coding: utf-8 -*-
"""Client side of the nst_core engine protocol (docs/PROTOCOL.md), for the GIMP plug-in.

Pure Python that runs unchanged on GIMP 2.10's Python 2.7 and on GIMP 3's Python 3: no GIMP import,
no torch. It reads the installer's config, builds the engine's command line and a clean environment,
runs the engine in its own process, turns its JSON lines into events, and turns failures into one
message for a person that says what happened, what to do and where the engine's log is.
"""

from __future__ import absolute_import, division, print_function

import io
import json
import os
import subprocess
import sys
import time

CONFIG_FILE_NAME = "nst_config.json"
ENGINE_PYTHON_ENV = "NST_ENGINE_PYTHON"
LOG_FILE_NAME = "nst_engine.log"
# The log is appended to run after run; past this size the old part moves to a ".1" file.
LOG_ROTATE_BYTES = 5 * 1024 * 1024

PRESETS = ("standard", "fast", "paper")
DEVICES = ("auto", "cpu", "cuda", "mps")
# The paper preset is the paper's exact formulation: its weights are part of the definition.
PRESETS_WITH_FIXED_WEIGHTS = ("paper",)

PROTOCOL_VERSION = 1

# Exit codes of `nst_core stylize` (PROTOCOL.md, "Exit codes").
EXIT_CODE_NAMES = {
    0: "ok",
    1: "internal",
    2: "bad_input",
    3: "weights_missing",
    4: "cancelled",
    5: "out_of_memory",
}

# What the user can do about each kind of failure; the engine's own message says what happened.
ADVICE_BY_CODE = {
    "internal": "This is a bug or an unexpected failure in the engine; the log has the details.",
    "bad_input": "Check the layers and the parameters (for example the working size).",
    "weights_missing": ("The engine needs the VGG weights once. Fetch them with: "
                        "\"{python}\" -m nst_core weights fetch   (offline: "
                        "\"{python}\" -m nst_core weights import FILE)."),
    "cancelled": "The engine was stopped before it finished; the image was not changed.",
    "out_of_memory": ("The device ran out of memory. Try a smaller working size, the 'fast' "
                      "preset, or the 'cpu' device."),
}

WINDOWS = sys.platform.startswith("win")
try:
    TEXT_TYPES = (str, unicode)  # Python 2.7: json gives unicode strings
except NameError:
    TEXT_TYPES = (str,)
# On Windows a console program started from GIMP would flash a console window without this flag.
CREATE_NO_WINDOW = 0x08000000


class EngineError(Exception):
    """A failure to report to the user: `message` says what happened and what to do.

    `code` is one of the protocol's error codes (bad_input, weights_missing, ...) or one of the
    plug-in's own: not_configured, engine_missing, bad_parameter, protocol.
    """

    def __init__(self, code, message, log_path=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.log_path = log_path


# ---------------------------------------------------------------------------------------------
# Configuration written by the installer


class EngineConfig(object):
    """Where the engine's Python is and where its log goes."""

    def __init__(self, engine_python, log_dir, version, source):
        self.engine_python = engine_python
        self.log_dir = log_dir
        self.version = version
        self.source = source  # where engine_python came from, for messages


def config_path(plugin_dir):
    return os.path.join(plugin_dir, CONFIG_FILE_NAME)


def read_config_file(path):
    """The installer's JSON config as a dict; {} when the file does not exist."""
    if not os.path.exists(path):
        return {}
    try:
        with io.open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise EngineError(
            "not_configured",
            "The plug-in's configuration %s could not be read (%s). Run the installer again to "
            "rewrite it." % (path, exc))
    if not isinstance(data, dict):
        raise EngineError(
            "not_configured",
            "The plug-in's configuration %s is not a JSON object. Run the installer again to "
            "rewrite it." % path)
    return data


def find_program(name, environ):
    """`name` when it is a path, else its first match on PATH (shutil.which is not in 2.7)."""
    if os.path.dirname(name):
        return name
    for folder in environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        if WINDOWS and os.path.isfile(candidate + ".exe"):
            return candidate + ".exe"
    return name


def load_config(plugin_dir, environ=None):
    """Reads the config beside the plug-in; NST_ENGINE_PYTHON overrides its engine_python."""
    environ = os.environ if environ is None else environ
    path = config_path(plugin_dir)
    data = read_config_file(path)
    override = environ.get(ENGINE_PYTHON_ENV, "").strip()
    if override:
        engine_python, source = override, "the %s environment variable" % ENGINE_PYTHON_ENV
    else:
        engine_python, source = data.get("engine_python"), path
    if not engine_python:
        raise EngineError(
            "not_configured",
            "The Neural Style Transfer engine is not set up: %s %s. Run the installer "
            "(python3 installer/install.py) to install the engine and write this file, or set "
            "%s to the Python that has nst_core installed."
            % (path, "has no engine_python entry" if data else "does not exist",
               ENGINE_PYTHON_ENV))
    engine_python = find_program(engine_python, environ)
    if not os.path.isfile(engine_python):
        raise EngineError(
            "engine_missing",
            "The engine's Python was not found at %s (named in %s). The engine may have been "
            "moved or uninstalled: run the installer again, or set %s to the Python that has "
            "nst_core installed." % (engine_python, source, ENGINE_PYTHON_ENV))
    return EngineConfig(engine_python, data.get("log_dir") or "", data.get("version") or "",
                        source)


# ---------------------------------------------------------------------------------------------
# Command line and environment


def format_float(value):
    """Shortest exact text for a float, the same on Python 2.7 and 3."""
    return repr(float(value))


def engine_options(preset="standard", iterations=0, size=0, style_weight=1.0,
                   content_weight=1.0, use_ssim=True, preserve_colors=False, seed=0,
                   device="auto"):
    """The stylize options for the dialog's values (PROTOCOL.md; 0 means "the preset's value")."""
    if preset not in PRESETS:
        raise EngineError("bad_parameter", "Unknown quality preset %r: use one of %s."
                          % (preset, ", ".join(PRESETS)))
    if device not in DEVICES:
        raise EngineError("bad_parameter", "Unknown device %r: use one of %s."
                          % (device, ", ".join(DEVICES)))
    for label, value in (("Iterations", iterations), ("Working size", size), ("Seed", seed)):
        if int(value) != value or value < 0:
            raise EngineError("bad_parameter", "%s must be a whole number, 0 or more (got %r)."
                              % (label, value))
    for label, value in (("Style weight", style_weight), ("Content weight", content_weight)):
        if not (value >= 0.0 and value < float("inf")):
            raise EngineError("bad_parameter", "%s must be 0 or more (got %r)." % (label, value))
    if preset not in PRESETS_WITH_FIXED_WEIGHTS and style_weight == 0 and content_weight == 0:
        raise EngineError("bad_parameter",
                          "Style weight and content weight are both 0: raise at least one.")

    options = ["--preset", preset]
    if size > 0:
        options += ["--size", str(int(size))]
    if iterations > 0:
        options += ["--iterations", str(int(iterations))]
    if preset not in PRESETS_WITH_FIXED_WEIGHTS:
        options += ["--content-weight", format_float(content_weight),
                    "--style-weight", format_float(style_weight)]
    options.append("--ssim" if use_ssim else "--no-ssim")
    if preserve_colors:
        options.append("--preserve-colors")
    options += ["--seed", str(int(seed)), "--device", device]
    return options


def build_command(engine_python, content_path, style_path, output_path, options):
    return ([engine_python, "-m", "nst_core", "stylize", content_path, style_path,
             "-o", output_path, "--progress", "jsonl"] + list(options))


def clean_environment(environ):
    """The engine's environment: ours minus what GIMP's own Python set up.

    GIMP's bundled Python (Windows, macOS, Flatpak) sets PYTHONHOME/PYTHONPATH and friends; passed
    on, they make the engine's interpreter load GIMP's standard library and fail. Everything else
    (NST_WEIGHTS, CUDA_VISIBLE_DEVICES, proxies, ...) passes through.
    """
    env = {}
    for key, value in environ.items():
        upper = key.upper()
        if upper.startswith("PYTHON") or upper.startswith("__PYVENV"):
            continue
        env[key] = value
    # Set on purpose: stream progress line by line, and JSON in UTF-8 whatever the locale.
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


# ---------------------------------------------------------------------------------------------
# The event stream


def parse_event_line(line):
    """One stdout line as an event dict, or None for anything that is not a JSON event."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("event"), TEXT_TYPES):
        return None
    return event


def format_duration(seconds):
    seconds = int(round(max(0.0, float(seconds))))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % (seconds // 60, seconds % 60)
    return "%d h %02d min" % (seconds // 3600, (seconds % 3600) // 60)


def progress_fraction(event):
    """The progress bar's value (0..1) for a progress event, None when it has none."""
    try:
        fraction = float(event.get("fraction"))
    except (TypeError, ValueError):
        try:
            fraction = float(event["iteration"]) / float(event["total"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
    return min(1.0, max(0.0, fraction))


def progress_text(event):
    """The progress bar's text for an event, None for events that do not change it."""
    kind = event.get("event")
    if kind == "start":
        working = event.get("working_size") or []
        size = ("%dx%d" % (working[0], working[1])) if len(working) == 2 else "?"
        return "Style transfer: starting on %s, working size %s" % (event.get("device", "?"), size)
    if kind == "progress":
        phase = "refining" if event.get("phase") == "refine" else "iteration"
        text = "Style transfer: %s %s of %s" % (phase, event.get("iteration", "?"),
                                                 event.get("total", "?"))
        eta = event.get("eta")
        if isinstance(eta, (int, float)):
            text += ", about %s left" % format_duration(eta)
        else:
            text += ", estimating the time left"
        return text
    if kind == "warning":
        return "Style transfer: %s" % event.get("message", "")
    if kind == "done":
        return "Style transfer: done, adding the layer"
    return None


# ---------------------------------------------------------------------------------------------
# The log file


def open_log(log_dir, fallback_dir):
    """Opens the engine log for appending: in log_dir, or in fallback_dir when that fails.

    Returns (binary file object, path).
    """
    last_error = None
    for folder in (log_dir, fallback_dir):
        if not folder:
            continue
        path = os.path.join(folder, LOG_FILE_NAME)
        try:
            if not os.path.isdir(folder):
                os.makedirs(folder)
            rotate_log(path)
            return io.open(path, "ab"), path
        except (IOError, OSError) as exc:
            last_error = exc
    raise EngineError("engine_missing", "No writable folder for the engine log (tried %s and %s: "
                      "%s). Check the log_dir entry of %s." % (log_dir, fallback_dir, last_error,
                                                              CONFIG_FILE_NAME))


def rotate_log(path):
    try:
        if os.path.getsize(path) > LOG_ROTATE_BYTES:
            old = path + ".1"
            if os.path.exists(old):
                os.remove(old)
            os.rename(path, old)
    except OSError:
        pass  # no log yet, or a rename race with another run: appending is still fine


def read_log_tail(path, start_offset, max_lines=6):
    """The last lines this run wrote to the log, for the error message."""
    try:
        with io.open(path, "rb") as handle:
            handle.seek(start_offset)
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return []
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return [line[:300] for line in lines[-max_lines:]]


# ---------------------------------------------------------------------------------------------
# Failure messages


def failure_message(error_event, returncode, log_path, log_tail, engine_python):
    """One message for a person: what happened, what to do, and where the log is."""
    if error_event is not None:
        code = error_event.get("code") or EXIT_CODE_NAMES.get(returncode, "internal")
        what = error_event.get("message") or "The engine reported an error (%s)." % code
    else:
        code = EXIT_CODE_NAMES.get(returncode, "internal")
        if returncode is not None and returncode < 0:
            what = "The engine was killed by signal %d before it finished." % -returncode
        else:
            what = "The engine stopped with exit code %s without saying why." % returncode
        if log_tail:
            what += " Its last words: " + " | ".join(log_tail[-3:])
        if any("No module named" in line and "nst_core" in line for line in log_tail):
            code = "engine_missing"
            what += (" The Python at %s does not have nst_core installed: run the installer "
                     "again." % engine_python)
    parts = [what]
    advice = ADVICE_BY_CODE.get(code)
    # The engine's own message already says what to do; our advice is for when it said nothing
    # (a crash, a Python without nst_core), and the reassurance that a cancelled run changed nothing.
    if advice and (error_event is None or code == "cancelled"):
        parts.append(advice.format(python=engine_python))
    if log_path:
        parts.append("Engine log: %s" % log_path)
    return code, " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Running the engine


def start_engine(command, env, log_file):
    """Starts the engine with a pipe on stdin that stays open until the run is over.

    The engine stops when that pipe closes (PROTOCOL.md "Stopping"), so if GIMP kills the plug-in
    (the user cancelled) the engine stops as well.
    """
    kwargs = {}
    if WINDOWS:
        kwargs["creationflags"] = CREATE_NO_WINDOW
    else:
        kwargs["close_fds"] = True
    try:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log_file, env=env, **kwargs)
    except (OSError, IOError) as exc:
        raise EngineError(
            "engine_missing",
            "The engine could not be started: %s (%s). Run the installer again, or set %s to the "
            "Python that has nst_core installed." % (command[0], exc, ENGINE_PYTHON_ENV))


def wait_for_exit(process, timeout):
    """process.wait() with a timeout (2.7 has none); True when it exited."""
    deadline = time.time() + timeout
    while process.poll() is None:
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_engine(process, grace_seconds=10.0):
    """Asks the engine to stop (cancel line, then end of stdin), and forces it if it must."""
    if process.poll() is not None:
        return
    try:
        process.stdin.write(b"cancel\n")
        process.stdin.flush()
    except (IOError, OSError, ValueError):
        pass  # it may already have closed its end
    close_quietly(process.stdin)
    if wait_for_exit(process, grace_seconds):
        return
    try:
        process.terminate()
        if not wait_for_exit(process, 5.0):
            process.kill()
            process.wait()
    except OSError:
        pass


def to_bytes(text):
    """UTF-8 bytes of text; Python 2.7's str is bytes already (and may hold non-ASCII paths)."""
    if isinstance(text, bytes):
        return text
    return text.encode("utf-8", "replace")


def close_quietly(handle):
    try:
        handle.close()
    except (IOError, OSError, ValueError):
        pass


def run_engine(command, env, log_dir, fallback_log_dir, on_event=None, output_path=None):
    """Runs the engine to its end and returns its `done` event.

    on_event(event) is called for every event, in order (for the progress bar). Any failure raises
    EngineError with a message for a person that names the log. If on_event raises, the engine is
    stopped before the exception goes on.
    """
    log_file, log_path = open_log(log_dir, fallback_log_dir)
    with log_file:
        header = "\n===== %s  plug-in pid %d\n%s\n" % (
            time.strftime("%Y-%m-%d %H:%M:%S"), os.getpid(),
            " ".join('"%s"' % part if " " in part else part for part in command))
        log_file.write(to_bytes(header))
        log_file.flush()
        start_offset = log_file.tell()  # what the engine writes from here on is this run's
        process = start_engine(command, env, log_file)
        done_event = error_event = None
        stray_lines = []
        try:
            for raw_line in iter(process.stdout.readline, b""):
                event = parse_event_line(raw_line)
                if event is None:
                    if raw_line.strip():
                        stray_lines.append(raw_line.decode("utf-8", "replace").rstrip()[:300])
                    continue
                if event["event"] == "done":
                    done_event = event
                elif event["event"] == "error":
                    error_event = event
                if on_event is not None:
                    on_event(event)
            # The run is over: now (and not before) our end of stdin may close.
            close_quietly(process.stdin)
            returncode = process.wait()
        finally:
            if process.poll() is None:
                stop_engine(process)
            close_quietly(process.stdout)
        if stray_lines:
            log_file.write(to_bytes("(plug-in) unexpected stdout lines:\n%s\n"
                                    % "\n".join(stray_lines[-20:])))
            log_file.flush()

    if returncode == 0 and done_event is not None and error_event is None:
        produced = done_event.get("output") or output_path
        if output_path and not os.path.isfile(output_path):
            raise EngineError("protocol", "The engine said it was done but wrote no result at %s. "
                              "Engine log: %s" % (output_path, log_path), log_path)
        if not produced:
            raise EngineError("protocol", "The engine finished without naming its result. "
                              "Engine log: %s" % log_path, log_path)
        done_event["log_path"] = log_path
        return done_event
    if returncode == 0 and error_event is None:
        # Exit 0 without `done`: not the protocol, most likely not nst_core at all.
        code, message = "protocol", ("The engine exited without a result or an error (is %s the "
                                     "engine's Python?). Engine log: %s" % (command[0], log_path))
    else:
        code, message = failure_message(error_event, returncode, log_path,
                                        read_log_tail(log_path, start_offset) + stray_lines[-3:],
                                        command[0])
    raise EngineError(code, message, log_path)
