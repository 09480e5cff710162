# -*- coding: utf-8 -*-
"""The warm engine service on this machine (engine_service "local", docs/SERVICE.md "GIMP and the
service"): the first run starts an `nst-core serve` in the background (it exits by itself after an
idle time), later runs find it through a small state file and reuse it (LocalService);
LocalServiceEngine sends the jobs to it over HTTP, and when it cannot start, runs the job in an
engine process of its own and the log says why.

Standard library only and Python 2.7-compatible (GIMP 2.10); no torch.
"""

from __future__ import absolute_import, division, print_function

import io
import os
import socket
import subprocess
import sys
import time

from .engine_log import log_to, read_log_tail, rotate_log
from .http_engine import HttpEngine, ServiceAddress, read_token
from .process import (
    WINDOWS,
    clean_environment,
    process_is_alive,
    read_json,
    remove_quietly,
    to_bytes,
    write_json_atomically,
)
from .protocol import Engine, EngineError
from .subprocess_engine import SubprocessEngine

# How long the service's start (importing torch, loading the network) may take, and how long a start
# that failed keeps us from trying again (each try costs that start-up).
LOCAL_START_TIMEOUT = 180.0
LOCAL_RETRY_AFTER_FAILURE = 600.0
LOCAL_TOKEN_FILE = "nst_service.token"
LOCAL_SERVICE_LOG = "nst_service.log"
# Windows: the service gets no console and a process group of its own, so it outlives the plug-in.
DETACHED_PROCESS = 0x00000008
CREATE_NEW_PROCESS_GROUP = 0x00000200


