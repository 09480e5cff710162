# -*- coding: utf-8 -*-
"""The HTTP transport of the nst_core engine client: jobs sent to an `nst-core serve` (docs/PROTOCOL.md
"HTTP transport", docs/SERVICE.md), behind the same interface as nst_engine.SubprocessEngine:

    engine.run(job, on_event=None) -> the `done` event (a dict), or raises EngineError
    engine.cancel(), engine.stop()

HttpEngine talks to a service at a given address (this machine's or a GPU machine's).
LocalServiceEngine keeps a warm service on this machine: the first run starts one in the background
(it exits by itself after an idle time), later runs find it through a small state file and reuse it;
when it cannot start, the job runs in an engine process of its own, as before, and the log says why.

Standard library only and Python 2.7-compatible (GIMP 2.10); no torch. What the events mean lives in
nst_protocol.py; the log, the environment and the config in nst_engine.py.
"""

from __future__ import absolute_import, division, print_function

import binascii
import errno
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import re

try:  # Python 3
    import http.client as httplib
except ImportError:  # Python 2.7 (GIMP 2.10)
    import httplib

try:
    import ssl
except ImportError:  # a Python built without OpenSSL: https:// addresses cannot work
    ssl = None

import nst_engine
from nst_protocol import (EngineError, Job, RunRecord, failure_message, format_float,
                          parse_event_line)

API = "/v1"
CONNECT_TIMEOUT = 10.0
# The service writes at least a heartbeat line every 10 s: a read that waits this long means the
# connection is gone.
READ_TIMEOUT = 60.0
MAX_EVENT_LINE = 1 << 20
# The local service: how long its start (importing torch, loading the network) may take, and how long
# a start that failed keeps us from trying again (each try costs that start-up).
LOCAL_START_TIMEOUT = 180.0
LOCAL_RETRY_AFTER_FAILURE = 600.0
LOCAL_TOKEN_FILE = "nst_service.token"
LOCAL_SERVICE_LOG = "nst_service.log"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# scheme://host[:port][/prefix] (urlsplit lives in a module whose name differs in 2.7 and 3)
ADDRESS_PATTERN = re.compile(r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]@?#]+)(?::(\d{1,5}))?(/[^?#]*)?$")

WINDOWS = sys.platform.startswith("win")
# Windows: the service gets no console and a process group of its own, so it outlives the plug-in.
DETACHED_PROCESS = 0x00000008
CREATE_NEW_PROCESS_GROUP = 0x00000200


def log_to(log_dir, fallback_log_dir, text):
    """Appends one "(client)" line to the engine log; a log that cannot be written is no failure."""
    try:
        log_file, _path = nst_engine.open_log(log_dir, fallback_log_dir)
    except EngineError:
        return
    with log_file:
        log_file.write(nst_engine.log_line(text))


def read_token(path, service_url):
    try:
        with io.open(path, "r", encoding="ascii") as handle:
            token = handle.read().strip()
    except (IOError, OSError, ValueError) as exc:
        raise EngineError(
            "unauthorized",
            "The token file %s for the engine service at %s could not be read (%s). Copy the "
            "service's token file (printed by `nst-core serve` when it starts) to this computer and "
            "name it as engine_service_token_file in %s, or run the installer again with "
            "--server %s --token-file FILE." % (path, service_url, exc, nst_engine.CONFIG_FILE_NAME,
                                               service_url))
    if not token:
        raise EngineError("unauthorized", "The token file %s is empty: copy the service's token file "
                          "again." % path)
    return token


# ---------------------------------------------------------------------------------------------
# The job as a request


def job_params(options):
    """A job's stylize options (a command line, nst_protocol.engine_options) -> (the `params` object
    of the HTTP job, the --device it named or None). Numbers travel as the command line's text, which
    the service reads with the command line's own parser."""
    params = {}
    index = 0
    while index < len(options):
        option = options[index]
        if not option.startswith("--"):
            raise EngineError("bad_parameter", "Unexpected engine option %r." % option)
        name, _, inline = option[2:].partition("=")
        values = [inline] if inline else []
        index += 1
        while not inline and index < len(options) and not options[index].startswith("--"):
            values.append(options[index])
            index += 1
        if not values:
            if name.startswith("no-"):
                params[name[3:]] = False
            else:
                params[name] = True
        elif len(values) == 1:
            params[name] = values[0]
        else:
            params[name] = [float(value) for value in values]
    device = params.pop("device", None)
    return params, device


