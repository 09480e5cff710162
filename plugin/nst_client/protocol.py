# -*- coding: utf-8 -*-
"""The protocol half of the nst_core engine client (docs/PROTOCOL.md): what a job is, the interface
every transport implements (Engine), what the events mean, and what to tell a person about them. No
transport here: no process, no pipe, no socket, no file; subprocess_engine.py runs jobs in an engine
process, http_engine.py on an `nst-core serve`, local_service.py on a warm one on this machine.

Imported by the GIMP plug-in (Python 2.7 on GIMP 2.10, Python 3 on GIMP 3) and by the installer's
demo (Python 3.8+): standard library only, Python 2.7-compatible, no torch. Where a fact of the
contract is copied here (exit codes, preset and device names, the protocol version), a test in
tests/cli/test_cli.py compares the copy with the engine's own value.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import time

# The major version of docs/PROTOCOL.md this client speaks (the `protocol` field of `start`). Every
# bump there removes or renames something, so a client reads only the versions it was written for.
PROTOCOL_VERSION = 1
SUPPORTED_PROTOCOLS = (1,)

# Exit codes of `nst_core stylize` and their protocol names (PROTOCOL.md "Exit codes"; source:
# nst_core/errors.py).
EXIT_CODE_NAMES = {
    0: "ok",
    1: "internal",
    2: "bad_input",
    3: "weights_missing",
    4: "cancelled",
    5: "out_of_memory",
}

# (engine name, label for a person). The names are the engine's `--preset` and `--device` choices
# (source: nst_core/params.py PRESETS and the CLI's --device); the labels are what the dialog shows.
PRESET_CHOICES = (
    ("standard", "Standard (SSIM-weighted, balanced)"),
    ("fast", "Fast (quick preview)"),
    ("paper", "Paper (the paper's settings)"),
)
DEVICE_CHOICES = (
    ("auto", "Auto (CUDA, then MPS, then CPU)"),
    ("cpu", "CPU"),
    ("cuda", "CUDA (NVIDIA GPU)"),
    ("mps", "MPS (Apple GPU)"),
)
PRESETS = tuple(name for name, _label in PRESET_CHOICES)
DEVICES = tuple(name for name, _label in DEVICE_CHOICES)
# The paper preset keeps the paper's settings: its weights are part of them.
PRESETS_WITH_FIXED_WEIGHTS = ("paper",)

# Regions (PROTOCOL.md "Regions"): the word that stands for a mask in place of a file: that style
# takes what the other masks leave (source: nst_core/options.py REST_MASK); and the engine's
# limit on regions (nst_core/engine/regions.py MAX_REGIONS). tests/cli/test_cli.py compares both.
REST_MASK = "rest"
MAX_REGIONS = 8

# How strongly a frame keeps to the styled frame before it (nst_core.params DEFAULT_TEMPORAL_WEIGHT,
# which tests/cli/test_cli.py compares with this); 0 keeps only the warm start. The engine sets no
# upper bound; the procedure's argument stops at TEMPORAL_WEIGHT_MAX, ten times the default.
TEMPORAL_WEIGHT_DEFAULT = 100.0
TEMPORAL_WEIGHT_MAX = 1000.0

# The installer's config file beside the plug-in, and the variable that overrides its engine_python:
# what messages tell a person to look at.
CONFIG_FILE_NAME = "nst_config.json"
ENGINE_PYTHON_ENV = "NST_ENGINE_PYTHON"

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

try:
    TEXT_TYPES = (str, unicode)  # Python 2.7: json gives unicode strings
except NameError:
    TEXT_TYPES = (str,)


class EngineError(Exception):
    """A failure to report to the user: `message` says what happened and what to do.

    `code` is one of the protocol's error codes (bad_input, weights_missing, cancelled, ...) or one
    of the client's own: not_configured, engine_missing, bad_parameter, protocol.
    """

    def __init__(self, code, message, log_path=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.log_path = log_path


class Job(object):
    """One stylize run: input files, where the result goes, and the stylize options: a dict keyed by
    the engine's long option names without the dashes ({"preset": "fast", "size": 256, "ssim": False};
    engine_options()), which each transport renders in its own form (a command line, the HTTP job's
    params)."""

    def __init__(self, content, styles, output, options=None, preview_every=None, masks=None,
                 region_weights=None, preview_dir=None):
        self.content = content
        self.styles = list(styles)
        self.output = output
        self.options = dict(options or {})
        # Seconds between `preview` events (PROTOCOL.md "Previews"), None for none. Every transport
        # hands on a preview event with `path` naming a local PNG file in the output's folder.
        self.preview_every = preview_every
        # Regions (PROTOCOL.md "Regions"): one mask per style, in the styles' order (a PNG file, or
        # REST_MASK for what the others leave), and optionally one weight per region.
        self.masks = None if masks is None else list(masks)
        self.region_weights = None if region_weights is None else [float(w) for w in region_weights]
        check_regions(len(self.styles), self.masks, self.region_weights)
        self.preview_dir = preview_dir

    def preview_folder(self):
        """Where the previews of this job are written: preview_dir when given, else the output's
        folder (the run folder)."""
        return self.preview_dir or os.path.dirname(os.path.abspath(self.output))

    def with_options(self, options):
        """The same job with other options (a transport that sends some of them its own way)."""
        return Job(self.content, self.styles, self.output, options, self.preview_every, self.masks,
                   self.region_weights, self.preview_dir)


class FramesJob(object):
    """One `stylize-frames` run (PROTOCOL.md "Frames"): the frames of an animation in order (image
    files, all one size), the one style image, the folder the styled frames go to (one file per
    frame, named after it; made by the run), the stylize options as a Job's, and how strongly each
    frame keeps to the styled frame before it (temporal_weight)."""

    def __init__(self, frames, style, output, options=None, temporal_weight=TEMPORAL_WEIGHT_DEFAULT,
                 preview_every=None):
        self.frames = list(frames)
        self.style = style
        self.styles = [style]
        self.output = output
        self.options = dict(options or {})
        self.temporal_weight = check_temporal_weight(temporal_weight)
        # As a Job's: `preview` events of the frame being styled, at the frames' size.
        self.preview_every = preview_every

    def preview_folder(self):
        """Where the previews of this job are written: the output folder's parent (the run folder)."""
        return os.path.dirname(os.path.abspath(self.output))

    def with_options(self, options):
        return FramesJob(self.frames, self.style, self.output, options, self.temporal_weight,
                         self.preview_every)

    def frame_output(self, frame):
        """Where the styled frame of the frame file `frame` goes, as the engine names it."""
        name = os.path.splitext(os.path.basename(frame))[0] + ".png"
        return os.path.join(self.output, name)


