"""The real CLI in subprocesses: running it, reading its JSON lines live, and checking a failed run
against docs/PROTOCOL.md. The engines run with one CPU thread (OMP_NUM_THREADS=1, unless set
already): on a small shared machine that is the quicker way."""

import json
import os
import queue
import re
import subprocess
import threading
import time

import pytest

from helpers.protocol_checks import PROTOCOL_DOC, check_fields, documented_events, parse_jsonl
from helpers.repo import REPO, engine_command
from nst_core import errors


def _engine_exit_names():
    """{exit code: protocol name} from nst_core/errors.py, the source of the exit codes."""
    names = {0: "ok"}
    pending = [errors.NSTError]
    while pending:
        cls = pending.pop()
        names[cls.exit_code] = cls.code
        pending.extend(cls.__subclasses__())
    return names


EXIT_NAMES = _engine_exit_names()
# Small and quick: one scale of 64 px, no SSIM (its Gram-matrix SSIM is the costly part on a CPU).
QUICK = ("--size", "64", "--device", "cpu", "--weights", "random", "--no-ssim")


def base_env(**extra):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run_engine(*args, env=None, timeout=120, stdin=subprocess.DEVNULL):
    """Run the CLI to its end; stdin is /dev/null (not a pipe) unless a test wants otherwise."""
    started = time.monotonic()
    proc = subprocess.run(engine_command(*args), stdin=stdin, capture_output=True, text=True,
                          encoding="utf-8", env=env or base_env(), timeout=timeout, cwd=str(REPO))
    proc.seconds = time.monotonic() - started
    return proc


def isolated_env(root, **extra):
    """The environment with the engine's data folder and torch's cache in empty folders under ``root``."""
    env = base_env()
    for key in ("NST_WEIGHTS", "NST_WEIGHTS_FORMAT", "NST_OFFLINE"):
        env.pop(key, None)
    env["NST_DATA_DIR"] = str(root / "data")
    env["TORCH_HOME"] = str(root / "torch")
    env.update(extra)
    return env


def documented_options():
    """Every ``--option`` of the Invocation section's table."""
    text = PROTOCOL_DOC.read_text(encoding="utf-8")
    section = text.split("## Invocation", 1)[1].split("\n## ", 1)[0]
    options = set()
    for line in section.splitlines():
        if line.startswith("| `-"):
            options.update(re.findall(r"--[a-z][a-z-]*", line.split("|")[1]))
    return options


def check_error_run(proc, code, *words):
    """A failed run in jsonl mode: the exit code, the error event last, one line naming the problem."""
    expected_exit = {v: k for k, v in EXIT_NAMES.items()}[code]
    assert proc.returncode == expected_exit, (proc.returncode, proc.stdout, proc.stderr)
    events = parse_jsonl(proc.stdout)
    assert events, f"no error event on stdout; stderr: {proc.stderr}"
    error = events[-1]
    assert error["event"] == "error", events
    assert [e["event"] for e in events].count("error") == 1
    check_fields(error, documented_events()["error"])
    assert error["code"] == code and error["exit_code"] == expected_exit, error
    message = error["message"]
    assert isinstance(message, str) and message.strip() and "\n" not in message, repr(message)
    assert any(word.lower() in message.lower() for word in words), f"{message!r} names none of {words}"
    assert "Traceback" not in proc.stderr, proc.stderr
    # The person at a terminal gets the same one line on stderr.
    assert any("error" in line and message[-30:] in line for line in proc.stderr.splitlines()), proc.stderr
    assert "done" not in [e["event"] for e in events]
    return error


def folder_listing(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else None


class LiveEngine:
    """A running engine whose stdout lines are read in the background (so waits can time out)."""

    def __init__(self, *args, stdin=subprocess.DEVNULL, env=None):
        self.proc = subprocess.Popen(engine_command(*args), stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env or base_env(),
                                     cwd=str(REPO))
        self.lines = queue.Queue()  # stdout lines, then None at its end
        self.stderr = []
        self.seen = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, event_name, timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.kill()
                pytest.fail(f"no {event_name} event within {timeout} s; saw {self.seen}")
            if line is None:
                pytest.fail(f"stdout closed before a {event_name} event; saw {self.seen}; "
                            f"stderr: {''.join(self.stderr)}")
            event = json.loads(line)
            self.seen.append(event)
            if event["event"] == event_name:
                return event

    def finish(self, timeout):
        """Wait for the exit; returns (exit code, seconds waited, all events)."""
        started = time.monotonic()
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the engine was still running {timeout} s after being told to stop")
        waited = time.monotonic() - started
        while True:
            line = self.lines.get(timeout=10)
            if line is None:
                break
            self.seen.append(json.loads(line))
        return code, waited, self.seen

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


LONG = ("--iterations", "100000", *QUICK, "--progress", "jsonl")


def check_cancelled(engine, out, limit=10):
    code, waited, events = engine.finish(timeout=30)
    assert code == 4, (code, events[-3:], "".join(engine.stderr)[-2000:])
    assert waited < limit, f"took {waited:.1f} s to stop"
    assert events[-1]["event"] == "error" and events[-1]["code"] == "cancelled", events[-1]
    assert events[-1]["exit_code"] == 4 and "\n" not in events[-1]["message"]
    assert "done" not in [e["event"] for e in events]
    assert folder_listing(out.parent) == [], "an output or temp file was left after a cancelled run"