def multipart_body(params, content_path, style_paths):
    """(body bytes, Content-Type) of the job: parts params, content, style... (PROTOCOL.md)."""
    boundary = "nst-" + binascii.hexlify(os.urandom(16)).decode("ascii")
    chunks = [("--%s\r\nContent-Disposition: form-data; name=\"params\"\r\nContent-Type: "
               "application/json\r\n\r\n" % boundary).encode("ascii"),
              json.dumps(params, sort_keys=True).encode("ascii"), b"\r\n"]
    for name, path in [("content", content_path)] + [("style", p) for p in style_paths]:
        with io.open(path, "rb") as handle:
            data = handle.read()
        # ASCII only in the header (a unicode path on Python 2.7 may hold any letter)
        filename = "".join(c if (c.isalnum() and ord(c) < 128) or c in "._-" else "_"
                           for c in os.path.basename(path)) or "image"
        chunks += [("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n"
                    % (boundary, name, filename)).encode("ascii"), data, b"\r\n"]
    chunks.append(("--%s--\r\n" % boundary).encode("ascii"))
    return b"".join(chunks), "multipart/form-data; boundary=%s" % boundary


def read_line(response):
    """One line of a streamed (chunked) response, b"" at its end. Python 3's HTTPResponse has
    readline(); Python 2.7's has not, and its read(1) returns each byte as it arrives."""
    readline = getattr(response, "readline", None)
    if readline is not None:
        return readline(MAX_EVENT_LINE)
    data = []
    while len(data) < MAX_EVENT_LINE:
        byte = response.read(1)
        if not byte:
            break
        data.append(byte)
        if byte == b"\n":
            break
    return b"".join(data)


# ---------------------------------------------------------------------------------------------
# A service at an address


