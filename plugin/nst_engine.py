# -*- coding: utf-8 -*-
"""The command-line transport of the nst_core engine client (docs/PROTOCOL.md), for the GIMP plug-in
and the installer's demo.

Pure Python that runs unchanged on GIMP 2.10's Python 2.7 and on GIMP 3's Python 3: no GIMP import,
no torch. It reads the installer's config, builds the engine's command line and a clean environment,
runs each job in an engine process of its own (SubprocessEngine), and keeps the engine's log. What
the events mean and what to tell a person lives in nst_protocol.py, shared with other transports.
"""

from __future__ import absolute_import, division, print_function

import io
import json
import os
import subprocess
import sys
import threading
import time

from nst_protocol import EngineError, RunRecord, failure_message, format_float, parse_event_line

CONFIG_FILE_NAME = "nst_config.json"
ENGINE_PYTHON_ENV = "NST_ENGINE_PYTHON"
# Overrides the config's engine_service ("local", "off" or a URL), e.g. to try a run without the service.
ENGINE_SERVICE_ENV = "NST_ENGINE_SERVICE"
LOG_FILE_NAME = "nst_engine.log"
# The log is appended to run after run; past this size the old part moves to a ".1" file.
LOG_ROTATE_BYTES = 5 * 1024 * 1024

WINDOWS = sys.platform.startswith("win")
# On Windows a console program started from GIMP would flash a console window without this flag.
CREATE_NO_WINDOW = 0x08000000


# ---------------------------------------------------------------------------------------------
# Configuration written by the installer


# nst_config.json's keys for the transport (docs/SERVICE.md, "GIMP and the service"):
#   engine_service: "local" (the default: a warm `nst-core serve` on this machine, started by the
#       first run, nst_http.LocalServiceEngine), "off" (an engine process per run, SubprocessEngine)
#       or the http(s):// address of a service elsewhere (nst_http.HttpEngine);
#   engine_service_token_file: that service's token file (a copy of it on this machine);
#   engine_service_idle_minutes: how long the local service waits for the next job before it exits.
SERVICE_LOCAL = "local"
SERVICE_OFF = "off"
DEFAULT_SERVICE_IDLE_MINUTES = 15


class EngineConfig(object):
    """Where the engine's Python is, where its log goes, and which transport runs the jobs."""

    def __init__(self, engine_python, log_dir, version, source, service=SERVICE_LOCAL,
                 service_token_file="", service_idle_minutes=DEFAULT_SERVICE_IDLE_MINUTES):
        self.engine_python = engine_python
        self.log_dir = log_dir
        self.version = version
        self.source = source  # where engine_python came from, for messages
        self.service = service
        self.service_token_file = service_token_file
        self.service_idle_minutes = service_idle_minutes


def config_path(plugin_dir):
    return os.path.join(plugin_dir, CONFIG_FILE_NAME)


def read_config_file(path):
    """The installer's JSON config as a dict; {} when the file does not exist."""
    if not os.path.exists(path):
        return {}
    try:
        with io.open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise EngineError(
            "not_configured",
            "The plug-in's configuration %s could not be read (%s). Run the installer again to "
            "rewrite it." % (path, exc))
    if not isinstance(data, dict):
        raise EngineError(
            "not_configured",
            "The plug-in's configuration %s is not a JSON object. Run the installer again to "
            "rewrite it." % path)
    return data


def find_program(name, environ):
    """`name` when it is a path, else its first match on PATH (shutil.which is not in 2.7)."""
    if os.path.dirname(name):
        return name
    for folder in environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
        if WINDOWS and os.path.isfile(candidate + ".exe"):
            return candidate + ".exe"
    return name


