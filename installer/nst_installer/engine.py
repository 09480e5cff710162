"""The engine: its virtual environment, the pip steps, the ``doctor`` check and the weights.

Every program is started with an argument list (no shell) and its output decoded leniently, so an odd
byte in a pip message never turns into a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .errors import ExitCode, InstallError

DOCTOR_TIMEOUT_S = 600  # the first `import torch` from a cold disk can take minutes on a slow machine
MINIMUM_ENGINE_PYTHON = (3, 9)  # pyproject.toml: requires-python = ">=3.9"

# pip says these when it cannot reach an index; anything else is another kind of failure.
NETWORK_SIGNS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "nodename nor servname", "getaddrinfo failed", "Network is unreachable",
    "No route to host", "Connection refused", "ConnectTimeoutError", "ReadTimeoutError", "timed out",
    "Max retries exceeded", "ProxyError", "Could not fetch URL", "ConnectionResetError",
)
# pip's lines worth showing while it works; the rest goes to the log only.
PIP_PROGRESS_PREFIXES = ("Collecting ", "Installing collected", "Successfully installed", "Processing ",
                         "ERROR:")


# A copy of nst_core.engine.weights.DOWNLOADS (the installer cannot import the engine, which needs torch);
# tests/installer/test_installer.py checks that the two are equal.
WEIGHTS_DOWNLOADS = {
    "vgg19": ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", "vgg19-dcbb9e9d.pth"),
    "vgg16": ("https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth"),
}


def offline_weights_advice(backbone: Optional[str], python: Path) -> str:
    """How to install without a download; it says what the engine's own offline message says."""
    url, filename = WEIGHTS_DOWNLOADS[backbone or "vgg19"]
    return ("Offline: get %s (%s) elsewhere, then run this installer again with --weights FILE; a file the "
            "engine does not recognise (another conversion, e.g. a Caffe one) also needs --weights-format "
            "caffe|torchvision, and --weights-backbone vgg16|vgg19 to insist on a network. Or install now "
            "without them (--no-weights) and add them later with: %s -m nst_core weights import FILE"
            % (filename, url, python))


def engine_argv(python: Path, *args: str) -> List[str]:
    return [str(python), "-m", "nst_core"] + list(args)


def _decode(data: Optional[bytes]) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class CommandLog:
    """A log file that collects the output of the long steps (venv, pip) for when one fails."""

    def __init__(self, path: Path, echo_everything: bool = False):
        self.path = path
        self.echo_everything = echo_everything

    def run(self, argv: Sequence[str], echo_prefixes: Tuple[str, ...] = ()) -> Tuple[int, str]:
        """Run ``argv``, append its output to the log, show the lines that start with one of
        ``echo_prefixes`` (all of them with ``--verbose``); return the exit status and the output."""
        collected = []
        with open(str(self.path), "a", encoding="utf-8", errors="replace") as log:
            log.write("\n$ %s\n# %s\n" % (" ".join(argv), time.strftime("%Y-%m-%d %H:%M:%S")))
            log.flush()
            try:
                process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
            except OSError as error:
                log.write("cannot start: %s\n" % error)
                return 127, "cannot start %s: %s" % (argv[0], error)
            try:
                for raw in process.stdout:
                    line = _decode(raw).rstrip("\r\n")
                    collected.append(line)
                    log.write(line + "\n")
                    if self.echo_everything or line.lstrip().startswith(echo_prefixes):
                        print("    " + line.strip(), flush=True)
                returncode = process.wait()
            except BaseException:
                process.kill()
                process.wait()
                raise
            log.write("# exit status %d\n" % returncode)
        return returncode, "\n".join(collected)


def python_version(python: Path) -> Optional[Tuple[int, int]]:
    try:
        probe = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               timeout=60, check=False)
        major, minor = _decode(probe.stdout).strip().split(".")
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def check_base_python(python: Path) -> None:
    version = python_version(python)
    if version is None:
        raise InstallError(ExitCode.ENGINE_INSTALL, "%s does not run as a Python interpreter." % python,
                           "Name a working Python 3.9+ with --python PATH.")
    if version < MINIMUM_ENGINE_PYTHON:
        raise InstallError(ExitCode.ENGINE_INSTALL,
                           "the engine needs Python %d.%d or newer; %s is %d.%d."
                           % (MINIMUM_ENGINE_PYTHON + (python,) + version),
                           "Name a newer interpreter with --python PATH (the installer itself runs on 3.8).")