def free_port():
    """A TCP port free on 127.0.0.1 now (the service binds it a moment later)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


class LocalService(object):
    """The warm `nst-core serve` on this machine for one device choice, found through its state file
    (nst_service-DEVICE.json in the state folder: url, pid, engine_python, version, started_at, or
    the last failure to start).

    address() -> (url, None) when a service answers (reused, or started now), else (None, why).
    """

    def __init__(self, engine_python, version, device, state_dir, idle_seconds, env=None):
        self.engine_python = engine_python
        self.version = version
        self.device = device
        self.state_dir = state_dir
        self.idle_seconds = idle_seconds
        self.env = clean_environment(os.environ) if env is None else env
        self.state_file = os.path.join(state_dir, "nst_service-%s.json" % device)
        self.token_file = os.path.join(state_dir, LOCAL_TOKEN_FILE)
        self.service_log = os.path.join(state_dir, LOCAL_SERVICE_LOG)
        self.notes = []  # what happened, for the engine log
        self._log_offset = 0  # where this start's lines begin in the service's log

    def address(self):
        state = read_json(self.state_file)
        if state is not None and state.get("failed"):
            waited = time.time() - float(state.get("failed_at") or 0)
            if state.get("engine_python") == self.engine_python and \
                    0 <= waited < LOCAL_RETRY_AFTER_FAILURE:
                return None, ("its last start failed %d s ago (%s); the next try comes %d s after "
                              "that failure" % (waited, state["failed"], LOCAL_RETRY_AFTER_FAILURE))
        elif state is not None and state.get("url"):
            url = self._reuse(state)
            if url:
                return url, None
        return self._start()

    def _reuse(self, state):
        """The state file's service URL when it still answers as the service we want, else None
        (and the stale state file is removed)."""
        url, pid = state.get("url"), state.get("pid")
        why = None
        if state.get("engine_python") != self.engine_python:
            why = "it runs another engine (%s)" % state.get("engine_python")
        elif not isinstance(pid, int) or not process_is_alive(pid):
            why = "its process %s has ended" % pid
        else:
            started = float(state.get("started_at") or 0)
            # A service another run started a moment ago may still be loading the network.
            deadline = max(time.time(), started + LOCAL_START_TIMEOUT) if state.get("starting") \
                else time.time()
            health, why = self._wait_for_health(url, None, deadline)
            if health is not None:
                if self.version and health.get("version") not in (None, self.version):
                    why = ("it runs nst-core %s and the plug-in was installed with %s (it exits by "
                           "itself when idle)" % (health.get("version"), self.version))
                else:
                    self.notes.append("reusing the engine service at %s (pid %s, %s jobs done)"
                                      % (url, pid, (health.get("stats") or {}).get("jobs_done")))
                    if state.get("starting"):
                        state.pop("starting", None)
                        write_json_atomically(self.state_file, state)
                    return url
        self.notes.append("the service in %s is not used: %s" % (self.state_file, why))
        remove_quietly(self.state_file)
        return None

    def _token(self):
        try:
            return read_token(self.token_file, "this computer")
        except EngineError:
            return None  # the service writes it when it starts: not there yet

    def _wait_for_health(self, url, process, deadline):
        """(health, None) once the service answers, or (None, why) at the deadline or its exit."""
        why = "it did not answer"
        while True:
            token = self._token()
            if token is not None:
                try:
                    return ServiceAddress(url, token).health(timeout=5.0), None
                except EngineError as exc:
                    why = exc.message
                    if exc.code == "unauthorized":
                        return None, "it refused this computer's token file %s" % self.token_file
            if process is not None and process.poll() is not None:
                return None, "it exited with code %s: %s" % (process.returncode, " | ".join(
                    read_log_tail(self.service_log, self._log_offset, 3)))
            if time.time() >= deadline:
                return None, why
            time.sleep(0.25)

    def _start(self):
        """Starts a service in the background and waits until it answers."""
        command = [self.engine_python, "-m", "nst_core", "serve", "--host", "127.0.0.1",
                   "--port", str(free_port()), "--token-file", self.token_file,
                   "--idle-exit", "%g" % self.idle_seconds, "--device", self.device]
        url = "http://127.0.0.1:%s" % command[command.index("--port") + 1]
        try:
            if not os.path.isdir(self.state_dir):
                os.makedirs(self.state_dir)
            rotate_log(self.service_log)
            log_file = io.open(self.service_log, "ab")
        except (IOError, OSError) as exc:
            return None, self._failed("its log %s cannot be written (%s)" % (self.service_log, exc))
        with log_file:
            log_file.write(to_bytes("\n===== %s  started by the plug-in (pid %d)\n%s\n" % (
                time.strftime("%Y-%m-%d %H:%M:%S"), os.getpid(), " ".join(command))))
            log_file.flush()
            self._log_offset = log_file.tell()
            kwargs = {}
            if WINDOWS:
                kwargs["creationflags"] = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP
            elif sys.version_info >= (3, 2):
                kwargs["start_new_session"] = True  # not in the plug-in's process group: GIMP ending
            else:                                    # the plug-in does not end the service
                kwargs["preexec_fn"] = os.setsid
            try:
                with io.open(os.devnull, "rb") as devnull:
                    process = subprocess.Popen(command, stdin=devnull, stdout=log_file,
                                               stderr=log_file, env=self.env,
                                               close_fds=not WINDOWS, **kwargs)
            except (OSError, IOError) as exc:
                return None, self._failed("%s could not be started (%s)" % (command[0], exc))
        state = {"url": url, "pid": process.pid, "engine_python": self.engine_python,
                 "device": self.device, "version": self.version, "started_at": time.time(),
                 "idle_exit_seconds": self.idle_seconds, "starting": True}
        write_json_atomically(self.state_file, state)
        health, why = self._wait_for_health(url, process, time.time() + LOCAL_START_TIMEOUT)
        if health is None:
            if process.poll() is None:
                why = "it did not answer within %d s (%s)" % (LOCAL_START_TIMEOUT, why)
                process.terminate()
            return None, self._failed("%s; its log: %s" % (why, self.service_log))
        state.pop("starting")
        write_json_atomically(self.state_file, state)
        self.notes.append("started the engine service at %s (pid %d, exits after %g s idle)"
                          % (url, process.pid, self.idle_seconds))
        return url, None

    def _failed(self, why):
        """Records a failed start, so that the next runs do not pay for it again at once."""
        try:
            write_json_atomically(self.state_file, {"failed": why, "failed_at": time.time(),
                                                    "engine_python": self.engine_python})
        except (IOError, OSError):
            pass
        return why


class LocalServiceEngine(Engine):
    """engine_service "local": jobs go to a warm service on this machine (LocalService), started by
    the first run; when it cannot start, the job runs in an engine process of its own
    (subprocess_engine.SubprocessEngine) and the engine log says why. config: engine_config.EngineConfig's
    engine_python, version, log_dir and service_idle_minutes."""

    def __init__(self, config, fallback_log_dir):
        self.config = config
        self.fallback_log_dir = fallback_log_dir
        self.state_dir = config.log_dir or fallback_log_dir
        self.subprocess_engine = SubprocessEngine(config.engine_python, config.log_dir, fallback_log_dir)
        self._active = None

    def cancel(self):
        active = self._active
        return active.cancel() if active is not None else False

    def stop(self):
        active = self._active
        return active.stop() if active is not None else False

    def _log(self, text):
        log_to(self.config.log_dir, self.fallback_log_dir, text)

    def warm_up(self, device="auto"):
        """Starts (or finds) the warm service for device ahead of a run, so that the run's first
        preview does not wait for torch and the network to load; the run then reuses it. Returns
        the service's URL, or None (the run will try again, or fall back, and say why)."""
        service = LocalService(self.config.engine_python, self.config.version, device,
                               self.state_dir, self.config.service_idle_minutes * 60.0)
        url, why = service.address()
        for note in service.notes:
            self._log("warm-up: " + note)
        if url is None:
            self._log("warm-up: the engine service did not start: %s" % why)
        return url

    def run(self, job, on_event=None):
        device = job.options.get("device") or "auto"
        service = LocalService(self.config.engine_python, self.config.version, device,
                               self.state_dir, self.config.service_idle_minutes * 60.0)
        url, why = service.address()
        for note in service.notes:
            self._log(note)
        if url is not None:
            # The service runs on the job's device: the option is not sent again.
            options = dict(job.options)
            options.pop("device", None)
            engine = HttpEngine(url, service.token_file, self.config.log_dir, self.fallback_log_dir)
            self._active = engine
            try:
                return engine.run(job.with_options(options), on_event)
            except EngineError as exc:
                if exc.code != "unreachable":
                    raise
                why = "it stopped answering (%s)" % exc.message  # nothing ran there: run it here
        self._log("the warm engine service is not used for this run: %s. The job runs in an engine "
                  "process of its own." % why)
        self._active = self.subprocess_engine
        return self.subprocess_engine.run(job, on_event)