def check_temporal_weight(weight):
    """The temporal weight as a float, or EngineError("bad_parameter")."""
    try:
        number = float(weight)
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(weight, bool) or not number >= 0:  # also refuses NaN
        raise EngineError("bad_parameter", "The temporal weight must be a number, 0 or more (got "
                          "%r): %g is the default; 0 holds a frame to the one before only through "
                          "its starting picture." % (weight, TEMPORAL_WEIGHT_DEFAULT))
    return number


def check_regions(style_count, masks, region_weights):
    """Raises EngineError("bad_parameter") for masks or weights the engine would refuse by their
    count alone (each mask's pixels are the engine's to judge)."""
    if masks is None:
        if region_weights is not None:
            raise EngineError("bad_parameter", "Region weights need region masks: give one mask "
                              "per style.")
        return
    if len(masks) != style_count:
        raise EngineError("bad_parameter", "%d region mask(s) for %d style(s): give one mask per "
                          "style, in the same order." % (len(masks), style_count))
    if style_count > MAX_REGIONS:
        raise EngineError("bad_parameter", "%d regions: the engine paints at most %d."
                          % (style_count, MAX_REGIONS))
    if sum(1 for mask in masks if mask == REST_MASK) > 1:
        raise EngineError("bad_parameter", "Only one region can be '%s' (what the other regions "
                          "leave)." % REST_MASK)
    if region_weights is not None:
        if len(region_weights) != style_count:
            raise EngineError("bad_parameter", "%d region weight(s) for %d region(s): give one "
                              "per region." % (len(region_weights), style_count))
        if not all(weight >= 0 for weight in region_weights) or not any(region_weights):
            raise EngineError("bad_parameter", "Region weights must be 0 or more, and not all 0 "
                              "(got %s)." % ", ".join(format_float(w) for w in region_weights))


