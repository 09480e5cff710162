# -*- coding: utf-8 -*-
"""Process and file helpers the engine transports share: whether a process still runs, the engine's
environment, waiting for a process with a timeout, and replacing a file in one step.

Standard library only and Python 2.7-compatible (GIMP 2.10); no GIMP, no torch.
"""

from __future__ import absolute_import, division, print_function

import errno
import io
import json
import os
import sys
import tempfile
import time

WINDOWS = sys.platform.startswith("win")


def process_is_alive(pid):
    """True when a process with this id exists (or might: when in doubt, keep what is its)."""
    if pid <= 0:
        return False
    if WINDOWS:
        return windows_process_is_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, but belongs to someone else
    return True


def windows_process_is_alive(pid):
    # os.kill(pid, 0) would terminate the process on Windows: ask the kernel instead.
    import ctypes
    process_query_limited_information = 0x1000
    still_active = 259
    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        access_denied = 5
        return kernel32.GetLastError() == access_denied
    try:
        exit_code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(exit_code)):
            return True
        return exit_code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


def replace_file(partial, path):
    """Puts the finished file `partial` at `path` in one step, replacing what stood there, so that a
    reader sees the old file or the new one, never half of one."""
    if WINDOWS and os.path.exists(path):
        os.remove(path)  # Python 2.7 has no os.replace; rename refuses to overwrite there
    os.rename(partial, path)


def write_json_atomically(path, data):
    """Writes data as JSON to path through replace_file."""
    # A partial file of its own for every write: the dialog's warm-up thread and a run in the same
    # process may write the service's state at the same moment (one name per process let one rename
    # the other's file away).
    descriptor, partial = tempfile.mkstemp(prefix=os.path.basename(path) + ".part-",
                                           dir=os.path.dirname(path) or ".")
    try:
        with io.open(descriptor, "wb") as handle:
            handle.write(json.dumps(data, sort_keys=True, indent=1).encode("utf-8"))
        replace_file(partial, path)
    except BaseException:
        remove_quietly(partial)
        raise


def read_json(path):
    """The JSON object in path, or None when there is none to be read."""
    try:
        with io.open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


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


def wait_for_exit(process, timeout):
    """process.wait() with a timeout (2.7 has none); True when it exited."""
    deadline = time.time() + timeout
    while process.poll() is None:
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


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
