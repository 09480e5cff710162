# -*- coding: utf-8 -*-
"""The command-line transport of the nst_core engine client (docs/PROTOCOL.md): each job runs in an
engine process of its own, `PYTHON -m nst_core stylize ... --progress jsonl` (an animation's frames:
one `stylize-frames` process), its events read from the process's stdout, its stderr appended to the
engine log.

Pure Python that runs unchanged on GIMP 2.10's Python 2.7 and on GIMP 3's Python 3: no GIMP import,
no torch. What the events mean and what to tell a person lives in protocol.py.
"""

from __future__ import absolute_import, division, print_function

import os
import subprocess
import threading
import time

from .engine_log import log_line, open_log, read_log_tail
from .process import WINDOWS, clean_environment, close_quietly, to_bytes, wait_for_exit
from .protocol import (
    ENGINE_PYTHON_ENV,
    Engine,
    EngineError,
    FramesJob,
    RunRecord,
    failure_message,
    format_float,
    option_items,
    option_text,
    parse_event_line,
)

# On Windows a console program started from GIMP would flash a console window without this flag.
CREATE_NO_WINDOW = 0x08000000


def command_line_options(options):
    """A Job's options as the engine's command line: ["--preset", "fast", "--no-ssim", ...]."""
    argv = []
    for name, value in option_items(options):
        if value is True:
            argv.append("--" + name)
        elif value is False:
            argv.append("--no-" + name)
        elif isinstance(value, (list, tuple)):
            argv += ["--" + name] + [option_text(part) for part in value]
        elif value is not None:
            argv += ["--" + name, option_text(value)]
    return argv


def region_arguments(masks, region_weights=None):
    """A Job's regions as the engine's command line: ["--style-mask", M1, M2, "--region-weight", ...]."""
    if masks is None:
        return []
    argv = ["--style-mask"] + list(masks)
    if region_weights is not None:
        argv += ["--region-weight"] + [format_float(weight) for weight in region_weights]
    return argv


def build_command(engine_python, content_path, style_paths, output_path, options,
                  preview_every=None, preview_dir=None, masks=None, region_weights=None):
    command = ([engine_python, "-m", "nst_core", "stylize", content_path] + list(style_paths)
               + ["-o", output_path, "--progress", "jsonl"] + command_line_options(options)
               + region_arguments(masks, region_weights))
    if preview_every is not None:
        # The engine writes the previews into preview_dir (the run folder) and removes them at
        # the end of the run (PROTOCOL.md "Previews").
        command += ["--preview-every", format_float(preview_every)]
        if preview_dir:
            command += ["--preview-dir", preview_dir]
    return command


def build_frames_command(engine_python, job):
    """`stylize-frames FRAME... STYLE -o FOLDER` for a FramesJob (PROTOCOL.md "Frames")."""
    command = ([engine_python, "-m", "nst_core", "stylize-frames"] + list(job.frames) + [job.style]
               + ["-o", job.output, "--progress", "jsonl", "--temporal-weight",
                  format_float(job.temporal_weight)] + command_line_options(job.options))
    if job.preview_every is not None:
        command += ["--preview-every", format_float(job.preview_every),
                    "--preview-dir", job.preview_folder()]
    return command


def job_command(engine_python, job):
    if isinstance(job, FramesJob):
        return build_frames_command(engine_python, job)
    return build_command(engine_python, job.content, job.styles, job.output, job.options,
                         job.preview_every, job.preview_folder(), job.masks, job.region_weights)


def missing_result(job, done):
    """The result file a `done` event should have left and did not (None when all are there): the
    output of a Job; each of a FramesJob's `outputs`, of which there is at least one."""
    if not isinstance(job, FramesJob):
        return job.output if job.output and not os.path.isfile(job.output) else None
    outputs = done.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        return job.output
    return next((path for path in outputs if not os.path.isfile(path)), None)


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


class SubprocessEngine(Engine):
    """Runs each job in an engine process of its own: `PYTHON -m nst_core stylize ... --progress
    jsonl`, with its stderr appended to the engine log (in log_dir, else fallback_log_dir).

    The interface is protocol.Engine's; run()'s errors name the log, which gets the command line
    and, at the end, one line with the run's outcome. cancel() and stop() are lines on the engine's
    stdin (PROTOCOL.md "Stopping").
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
        """Runs a Job (`stylize`) or a FramesJob (`stylize-frames`, one process for every frame)."""
        command = job_command(self.engine_python, job)
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
            missing = missing_result(job, done)
            if missing:
                return EngineError("protocol", "The engine said it was done but wrote no result at "
                                   "%s. Engine log: %s" % (missing, log_path), log_path)
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