class Engine(object):
    """What every transport offers (SubprocessEngine, HttpEngine, LocalServiceEngine):

    run(job, on_event=None) runs a Job to its end and returns its `done` event (a dict, with "output"
        and "log_path" added where the transport knows them); on_event(event) is called for every
        event, in order, every transport handing on a `preview` event with `path` naming a local
        PNG. Any failure raises EngineError with a message for a person; if on_event raises (or
        Ctrl-C arrives) the run is ended before the exception goes on.
    cancel() ends the run under way without a result: run() then raises EngineError("cancelled").
    stop() ends the run under way early, keeping the best result so far: run() returns its `done`.
    Both may be called from on_event or from another thread while run() works; they return False
    when there is no run to take the request, and do nothing then.
    """

    def run(self, job, on_event=None):
        raise NotImplementedError

    def cancel(self):
        return False

    def stop(self):
        return False


# ---------------------------------------------------------------------------------------------
# The job's options


def format_float(value):
    """Shortest exact text for a float, the same on Python 2.7 and 3."""
    return repr(float(value))


# The style strength: 0 to 10, 5 the calibrated balance (nst_core.params: MIN/MAX/DEFAULT_STRENGTH,
# which tests/cli/test_cli.py compares with these).
STYLE_STRENGTH_RANGE = (0.0, 10.0)
STYLE_STRENGTH_DEFAULT = 5.0


def engine_options(preset="standard", iterations=0, size=0, style_strength=STYLE_STRENGTH_DEFAULT,
                   use_ssim=True, preserve_colors=False, seed=0, device="auto"):
    """The stylize options for the dialog's values, as a Job's options dict (PROTOCOL.md; 0 means
    "the preset's value", and such an option is left out)."""
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
    low, high = STYLE_STRENGTH_RANGE
    if not low <= style_strength <= high:  # also refuses NaN
        raise EngineError("bad_parameter", "Style strength must lie between %g and %g (got %r): %g "
                          "is balanced, higher is more painterly."
                          % (low, high, style_strength, STYLE_STRENGTH_DEFAULT))

    options = {"preset": preset, "ssim": bool(use_ssim), "seed": int(seed), "device": device}
    if size > 0:
        options["size"] = int(size)
    if iterations > 0:
        options["iterations"] = int(iterations)
    if preset not in PRESETS_WITH_FIXED_WEIGHTS:
        options["style-strength"] = float(style_strength)
    if preserve_colors:
        options["preserve-colors"] = True
    return options


# The order in which the options are rendered (a command line reads best in it; any other option
# follows in the order of its name).
OPTION_ORDER = ("preset", "size", "iterations", "style-strength", "ssim", "preserve-colors", "seed",
                "device")


def option_items(options):
    """The (name, value) pairs of a Job's options, in OPTION_ORDER."""
    known = [(name, options[name]) for name in OPTION_ORDER if name in options]
    return known + sorted((name, value) for name, value in options.items() if name not in OPTION_ORDER)


