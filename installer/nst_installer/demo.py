"""``--demo``: one small run of the installed engine on the sample images, with a progress bar.

The run goes through the plug-in's own engine client (the package plugin/nst_client/ in this checkout,
which the installer also copies into the plug-in folder), so the protocol is read in one place: events,
progress text, failure messages, cancelling.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Dict, Optional, TextIO, Tuple

from .errors import ExitCode, InstallError
from .plan import DemoPlan

CLIENT_PACKAGE = "nst_client"
CLIENT_DIR = Path(__file__).resolve().parents[2] / "plugin" / CLIENT_PACKAGE  # the checkout's


def load_client(client_dir: Path = CLIENT_DIR) -> Tuple[ModuleType, ModuleType]:
    """The engine client package from ``client_dir``: (its protocol, its engine_config). It is imported
    as the package it is, without putting the plug-in's folder (and its GIMP modules) on sys.path."""
    if CLIENT_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            CLIENT_PACKAGE, str(client_dir / "__init__.py"), submodule_search_locations=[str(client_dir)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[CLIENT_PACKAGE] = package
        try:
            spec.loader.exec_module(package)
        except BaseException:
            del sys.modules[CLIENT_PACKAGE]
            raise
    return (importlib.import_module(CLIENT_PACKAGE + ".protocol"),
            importlib.import_module(CLIENT_PACKAGE + ".engine_config"))


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


def demo_options(demo: DemoPlan) -> Dict[str, object]:
    """The job's stylize options (the client's Job options: long option names without the dashes)."""
    # The "fast" preset keeps the full-size refinement short; size and iterations keep it to a minute or
    # two on a laptop CPU.
    return {"preset": "fast", "size": demo.size, "iterations": demo.iterations}


def engine_log_path(log_dir: Path) -> Path:
    """Where the client writes the engine's log in ``log_dir`` (the plug-in uses the same file)."""
    _protocol, client = load_client()
    return log_dir / client.LOG_FILE_NAME


def run_demo(python: Path, demo: DemoPlan, bar: Optional[ProgressBar] = None,
             log_dir: Optional[Path] = None) -> Path:
    """Stylize the sample images; return the result's path. The engine's log (its stderr and the run's
    outcome) goes to ``log_dir``, else to the temporary folder. Ctrl-C stops the engine (the client
    cancels it) and goes on as KeyboardInterrupt."""
    protocol, client = load_client()
    bar = bar or ProgressBar()
    print("Demo: stylizing %s with %s at %d px (%d iterations) ..."
          % (demo.content.name, demo.style.name, demo.size, demo.iterations), flush=True)
    engine = client.SubprocessEngine(str(python), str(log_dir or ""), tempfile.gettempdir())
    job = protocol.Job(str(demo.content), [str(demo.style)], str(demo.output), demo_options(demo))

    def show(event):
        fraction = protocol.progress_fraction(event) if event.get("event") == "progress" else None
        if fraction is not None:
            bar.update(fraction, protocol.progress_text(event))

    try:
        done = engine.run(job, show)
    except protocol.EngineError as failure:
        if failure.code == "weights_missing":
            raise InstallError(ExitCode.DEMO, "the demo needs the weights: " + failure.message,
                               "The installation itself is complete; add the weights as the message says.")
        raise InstallError(ExitCode.DEMO, "the demo run failed: %s" % failure.message,
                           "The installation itself is complete.")
    finally:
        bar.finish()
    return Path(str(done.get("output") or demo.output))
