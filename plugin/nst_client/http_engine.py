# -*- coding: utf-8 -*-
"""The HTTP transport of the nst_core engine client: jobs sent to an `nst-core serve` (docs/PROTOCOL.md
"HTTP transport", docs/SERVICE.md) at a given address (this machine's or a GPU machine's), behind
protocol.Engine's interface (HttpEngine). The job's options become the JSON `params` of the job.

Standard library only and Python 2.7-compatible (GIMP 2.10); no torch. What the events mean lives in
protocol.py; the log in engine_log.py.
"""

from __future__ import absolute_import, division, print_function

import binascii
import io
import json
import os
import re
import socket
import threading
import time

try:  # Python 3
    import http.client as httplib
except ImportError:  # Python 2.7 (GIMP 2.10)
    import httplib

try:
    import ssl
except ImportError:  # a Python built without OpenSSL: https:// addresses cannot work
    ssl = None

from .engine_log import log_line, log_to, open_log
from .process import remove_quietly, replace_file, to_bytes
from .protocol import (
    CONFIG_FILE_NAME,
    REST_MASK,
    Engine,
    EngineError,
    FramesJob,
    Job,
    RunRecord,
    failure_message,
    format_float,
    option_items,
    option_text,
    parse_event_line,
)

API = "/v1"
CONNECT_TIMEOUT = 10.0
# The service writes at least a heartbeat line every 10 s: a read that waits this long means the
# connection is gone.
READ_TIMEOUT = 60.0
MAX_EVENT_LINE = 1 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# scheme://host[:port][/prefix] (urlsplit lives in a module whose name differs in 2.7 and 3)
ADDRESS_PATTERN = re.compile(r"^(https?)://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]@?#]+)(?::(\d{1,5}))?(/[^?#]*)?$")


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
            "--server %s --token-file FILE." % (path, service_url, exc, CONFIG_FILE_NAME,
                                               service_url))
    if not token:
        raise EngineError("unauthorized", "The token file %s is empty: copy the service's token file "
                          "again." % path)
    return token


# ---------------------------------------------------------------------------------------------
# The job as a request


def job_params(options):
    """A Job's options -> (the `params` object of the HTTP job, the device they name or None). The
    device is the service's own, chosen when it starts. Numbers travel as the command line's text,
    which the service reads with the command line's own parser."""
    params = {}
    device = None
    for name, value in option_items(options):
        if name == "device":
            device = value
        elif isinstance(value, bool) or value is None:
            params[name] = value
        elif isinstance(value, (list, tuple)):
            params[name] = [float(part) for part in value]
        else:
            params[name] = option_text(value)
    return params, device


def multipart_body(params, content_path, style_paths, mask_paths=None):
    """(body bytes, Content-Type) of the job: parts params, content, style..., and for regions
    mask... (one per style, in the styles' order; REST_MASK travels as a part holding that word)
    (PROTOCOL.md "HTTP transport")."""
    boundary = "nst-" + binascii.hexlify(os.urandom(16)).decode("ascii")
    chunks = [("--%s\r\nContent-Disposition: form-data; name=\"params\"\r\nContent-Type: "
               "application/json\r\n\r\n" % boundary).encode("ascii"),
              json.dumps(params, sort_keys=True).encode("ascii"), b"\r\n"]
    parts = ([("content", content_path)] + [("style", p) for p in style_paths]
             + [("mask", p) for p in mask_paths or []])
    for name, path in parts:
        if name == "mask" and path == REST_MASK:
            data, path = REST_MASK.encode("ascii"), REST_MASK
        else:
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
                              % (url, CONFIG_FILE_NAME))
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
            "computer. The image was not changed." % (self.url, exc, CONFIG_FILE_NAME))

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
                   + CONFIG_FILE_NAME, self.url))
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
                % (self.url, CONFIG_FILE_NAME))
        code = answer.get("code") or ("bad_input" if 400 <= status < 500 else "internal")
        return EngineError(code, "The engine service at %s refused the job: %s" % (self.url, said))


class SentRun(object):
    """A run being sent to the service: what the caller asked of it (cancel, stop) and the service
    job under way (its address, and its id once the service named it). HttpEngine's cancel() and
    stop() and the run's own thread share it, under the engine's lock."""

    def __init__(self):
        self.cancel = False
        self.stop = False
        self.address = None
        self.job_id = None
        self.job_running = False

    def begin_job(self, address):
        self.address, self.job_id, self.job_running = address, None, True

    def end_job(self):
        """The id of the job that ended (None when the service never named it)."""
        job_id, self.job_id, self.job_running = self.job_id, None, False
        return job_id

    def pending(self):
        """What was asked before the service named the job, to be sent now."""
        return [action for action, wanted in (("cancel", self.cancel), ("stop", self.stop)) if wanted]


