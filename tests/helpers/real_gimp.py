"""Finding a real GIMP 3 (the Debian 13 chroot or a system gimp-console-3.0), choosing the engine for
its tests (the fake one or the real nst_core), and installing the plug-in as a user does: what the
real-GIMP batch tests and the GUI tests share."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.repo import REPO

INSTALLER = REPO / "installer" / "install.py"


def gimp_required():
    return os.environ.get("CI") == "true" or os.environ.get("NST_REQUIRE_GIMP") == "1"


def unavailable(reason):
    if gimp_required():
        pytest.fail("a real GIMP 3 is required here (CI=true or NST_REQUIRE_GIMP=1) but "
                    + reason)
    pytest.skip(reason)


def locate_gimp():
    """("chroot", ROOT) or ("system", "/"), or skip/fail with the reason."""
    root = Path(os.environ.get("NST_GIMP3_CHROOT",
                               os.path.expanduser("~/.cache/nst-gimp-dev/gimp3-trixie")))
    chroot_ready = ((root / "usr/bin/gimp-console-3.0").exists()
                    and (root / ".nst-chroot-complete").exists())
    chroot_usable = (chroot_ready and os.geteuid() == 0 and shutil.which("chroot")
                     and shutil.which("mount"))
    if chroot_usable:
        return "chroot", str(root)
    if shutil.which("gimp-console-3.0"):
        return "system", "/"
    if chroot_ready:
        unavailable("the GIMP 3 chroot at %s needs root (chroot, mount) and there is no "
                    "gimp-console-3.0 on PATH" % root)
    unavailable("no GIMP 3: neither the chroot %s (build it with tests/gimp3/build-chroot.sh %s, "
                "as root) nor gimp-console-3.0 on PATH" % (root, root))


def real_engine_available():
    try:
        out = subprocess.run([sys.executable, "-m", "nst_core", "stylize", "--help"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    # The plug-in sends --style-strength (issue 13): an engine without it cannot serve it.
    return out.returncode == 0 and "--progress" in out.stdout and "--style-strength" in out.stdout


def choose_engine():
    wanted = os.environ.get("NST_E2E_ENGINE", "auto")
    if wanted == "fake":
        return "fake"
    if real_engine_available():
        return "real"
    if wanted == "real" or gimp_required():
        # Under CI the plug-in must be proven against the real engine, never silently the fake.
        pytest.fail("the real engine is required (NST_E2E_ENGINE=real, CI=true or NST_REQUIRE_GIMP=1) "
                    "but `%s -m nst_core stylize --help` fails" % sys.executable)
    return "fake"


def engine_python_for_this_checkout(work_dir):
    """The engine interpreter to install: this Python, or, when its own nst_core (seen without
    PYTHONPATH, as the plug-in starts it) is another checkout's (an editable install made from
    another worktree), a wrapper that puts this checkout's first, so the real engine is this one."""
    env = dict((key, value) for key, value in os.environ.items() if key != "PYTHONPATH")
    found = subprocess.run([sys.executable, "-c", "import nst_core; print(nst_core.__file__)"],
                           capture_output=True, text=True, timeout=120, env=env, cwd="/")
    if found.returncode == 0 and Path(found.stdout.strip()).resolve().parent == REPO / "nst_core":
        return sys.executable
    wrapper = work_dir / "engine-python"
    wrapper.write_text('#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' % (REPO, sys.executable))
    wrapper.chmod(0o755)
    return str(wrapper)


def install_plugin(plug_ins_dir, engine_python, data_dir):
    """As a user would: the installer when the checkout has it, else the same files by hand."""
    plug_ins_dir.mkdir(parents=True)
    if INSTALLER.exists():
        out = subprocess.run([sys.executable, str(INSTALLER), "--gimp-plugin-dir",
                              str(plug_ins_dir), "--engine-python", engine_python, "--no-weights",
                              "--data-dir", str(data_dir), "-y"],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, "installer failed:\n" + out.stdout + out.stderr
        how = "installer/install.py"
    else:
        from helpers.plugin_setup import install_plugin_copy
        install_plugin_copy(plug_ins_dir, engine_python, data_dir / "logs")
        how = "copied plugin/*.py (no installer in this checkout yet)"
    folder = plug_ins_dir / "nst_style_transfer"
    assert (folder / "nst_style_transfer.py").stat().st_mode & 0o111, "plug-in not executable"
    config = json.loads((folder / "nst_config.json").read_text())
    return folder, config, how


def bind_paths(work_dir):
    """What the chroot must see at the same paths: the test folder, the checkout, this Python's
    environment and its base interpreter (a venv links to it)."""
    paths = {str(work_dir), str(REPO), sys.prefix, sys.base_prefix}
    return sorted(path for path in paths if path and path != "/")
