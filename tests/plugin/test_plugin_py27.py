"""GIMP 2.10 runs the plug-in on Python 2.7: everything in plugin/ must stay 2.7-compatible.

The static check (vermin) always runs. When a Python 2.7 interpreter is around (NST_PYTHON27, a
working python2.7 on PATH, or pyenv's), the plug-in files are also compiled by it and the engine
client drives the fake engine under it.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers.fake_engine import write_fake_engine
from helpers.python27 import PLUGIN_DIR, find_python27, plugin_environment
from helpers.repo import REPO

REQUIRED = os.environ.get("CI") == "true"


def find_vermin():
    beside_python = Path(sys.executable).with_name("vermin")
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("vermin")


def plugin_files():
    """Every .py of the plug-in: beside the main file and in its package folders."""
    return sorted(PLUGIN_DIR.rglob("*.py"))


def test_plugin_files_exist():
    names = {path.relative_to(PLUGIN_DIR).as_posix() for path in plugin_files()}
    assert {"nst_style_transfer.py", "nst_gimpfu3.py", "nst_client/engine_config.py",
            "nst_client/protocol.py"} <= names


def test_vermin_finds_nothing_newer_than_python_27():
    vermin = find_vermin()
    if vermin is None:
        if REQUIRED:
            pytest.fail("vermin is not installed (pip install vermin)")
        pytest.skip("vermin is not installed")
    out = subprocess.run([vermin, "-q", "--no-tips", "--violations", "-t=2.7-", "-t=3.6-",
                          "plugin"], cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "" and out.returncode == 0, out.stdout + out.stderr


def test_vermin_would_notice_a_python3_only_construct(tmp_path):
    """The check above can fail: an f-string in a copy of plugin/ is reported."""
    vermin = find_vermin()
    if vermin is None:
        pytest.skip("vermin is not installed")
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "bad.py").write_text("name = 'x'\nprint(f'{name}')\n")
    out = subprocess.run([vermin, "-q", "--no-tips", "--violations", "-t=2.7-", "-t=3.6-",
                          "plugin"], cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip() != ""


@pytest.fixture(scope="module")
def python27():
    found = find_python27()
    if found is None:
        pytest.skip("no Python 2.7 interpreter here (set NST_PYTHON27 to one)")
    return found


def test_python27_compiles_every_plugin_file(python27, tmp_path):
    for source in plugin_files():
        target = tmp_path / (source.name + "c")
        out = subprocess.run([python27, "-c", "import py_compile, sys; "
                              "py_compile.compile(sys.argv[1], sys.argv[2], doraise=True)",
                              str(source), str(target)], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr


def test_engine_client_runs_the_engine_under_python27(python27, tmp_path):
    from PIL import Image
    content, style, result = (str(tmp_path / name) for name in ("c.png", "s.png", "r.png"))
    Image.new("RGB", (12, 8), (10, 200, 30)).save(content)
    Image.new("RGB", (8, 8), (200, 0, 0)).save(style)
    engine = write_fake_engine(str(tmp_path / "fake-python"))  # the engine itself is Python 3
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent("""
        import json, os
        from nst_client import process, protocol, run_folders, subprocess_engine
        root = run_folders.runs_root(%r)
        run_folders.sweep_stale_runs(root)
        run_dir = run_folders.make_run_folder(root)
        events = []
        options = protocol.engine_options(preset="fast", iterations=2, size=64)
        job = protocol.Job(%r, [%r], %r, options)
        env = process.clean_environment(os.environ)
        done = subprocess_engine.SubprocessEngine(%r, %r, root, env).run(job, events.append)
        run_folders.remove_run_folder(run_dir)
        try:
            env["FAKE_ENGINE_MODE"] = "weights_missing"
            subprocess_engine.SubprocessEngine(%r, %r, root, env).run(job)
            failure = None
        except protocol.EngineError as exc:
            failure = [exc.code, exc.message]
        print(json.dumps({"events": [e["event"] for e in events], "done": done["output"],
                          "failure": failure, "left": os.listdir(root)}))
    """ % (str(tmp_path), content, style, result, engine,
           str(tmp_path / "logs"), engine, str(tmp_path / "logs"))))
    env = dict(plugin_environment(), PYTHONDONTWRITEBYTECODE="1")
    env.pop("FAKE_ENGINE_MODE", None)
    out = subprocess.run([python27, str(script)], capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["events"] == ["start", "progress", "progress", "progress", "done"]
    assert report["done"] == result
    assert report["failure"][0] == "weights_missing"
    assert "Engine log:" in report["failure"][1]
    assert report["left"] == []