class SentSequence(SentRun):
    """A FramesJob being sent as frame jobs of one new sequence of the service's (PROTOCOL.md "Frame
    jobs"): all the client keeps of it. What the caller asks holds for the frame under way and every
    frame after it, between two frames' jobs too. The service styles one frame per job and knows
    neither the sequence's length nor its pace: the frames' events get them here (relay), with the
    time left for the whole sequence (estimate: the current frame's own forecast plus the frames
    after it at the mean time of the frames done after the first, which styles from scratch and
    takes longer; before any, the first frame's, as the engine's stylize-frames reckons it). The
    frames done make its one `done` (done_event)."""

    def __init__(self, count, temporal_weight=None, clock=time.time):
        SentRun.__init__(self)
        self.name = "gimp-%d-%s" % (os.getpid(), binascii.hexlify(os.urandom(6)).decode("ascii"))
        self.temporal_weight = temporal_weight
        self.count = count
        self.clock = clock
        self.start = clock()
        self.times = []  # seconds of each frame done
        self.outputs = []
        self.frame_stats = []

    def estimate(self, frame, frame_fraction, frame_eta):
        """(sequence_fraction, sequence_eta or None) while frame `frame` (1-based) is frame_fraction
        done with frame_eta seconds left."""
        elapsed = self.clock() - self.start
        later = self.times[1:]
        per_frame = (sum(later) / len(later)) if later else (self.times[0] if self.times else None)
        remaining_after = self.count - frame
        if frame_eta is None or (per_frame is None and remaining_after > 0):
            return (frame - 1 + (frame_fraction or 0.0)) / float(self.count), None
        eta = frame_eta + remaining_after * (per_frame or 0.0)
        total = elapsed + eta
        return (elapsed / total if total > 0 else 1.0), eta

    def finished(self, seconds):
        self.times.append(float(seconds))

    def relay(self, number, on_event):
        """The on_event of frame `number`'s job: its events as stylize-frames sends them, the frame's
        number and the sequence's length, fraction and time left added; its own `done` held back
        (the sequence's comes once, at the end)."""
        def relay_event(event):
            kind = event.get("event")
            if kind == "done":
                return
            if kind in ("frame_start", "progress", "frame_done"):
                event = dict(event, frame=number, frames=self.count)
            if kind == "progress":
                eta = event.get("eta")
                fraction, sequence_eta = self.estimate(
                    number, event.get("fraction"),
                    eta if isinstance(eta, (int, float)) and not isinstance(eta, bool) else None)
                event.update(sequence_fraction=fraction, sequence_eta=sequence_eta)
            elif kind == "frame_done":
                self.finished(event.get("seconds") or 0.0)
                fraction, sequence_eta = self.estimate(number, 1.0, 0.0)
                event.update(sequence_fraction=fraction, sequence_eta=sequence_eta)
            if on_event is not None:
                on_event(event)
        return relay_event

    def frame_done(self, number, done):
        """Keeps frame `number`'s result; True when it was stopped (no frame follows it)."""
        self.outputs.append(done["output"])
        self.frame_stats.append(dict(done.get("stats") or {}, frame=number))
        return self.frame_stats[-1].get("stop_reason") == "stopped"

    def done_event(self, output):
        """The sequence's `done`, as stylize-frames sends it: the frames done, their stats."""
        stopped = len(self.outputs) < self.count or any(stats.get("stop_reason") == "stopped"
                                                        for stats in self.frame_stats)
        return {"event": "done", "output": os.path.abspath(output), "outputs": list(self.outputs),
                "stats": {"frames": self.frame_stats, "frames_done": len(self.outputs),
                          "frames_given": self.count, "stop_reason": "stopped" if stopped else "done",
                          "seconds": round(sum(float(stats.get("seconds") or 0.0)
                                               for stats in self.frame_stats), 3)}}


# ---------------------------------------------------------------------------------------------
# The HTTP engine


