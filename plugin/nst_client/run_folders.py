# -*- coding: utf-8 -*-
"""Temporary files of plug-in runs: one folder per run under one parent folder.

When the user cancels, GIMP kills the plug-in, so a run cannot always remove its own files. Each
run therefore works in its own folder named after the plug-in's process id, and every run starts
by removing the folders of runs whose process is gone. Pure Python 2.7/3, no GIMP import.
"""

from __future__ import absolute_import, division, print_function

import errno
import getpass
import os
import re
import shutil
import tempfile
import time

from .process import process_is_alive

RUN_FOLDER_PATTERN = re.compile(r"^run-(\d+)-[A-Za-z0-9_]+$")
# A folder this old is stale even when a process with its id exists (process ids are reused).
STALE_AFTER_SECONDS = 3 * 24 * 3600


def runs_root(temp_dir=None):
    """The parent folder of all run folders (and the engine log's fallback folder)."""
    base = temp_dir or tempfile.gettempdir()
    return os.path.join(base, "nst-gimp-%s" % safe_user_name())


def safe_user_name():
    # Per user, so that on a shared /tmp nobody trips over another user's folder.
    try:
        name = getpass.getuser()
    except Exception:  # getuser raises various errors when no user name is known
        name = "user"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "user"


def make_run_folder(root):
    """Creates root (private to the user) and a fresh run folder inside it; returns its path."""
    if not os.path.isdir(root):
        try:
            os.makedirs(root, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
    return tempfile.mkdtemp(prefix="run-%d-" % os.getpid(), dir=root)


def remove_run_folder(path):
    shutil.rmtree(path, ignore_errors=True)


def stale_run_folders(root, is_alive=process_is_alive, now=None):
    """Run folders under root whose plug-in process is gone, or that are very old."""
    now = time.time() if now is None else now
    try:
        names = os.listdir(root)
    except OSError:
        return []
    stale = []
    for name in sorted(names):
        match = RUN_FOLDER_PATTERN.match(name)
        path = os.path.join(root, name)
        if not match or not os.path.isdir(path):
            continue  # not ours: never touch it
        pid = int(match.group(1))
        try:
            age = now - os.path.getmtime(path)
        except OSError:
            continue
        # Our own id on a folder means an earlier, dead process had the same id: a run sweeps
        # before it makes its own folder, and runs of this plug-in never overlap in one process.
        if pid == os.getpid() or not is_alive(pid) or age > STALE_AFTER_SECONDS:
            stale.append(path)
    return stale


def sweep_stale_runs(root, is_alive=process_is_alive, now=None):
    """Removes the folders of dead runs; returns the paths removed. Call before make_run_folder."""
    removed = []
    for path in stale_run_folders(root, is_alive, now):
        remove_run_folder(path)
        if not os.path.exists(path):
            removed.append(path)
    return removed