class ServiceAddress(object):
    """An http(s):// base address of an nst-core serve, and the requests made to it."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        match = ADDRESS_PATTERN.match(self.url)
        if match is None:
            raise EngineError("not_configured", "The engine service address %r is not an http:// or "
                              "https:// address such as http://127.0.0.1:8765 (engine_service in %s)."
                              % (url, nst_engine.CONFIG_FILE_NAME))
        scheme, host, port, prefix = match.groups()
        self.https = scheme == "https"
        self.host = host.strip("[]")
        self.port = int(port) if port else (443 if self.https else 80)
        self.prefix = (prefix or "").rstrip("/")
        self.token = token

    def connect(self, read_timeout=READ_TIMEOUT):
        """An open connection (EngineError "unreachable" when there is none to be had)."""
        if self.https:
            if ssl is None:
                raise EngineError("unreachable", "This Python has no TLS support, so it cannot reach "
                                  "%s: use an http:// address on this computer." % self.url)
            # context: Python 2.7.9 and later take it too (GIMP 2.10 bundles 2.7.18)
            connection = httplib.HTTPSConnection(  # novm
                self.host, self.port, timeout=CONNECT_TIMEOUT, context=ssl.create_default_context())
        else:
            connection = httplib.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT)
        try:
            connection.connect()
        except (socket.error, IOError, OSError, httplib.HTTPException) as exc:
            connection.close()
            raise self.unreachable(exc)
        connection.sock.settimeout(read_timeout)
        return connection

    def unreachable(self, exc):
        if ssl is not None and isinstance(exc, getattr(ssl, "CertificateError", ())) or \
                "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return EngineError(
                "unreachable",
                "The TLS certificate of %s was not accepted (%s). With a certificate of your own "
                "CA, point the SSL_CERT_FILE environment variable at the CA's certificate before "
                "starting GIMP." % (self.url, exc))
        return EngineError(
            "unreachable",
            "Could not reach the engine service at %s (%s). Is `nst-core serve` running there? "
            "Start it on that machine with `nst-core serve` (docs/SERVICE.md), check the address "
            "(engine_service in %s), or set engine_service to \"local\" to run the engine on this "
            "computer. The image was not changed." % (self.url, exc, nst_engine.CONFIG_FILE_NAME))

    def request(self, method, path, body=None, content_type=None, connection=None,
                read_timeout=READ_TIMEOUT):
        """Sends a request; returns (connection, response) with the body unread."""
        connection = connection or self.connect(read_timeout)
        headers = {"Authorization": "Bearer %s" % self.token}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, self.prefix + path, body=body, headers=headers)
            return connection, connection.getresponse()
        except (socket.error, IOError, OSError, httplib.HTTPException) as exc:
            connection.close()
            raise self.unreachable(exc)

    def call(self, method, path, timeout=CONNECT_TIMEOUT):
        """(status, JSON answer or None) of a short request."""
        connection, response = self.request(method, path, read_timeout=timeout)
        try:
            data = response.read()
        except (socket.error, IOError, OSError, httplib.HTTPException) as exc:
            raise self.unreachable(exc)
        finally:
            connection.close()
        try:
            answer = json.loads(data.decode("utf-8"))
        except ValueError:
            answer = None
        return response.status, answer

    def health(self, timeout=CONNECT_TIMEOUT):
        """GET /v1/health: its JSON, or EngineError."""
        status, answer = self.call("GET", API + "/health", timeout)
        if status != 200 or not isinstance(answer, dict):
            raise self.refusal(status, answer)
        return answer

    def refusal(self, status, answer, token_file=None):
        """The EngineError for a refused request (PROTOCOL.md "Refusals")."""
        answer = answer if isinstance(answer, dict) else {}
        said = answer.get("message") or "HTTP %s" % status
        if status == 401:
            return EngineError(
                "unauthorized",
                "The engine service at %s refused the token%s (%s). Copy the service's token file "
                "(on the service's machine: service-token in the engine's data folder, or the "
                "--token-file it was started with) over %s, or run the installer again with "
                "--server %s --token-file FILE. The image was not changed."
                % (self.url, " from %s" % token_file if token_file else "", said,
                   token_file or "the file named by engine_service_token_file in "
                   + nst_engine.CONFIG_FILE_NAME, self.url))
        if status == 503:
            return EngineError(
                "busy",
                "The engine service at %s is busy (%s): its queue is full. Try again in a little "
                "while. The image was not changed." % (self.url, said))
        if status == 404 and answer.get("code") != "not_found":
            return EngineError(
                "unreachable",
                "%s answered 404 Not Found: is it the address of an nst-core serve (for example "
                "http://127.0.0.1:8765, or the proxy's address)? Check engine_service in %s."
                % (self.url, nst_engine.CONFIG_FILE_NAME))
        code = answer.get("code") or ("bad_input" if 400 <= status < 500 else "internal")
        return EngineError(code, "The engine service at %s refused the job: %s" % (self.url, said))


# ---------------------------------------------------------------------------------------------
# The HTTP engine


class HttpEngine(object):
    """Runs each job on the nst-core serve at `url`, with the token in `token_file`.

    run(job, on_event=None) uploads the job's images, calls on_event(event) for every event of the
    stream, in order (the service's `accepted` and `queued` too), downloads the result to job.output
    (a .png, written atomically) and returns the `done` event with "output" (job.output) and
    "log_path". Failures raise EngineError with a message for a person; the log (nst_engine.log in
    log_dir, else fallback_log_dir) gets a line per run and its outcome. cancel() and stop() may be
    called from on_event or from another thread while run() works.
    """

    def __init__(self, url, token_file, log_dir, fallback_log_dir):
        self.url = url.rstrip("/")
        self.token_file = token_file
        self.log_dir = log_dir
        self.fallback_log_dir = fallback_log_dir
        self._lock = threading.Lock()
        self._address = None
        self._job_id = None
        self._running = False
        self._cancel_requested = False
        self._stop_requested = False

    # ----- cancel and stop ------------------------------------------------------------------------

    def cancel(self):
        """Ends the run under way without a result: run() then raises EngineError("cancelled")."""
        with self._lock:
            if not self._running:
                return False
            self._cancel_requested = True
            job_id, address = self._job_id, self._address
        if job_id is None:
            return True  # run() sends it as soon as the service has named the job
        return self._post(address, job_id, "cancel")

    def stop(self):
        """Asks the service to end the run early and keep its best result (POST .../stop); run() then
        returns its done event. False when there is no run, or the service did not take the request."""
        with self._lock:
            if not self._running:
                return False
            self._stop_requested = True
            job_id, address = self._job_id, self._address
        if job_id is None:
            return True
        return self._post(address, job_id, "stop")

    def _post(self, address, job_id, action):
        try:
            status, answer = address.call("POST", "%s/jobs/%s/%s" % (API, job_id, action))
        except EngineError as exc:
            self._log("%s of job %s not sent: %s" % (action, job_id, exc.message))
            return False
        if status != 200:
            self._log("%s of job %s answered %s: %s" % (action, job_id, status,
                                                       (answer or {}).get("message", "")))
        return status == 200

    # ----- the run --------------------------------------------------------------------------------

    def _log(self, text):
        log_to(self.log_dir, self.fallback_log_dir, text)

    def run(self, job, on_event=None):
        if not job.output.lower().endswith(".png"):
            raise EngineError("bad_parameter", "The engine service sends its result as PNG: name the "
                              "output .png (got %s)." % job.output)
        address = ServiceAddress(self.url, read_token(self.token_file, self.url))
        params, device = job_params(job.options)
        if job.preview_every is not None:
            params["preview-every"] = format_float(job.preview_every)
        body, content_type = multipart_body(params, job.content, job.styles)
        log_file, log_path = nst_engine.open_log(self.log_dir, self.fallback_log_dir)
        with log_file:
            log_file.write(nst_engine.to_bytes(
                "\n===== %s  client pid %d\nPOST %s%s/jobs  params %s\n" % (
                    time.strftime("%Y-%m-%d %H:%M:%S"), os.getpid(), self.url, API,
                    json.dumps(params, sort_keys=True))))
            log_file.flush()
            record = RunRecord()
            with self._lock:
                self._address, self._job_id, self._running = address, None, True
                self._cancel_requested = self._stop_requested = False
            outcome = None
            try:
                result = self._run(address, job, body, content_type, device, record, on_event,
                                   log_path)
                outcome = "done"
                return result
            except EngineError as exc:
                outcome = exc.code
                raise EngineError(exc.code, "%s Engine log: %s" % (exc.message, log_path), log_path)
            finally:
                with self._lock:
                    self._running = False
                    job_id, self._job_id = self._job_id, None
                self._remove_preview(job)
                if outcome is None:  # on_event raised, or Ctrl-C: the job must not run on
                    if job_id is not None:
                        self._post(address, job_id, "cancel")
                    outcome = "ended by the caller"
                log_file.write(nst_engine.log_line("outcome: %s via %s (job %s) after %.1f s, %s" % (
                    "done" if outcome == "done" else "cancelled" if outcome == "cancelled"
                    else "error %s" % outcome, self.url, job_id, record.seconds(),
                    record.steps_text())))

    def _run(self, address, job, body, content_type, device, record, on_event, log_path):
        connection, response = address.request("POST", API + "/jobs", body, content_type)
        try:
            if response.status != 200:
                try:
                    answer = json.loads(response.read().decode("utf-8"))
                except (ValueError, socket.error, IOError, OSError, httplib.HTTPException):
                    answer = None
                raise address.refusal(response.status, answer, self.token_file)
            if device not in (None, "auto"):
                self._warn_device(device, address, on_event)
            end = self._follow(address, response, record, on_event, job)
        finally:
            connection.close()
        if end.get("event") == "error":
            code, message = failure_message(end, end.get("exit_code"), None, [], "the service")
            raise EngineError(code, "%s (engine service at %s)" % (message, self.url))
        self._download(address, end, job.output)
        self._forget(address)
        return dict(end, output=os.path.abspath(job.output), log_path=log_path)

    def _warn_device(self, device, address, on_event):
        try:
            chosen = address.health().get("device", "?")
        except EngineError:
            chosen = "?"
        if on_event is not None:
            on_event({"event": "warning", "message": "The device setting (%s) does not apply to the "
                      "engine service at %s: it runs on its own device (%s)." % (device, self.url,
                                                                                 chosen)})

    def _follow(self, address, response, record, on_event, job):
        """Reads the event stream to its `done` or `error`; returns that event."""
        while True:
            try:
                raw = read_line(response)
            except (socket.error, IOError, OSError, ValueError, httplib.HTTPException) as exc:
                raise self._lost(exc, record)
            if not raw:
                raise self._lost(None, record)
            event = parse_event_line(raw)
            if event is None:
                continue
            kind = event.get("event")
            if kind == "accepted":
                with self._lock:
                    self._job_id = event.get("id")
                    pending = [action for action, wanted in (("cancel", self._cancel_requested),
                                                             ("stop", self._stop_requested))
                               if wanted]
                for action in pending:
                    self._post(address, self._job_id, action)
            if kind == "heartbeat":
                continue
            if kind == "preview":
                event = self._fetch_preview(address, event, job)
                if event is None:
                    continue
            record.add(event)
            if on_event is not None:
                on_event(event)
            if kind in ("done", "error"):
                return event

    def _fetch_preview(self, address, event, job):
        """The preview event with `path` naming a local copy of the service's preview (GET path,
        written atomically to preview.png in the job's output folder, replacing the one before),
        so that the caller sees the same event from every transport; None when the download
        failed (a missed preview is no failure of the run: the log says why)."""
        local = os.path.join(job.preview_folder(), "preview.png")
        try:
            self._get_png(address, event.get("path") or "%s/jobs/%s/preview" % (API, self._job_id),
                          local, "preview")
        except EngineError as exc:
            self._log("preview of job %s not shown: %s" % (self._job_id, exc.message))
            return None
        return dict(event, path=local)

    @staticmethod
    def _remove_preview(job):
        """Like the engine's own previews, the local copy goes when the run ends."""
        if job.preview_every is None:
            return
        try:
            os.remove(os.path.join(job.preview_folder(), "preview.png"))
        except OSError:
            pass

    def _lost(self, exc, record):
        return EngineError(
            "connection_lost",
            "The connection to the engine service at %s broke off during the run (%s, %s). The "
            "image was not changed. Is the service still running? Run the filter again; the "
            "service's own log says what happened on its side."
            % (self.url, exc or "the stream ended without a result", record.steps_text()))

    def _download(self, address, done, output):
        """GET the result into output, atomically: a partial download never stands at output."""
        # The service names its paths relative to its base address (under a proxy's prefix too).
        path = done.get("output") or "%s/jobs/%s/result" % (API, self._job_id)
        self._get_png(address, path, output, "result")

    def _get_png(self, address, path, output, what):
        """GET a PNG (the result or a preview) into output, atomically."""
        connection, response = address.request("GET", path)
        partial = "%s.part-%d" % (output, os.getpid())
        try:
            if response.status != 200:
                try:
                    answer = json.loads(response.read().decode("utf-8"))
                except (ValueError, socket.error, IOError, OSError, httplib.HTTPException):
                    answer = None
                raise address.refusal(response.status, answer, self.token_file)
            first = True
            with io.open(partial, "wb") as handle:
                while True:
                    try:
                        chunk = response.read(1 << 16)
                    except (socket.error, IOError, OSError, httplib.HTTPException) as exc:
                        raise EngineError("connection_lost", "The %s's download from %s broke "
                                          "off (%s): run the filter again. The image was not "
                                          "changed." % (what, self.url, exc))
                    if not chunk:
                        break
                    if first and not chunk.startswith(PNG_SIGNATURE[:len(chunk)]):
                        raise EngineError("protocol", "The engine service at %s sent a %s that "
                                          "is not a PNG image." % (self.url, what))
                    first = False
                    handle.write(chunk)
            if first:
                raise EngineError("protocol", "The engine service at %s sent an empty %s."
                                  % (self.url, what))
            if WINDOWS and os.path.exists(output):
                os.remove(output)  # Python 2.7 has no os.replace; rename refuses to overwrite there
            os.rename(partial, output)
        finally:
            connection.close()
            if os.path.exists(partial):
                os.remove(partial)

    def _forget(self, address):
        job_id = self._job_id
        try:
            address.call("DELETE", "%s/jobs/%s" % (API, job_id))
        except EngineError:
            pass  # the service forgets it by itself after its result's time to live


# ---------------------------------------------------------------------------------------------
# The local warm service


def free_port():
    """A TCP port free on 127.0.0.1 now (the service binds it a moment later)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
    finally:
        probe.close()


def process_alive(pid):
    """Whether a process with this id runs (POSIX); on Windows we cannot tell cheaply: True."""
    if WINDOWS:
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def write_json_atomically(path, data):
    # A partial file of its own for every write: the dialog's warm-up thread and a run in the same
    # process may write the service's state at the same moment (one name per process let one rename
    # the other's file away).
    descriptor, partial = tempfile.mkstemp(prefix=os.path.basename(path) + ".part-",
                                           dir=os.path.dirname(path) or ".")
    try:
        with io.open(descriptor, "wb") as handle:
            handle.write(json.dumps(data, sort_keys=True, indent=1).encode("utf-8"))
        if WINDOWS and os.path.exists(path):
            os.remove(path)
        os.rename(partial, path)
    except BaseException:
        try:
            os.remove(partial)
        except OSError:
            pass
        raise


def read_json(path):
    try:
        with io.open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except (IOError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
        self.env = nst_engine.clean_environment(os.environ) if env is None else env
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
        elif not isinstance(pid, int) or not process_alive(pid):
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
        try:
            os.remove(self.state_file)
        except OSError:
            pass
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
                    nst_engine.read_log_tail(self.service_log, self._log_offset, 3)))
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
            nst_engine.rotate_log(self.service_log)
            log_file = io.open(self.service_log, "ab")
        except (IOError, OSError) as exc:
            return None, self._failed("its log %s cannot be written (%s)" % (self.service_log, exc))
        with log_file:
            log_file.write(nst_engine.to_bytes("\n===== %s  started by the plug-in (pid %d)\n%s\n" % (
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


class LocalServiceEngine(object):
    """engine_service "local": jobs go to a warm service on this machine (LocalService), started by
    the first run; when it cannot start, the job runs in an engine process of its own
    (nst_engine.SubprocessEngine) and the engine log says why. Same interface as the others."""

    def __init__(self, config, fallback_log_dir):
        self.config = config
        self.fallback_log_dir = fallback_log_dir
        self.state_dir = config.log_dir or fallback_log_dir
        self.subprocess_engine = nst_engine.SubprocessEngine(config.engine_python, config.log_dir,
                                                             fallback_log_dir)
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
        _params, device = job_params(job.options)
        service = LocalService(self.config.engine_python, self.config.version, device or "auto",
                               self.state_dir, self.config.service_idle_minutes * 60.0)
        url, why = service.address()
        for note in service.notes:
            self._log(note)
        if url is not None:
            # The service runs on the job's device: the option is not sent again.
            options = list(job.options)
            if "--device" in options:
                del options[options.index("--device"):options.index("--device") + 2]
            engine = HttpEngine(url, service.token_file, self.config.log_dir, self.fallback_log_dir)
            self._active = engine
            try:
                return engine.run(Job(job.content, job.styles, job.output, options, job.preview_every),
                                  on_event)
            except EngineError as exc:
                if exc.code != "unreachable":
                    raise
                why = "it stopped answering (%s)" % exc.message  # nothing ran there: run it here
        self._log("the warm engine service is not used for this run: %s. The job runs in an engine "
                  "process of its own." % why)
        self._active = self.subprocess_engine
        return self.subprocess_engine.run(job, on_event)