class HttpEngine(Engine):
    """Runs each job on the nst-core serve at `url`, with the token in `token_file`.

    The interface is protocol.Engine's. run() uploads the job's images, hands on every event of
    the stream (the service's `accepted` and `queued` too), downloads the result to job.output (a
    .png, written atomically) and returns the `done` event with "output" (job.output) and
    "log_path"; the log (nst_engine.log in log_dir, else fallback_log_dir) gets a line per run and
    its outcome. cancel() and stop() are requests to the service (POST .../cancel, .../stop). A
    FramesJob runs as one job per frame of a sequence of the service's (_run_frames).
    """

    def __init__(self, url, token_file, log_dir, fallback_log_dir):
        self.url = url.rstrip("/")
        self.token_file = token_file
        self.log_dir = log_dir
        self.fallback_log_dir = fallback_log_dir
        self._lock = threading.Lock()
        self._sent = None  # the run under way: a SentRun, or a FramesJob's SentSequence

    # ----- cancel and stop ------------------------------------------------------------------------

    def cancel(self):
        """Ends the run under way without a result: run() then raises EngineError("cancelled")."""
        return self._ask("cancel")

    def stop(self):
        """Asks the service to end the run early and keep its best result (POST .../stop); run() then
        returns its done event (a FramesJob's with the frames done, the one under way included).
        False when there is no run, or the service did not take the request."""
        return self._ask("stop")

    def _ask(self, action):
        with self._lock:
            sent = self._sent
            if sent is None:
                return False
            setattr(sent, action, True)
            if not sent.job_running:
                return True  # a sequence between two frames' jobs: the next one is not sent
            job_id, address = sent.job_id, sent.address
        if job_id is None:
            return True  # run() sends it as soon as the service has named the job
        return self._post(address, job_id, action)

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
        """Runs a Job, or a FramesJob as one service job per frame (_run_frames)."""
        if isinstance(job, FramesJob):
            return self._run_frames(job, on_event)
        return self._run_one(job, on_event)

    def _run_one(self, job, on_event, sequence=None, tell_device=True):
        """One job on the service, alone or (sequence: a SentSequence) as a frame of that sequence;
        tell_device: whether to warn that the job's device is not the service's."""
        if not job.output.lower().endswith(".png"):
            raise EngineError("bad_parameter", "The engine service sends its result as PNG: name the "
                              "output .png (got %s)." % job.output)
        address = ServiceAddress(self.url, read_token(self.token_file, self.url))
        params, device = job_params(job.options)
        if job.preview_every is not None:
            params["preview-every"] = format_float(job.preview_every)
        if job.region_weights is not None:
            params["region-weight"] = list(job.region_weights)
        if sequence is not None:  # numbers as they are, not as the command line's text
            params.update({"sequence": sequence.name, "temporal-weight": sequence.temporal_weight})
        if not tell_device:
            device = None
        body, content_type = multipart_body(params, job.content, job.styles, job.masks)
        log_file, log_path = open_log(self.log_dir, self.fallback_log_dir)
        with log_file:
            log_file.write(to_bytes(
                "\n===== %s  client pid %d\nPOST %s%s/jobs  params %s\n" % (
                    time.strftime("%Y-%m-%d %H:%M:%S"), os.getpid(), self.url, API,
                    json.dumps(params, sort_keys=True))))
            log_file.flush()
            record = RunRecord()
            # A frame's job starts with what was asked of its sequence.
            sent = sequence or SentRun()
            with self._lock:
                sent.begin_job(address)
                self._sent = sent
            outcome = None
            try:
                result = self._run(sent, job, body, content_type, device, record, on_event,
                                   log_path)
                outcome = "done"
                return result
            except EngineError as exc:
                outcome = exc.code
                raise EngineError(exc.code, "%s Engine log: %s" % (exc.message, log_path), log_path)
            finally:
                with self._lock:
                    job_id = sent.end_job()
                    if sequence is None:
                        self._sent = None
                self._remove_preview(job)
                if outcome is None:  # on_event raised, or Ctrl-C: the job must not run on
                    if job_id is not None:
                        self._post(address, job_id, "cancel")
                    outcome = "ended by the caller"
                log_file.write(log_line("outcome: %s via %s (job %s) after %.1f s, %s" % (
                    "done" if outcome == "done" else "cancelled" if outcome == "cancelled"
                    else "error %s" % outcome, self.url, job_id, record.seconds(),
                    record.steps_text())))

    def _refusal(self, address, response):
        """The EngineError for a response other than 200, with the service's JSON answer if any."""
        try:
            answer = json.loads(response.read().decode("utf-8"))
        except (ValueError, socket.error, IOError, OSError, httplib.HTTPException):
            answer = None
        return address.refusal(response.status, answer, self.token_file)

    def _run(self, sent, job, body, content_type, device, record, on_event, log_path):
        address = sent.address
        connection, response = address.request("POST", API + "/jobs", body, content_type)
        try:
            if response.status != 200:
                raise self._refusal(address, response)
            if device not in (None, "auto"):
                self._warn_device(device, address, on_event)
            end = self._follow(sent, response, record, on_event, job)
        finally:
            connection.close()
        if end.get("event") == "error":
            code, message = failure_message(end, end.get("exit_code"), None, [], "the service")
            raise EngineError(code, "%s (engine service at %s)" % (message, self.url))
        self._download(address, end, job.output, sent.job_id)
        self._forget(address, sent.job_id)
        return dict(end, output=os.path.abspath(job.output), log_path=log_path)

    def _run_frames(self, job, on_event):
        """A FramesJob as frame jobs of one new sequence (PROTOCOL.md "Frame jobs"), one after the
        other, each result downloaded into job.output (made here when missing). The caller sees
        the events stylize-frames sends: each frame's own between its frame_start and frame_done,
        with the frame's number, the sequence's length and its fraction and time left (the service
        knows neither: SentSequence), then one `done` with `outputs` and the frames' stats.
        Stop ends the frame under way with its best result so far and styles no more; cancel, or
        a failure, keeps no frame (and removes job.output when this run made it)."""
        made_folder = not os.path.isdir(job.output)
        try:
            if made_folder:
                os.mkdir(job.output)
        except (IOError, OSError) as exc:
            raise EngineError("bad_input", "Could not make the folder %s for the styled frames (%s)."
                              % (job.output, exc))
        sequence = SentSequence(len(job.frames), job.temporal_weight)
        with self._lock:
            self._sent = sequence
        log_path = None
        finished = False
        try:
            for number, frame in enumerate(job.frames, start=1):
                with self._lock:
                    cancelled, stopped = sequence.cancel, sequence.stop
                if cancelled:
                    raise EngineError("cancelled", "Cancelled between two frames: no frame was kept.")
                if stopped and sequence.outputs:
                    break  # asked between two frames: the next would only be started to be stopped
                frame_job = Job(frame, job.styles, job.frame_output(frame), job.options,
                                job.preview_every, preview_dir=job.preview_folder())
                done = self._run_one(frame_job, sequence.relay(number, on_event), sequence,
                                     tell_device=number == 1)
                log_path = done.get("log_path")
                if sequence.frame_done(number, done):
                    break
            finished = True
        finally:
            with self._lock:
                self._sent = None
            if not finished and made_folder:
                for name in os.listdir(job.output):
                    remove_quietly(os.path.join(job.output, name))
                try:
                    os.rmdir(job.output)
                except OSError:
                    pass
        done = sequence.done_event(job.output)
        if on_event is not None:
            on_event(done)
        return dict(done, log_path=log_path)

    def _warn_device(self, device, address, on_event):
        try:
            chosen = address.health().get("device", "?")
        except EngineError:
            chosen = "?"
        if on_event is not None:
            on_event({"event": "warning", "message": "The device setting (%s) does not apply to the "
                      "engine service at %s: it runs on its own device (%s)." % (device, self.url,
                                                                                 chosen)})

    def _follow(self, sent, response, record, on_event, job):
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
                    sent.job_id = event.get("id")
                    pending = sent.pending()
                for action in pending:
                    self._post(sent.address, sent.job_id, action)
            if kind == "heartbeat":
                continue
            if kind == "preview":
                event = self._fetch_preview(sent, event, job)
                if event is None:
                    continue
            record.add(event)
            if on_event is not None:
                on_event(event)
            if kind in ("done", "error"):
                return event

    def _fetch_preview(self, sent, event, job):
        """The preview event with `path` naming a local copy of the service's preview (GET path,
        written atomically to preview.png in the job's output folder, replacing the one before),
        so that the caller sees the same event from every transport; None when the download
        failed (a missed preview is no failure of the run: the log says why)."""
        local = os.path.join(job.preview_folder(), "preview.png")
        try:
            self._get_png(sent.address, event.get("path") or "%s/jobs/%s/preview" % (API, sent.job_id),
                          local, "preview")
        except EngineError as exc:
            self._log("preview of job %s not shown: %s" % (sent.job_id, exc.message))
            return None
        return dict(event, path=local)

    @staticmethod
    def _remove_preview(job):
        """Like the engine's own previews, the local copy goes when the run ends."""
        if job.preview_every is None:
            return
        remove_quietly(os.path.join(job.preview_folder(), "preview.png"))

    def _lost(self, exc, record):
        return EngineError(
            "connection_lost",
            "The connection to the engine service at %s broke off during the run (%s, %s). The "
            "image was not changed. Is the service still running? Run the filter again; the "
            "service's own log says what happened on its side."
            % (self.url, exc or "the stream ended without a result", record.steps_text()))

    def _download(self, address, done, output, job_id):
        """GET the result into output, atomically: a partial download never stands at output."""
        # The service names its paths relative to its base address (under a proxy's prefix too).
        path = done.get("output") or "%s/jobs/%s/result" % (API, job_id)
        self._get_png(address, path, output, "result")

    def _get_png(self, address, path, output, what):
        """GET a PNG (the result or a preview) into output, atomically."""
        connection, response = address.request("GET", path)
        partial = "%s.part-%d" % (output, os.getpid())
        try:
            if response.status != 200:
                raise self._refusal(address, response)
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
            replace_file(partial, output)
        finally:
            connection.close()
            if os.path.exists(partial):
                remove_quietly(partial)

    def _forget(self, address, job_id):
        try:
            address.call("DELETE", "%s/jobs/%s" % (API, job_id))
        except EngineError:
            pass  # the service forgets it by itself after its result's time to live