def option_text(value):
    """An option's number or word as the command line writes it."""
    if isinstance(value, float):
        return format_float(value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Events


def parse_event_line(line):
    """One line of the stream as an event dict, or None for anything that is not a JSON event."""
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


def check_protocol(start_event):
    """Raises EngineError("protocol") when the `start` event's protocol is not one this client
    reads: the engine and the client come from different releases."""
    version = start_event.get("protocol")
    if version in SUPPORTED_PROTOCOLS and not isinstance(version, bool):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version > PROTOCOL_VERSION:
        raise EngineError(
            "protocol",
            "The engine (nst-core %s) speaks protocol version %d, newer than this client's %d: "
            "update the plug-in by running the installer of the engine's release again, so that "
            "both come from one release." % (start_event.get("version", "?"), version,
                                               PROTOCOL_VERSION))
    raise EngineError(
        "protocol",
        "The engine (nst-core %s) speaks protocol version %r, which this client (version %d) "
        "does not know: run the installer again, so that the engine and the plug-in come from "
        "one release." % (start_event.get("version", "?"), version, PROTOCOL_VERSION))


def format_duration(seconds):
    seconds = int(round(max(0.0, float(seconds))))
    if seconds < 60:
        return "%d s" % seconds
    if seconds < 3600:
        return "%d min %02d s" % (seconds // 60, seconds % 60)
    return "%d h %02d min" % (seconds // 3600, (seconds % 3600) // 60)


# A run on the CPU longer than this gets a note that says so and what is quicker.
SLOW_RUN_SECONDS = 60


class SlowRunNote(object):
    """The note a slow CPU run gets, decided at the engine's first time estimate (its second step,
    a few seconds in). That first estimate counts every step the run may take, and the run may
    stop earlier on convergence: hence "may", and "up to". quicker: what to suggest, for example
    "the Fast preset or a smaller working size".

    update(event) -> the note (None when there is none, or not yet)."""

    def __init__(self, quicker):
        self.quicker = quicker
        self.device = None
        self.decided = False
        self.note = None

    def update(self, event):
        kind = event.get("event")
        if kind == "start":
            self.device = event.get("device")
        elif kind == "progress" and not self.decided and isinstance(event.get("eta"), (int, float)):
            self.decided = True
            total = float(event.get("elapsed") or 0.0) + float(event["eta"])
            if self.device == "cpu" and total > SLOW_RUN_SECONDS:
                self.note = ("On the CPU this may take more than a minute (up to about %s): %s "
                             "is quicker." % (format_duration(total), self.quicker))
        return self.note


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
    if kind == "queued":  # the HTTP transport: the service runs another job first
        return "Style transfer: waiting for the engine service, %s job(s) ahead" % event.get(
            "position", "?")
    if kind == "done":
        return "Style transfer: done, adding the layer"
    return None


class FramesProgress(object):
    """The progress text and bar of a frames run (FramesJob) of `frames` frames: "Frame k of n" and the
    time left for the whole sequence (the events' sequence_eta). It follows the run's events in
    order, since a frame's `start` and `warning` events do not say which frame they belong to."""

    def __init__(self, frames):
        self.frames = frames
        self.frame = 1

    def _place(self):
        return "Frame %d of %d" % (self.frame, self.frames)

    def _follow(self, event):
        if isinstance(event.get("frame"), int) and not isinstance(event.get("frame"), bool):
            self.frame = event["frame"]

    def text(self, event):
        """The text for an event, None for events that do not change it."""
        kind = event.get("event")
        self._follow(event)
        if kind == "frame_start":
            how = " from the frame before, along the motion" if event.get("mode") == "flow" else ""
            return "%s: starting%s" % (self._place(), how)
        if kind == "start":
            working = event.get("working_size") or []
            size = ("%dx%d" % (working[0], working[1])) if len(working) == 2 else "?"
            return "%s: starting on %s, working size %s" % (self._place(), event.get("device", "?"),
                                                            size)
        if kind == "progress":
            phase = "refining" if event.get("phase") == "refine" else "iteration"
            return "%s: %s %s of %s, %s" % (self._place(), phase, event.get("iteration", "?"),
                                           event.get("total", "?"), self._time_left(event))
        if kind == "frame_done":
            if self.frame >= self.frames:
                return "%s done" % self._place()
            return "%s done, %s" % (self._place(), self._time_left(event))
        if kind == "done":
            count = (event.get("stats") or {}).get("frames_done", self.frames)
            return "Style transfer: %s of %d frames done, making the new image" % (count, self.frames)
        return progress_text(event)

    @staticmethod
    def _time_left(event):
        eta = event.get("sequence_eta")
        if isinstance(eta, (int, float)) and not isinstance(eta, bool):
            return "about %s left for all frames" % format_duration(eta)
        # The sequence's time is known once frame 1 is done, which may take minutes: until then
        # the frame's own.
        eta = event.get("eta")
        if event.get("event") == "progress" and isinstance(eta, (int, float)) \
                and not isinstance(eta, bool):
            return "about %s left for this frame" % format_duration(eta)
        return "estimating the time left for all frames"

    def fraction(self, event):
        """The bar's value (0..1) of the whole sequence, None when the event does not move it."""
        kind = event.get("event")
        self._follow(event)
        if kind == "done":
            return 1.0
        if kind not in ("progress", "frame_done", "frame_start"):
            return None
        given = event.get("sequence_fraction")
        if isinstance(given, (int, float)) and not isinstance(given, bool):
            return min(1.0, max(0.0, float(given)))
        done_in_frame = {"frame_start": 0.0, "frame_done": 1.0}.get(kind)
        if done_in_frame is None:
            done_in_frame = progress_fraction(event) or 0.0
        if not self.frames:
            return None
        return min(1.0, max(0.0, (self.frame - 1 + done_in_frame) / float(self.frames)))


# ---------------------------------------------------------------------------------------------
# Failures and outcomes


def failure_message(error_event, returncode, log_path, log_tail, engine_python):
    """One message for a person: what happened, what to do, and where the log is.

    error_event: the run's `error` event or None; returncode: the engine's exit code (None when
    unknown, negative for a signal); log_tail: the last lines the engine wrote to its log.
    """
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
    # The engine's messages end without a full stop ("cancelled (SIGTERM): no output was written"):
    # one keeps them apart from the sentences that follow.
    parts = [what if what.endswith((".", "!", "?")) else what + "."]
    advice = ADVICE_BY_CODE.get(code)
    # The engine's own message already says what to do; our advice is for when it said nothing
    # (a crash, a Python without nst_core), and the reassurance that a cancelled run changed nothing.
    if advice and (error_event is None or code == "cancelled"):
        parts.append(advice.format(python=engine_python))
    if log_path:
        parts.append("Engine log: %s" % log_path)
    return code, " ".join(parts)


class RunRecord(object):
    """What one run has said so far, event by event: its start, its last step and how it ended;
    checks the protocol version on `start`. A transport feeds it every event."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.started_at = clock()
        self.start = None
        self.last_progress = None
        self.done = None
        self.error = None

    def add(self, event):
        kind = event.get("event")
        if kind == "start":
            check_protocol(event)
            self.start = event
            self.last_progress = None  # a new attempt (after an out-of-memory retry) counts anew
        elif kind == "progress":
            self.last_progress = event
        elif kind == "done":
            self.done = event
        elif kind == "error":
            self.error = event

    def seconds(self):
        return self.clock() - self.started_at

    def steps_text(self):
        if self.last_progress is None:
            return "no step done"
        return "step %s of %s" % (self.last_progress.get("iteration", "?"),
                                  self.last_progress.get("total", "?"))

    def outcome(self, returncode, failure_code=None):
        """One line for the log: how the run ended, after how long, at which step."""
        if failure_code is None and returncode == 0:
            how = "done"
        else:
            code = failure_code or (self.error or {}).get("code") \
                or EXIT_CODE_NAMES.get(returncode, "internal")
            how = "cancelled" if code == "cancelled" else "error %s" % code
        return "%s (exit code %s) after %.1f s, %s" % (how, returncode, self.seconds(),
                                                      self.steps_text())
