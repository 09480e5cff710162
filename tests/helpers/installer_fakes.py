"""Test doubles for the installer's tests: a fake Python that plays the engine, pip and venv.

One small script stands in for every interpreter the installer starts. Environment variables set by
the test choose how it behaves; every call is appended to ``$FAKE_STATE/calls.jsonl`` so a test can
check what the installer asked for. No torch, no network, each call a few milliseconds.

- ``python -m venv DIR``: makes DIR/bin/python (and DIR/Scripts/python.exe), a copy of this script
- ``python -m pip config list``: prints ``$FAKE_PIP_CONFIG``
- ``python -m pip install ...``: succeeds; ``FAKE_PIP_FAIL=network|broken`` makes it fail like pip does
- ``python -m nst_core doctor --json``: prints a JSON report; ``FAKE_DOCTOR=fail|garbage|torch_error``
  breaks it
- ``python -m nst_core weights path|fetch|import FILE``: ``FAKE_WEIGHTS=offline`` makes fetch exit 3
- ``python -m nst_core stylize ... -o OUT --progress jsonl``: progress events, then writes OUT
- anything else (``-c CODE``) runs the real interpreter
"""

import os
import stat
import sys
import textwrap
from pathlib import Path

FAKE_PYTHON = textwrap.dedent('''\
    #!{real_python}
    import json, os, shutil, sys

    REAL_PYTHON = {real_python!r}
    state = os.environ["FAKE_STATE"]
    args = sys.argv[1:]
    with open(os.path.join(state, "calls.jsonl"), "a") as log:
        log.write(json.dumps({{"python": sys.argv[0], "args": args}}) + "\\n")

    def weights_file():
        return os.path.join(state, "engine-data", "weights", "vgg19-torchvision-features.pth")

    if args[:2] == ["-m", "venv"]:
        folder = args[2]
        for sub, name in (("bin", "python"), ("Scripts", "python.exe")):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
            shutil.copy(sys.argv[0], os.path.join(folder, sub, name))
            os.chmod(os.path.join(folder, sub, name), 0o755)
        with open(os.path.join(folder, "pyvenv.cfg"), "w") as cfg:
            cfg.write("home = fake\\n")
        sys.exit(0)
    if args[:4] == ["-m", "pip", "config", "list"]:  # what --dry-run reads for pip's index
        print(os.environ.get("FAKE_PIP_CONFIG", ""))
        sys.exit(0)
    if args[:2] == ["-m", "pip"]:
        failure = os.environ.get("FAKE_PIP_FAIL", "")
        if failure == "network":
            print("WARNING: Retrying after connection broken by 'NewConnectionError("
                  "Failed to establish a new connection: [Errno -3] Temporary failure in name resolution)'")
            print("ERROR: Could not find a version that satisfies the requirement torch")
            sys.exit(1)
        if failure == "broken":
            print("ERROR: Failed building wheel for nst-core")
            sys.exit(1)
        print("Collecting " + args[-1])
        print("Successfully installed fake")
        sys.exit(0)
    if args[:2] == ["-m", "nst_core"]:
        command = args[2:]
        if command[:1] == ["doctor"]:
            mode = os.environ.get("FAKE_DOCTOR", "")
            if mode == "fail":
                sys.stderr.write("RuntimeError: torch is broken\\n")
                sys.exit(1)
            if mode == "garbage":
                print("not json")
                sys.exit(0)
            if mode == "torch_error":  # what the real doctor says when torch does not import
                print(json.dumps({{"version": "0.1.0", "torch_error": "ImportError: libtorch_cpu.so"}}))
                sys.exit(1)
            ready = os.path.isfile(weights_file())
            print(json.dumps({{"version": "0.1.0", "torch": "2.14.1", "cuda": False, "cuda_devices": [],
                              "mps": False, "weights": {{"vgg19": {{"found": ready}}}}, "ready": ready,
                              "weights_dir": os.path.dirname(weights_file())}}))
            sys.exit(0)
        if command[:2] == ["weights", "path"]:
            print(weights_file())
            sys.exit(0)
        if command[:2] in (["weights", "fetch"], ["weights", "import"]):
            if command[1] == "fetch" and os.environ.get("FAKE_WEIGHTS") == "offline":
                sys.stderr.write("error: no network: cannot download vgg19-dcbb9e9d.pth\\n")
                sys.exit(3)
            if command[1] == "import" and not os.path.isfile(command[2]):
                sys.exit(2)
            if command[1] == "fetch" and os.path.isfile(weights_file()):  # the engine downloads once
                print(weights_file())
                sys.exit(0)
            os.makedirs(os.path.dirname(weights_file()), exist_ok=True)
            with open(weights_file(), "w") as handle:
                handle.write("weights")
            if command[1] == "import":  # the real engine also notes which copy is the active one
                with open(os.path.join(os.path.dirname(weights_file()), "active.json"), "w") as handle:
                    handle.write("{{}}")
            print(weights_file())
            sys.exit(0)
        if command[:1] == ["stylize"]:
            output = command[command.index("-o") + 1]
            total = 4
            print(json.dumps({{"event": "start", "protocol": 1, "iterations": total}}), flush=True)
            for i in range(1, total + 1):
                print(json.dumps({{"event": "progress", "iteration": i, "total": total,
                                  "fraction": i / total, "eta": total - i}}), flush=True)
            with open(output, "wb") as handle:
                handle.write(b"\\x89PNG fake")
            print(json.dumps({{"event": "done", "output": os.path.abspath(output), "stats": {{}}}}), flush=True)
            sys.exit(0)
        sys.exit(2)
    os.execv(REAL_PYTHON, [REAL_PYTHON] + args)
''')


def write_fake_python(path: Path, real_python: str = sys.executable) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAKE_PYTHON.format(real_python=real_python))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


FAKE_PLUGIN_MAIN = (
    "#!/usr/bin/python\n"
    "# -*- coding: utf-8 -*-\n"
    "\"\"\"Fake plug-in main file for the installer tests.\"\"\"\n"
    "import nst_engine\n"
)


def write_fake_plugin_source(folder: Path) -> Path:
    """A plug-in source folder shaped like plugin/: the main file (with a shebang to be replaced), two
    helpers and a package folder of two modules."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nst_style_transfer.py").write_text(FAKE_PLUGIN_MAIN)
    (folder / "nst_engine.py").write_text("ENGINE = 1\n")
    (folder / "nst_gimpfu3.py").write_text("#!/usr/bin/env python3\nSHIM = 1\n")
    (folder / "README.txt").write_text("not a .py file: not installed\n")
    (folder / "nst_client").mkdir(exist_ok=True)
    (folder / "nst_client" / "__init__.py").write_text("")
    (folder / "nst_client" / "protocol.py").write_text("PROTOCOL = 1\n")
    (folder / "notes").mkdir(exist_ok=True)
    (folder / "notes" / "draft.py").write_text("not a package (no __init__.py): not installed\n")
    return folder


def read_calls(state: Path):
    import json

    log = state / "calls.jsonl"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def snapshot(root: Path):
    """Every path under ``root`` with its kind, mode and content, to compare before and after."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            content = None
            if stat.S_ISREG(info.st_mode):
                with open(full, "rb") as handle:
                    content = handle.read()
            result[os.path.relpath(full, str(root))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                                        content)
    return result
