"""``--demo``: one small run of the installed engine on the sample images, with a progress bar."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, TextIO

from .engine import WEIGHTS_MISSING, engine_argv
from .errors import ExitCode, InstallError
from .plan import DemoPlan


class ProgressBar:
    """A one-line bar on a terminal; a line per tenth of the job when the output is a file or pipe."""

    def __init__(self, stream: TextIO = sys.stdout, width: int = 30):
        self.stream = stream
        self.width = width
        self.on_terminal = hasattr(stream, "isatty") and stream.isatty()
        self.last_tenth = -1

    def update(self, fraction: float, text: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if self.on_terminal:
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write("\r  [%s] %3d%%  %s   " % (bar, fraction * 100, text))
            self.stream.flush()
            return
        tenth = int(fraction * 10)
        if tenth > self.last_tenth:
            self.last_tenth = tenth
            self.stream.write("  %3d%%  %s\n" % (tenth * 10, text))
            self.stream.flush()

    def finish(self) -> None:
        if self.on_terminal:
            self.stream.write("\n")
            self.stream.flush()


def _progress_text(event: Dict[str, object]) -> str:
    text = "iteration %s/%s" % (event.get("iteration", "?"), event.get("total", "?"))
    eta = event.get("eta")
    if isinstance(eta, (int, float)):
        text += ", about %ds left" % max(0, int(eta))
    return text


def demo_argv(python: Path, demo: DemoPlan) -> List[str]:
    # The "fast" preset keeps the full-size refinement short; size and iterations keep it to a minute or
    # two on a laptop CPU.
    return engine_argv(python, "stylize", str(demo.content), str(demo.style), "-o", str(demo.output),
                       "--preset", "fast", "--size", str(demo.size), "--iterations", str(demo.iterations),
                       "--progress", "jsonl")


def run_demo(python: Path, demo: DemoPlan, bar: Optional[ProgressBar] = None) -> Path:
    """Stylize the sample images; return the result's path. The engine's stdin stays an open pipe for
    the whole run: by the protocol, its end-of-file means "cancel"."""
    bar = bar or ProgressBar()
    print("Demo: stylizing %s with %s at %d px (%d iterations) ..."
          % (demo.content.name, demo.style.name, demo.size, demo.iterations), flush=True)
    done: Optional[Dict[str, object]] = None
    error: Optional[Dict[str, object]] = None
    with tempfile.TemporaryFile() as stderr_file:
        try:
            process = subprocess.Popen(demo_argv(python, demo), stdout=subprocess.PIPE, stderr=stderr_file,
                                       stdin=subprocess.PIPE)
        except OSError as failure:
            raise InstallError(ExitCode.DEMO, "cannot start the engine %s: %s" % (python, failure))
        try:
            for raw in process.stdout:
                try:
                    event = json.loads(raw.decode("utf-8", errors="replace"))
                except ValueError:
                    continue  # the protocol allows only JSON here; ignore anything else
                if not isinstance(event, dict):
                    continue
                kind = event.get("event")
                if kind == "progress":
                    bar.update(float(event.get("fraction") or 0.0), _progress_text(event))
                elif kind == "done":
                    done = event
                elif kind == "error":
                    error = event
            status = process.wait()
        except KeyboardInterrupt:
            process.stdin.write(b"cancel\n")  # the engine stops within one iteration and writes nothing
            process.stdin.close()
            process.wait()
            raise
        finally:
            bar.finish()
            if process.stdin and not process.stdin.closed:
                process.stdin.close()
        stderr_file.seek(0)
        stderr_tail = "\n".join(stderr_file.read().decode("utf-8", "replace").strip().splitlines()[-5:])
    if status == 0 and done is not None:
        return Path(str(done.get("output") or demo.output))
    message = str((error or {}).get("message") or stderr_tail or "no message")
    if status == WEIGHTS_MISSING:
        raise InstallError(ExitCode.DEMO, "the demo needs the weights: " + message,
                           "The installation itself is complete; add the weights as the message says.")
    raise InstallError(ExitCode.DEMO, "the demo run failed (engine exit status %d): %s" % (status, message),
                       "The installation itself is complete.")
