"""A Python 2.7 interpreter to run the plug-in's modules under, as GIMP 2.10 does; and the environment
that lets a child Python import the plug-in's modules."""

import glob
import os
import shutil
import subprocess

from helpers.repo import REPO

PLUGIN_DIR = REPO / "plugin"


def find_python27():
    """NST_PYTHON27, a working python2.7 on PATH, or pyenv's; None when there is none."""
    candidates = [os.environ.get("NST_PYTHON27"), shutil.which("python2.7")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(2, 7)":
            return candidate
    return None


def plugin_environment(environ=None):
    """The environment of a child Python that imports the plug-in's modules (plugin/ on its path)."""
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = str(PLUGIN_DIR)
    return env
