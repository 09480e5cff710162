# -*- coding: utf-8 -*-
"""A run of the engine from GIMP, the machinery both procedures share: the run's folder
(new_run_folder), its live previews (preview_interval, PreviewSnapshots, log_shown), its progress in
the run window or GIMP's status bar (ProgressReporter, EventDescriber), the run itself (run_job: in
the GIMP 3 run window from the dialog, else with GIMP's progress bar), and the warm service started
when a dialog opens (warm_up_engine). Python 2.7-compatible; no torch: the engine runs through
nst_client.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import threading
import time

import nst_gimp
import nst_settings
from nst_client import engine_config, local_service, protocol, run_folders
from nst_gimp import gimp, pdb

# Seconds between live previews on the canvas in runs from the dialog (GIMP 3). Scripts get none
# unless they set NST_PREVIEW_EVERY (seconds, or "off"), which also overrides the dialog's.
LIVE_PREVIEW_SECONDS = 1.0
PREVIEW_EVERY_ENV = "NST_PREVIEW_EVERY"
# For tests in a real GIMP (tests/gimp3/e2e_batch.py): a file to which each preview shown and each
# result gets a JSON line (the layer's id and pixel checksum read back from GIMP, the image's layer
# count), so that a test can see the one layer being updated in place.
PREVIEW_LOG_ENV = "NST_PREVIEW_LOG"


def preview_interval(environ=None):
    """Seconds between the previews of this run, or None for no live preview (GIMP 2.10, scripts)."""
    environ = os.environ if environ is None else environ
    if nst_gimp.replace_layer_pixels is None:
        return None
    text = environ.get(PREVIEW_EVERY_ENV, "").strip()
    if not text:
        return LIVE_PREVIEW_SECONDS if nst_gimp.run_is_interactive() else None
    if text.lower() == "off":
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise protocol.EngineError(
            "bad_parameter", "%s is %r: set it to the seconds between live previews (for example "
            "1), or to off." % (PREVIEW_EVERY_ENV, text))
    return seconds


def log_shown(what, image, layer, **fields):
    """With PREVIEW_LOG_ENV set (GIMP 3): a JSON line for a preview or result just shown in layer, with
    what GIMP reads back (the layer's id, its pixels' checksum, the image's layer count) and fields."""
    log_path = os.environ.get(PREVIEW_LOG_ENV)
    if not log_path or nst_gimp.layer_fingerprint is None:
        return
    layer_id, checksum, layer_count = nst_gimp.layer_fingerprint(image, layer)
    record = dict(fields, what=what, time=time.time(), layer=layer_id, sha1=checksum, layers=layer_count)
    with open(log_path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


class ProgressReporter(object):
    """Shows the engine's events in GIMP's progress bar and keeps its warnings."""

    def __init__(self, show_in_gimp=True, quicker=None, frames=None):
        # False while the run dialog shows the progress: GIMP's status-bar progress would offer
        # its own Cancel, which kills the plug-in and leaves the preview layer behind.
        self.show_in_gimp = show_in_gimp
        self.warnings = []
        # the status bar: one line
        self.describe = EventDescriber(quicker, note_separator=" - ", frames=frames)

    def begin(self, text):
        if self.show_in_gimp:
            gimp.progress_init(text)

    def say(self, text):
        if self.show_in_gimp:
            pdb.gimp_progress_set_text(text)

    def on_event(self, event, prefix=""):
        if event.get("event") == "warning" and event.get("message"):
            self.warnings.append(event["message"])
        if not self.show_in_gimp:
            return
        text, fraction = self.describe(event)
        if text:
            pdb.gimp_progress_set_text(prefix + text)
        if fraction is not None:
            gimp.progress_update(fraction)


def run_job(engine, job, on_event, title, describe=None, hint=None):
    """Runs one engine job: in the run dialog (GIMP 3, from the dialog: progress, Stop and Cancel;
    describe: its EventDescriber, hint: what its buttons do, when not the defaults), else with
    GIMP's progress bar."""
    if uses_run_dialog():
        return nst_gimp.run_in_dialog(title, engine, job, on_event,
                                      describe or EventDescriber(quicker_than(job.options)),
                                      PreviewSnapshots(job), hint)
    return engine.run(job, on_event)


QUICKER = "the Fast preset or a smaller working size"


def quicker_than(options):
    """What to suggest to a slow run (its engine options): the Fast preset, unless it uses it."""
    if options.get("preset") == "fast":
        return "a smaller working size"
    return QUICKER


class PreviewSnapshots(object):
    """The run dialog shows a preview later than the engine announces it (through GTK's main loop),
    and by then the engine may have removed or replaced that file. On the worker thread, as it
    arrives, each preview is copied to a file of its own in the run folder; the event says so
    (`snapshot`), and the main thread removes the copy once it has shown it (the run folder's
    removal takes any left)."""

    def __init__(self, job):
        self.folder = job.preview_folder()
        self.count = 0

    def __call__(self, event):
        if event.get("event") != "preview" or not event.get("path"):
            return event
        self.count += 1
        snapshot = os.path.join(self.folder, "shown-preview-%d.png" % self.count)
        try:
            shutil.copyfile(event["path"], snapshot)
        except (IOError, OSError):
            return dict(event, path=None)  # gone already: show_preview skips it, a newer one follows
        return dict(event, path=snapshot, snapshot=True)


def uses_run_dialog():
    return nst_gimp.run_in_dialog is not None and nst_gimp.run_is_interactive()


class EventDescriber(object):
    """(text, fraction) of each event of one run, for the run dialog and GIMP's status bar; a
    slow CPU run's note (protocol.SlowRunNote) stays after the progress once it is known, on
    a line of its own unless note_separator says otherwise. frames: the number of frames of a
    frames run (protocol.FramesProgress: "Frame k of n", the whole sequence's time left)."""

    def __init__(self, quicker=None, note_separator="\n", frames=None):
        self.slow_run = protocol.SlowRunNote(quicker or QUICKER)
        self.note_separator = note_separator
        self.frames = protocol.FramesProgress(frames) if frames else None

    def __call__(self, event):
        if self.frames is not None:
            text, fraction = self.frames.text(event), self.frames.fraction(event)
            # A sequence's slow-run note weighs the time left for all its frames, known once frame 1
            # is done; until then frame 1's own, which alone may exceed the minute.
            sequence_eta = event.get("sequence_eta")
            note = self.slow_run.update(dict(event, eta=sequence_eta) if sequence_eta is not None
                                        else event)
            if text and note:
                text += self.note_separator + note
            return text, fraction
        fraction = None
        if event.get("event") == "progress":
            fraction = protocol.progress_fraction(event)
        elif event.get("event") == "done":
            fraction = 1.0
        note = self.slow_run.update(event)
        text = protocol.progress_text(event)
        if text and note:
            text += self.note_separator + note
        return text, fraction


def new_run_folder():
    """(the parent of the run folders, a fresh run folder of this run), the stale folders of
    runs GIMP killed swept first."""
    runs_root = run_folders.runs_root()
    run_folders.sweep_stale_runs(runs_root)
    try:
        return runs_root, run_folders.make_run_folder(runs_root)
    except (IOError, OSError) as exc:
        raise protocol.EngineError(
            "bad_input", "Could not create a temporary folder in %s (%s). Free some disk space, "
            "or point the TMPDIR (Windows: TEMP) environment variable to a writable folder."
            % (runs_root, exc))


def warm_up_engine():
    """When the dialog opens (GIMP 3): start the warm local engine service in the background, so
    that torch and the network load while the artist chooses settings, not after OK. Only for
    engine_service "local"; the run reuses the service (or starts its own and logs why)."""
    try:
        config = engine_config.load_config(nst_settings.PLUGIN_DIR)
    except protocol.EngineError:
        return None  # the run says what is wrong with the installation
    if config.service != engine_config.SERVICE_LOCAL:
        return None
    engine = local_service.LocalServiceEngine(config, run_folders.runs_root())
    device = nst_settings.choice_name(nst_settings.DEVICE_CHOICES, 0, "device")  # the dialog's default device
    worker = threading.Thread(target=engine.warm_up, args=(device,))
    worker.daemon = True  # a cancelled dialog does not wait; the service exits when idle
    worker.start()
    return worker
