# -*- coding: utf-8 -*-
"""The plug-in's own GIMP 3 UI, beyond the gimpfu surface of nst_gimpfu3: the run window that stays
open while the engine works (progress, time left, Stop and keep, Cancel), the live preview's pixels
put into the result layer in place, and the layer fingerprint tests in a real GIMP compare.

GIMP 2.10's gimpfu has none of this (nst_style_transfer.py runs without it there). gi is imported
only when GIMP 3 actually runs the plug-in (through nst_gimpfu3.gi), so the parts apart from GTK
(RunWindow) are testable without GIMP. Python 2.7-compatible like the rest of the plug-in.
"""

from __future__ import absolute_import, division, print_function

import hashlib
import threading

from nst_gimpfu3 import checked, gi


def replace_layer_pixels(layer, path):
    """Makes the layer's pixels those of the image file at path, in place: the same layer, so that
    no undo step is added; the picture is scaled to the layer's size when it differs. GIMP 3: the
    file loads into a scratch image, and its pixels are copied into the layer's buffer."""
    g = gi()
    scratch = checked(g.Gimp.file_load(g.Gimp.RunMode.NONINTERACTIVE,
                                       g.Gio.File.new_for_path(path)), "load %s" % path)
    try:
        source = scratch.get_layers()[0]
        width, height = layer.get_width(), layer.get_height()
        if (source.get_width(), source.get_height()) != (width, height):
            source.scale(width, height, False)
        rectangle = g.Gegl.Rectangle.new(0, 0, width, height)
        target_buffer = layer.get_buffer()
        # The buffers convert between their pixel formats (e.g. the file without alpha).
        source.get_buffer().copy(rectangle, g.Gegl.AbyssPolicy.CLAMP, target_buffer, rectangle)
        target_buffer.flush()
        layer.update(0, 0, width, height)
    finally:
        scratch.delete()


# The run dialog's answers (besides Gtk's CANCEL and DELETE_EVENT).
RESPONSE_STOP = 1
# What the run dialog says its buttons do (a run may say otherwise: run_in_dialog's hint).
RUN_HINT = ("Stop and keep: end now and keep the best result so far as the layer. Cancel: end now "
            "and leave the image as it was.")


class RunWindow(object):
    """What run_in_dialog shows and what it is asked, apart from GTK (tested without GIMP)."""

    def __init__(self, engine, describe):
        self.engine = engine
        self.describe = describe
        self.asked = None  # "stop" or "cancel", once the user pressed one
        self.outcome = {}

    def answer(self, response):
        """The user pressed Stop (keep) or Cancel (or closed the window): the engine is asked, the
        run goes on until the engine has ended it. Returns the status text to show."""
        if self.asked is not None:
            return None
        if response == RESPONSE_STOP:
            self.asked = "stop"
            self.engine.stop()
            return "Stopping: finishing the best result so far..."
        self.asked = "cancel"
        self.engine.cancel()
        return "Cancelling: the image stays as it was..."


def run_in_dialog(title, engine, job, on_event, describe=None, hand_over=None, hint=None):
    """Runs engine.run(job, ...) in a dialog of the plug-in's own that stays open during the run:
    the progress, the time left, and the buttons Stop (keep: the engine ends early and its `done`
    brings the best result so far) and Cancel (the engine ends without a result; EngineError
    "cancelled"). GIMP's own progress bar Cancel kills a plug-in at once; these buttons let the
    plug-in end the run cleanly. The engine runs on a worker thread; its events reach on_event on
    this (GIMP's and GTK's) thread, in order, while the GTK main loop turns. describe(event) ->
    (text or None, fraction or None) for the dialog's label and bar. hand_over(event), on the worker
    thread, returns the event to queue (for example with a file copied that the engine may remove
    before this thread gets to it). hint: what the buttons do, when not what they do for one
    layer. Returns run()'s result or raises what it raised."""
    g = gi()
    import gi as gi_module
    gi_module.require_version("Gtk", "3.0")
    from gi.repository import Gtk
    window = RunWindow(engine, describe or (lambda event: (None, None)))
    dialog = Gtk.Dialog(title=title, role="nst-run")
    dialog.add_button("_Stop and keep", RESPONSE_STOP)
    dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
    box = dialog.get_content_area()
    box.set_spacing(8)
    box.set_border_width(12)
    label = Gtk.Label(label="Starting the engine...", xalign=0.0)
    label.set_line_wrap(True)
    label.set_width_chars(48)
    bar = Gtk.ProgressBar()
    status = Gtk.Label(label=hint or RUN_HINT, xalign=0.0)
    status.set_line_wrap(True)
    status.set_width_chars(48)
    for widget in (label, bar, status):
        box.pack_start(widget, False, False, 0)
    loop = g.GLib.MainLoop()

    def deliver(event):
        try:
            on_event(event)
            text, fraction = window.describe(event)
            if text:
                label.set_text(text)
            if fraction is not None:
                bar.set_fraction(fraction)
        except Exception as exc:  # on_event failed: the run must not go on without it
            window.outcome.setdefault("callback_error", exc)
            engine.cancel()
        return False

    def finished():
        loop.quit()
        return False

    def work():
        try:
            window.outcome["result"] = engine.run(
                job, lambda event: g.GLib.idle_add(deliver, hand_over(event) if hand_over else event))
        except BaseException as exc:
            window.outcome["error"] = exc
        finally:
            g.GLib.idle_add(finished)  # after every event already queued

    def on_response(_dialog, response):
        text = window.answer(response)
        if text:
            status.set_text(text)
            dialog.set_response_sensitive(RESPONSE_STOP, False)
            if window.asked == "cancel":
                dialog.set_response_sensitive(Gtk.ResponseType.CANCEL, False)

    # Closing the window (or Escape): GtkDialog's own delete-event handler answers DELETE_EVENT,
    # which counts as Cancel, and then lets the window be destroyed; ours, connected after it,
    # keeps the window until the engine has ended the run.
    dialog.connect("response", on_response)
    dialog.connect("delete-event", lambda *_args: True)
    dialog.set_keep_above(True)  # not lost behind the image window while the picture forms
    dialog.show_all()
    worker = threading.Thread(target=work)
    worker.daemon = True
    worker.start()
    loop.run()
    worker.join()
    dialog.destroy()
    if "callback_error" in window.outcome:
        raise window.outcome["callback_error"]
    if "error" in window.outcome:
        raise window.outcome["error"]
    return window.outcome["result"]


def layer_fingerprint(image, layer):
    """(the layer's id, the SHA-1 of its pixels as 8-bit RGBA read back from GIMP, the number of
    layers of the image): what tests in a real GIMP compare (NST_PREVIEW_LOG)."""
    g = gi()
    width, height = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(g.Gegl.Rectangle.new(0, 0, width, height), 1.0,
                                  "R'G'B'A u8", g.Gegl.AbyssPolicy.CLAMP)
    return layer.get_id(), hashlib.sha1(bytes(data)).hexdigest(), len(image.get_layers())