def load_config(plugin_dir, environ=None):
    """Reads the config beside the plug-in; NST_ENGINE_PYTHON overrides its engine_python."""
    environ = os.environ if environ is None else environ
    path = config_path(plugin_dir)
    data = read_config_file(path)
    override = environ.get(ENGINE_PYTHON_ENV, "").strip()
    if override:
        engine_python, source = override, "the %s environment variable" % ENGINE_PYTHON_ENV
    else:
        engine_python, source = data.get("engine_python"), path
    if not engine_python:
        raise EngineError(
            "not_configured",
            "The Neural Style Transfer engine is not set up: %s %s. Run the installer "
            "(python3 installer/install.py) to install the engine and write this file, or set "
            "%s to the Python that has nst_core installed."
            % (path, "has no engine_python entry" if data else "does not exist",
               ENGINE_PYTHON_ENV))
    engine_python = find_program(engine_python, environ)
    if not os.path.isfile(engine_python):
        raise EngineError(
            "engine_missing",
            "The engine's Python was not found at %s (named in %s). The engine may have been "
            "moved or uninstalled: run the installer again, or set %s to the Python that has "
            "nst_core installed." % (engine_python, source, ENGINE_PYTHON_ENV))
    service_override = environ.get(ENGINE_SERVICE_ENV, "").strip()
    if service_override:
        data = dict(data, engine_service=service_override)
        path = "%s (engine_service from the %s environment variable)" % (path, ENGINE_SERVICE_ENV)
    service, token_file, idle_minutes = service_settings(data, path)
    return EngineConfig(engine_python, data.get("log_dir") or "", data.get("version") or "",
                        source, service, token_file, idle_minutes)


def service_settings(data, path):
    """(engine_service, engine_service_token_file, engine_service_idle_minutes) of the config,
    checked, with their defaults."""
    service = data.get("engine_service")
    if service is None or service == "":
        service = SERVICE_LOCAL
    text_types = (type(u""), type(""))
    lowered = service.strip().lower() if isinstance(service, text_types) else None
    if lowered in (SERVICE_LOCAL, SERVICE_OFF):
        service = lowered
    elif lowered is not None and lowered.startswith(("http://", "https://")):
        service = service.strip().rstrip("/")
    else:
        raise EngineError(
            "not_configured",
            "engine_service in %s is %r: write \"local\" (a warm engine service on this computer), "
            "\"off\" (an engine process per run) or the address of an nst-core serve, such as "
            "\"https://gpu.example.org\"." % (path, service))
    token_file = data.get("engine_service_token_file") or ""
    if service not in (SERVICE_LOCAL, SERVICE_OFF) and not token_file:
        raise EngineError(
            "not_configured",
            "engine_service in %s names the service %s but no engine_service_token_file: copy the "
            "service's token file to this computer and name it there (or run the installer with "
            "--server URL --token-file FILE)." % (path, service))
    if token_file:
        token_file = os.path.expanduser(token_file)
    idle = data.get("engine_service_idle_minutes", DEFAULT_SERVICE_IDLE_MINUTES)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not idle > 0:
        raise EngineError(
            "not_configured",
            "engine_service_idle_minutes in %s is %r: write a number of minutes above 0 (default "
            "%d)." % (path, idle, DEFAULT_SERVICE_IDLE_MINUTES))
    return service, token_file, float(idle)


def make_engine(config, fallback_log_dir):
    """The engine that runs the jobs, as engine_service says: SubprocessEngine ("off"), or one of
    nst_http's (the local warm service, or a remote service), all with one interface."""
    if config.service == SERVICE_OFF:
        return SubprocessEngine(config.engine_python, config.log_dir, fallback_log_dir)
    # nst_http builds on this module's log and process helpers, so it is imported here and not at
    # the top: the two modules do not import each other while loading.
    import nst_http
    if config.service == SERVICE_LOCAL:
        return nst_http.LocalServiceEngine(config, fallback_log_dir)
    return nst_http.HttpEngine(config.service, config.service_token_file, config.log_dir,
                               fallback_log_dir)


# ---------------------------------------------------------------------------------------------
# Command line and environment


def build_command(engine_python, content_path, style_paths, output_path, options,
                  preview_every=None, preview_dir=None):
    command = ([engine_python, "-m", "nst_core", "stylize", content_path] + list(style_paths)
               + ["-o", output_path, "--progress", "jsonl"] + list(options))
    if preview_every is not None:
        # The engine writes the previews into preview_dir (the run folder) and removes them at
        # the end of the run (PROTOCOL.md "Previews").
        command += ["--preview-every", format_float(preview_every)]
        if preview_dir:
            command += ["--preview-dir", preview_dir]
    return command


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