def create_venv(base_python: Path, venv_dir: Path, log: CommandLog) -> None:
    status, output = log.run([str(base_python), "-m", "venv", str(venv_dir)])
    if status != 0:
        hint = "The full output is in %s." % log.path
        if "ensurepip" in output or "No module named venv" in output:
            hint = ("This Python cannot create virtual environments. On Debian/Ubuntu: "
                    "sudo apt install python3-venv (or python3.X-venv), then run this again. " + hint)
        raise InstallError(ExitCode.ENGINE_INSTALL,
                           "creating the virtual environment %s failed:\n%s" % (venv_dir, _tail(output, 4)),
                           hint)


def looks_like_network_failure(pip_output: str) -> bool:
    return any(sign in pip_output for sign in NETWORK_SIGNS)


def pip_install(python: Path, arguments: Sequence[str], what: str, log: CommandLog) -> None:
    """``python -m pip install ARGUMENTS``; a failure names the log and says whether it was the network."""
    argv = [str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"] + list(arguments)
    status, output = log.run(argv, PIP_PROGRESS_PREFIXES)
    if status == 0:
        return
    errors = [line for line in output.splitlines() if line.startswith("ERROR")] or output.splitlines()[-5:]
    details = "\n".join("  " + line for line in errors[-6:])
    if looks_like_network_failure(output):
        raise InstallError(ExitCode.NO_NETWORK,
                           "pip could not download %s: no network, or the package index is unreachable.\n%s"
                           % (what, details),
                           "Check the connection (and any proxy: HTTPS_PROXY), then run this again. "
                           "The full log is %s." % log.path)
    raise InstallError(ExitCode.ENGINE_INSTALL, "pip could not install %s:\n%s" % (what, details),
                       "The full log is %s." % log.path)


def torch_install_args(index_url: Optional[str], reinstall: bool) -> List[str]:
    args = ["--upgrade", "torch", "torchvision"]
    if index_url:
        args += ["--index-url", index_url]
    if reinstall:
        args.append("--force-reinstall")  # switching variant: pip would keep e.g. a +cpu build otherwise
    return args


def _doctor_failure(python: Path, status: int, output: str) -> InstallError:
    if "No module named nst_core" in output or "No module named 'nst_core'" in output:
        return InstallError(ExitCode.ENGINE_CHECK, "%s does not have the engine (nst_core) installed." % python,
                            "Install it there (%s -m pip install PROJECT_FOLDER), or leave out "
                            "--engine-python to let the installer create its own environment." % python)
    if "invalid choice" in output and "doctor" in output:
        return InstallError(ExitCode.ENGINE_CHECK, "the engine at %s is too old: it has no doctor command."
                            % python, "Update it: %s -m pip install --upgrade PROJECT_FOLDER" % python)
    return InstallError(ExitCode.ENGINE_CHECK,
                        "the engine does not start: `%s -m nst_core doctor --json` ended with status %d:\n%s"
                        % (python, status, _tail(output)),
                        "Run that command yourself to see the whole message.")


def parse_doctor_output(stdout: str) -> Optional[Dict[str, object]]:
    """doctor --json prints one JSON object; be lenient about stray lines around it."""
    text = stdout.strip()
    candidates = [text] + [line for line in reversed(text.splitlines()) if line.strip().startswith("{")]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def check_engine(python: Path, timeout: float = DOCTOR_TIMEOUT_S) -> Dict[str, object]:
    """Start the engine once (``-m nst_core doctor --json``) and return what it reports."""
    try:
        result = subprocess.run(engine_argv(python, "doctor", "--json"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
    except OSError as error:
        raise InstallError(ExitCode.ENGINE_CHECK, "cannot start %s: %s" % (python, error),
                           "Check the path given to --engine-python.")
    except subprocess.TimeoutExpired:
        raise InstallError(ExitCode.ENGINE_CHECK, "the engine did not answer within %d s (%s -m nst_core "
                           "doctor --json)." % (timeout, python), "Run that command yourself to see why.")
    stdout, stderr = _decode(result.stdout), _decode(result.stderr)
    report = parse_doctor_output(stdout)
    if report is not None and report.get("torch_error"):
        raise InstallError(ExitCode.ENGINE_CHECK,
                           "the engine starts, but torch cannot be imported: %s" % report["torch_error"],
                           "Run the installer again to reinstall torch (with --torch default if the "
                           "build it chose does not suit this machine).")
    if result.returncode != 0:
        raise _doctor_failure(python, result.returncode, stderr + "\n" + stdout)
    if report is None:
        raise InstallError(ExitCode.ENGINE_CHECK,
                           "the engine's doctor did not print a JSON object:\n%s" % _tail(stdout or stderr),
                           "The engine at %s may be from another version: reinstall it." % python)
    return report


def describe_doctor(report: Dict[str, object]) -> str:
    """One line from doctor's report: engine and torch versions, and the devices it can use."""
    parts = []
    if report.get("version"):
        parts.append("nst-core %s" % report["version"])
    if report.get("torch"):
        parts.append("torch %s" % report["torch"])
    devices = ["CPU"]
    cuda_devices = report.get("cuda_devices")
    if report.get("cuda"):
        names = [str(d.get("name")) for d in cuda_devices if isinstance(d, dict)] \
            if isinstance(cuda_devices, list) else []
        devices.append("CUDA (%s)" % ", ".join(names) if names else "CUDA")
    if report.get("mps"):
        devices.append("Apple MPS")
    if "cuda" in report or "mps" in report:
        parts.append("devices: " + ", ".join(devices))
    return "; ".join(parts) or "the engine answers"


def weights_ready(report: Dict[str, object]) -> Optional[bool]:
    """Whether doctor found weights the engine can use (None: this engine does not say)."""
    ready = report.get("ready")
    return ready if isinstance(ready, bool) else None


def weights_file_path(python: Path, backbone: Optional[str], weights_format: Optional[str]) -> Optional[Path]:
    """Where the engine keeps its trimmed weights (``weights path``), to record a copy the installer
    made; None when this engine cannot say."""
    argv = engine_argv(python, "weights", "path")
    if backbone:
        argv += ["--backbone", backbone]
    if weights_format:
        argv += ["--weights-format", weights_format]
    try:
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, timeout=DOCTOR_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = _decode(result.stdout).strip().splitlines()
    if result.returncode != 0 or not lines or not os.path.isabs(lines[-1].strip()):
        return None
    return Path(lines[-1].strip())


# The engine's exit code when no weights could be found or downloaded (source: nst_core/errors.py; the
# installer cannot import the engine, so tests/cli/test_cli.py compares this copy with it).
WEIGHTS_MISSING = 3


def prepare_weights(python: Path, engine_args: Sequence[str], offline_hint: str) -> Optional[Path]:
    """Run ``weights fetch`` or ``weights import``; return the engine's copy (the path it prints).

    The engine's own progress and messages go straight to the terminal (stderr), so the user sees the
    download and, on failure, the engine's reason."""
    argv = engine_argv(python, *engine_args)
    try:
        result = subprocess.run(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)
    except OSError as error:
        raise InstallError(ExitCode.ENGINE_CHECK, "cannot start %s: %s" % (python, error))
    output = _decode(result.stdout).strip()
    if result.returncode == 0:
        last = output.splitlines()[-1].strip() if output else ""
        return Path(last) if os.path.isabs(last) else None
    if result.returncode == WEIGHTS_MISSING:
        raise InstallError(ExitCode.NO_NETWORK,
                           "the weights could not be downloaded (no network?)."
                           + ("\n" + _tail(output, 4) if output else ""), offline_hint)
    raise InstallError(ExitCode.WEIGHTS,
                       "preparing the weights failed: `%s` ended with status %d."
                       % (" ".join(argv[1:]), result.returncode) + ("\n" + _tail(output, 4) if output else ""),
                       "The engine's message is above. Check the file, or use --weights-backbone / "
                       "--weights-format to say what it holds.")
