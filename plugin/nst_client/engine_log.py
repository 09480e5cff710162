# -*- coding: utf-8 -*-
"""The engine log every transport appends to (nst_engine.log in the config's log_dir, else a fallback
folder): a header per run, the engine's stderr, and one "(client)" line with each run's outcome.

Standard library only and Python 2.7-compatible (GIMP 2.10); no GIMP, no torch.
"""

from __future__ import absolute_import, division, print_function

import io
import os

from .process import to_bytes
from .protocol import CONFIG_FILE_NAME, EngineError

LOG_FILE_NAME = "nst_engine.log"
# The log is appended to run after run; past this size the old part moves to a ".1" file.
LOG_ROTATE_BYTES = 5 * 1024 * 1024


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


def log_line(text):
    return to_bytes("(client) %s\n" % text)


def log_to(log_dir, fallback_log_dir, text):
    """Appends one "(client)" line to the engine log; a log that cannot be written is no failure."""
    try:
        log_file, _path = open_log(log_dir, fallback_log_dir)
    except EngineError:
        return
    with log_file:
        log_file.write(log_line(text))