# ---------------------------------------------------------------------------------------------
# The log file


def open_log(log_dir, fallback_dir):
    """Opens the engine log for appending: in log_dir, or in fallback_dir when that fails.

    Returns (binary file object, path).
    """
    last_error = None
    for folder in (log_dir, fallback_dir):
        if not folder:
            continue
        path = os.path.join(folder, LOG_FILE_NAME)
        try:
            if not os.path.isdir(folder):
                os.makedirs(folder)
            rotate_log(path)
            return io.open(path, "ab"), path
        except (IOError, OSError) as exc:
            last_error = exc
    raise EngineError("engine_missing", "No writable folder for the engine log (tried %s and %s: "
                      "%s). Check the log_dir entry of %s." % (log_dir, fallback_dir, last_error,
                                                              CONFIG_FILE_NAME))


def rotate_log(path):
    try:
        if os.path.getsize(path) > LOG_ROTATE_BYTES:
            old = path + ".1"
            if os.path.exists(old):
                os.remove(old)
            os.rename(path, old)
    except OSError:
        pass  # no log yet, or a rename race with another run: appending is still fine


def read_log_tail(path, start_offset, max_lines=6):
    """The last lines this run wrote to the log, for the error message."""
    try:
        with io.open(path, "rb") as handle:
            handle.seek(start_offset)
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return []
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return [line[:300] for line in lines[-max_lines:]]


# ---------------------------------------------------------------------------------------------
# Running the engine


def start_engine(command, env, log_file):
    """Starts the engine with a pipe on stdin that stays open until the run is over.

    The engine stops when that pipe closes (PROTOCOL.md "Stopping"), so if GIMP kills the plug-in
    (the user cancelled) the engine stops as well.
    """
    kwargs = {}
    if WINDOWS:
        kwargs["creationflags"] = CREATE_NO_WINDOW
    else:
        kwargs["close_fds"] = True
    try:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=log_file, env=env, **kwargs)
    except (OSError, IOError) as exc:
        raise EngineError(
            "engine_missing",
            "The engine could not be started: %s (%s). Run the installer again, or set %s to the "
            "Python that has nst_core installed." % (command[0], exc, ENGINE_PYTHON_ENV))


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


def log_line(text):
    return to_bytes("(client) %s\n" % text)


class SubprocessEngine(object):
    """Runs each job in an engine process of its own: `PYTHON -m nst_core stylize ... --progress
    jsonl`, with its stderr appended to the engine log (in log_dir, else fallback_log_dir).

    run(job, on_event=None) runs a nst_protocol.Job to its end and returns its `done` event (with
    "log_path" added); on_event(event) is called for every event, in order. Any failure raises
    EngineError with a message for a person that names the log; if on_event raises (or Ctrl-C
    arrives), the engine is stopped before the exception goes on. cancel() and stop() may be called
    from on_event or from another thread while run() works; with no run under way they do nothing.
    The log gets the command line and, at the end, one line with the run's outcome.
    """

    def __init__(self, engine_python, log_dir, fallback_log_dir, env=None):
        self.engine_python = engine_python
        self.log_dir = log_dir
        self.fallback_log_dir = fallback_log_dir
        self.env = clean_environment(os.environ) if env is None else env
        self._process = None
        self._stdin_lock = threading.Lock()

    def cancel(self):
        """Ends the run under way without a result: run() then raises EngineError("cancelled")."""
        return self._send(b"cancel\n")

    def stop(self):
        """Ends the run under way early, keeping the best result so far: run() returns its `done`
        event. Needs an engine that knows the `stop` command (docs/PROTOCOL.md "Stopping"); an
        older one ignores the line and runs to its end."""
        return self._send(b"stop\n")

    def _send(self, line):
        """Writes a command line to the running engine; False when there is none to take it."""
        with self._stdin_lock:
            process = self._process
            if process is None or process.poll() is not None:
                return False
            try:
                process.stdin.write(line)
                process.stdin.flush()
                return True
            except (IOError, OSError, ValueError):
                return False  # the engine closed its end (it is ending), or we closed ours

    def _close_stdin(self, process):
        with self._stdin_lock:
            close_quietly(process.stdin)

    def _shut_down(self, process, grace_seconds=10.0):
        """Asks the engine to stop (cancel line, then end of stdin), and forces it if it must."""
        self._send(b"cancel\n")
        self._close_stdin(process)
        if wait_for_exit(process, grace_seconds):
            return
        try:
            process.terminate()
            if not wait_for_exit(process, 5.0):
                process.kill()
                process.wait()
        except OSError:
            pass

    def run(self, job, on_event=None):
        command = build_command(self.engine_python, job.content, job.styles, job.output,
                                job.options, job.preview_every, job.preview_folder())
        log_file, log_path = open_log(self.log_dir, self.fallback_log_dir)
        with log_file:
            header = "\n===== %s  client pid %d\n%s\n" % (
                time.strftime("%Y-%m-%d %H:%M:%S"), os.getpid(),
                " ".join('"%s"' % part if " " in part else part for part in command))
            log_file.write(to_bytes(header))
            log_file.flush()
            start_offset = log_file.tell()  # what the engine writes from here on is this run's
            record = RunRecord()
            process = start_engine(command, self.env, log_file)
            with self._stdin_lock:
                self._process = process
            stray_lines = []
            result = None
            try:
                try:
                    returncode = self._follow(process, record, on_event, stray_lines)
                except EngineError as exc:  # the engine speaks a protocol we do not
                    returncode = None
                    result = EngineError(exc.code, "%s Engine log: %s" % (exc.message, log_path),
                                         log_path)
            except BaseException as exc:  # on_event raised, or Ctrl-C
                self._end_process(process, log_file, stray_lines)
                log_file.write(log_line("outcome: %s; ended by the caller (%s)"
                                        % (record.outcome(process.returncode),
                                           type(exc).__name__)))
                raise
            self._end_process(process, log_file, stray_lines)
            if result is None:
                result = self._conclude(record, returncode, job, command, log_path,
                                        read_log_tail(log_path, start_offset) + stray_lines[-3:])
            failed = isinstance(result, EngineError)
            log_file.write(log_line("outcome: " + record.outcome(
                process.returncode, result.code if failed else None)))
        if failed:
            raise result
        return result

    def _follow(self, process, record, on_event, stray_lines):
        """Reads the engine's events to the end of its output; returns its exit code."""
        for raw_line in iter(process.stdout.readline, b""):
            event = parse_event_line(raw_line)
            if event is None:
                if raw_line.strip():
                    stray_lines.append(raw_line.decode("utf-8", "replace").rstrip()[:300])
                continue
            record.add(event)
            if on_event is not None:
                on_event(event)
        # The run is over: now (and not before) our end of stdin may close.
        self._close_stdin(process)
        return process.wait()

    def _end_process(self, process, log_file, stray_lines):
        """Makes sure the engine has ended, and logs what it printed outside the protocol."""
        if process.poll() is None:
            self._shut_down(process)
        close_quietly(process.stdout)
        with self._stdin_lock:
            self._process = None
        if stray_lines:
            log_file.write(log_line("unexpected stdout lines:\n%s" % "\n".join(stray_lines[-20:])))

    def _conclude(self, record, returncode, job, command, log_path, log_tail):
        """The run's `done` event, or the EngineError that says why there is none."""
        if returncode == 0 and record.done is not None and record.error is None:
            done = record.done
            if job.output and not os.path.isfile(job.output):
                return EngineError("protocol", "The engine said it was done but wrote no result at "
                                   "%s. Engine log: %s" % (job.output, log_path), log_path)
            if not (done.get("output") or job.output):
                return EngineError("protocol", "The engine finished without naming its result. "
                                   "Engine log: %s" % log_path, log_path)
            return dict(done, log_path=log_path)
        if returncode == 0 and record.error is None:
            # Exit 0 without `done`: not the protocol, most likely not nst_core at all.
            return EngineError("protocol", "The engine exited without a result or an error (is %s "
                               "the engine's Python?). Engine log: %s" % (command[0], log_path),
                               log_path)
        code, message = failure_message(record.error, returncode, log_path, log_tail, command[0])
        return EngineError(code, message, log_path)
