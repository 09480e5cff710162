"""``nst-core serve``: the engine as a long-lived HTTP service (docs/SERVICE.md, docs/PROTOCOL.md).

One :class:`~nst_core.engine.stylizer.Stylizer` stays loaded for the life of the process, so a job skips
importing torch, loading the weights and (for a style seen before) computing the style's targets.
Jobs run one at a time on one engine thread; later ones wait in a bounded queue. Every request
carries the service's token. Events stream back as the JSON lines of the command line's protocol,
one per line of a chunked response; the result is fetched with a second request.

Built on aiohttp (the ``serve`` extra): it is imported by :func:`serve` only, so the rest of the
engine and ``nst-core --help`` never pay for it.
"""

import asyncio
import concurrent.futures
import io
import ipaddress
import itertools
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings

from .. import __version__
from ..errors import BadInput, Cancelled, NSTError, OutOfMemory
from ..options import REST_MASK, add_engine_options, check_style_masks, settings_from_json
from ..protocol import PROTOCOL_VERSION, encode_event
from .token import (
    TOKEN_FILE_NAME,
    Keys,
    add_client,
    default_clients_dir,
    default_token_file,
    list_clients,
    load_or_create_token,
    revoke_client,
)
from .uploads import UploadsFolder, default_uploads_root

log = logging.getLogger("nst_core.service")

API = "/v1"
DEFAULT_PORT = 8765
DEFAULT_QUEUE = 4
DEFAULT_MAX_UPLOAD_MB = 64
DEFAULT_MAX_PIXELS = 40_000_000  # 8000 x 5000; a 4096 x 3072 layer is 12.6 MP
DEFAULT_RESULT_TTL = 600
DEFAULT_UPLOAD_TIMEOUT = 300  # seconds for a whole upload: 64 MB at about 1.7 Mbit/s
DEFAULT_MIN_UPLOAD_RATE = 16  # KB/s, the upload's average once UPLOAD_GRACE_SECONDS have passed
UPLOAD_GRACE_SECONDS = 10.0
UPLOAD_CHECK_SECONDS = 0.5
SHUTDOWN_GRACE_SECONDS = 3.0
DEFAULT_STALL_TIMEOUT = 60  # seconds a job's stream may stay unread (its write buffer full) before it is cancelled
STALL_CHECK_SECONDS = 0.5
# The kernel's send buffer of a job's stream: events are small lines, and a small buffer fills soon
# when the client stops reading, which is what the stall check sees.
STREAM_SEND_BUFFER = 16384
MAX_STYLES = 16
MAX_PARAMS_BYTES = 64 * 1024
# Silence on the stream for this long sends a `heartbeat` line: proxies (nginx's proxy_read_timeout
# is 60 s) keep the connection, and a client that went away is noticed at the failed write.
HEARTBEAT_SECONDS = 10.0
KEPT_RESULTS = 16  # finished results held for download at most, oldest dropped first
# Animations sent frame by frame: the state between frames (the styled frame before, a few MB) of at
# most this many sequences, the least recently used dropped first, each also after result_ttl idle.
MAX_SEQUENCES = 4
SEQUENCE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

JSON_LINES = "application/x-ndjson"
INSTANCE_NAME = re.compile(r"[A-Za-z0-9]{1,32}\Z")


# ----- uploads ----------------------------------------------------------------------------------

class TooLarge(BadInput):
    """An upload over the service's limits (HTTP 413)."""

    code = "too_large"


class Stopping(NSTError):
    """The service is stopping (HTTP 503): an upload under way is answered so, instead of a closed connection."""

    code = "busy"


class TooSlow(BadInput):
    """An upload past its deadline or under the minimum rate (HTTP 408): it would hold a place for nothing."""

    code = "too_slow"


def check_image_header(path, label, max_pixels):
    """Identify an uploaded image from its header and check its size, before anything is decoded."""
    from PIL import Image

    from ..engine.imageio import MIN_SIDE

    limit = f"this service takes at most {max_pixels:,} pixels (nst-core serve --max-pixels): scale it down first"
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb guard warns above MAX_IMAGE_PIXELS (the check below then
            # refuses with the size) and raises above twice that, before reading any pixel.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise TooLarge(f"{label} declares over twice the pixels of the limit (Pillow's decompression-bomb "
                       f"guard): {limit}") from None
    except Image.UnidentifiedImageError:
        raise BadInput(f"{label} is not an image this engine can read (PNG, JPEG, TIFF, WebP, BMP...)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInput(f"{label} is not an image this engine can read (PNG, JPEG, TIFF, WebP, BMP...): "
                       f"{str(exc).replace(path, label)}") from None
    if width * height > max_pixels:
        raise TooLarge(f"{label} is {width}x{height} ({width * height:,} pixels): {limit}")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise BadInput(f"{label} is {width}x{height} pixels: too small to stylise "
                       f"(at least {MIN_SIDE}x{MIN_SIDE})")


# ----- jobs -------------------------------------------------------------------------------------

class Job:
    """One request's work. Its state changes on the event loop's thread only; the engine thread reads
    ``cancel_event`` and hands events back through ``loop.call_soon_threadsafe``."""

    _ids = itertools.count(1)

    prefix = ""  # the service's --instance name and a dash: a proxy routes the job's requests by it

    def __init__(self, folder, owner="default"):
        self.id = f"{self.prefix}{next(self._ids)}-{secrets.token_hex(8)}"
        self.owner = owner  # the client whose token sent it: only that client may see or end it
        self.folder = folder  # the uploads; removed when the job ends, whatever the end
        self.received = 0  # bytes of the upload's parts so far
        self.content = None  # (path, label)
        self.styles = []
        self.masks = []  # (path, label) per style: its region; a part holding REST_MASK: what the others leave
        self.params_json = None
        self.params = None
        self.preview_every = None  # seconds between previews; None: no previews
        self.preview_png = None  # the newest preview, for GET .../preview
        self.state = "receiving"  # -> queued -> running -> done | failed | cancelled
        self.events = asyncio.Queue()
        self.cancel_event = threading.Event()
        self.cancel_reason = ""
        self.keep_requested = threading.Event()
        self.position = None
        self.result_png = None
        self.finished_at = None
        self.sequence = None  # (name, temporal weight) of one frame of an animation, else None

    def describe(self):
        return f"job {self.id} for {self.owner}"

    def cancel(self, reason):
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
            self.cancel_event.set()

    def remove_files(self):
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class Service:
    """The engine, its queue and the jobs' records; all methods run on the event loop's thread.
    ``keys``: a :class:`~nst_core.service.token.Keys`, or one token string (the client ``default``)."""

    def __init__(self, stylizer, keys, queue_size=DEFAULT_QUEUE, max_upload_bytes=DEFAULT_MAX_UPLOAD_MB << 20,
                 max_pixels=DEFAULT_MAX_PIXELS, result_ttl=DEFAULT_RESULT_TTL,
                 upload_timeout=DEFAULT_UPLOAD_TIMEOUT, min_upload_rate=DEFAULT_MIN_UPLOAD_RATE << 10, uploads=None,
                 stall_timeout=DEFAULT_STALL_TIMEOUT):
        self.stylizer = stylizer
        self.keys = Keys(keys, None) if isinstance(keys, str) else keys
        self.queue_size = queue_size
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.result_ttl = result_ttl
        self.upload_timeout = upload_timeout
        self.min_upload_rate = min_upload_rate  # bytes per second
        self.uploads = uploads  # an UploadsFolder; None: the system's temporary folder
        self.stall_timeout = stall_timeout
        self.jobs = {}
        self.waiting = []
        self.running = None
        self.receiving = 0  # requests holding a place while their upload arrives
        self.counters = {"jobs_done": 0, "jobs_failed": 0, "jobs_cancelled": 0}
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nst-engine")
        self.wakeup = asyncio.Event()
        self.closing = False
        self.last_active = time.monotonic()  # the last authorised request or finished job (--idle-exit)
        self.sequences = {}  # name -> FrameSequenceState; read and changed on the engine thread
        self.sequences_lock = threading.Lock()

    # ----- queue ---------------------------------------------------------------------------------

    def new_job_folder(self):
        return self.uploads.job_folder() if self.uploads is not None else tempfile.mkdtemp(prefix="nst-serve-")

    def places_taken(self):
        return (self.running is not None) + len(self.waiting) + self.receiving

    def has_room(self):
        return self.places_taken() < 1 + self.queue_size

    def enqueue(self, job):
        job.state = "queued"
        self.waiting.append(job)
        self.announce_positions()
        self.wakeup.set()

    def announce_positions(self):
        ahead = 1 if self.running is not None else 0
        for index, job in enumerate(self.waiting):
            position = ahead + index
            if position >= 1 and position != job.position:
                job.position = position
                job.events.put_nowait(encode_event("queued", id=job.id, position=position))

    def drop_waiting(self, job, reason):
        if job in self.waiting:
            self.waiting.remove(job)
            self.finish(job, "cancelled", encode_event("error", code=Cancelled.code, exit_code=Cancelled.exit_code,
                                                        message=f"cancelled ({reason}) before it started: "
                                                                "no output was written"))
            self.announce_positions()

    def finish(self, job, state, final_line):
        self.last_active = time.monotonic()
        job.state = state
        job.finished_at = time.monotonic()
        job.remove_files()
        self.counters[{"done": "jobs_done", "failed": "jobs_failed", "cancelled": "jobs_cancelled"}[state]] += 1
        job.events.put_nowait(final_line)
        detail = json.loads(final_line).get("message") if state != "done" else ""
        log.info("%s: %s%s", job.describe(), state, f" ({detail})" if detail else "")

    async def dispatch(self):
        """Runs the waiting jobs one after another on the engine thread, for the life of the service."""
        loop = asyncio.get_running_loop()
        while not self.closing:
            if not self.waiting:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            job = self.waiting.pop(0)
            self.running, job.state = job, "running"
            self.announce_positions()
            try:
                state, line = await loop.run_in_executor(self.executor, self._run_job, job, loop)
            except BaseException:  # the service is shutting down: the engine thread ends with the process
                job.cancel("the service is stopping")
                raise
            finally:
                self.running = None
            self.finish(job, state, line)
            self.announce_positions()

    # ----- the engine thread ---------------------------------------------------------------------

    def _run_job(self, job, loop):
        """On the engine thread: load, stylise, encode. Returns (state, final protocol line)."""
        def emit(event):
            fields = event.as_dict()
            if event.event == "preview":
                # The image goes by GET (a PNG is no JSON line); the newest replaces the one before.
                job.preview_png = _png_bytes(event.image)
                fields["path"] = f"{API}/jobs/{job.id}/preview"
            loop.call_soon_threadsafe(job.events.put_nowait, encode_event(event.event, **fields))

        try:
            if job.cancel_event.is_set():
                raise Cancelled()
            content = _load_upload(job.content, "content")
            styles = [_load_upload(style, "style") for style in job.styles]
            regions = [None if _is_rest(mask) else _load_upload(mask, "style mask") for mask in job.masks] or None
            job.remove_files()  # decoded: the uploads are not needed any more
            if job.sequence is not None:
                result = self._style_frame(job, content, styles, emit)
            else:
                result = self.stylizer.run(content, styles, job.params, on_progress=emit,
                                           should_stop=job.cancel_event.is_set,
                                           should_finish=job.keep_requested.is_set,
                                           preview_every=job.preview_every, regions=regions)
            if job.cancel_event.is_set():
                raise Cancelled()
            job.result_png = _png_bytes(result.image)
            del content, styles
            return "done", encode_event("done", output=f"{API}/jobs/{job.id}/result", stats=result.stats)
        except Cancelled as error:
            message = (f"cancelled ({job.cancel_reason}): no output was written" if job.cancel_reason
                       else str(error))
            return "cancelled", _error_line(Cancelled(message))
        except NSTError as error:
            return "failed", _error_line(error)
        except MemoryError:
            return "failed", _error_line(OutOfMemory("out of memory: send a smaller image or a smaller size"))
        except Exception as error:  # a bug: the traceback goes to the service's log, the client gets one line
            log.error("%s failed:\n%s", job.describe(), traceback.format_exc())
            return "failed", _error_line(NSTError(
                f"internal error ({type(error).__name__}: {error}); the traceback is in the service's log. "
                "Please report it."))

    def _style_frame(self, job, content, styles, emit):
        """On the engine thread: the next frame of the job's sequence (made by its first frame)."""
        from ..engine.frames import FrameSequence
        from ..engine.images import digest

        name, weight = job.sequence
        settings = (json.dumps(job.params.to_dict(), sort_keys=True, default=str),
                    tuple(digest(s.rgb, s.alpha) for s in styles), weight)
        with self.sequences_lock:
            entry = self.sequences.get(name)
        if entry is not None and entry.settings != settings:
            raise BadInput(f"sequence {name!r} was started with other settings, style or temporal-weight: send "
                           "every frame of a sequence with the same ones, or start a new sequence name")
        if entry is None:
            entry = FrameSequenceState(FrameSequence(self.stylizer, styles, job.params, weight), settings)
        result = entry.sequence.style(content, on_progress=emit, should_stop=job.cancel_event.is_set,
                                      should_finish=job.keep_requested.is_set, preview_every=job.preview_every)
        entry.used_at = time.monotonic()
        with self.sequences_lock:
            self.sequences.pop(name, None)
            self.sequences[name] = entry  # the most recently used last
            while len(self.sequences) > MAX_SEQUENCES:
                self.sequences.pop(next(iter(self.sequences)))
        return result

    # ----- records -------------------------------------------------------------------------------

    def purge(self):
        """Forget finished jobs after the result's time to live; keep at most KEPT_RESULTS results."""
        now = time.monotonic()
        finished = sorted((j for j in self.jobs.values() if j.finished_at is not None), key=lambda j: j.finished_at)
        with_result = [j for j in finished if j.result_png is not None]
        for job in finished:
            expired = now - job.finished_at > self.result_ttl
            crowded = job.result_png is not None and job in with_result[:-KEPT_RESULTS]
            if expired or crowded:
                del self.jobs[job.id]
        with self.sequences_lock:
            for name in [n for n, e in self.sequences.items() if now - e.used_at > self.result_ttl]:
                del self.sequences[name]

    def health(self):
        stylizer = self.stylizer
        return {
            "status": "ok", "version": __version__, "protocol": PROTOCOL_VERSION,
            "device": str(stylizer.device), "backbone": stylizer.architecture,
            "weights": stylizer.source.describe(),
            "queue": {"running": int(self.running is not None), "waiting": len(self.waiting),
                      "receiving": self.receiving, "capacity": self.queue_size},
            "stop_and_keep": True,
            "limits": {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                       "max_styles": MAX_STYLES, "result_ttl": self.result_ttl,
                       "upload_timeout": self.upload_timeout, "min_upload_rate": self.min_upload_rate,
                       "stall_timeout": self.stall_timeout},
            "stats": dict(self.counters, style_cache=stylizer.style_cache.stats()),
            "sequences": len(self.sequences),
        }


class FrameSequenceState:
    """A sequence's frames so far (nst_core.engine.frames.FrameSequence) and what it was started with."""

    def __init__(self, sequence, settings):
        self.sequence, self.settings, self.used_at = sequence, settings, time.monotonic()


def frame_job_of(params_json):
    """(name, temporal weight) when a job's params name a ``sequence`` (removed from them), else None."""
    from ..params import DEFAULT_TEMPORAL_WEIGHT

    if not isinstance(params_json, dict) or "sequence" not in params_json:
        if isinstance(params_json, dict) and "temporal-weight" in params_json:
            raise BadInput("parameter 'temporal-weight' is for frames of an animation: give 'sequence' too")
        return None
    name = params_json.pop("sequence")
    weight = params_json.pop("temporal-weight", DEFAULT_TEMPORAL_WEIGHT)
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or not set(name) <= SEQUENCE_NAME_CHARS:
        raise BadInput("parameter 'sequence' names an animation's frames: 1 to 64 letters, digits, '-', '_' or "
                       f"'.', the same for every frame of it; got {name!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise BadInput(f"parameter 'temporal-weight' must be a number >= 0, got {weight!r}")
    return name, float(weight)


def _load_upload(upload, role):
    from ..engine.imageio import load_image

    path, label = upload
    try:
        return load_image(path, role)
    except BadInput as error:  # the message names the service's temporary path: name the upload instead
        # (the engine says "content image PATH", the label already says "content upload 'NAME'")
        raise BadInput(str(error).replace(f"{role} image {path}", label).replace(path, label)) from None


def _png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _error_line(error):
    return encode_event("error", code=error.code, exit_code=error.exit_code, message=str(error))


# ----- the log ---------------------------------------------------------------------------------

class ClientFaultsInOneLine(logging.Filter):
    """aiohttp logs a request it cannot parse (a header line too long, too many headers, a bad length) and a
    connection the client reset with a traceback; those are the client's doing, expected on any network: one
    line each. Tracebacks stay for the service's own faults."""

    def filter(self, record):
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (HttpProcessingError, ConnectionError)):
            detail = getattr(exc, "message", None) or str(exc)
            detail = " ".join(str(detail).split())[:200]
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {detail}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


# ----- HTTP -------------------------------------------------------------------------------------

def error_body(code, message, exit_code=None):
    """An HTTP error's JSON body: the shape of the protocol's ``error`` event."""
    if exit_code is None:
        exit_code = BadInput.exit_code if code not in ("busy", "internal") else NSTError.exit_code
    return {"event": "error", "code": code, "exit_code": exit_code, "message": message}


def build_app(service):
    from aiohttp import web

    def refuse(status, code, message, headers=None):
        return web.json_response(error_body(code, message), status=status, headers=headers)

    @web.middleware
    async def guard(request, handler):
        client = service.keys.client_of(request.headers.get("Authorization"))
        request["client"] = client
        if client is None:
            return refuse(401, "unauthorized",
                          "missing or wrong token: send the header 'Authorization: Bearer <token>' with the "
                          f"token from the service's token file ({TOKEN_FILE_NAME} in its data folder, or the "
                          "--token-file it was started with)", {"WWW-Authenticate": "Bearer"})
        if request.path != f"{API}/health":  # a monitor's polling is no use: it keeps nothing alive
            service.last_active = time.monotonic()
        service.purge()
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            hints = {404: "no such address: the service's API is under /v1 (docs/PROTOCOL.md, HTTP)",
                     405: f"{request.method} is not allowed here (docs/PROTOCOL.md, HTTP)"}
            return refuse(exc.status, "not_found" if exc.status == 404 else "bad_request",
                          hints.get(exc.status, exc.reason))
        except asyncio.CancelledError:
            raise
        except ConnectionError as exc:  # the client went away while it was answered: its doing, not ours
            log.info("request %s %s: the client went away (%s)", request.method, request.path, exc)
            raise asyncio.CancelledError() from None
        except Exception:
            log.error("request %s %s failed:\n%s", request.method, request.path, traceback.format_exc())
            return refuse(500, "internal", "internal error in the service; the traceback is in its log")

    def own_job(request):
        """The job the address names, when the request's client sent it; another client's job is as
        unknown to it as one that never existed (404)."""
        job = service.jobs.get(request.match_info["id"])
        return job if job is not None and job.owner == request["client"] else None

    async def health(request):
        return web.json_response(service.health())

    async def submit(request):
        if service.closing:
            return refuse(503, "busy", "the service is shutting down: try again when it is back")
        if not service.has_room():
            return refuse(503, "busy", f"the service is busy: one job running and {service.queue_size} "
                                       "waiting; try again later", {"Retry-After": "30"})
        if request.content_length is not None and request.content_length > service.max_upload_bytes:
            return refuse(413, "too_large", _upload_too_large(request.content_length, service.max_upload_bytes))
        if not request.content_type.startswith("multipart/"):
            return refuse(400, "bad_input", "send the job as multipart/form-data: a part 'content' (the image), "
                                           "one part 'style' per style image, and a part 'params' (JSON)")
        job = Job(service.new_job_folder(), request["client"])
        service.receiving += 1  # holds its place while the upload arrives: a full queue stays full
        accepted = False
        try:
            await _receive_in_time(request, job, service)
            job.params, job.preview_every = await asyncio.get_running_loop().run_in_executor(
                None, _check_job, job, service.max_pixels)
            accepted = True
        except TooLarge as error:
            return refuse(413, error.code, str(error))
        except TooSlow as error:
            return refuse(408, error.code, str(error), {"Connection": "close"})
        except Stopping as error:
            return refuse(503, error.code, str(error), {"Connection": "close"})
        except BadInput as error:
            return refuse(400, error.code, str(error))
        finally:
            service.receiving -= 1
            if not accepted:  # refused, or the client went away during the upload
                job.remove_files()
        service.jobs[job.id] = job
        log.info("%s: accepted", job.describe())
        service.enqueue(job)
        return await _stream(request, job, service)

    async def result(request):
        job = own_job(request)
        if job is None:
            return refuse(404, "not_found", "no such job: it never existed, or its result expired "
                                            f"({service.result_ttl} s after it finished)")
        if job.result_png is None:
            state = {"queued": "is still waiting", "running": "is still running", "receiving": "is still uploading"}
            return refuse(409, "not_ready", f"job {job.id} {state.get(job.state, 'ended without a result')}: "
                                            "fetch the result after its 'done' event")
        return web.Response(body=job.result_png, content_type="image/png",
                            headers={"Cache-Control": "no-store"})

    async def preview(request):
        job = own_job(request)
        if job is None:
            return refuse(404, "not_found", "no such job (finished long ago, or never existed)")
        if job.preview_png is None:
            return refuse(409, "not_ready", f"job {job.id} has no preview yet: ask for one with the job "
                                            "parameter preview-every, and fetch it after a 'preview' event")
        return web.Response(body=job.preview_png, content_type="image/png", headers={"Cache-Control": "no-store"})

    async def cancel(request):
        job = own_job(request)
        if job is None:
            return refuse(404, "not_found", "no such job (finished long ago, or never existed)")
        if job.finished_at is None:
            job.cancel("cancel requested over HTTP")
            service.drop_waiting(job, "cancel requested over HTTP")
        return web.json_response({"id": job.id, "state": job.state if job.finished_at else "cancelling"})

    async def stop(request):
        job = own_job(request)
        if job is None:
            return refuse(404, "not_found", "no such job (finished long ago, or never existed)")
        if job.finished_at is None:
            if job.state in ("queued", "receiving"):
                service.drop_waiting(job, "stop requested over HTTP")
            else:
                job.keep_requested.set()
        return web.json_response({"id": job.id, "state": job.state if job.finished_at else "stopping"})

    async def forget(request):
        job = own_job(request)
        if job is None:
            return refuse(404, "not_found", "no such job (finished long ago, or never existed)")
        if job.finished_at is None:
            return refuse(409, "not_ready", f"job {job.id} has not finished: cancel it first")
        del service.jobs[job.id]
        return web.json_response({"id": job.id, "state": "forgotten"})

    app = web.Application(middlewares=[guard])
    app.router.add_get(f"{API}/health", health)
    app.router.add_post(f"{API}/jobs", submit)
    app.router.add_get(f"{API}/jobs/{{id}}/result", result)
    app.router.add_get(f"{API}/jobs/{{id}}/preview", preview)
    app.router.add_post(f"{API}/jobs/{{id}}/cancel", cancel)
    app.router.add_post(f"{API}/jobs/{{id}}/stop", stop)
    app.router.add_delete(f"{API}/jobs/{{id}}", forget)
    return app


def _upload_too_large(size, limit):
    return (f"the upload is {size / 2**20:.1f} MB and this service takes at most {limit / 2**20:.1f} MB "
            "(nst-core serve --max-upload-mb): send smaller images")


async def _receive_in_time(request, job, service):
    """:func:`_receive`, cut off when the upload passes --upload-timeout, or arrives slower on average than
    --min-upload-rate once the first UPLOAD_GRACE_SECONDS are over: a trickling client holds its place in
    the queue for a bounded time only."""
    receiving = asyncio.ensure_future(_receive(request, job, service))
    started = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({receiving}, timeout=UPLOAD_CHECK_SECONDS)
            if done:
                return receiving.result()
            if service.closing:
                raise Stopping("the service is stopping: send the job again when it is back")
            elapsed = time.monotonic() - started
            if elapsed > service.upload_timeout:
                raise TooSlow(f"the upload took longer than {service.upload_timeout:g} s (nst-core serve "
                              "--upload-timeout): send smaller images, or over a faster link")
            if elapsed > UPLOAD_GRACE_SECONDS and job.received < service.min_upload_rate * elapsed:
                raise TooSlow(f"the upload arrives at {job.received / elapsed / 1024:.1f} KB/s, under this "
                              f"service's {service.min_upload_rate / 1024:g} KB/s (nst-core serve "
                              "--min-upload-rate): send it over a faster link")
    finally:
        if not receiving.done():
            receiving.cancel()
            try:
                await receiving
            except (asyncio.CancelledError, Exception):  # cut off on purpose: its own end no longer matters
                pass


async def _receive(request, job, service):
    """Streams the multipart upload into the job's folder, counting every part's bytes against one limit.
    A body aiohttp's reader cannot parse is the client's fault: a 400 that says so."""
    try:
        await _receive_parts(request, job, service)
    except BadInput:
        raise
    except (ValueError, AssertionError, LookupError) as exc:  # aiohttp's multipart reader's errors
        raise BadInput(f"the body is not well-formed multipart/form-data ({exc}): send the parts 'content', "
                       "'style' and 'params', each after the boundary line, and end with the closing "
                       "boundary") from None


async def _receive_parts(request, job, service):
    from aiohttp import BodyPartReader

    reader = await request.multipart()
    params_text = None

    def count(chunk):
        job.received += len(chunk)
        if job.received > service.max_upload_bytes:
            raise TooLarge(_upload_too_large(job.received, service.max_upload_bytes))
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise BadInput("a part is itself multipart: send each image as a plain file part of "
                           "multipart/form-data")
        name = part.name
        if name == "params":
            if params_text is not None:
                raise BadInput("more than one 'params' part: send the parameters as one JSON object")
            raw = bytearray()
            while True:  # in chunks, so an endless part is refused at the limit instead of held whole
                chunk = await part.read_chunk(1 << 14)
                if not chunk:
                    break
                count(chunk)
                raw += chunk
                if len(raw) > MAX_PARAMS_BYTES:
                    raise BadInput(f"the params part is over {MAX_PARAMS_BYTES // 1024} KB: send only the "
                                   "parameters, as a JSON object")
            params_text = raw.decode("utf-8", "replace")
            continue
        if name not in ("content", "style", "mask"):
            raise BadInput(f"unexpected part {name!r}: send 'content', 'style' (one per style image), 'mask' (one "
                           "per style, for regions) and 'params'")
        if name == "content" and job.content is not None:
            raise BadInput("more than one 'content' part: send one content image per job")
        if name == "style" and len(job.styles) >= MAX_STYLES:
            raise BadInput(f"more than {MAX_STYLES} style images: blend at most {MAX_STYLES}")
        if name == "mask" and len(job.masks) >= MAX_STYLES:
            raise BadInput(f"more than {MAX_STYLES} 'mask' parts: send one per style image")
        index = len(job.masks if name == "mask" else job.styles)
        label = f"{name} upload {_printable(part.filename or (name if name == 'content' else f'{name} #{index + 1}'))}"
        path = os.path.join(job.folder, "content" if name == "content" else f"{name}{index}")
        with open(path, "wb") as handle:
            while True:
                chunk = await part.read_chunk(1 << 16)
                if not chunk:
                    break
                count(chunk)
                handle.write(chunk)
        if name == "content":
            job.content = (path, label)
        else:
            (job.masks if name == "mask" else job.styles).append((path, label))
    if job.content is None or not job.styles:
        raise BadInput("a job needs a part 'content' (the image to stylise) and at least one part 'style'")
    try:
        job.params_json = json.loads(params_text) if params_text else {}
    except ValueError as exc:
        raise BadInput(f"the params part is not JSON ({exc}): send an object such as "
                       "{\"preset\": \"fast\", \"size\": 256}") from None


def _check_job(job, max_pixels):
    """Off the event loop: the images' headers and the parameters, before the job takes a place."""
    if job.masks:
        check_style_masks([REST_MASK if _is_rest(mask) else mask for mask in job.masks], len(job.styles),
                          "the job's 'mask' parts")
    for path, label in [job.content] + job.styles + [mask for mask in job.masks if not _is_rest(mask)]:
        check_image_header(path, label, max_pixels)
    job.sequence = frame_job_of(job.params_json)
    return settings_from_json(job.params_json, len(job.styles))


def _is_rest(upload):
    """A 'mask' part that holds the word REST_MASK instead of a picture: what the other masks leave."""
    path = upload[0]
    if os.path.getsize(path) != len(REST_MASK):
        return False
    with open(path, "rb") as handle:
        return handle.read() == REST_MASK.encode("ascii")


def _printable(name):
    name = os.path.basename(str(name))[:80]
    return repr("".join(c if c.isprintable() else "?" for c in name))


async def _stream(request, job, service):
    """The job's events as JSON lines, as they happen; the job is cancelled if the client goes away."""
    from aiohttp import web

    response = web.StreamResponse(headers={"Content-Type": JSON_LINES, "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    finished = False
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        except OSError:
            pass
    watch = asyncio.ensure_future(_cancel_when_unread(request.transport, job, service))
    try:
        await response.prepare(request)
        await response.write((encode_event("accepted", id=job.id, result=f"{API}/jobs/{job.id}/result",
                                           cancel=f"{API}/jobs/{job.id}/cancel",
                                           stop=f"{API}/jobs/{job.id}/stop") + "\n").encode("ascii"))
        while True:
            try:
                line = await asyncio.wait_for(job.events.get(), HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                line = encode_event("heartbeat")
            await response.write((line + "\n").encode("ascii"))
            if job.finished_at is not None and job.events.empty():
                finished = True
                break
        await response.write_eof()
    finally:
        watch.cancel()
        if not finished:  # the client went away (or the service is stopping): nothing runs on for nobody
            job.cancel("the client disconnected")
            service.drop_waiting(job, "the client disconnected")
    return response


async def _cancel_when_unread(transport, job, service):
    """Cancels the job, and drops its connection, once the stream's write buffer has stayed full for
    --stall-timeout seconds: a client that stops reading does not keep the engine busy for nobody."""
    if transport is None:
        return
    stalled_since = None
    while not transport.is_closing():
        await asyncio.sleep(STALL_CHECK_SECONDS)
        if transport.get_write_buffer_size() == 0:
            stalled_since = None
            continue
        stalled_since = stalled_since or time.monotonic()
        if time.monotonic() - stalled_since >= service.stall_timeout:
            reason = (f"the client stopped reading its stream for {service.stall_timeout:g} s "
                      "(nst-core serve --stall-timeout)")
            log.info("%s: %s; cancelling it", job.describe(), reason)
            job.cancel(reason)
            service.drop_waiting(job, reason)
            transport.abort()
            return


# ----- the process ------------------------------------------------------------------------------

def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host):
    """What to tell the person who binds an address other machines can reach (None for loopback)."""
    if is_loopback(host):
        return None
    return (f"{host} is reachable from other machines and this service speaks plain HTTP: images and the "
            "token would cross the network unencrypted. Put a TLS proxy in front (nginx: docs/SERVICE.md), "
            "let only the proxy reach this port, and keep the token file secret.")


async def _main(args, stylizer, keys, token_file, uploads):
    from aiohttp import web

    service = Service(stylizer, keys, args.queue, int(args.max_upload_mb * 2**20), args.max_pixels,
                      args.result_ttl, args.upload_timeout, int(args.min_upload_rate * 1024), uploads,
                      args.stall_timeout)
    # Requests still open at shutdown get this long to end (aiohttp's default is 60 s): uploads are
    # answered 503 within UPLOAD_CHECK_SECONDS, and streams end when their job is cancelled.
    runner = web.AppRunner(build_app(service), handler_cancellation=True, access_log=None,
                           shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    stopping = asyncio.Event()  # handled before the address is printed: whoever read it may stop us
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stopping.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            pass
    host, port = runner.addresses[0][:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    print(f"nst-core serve: listening on {url} ({stylizer.device}, {stylizer.source.describe()}); "
          f"token file {token_file}; clients' token files in {keys.clients_dir}", flush=True)
    warning = exposure_warning(args.host)
    if warning:
        print(f"nst-core serve: WARNING: {warning}", file=sys.stderr, flush=True)
    dispatcher = asyncio.create_task(service.dispatch())
    idle_watch = asyncio.create_task(_exit_when_idle(service, args.idle_exit, stopping)) if args.idle_exit else None
    try:
        await stopping.wait()
    finally:
        if idle_watch is not None:
            idle_watch.cancel()
        service.closing = True  # uploads under way answer 503 at their next check
        for _ in range(int(4 * UPLOAD_CHECK_SECONDS / 0.05)):
            if not service.receiving:
                break
            await asyncio.sleep(0.05)
        for job in list(service.waiting):
            service.drop_waiting(job, "the service is stopping")
        if service.running is not None:
            service.running.cancel("the service is stopping")
        service.wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(dispatcher), 60)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            dispatcher.cancel()
        await runner.cleanup()
        service.executor.shutdown(wait=False)
        print("nst-core serve: stopped", flush=True)


async def _exit_when_idle(service, seconds, stopping):
    """--idle-exit: ends the service after ``seconds`` with no job and no authorised request but health (the GIMP
    plug-in's warm local service is started this way, so that it does not outlive its use)."""
    while not stopping.is_set():
        idle = time.monotonic() - service.last_active
        if service.places_taken() == 0 and idle >= seconds:
            print(f"nst-core serve: idle for {idle:.0f} s (--idle-exit {seconds:g}), stopping", flush=True)
            stopping.set()
            return
        await asyncio.sleep(min(5.0, max(0.2, seconds - idle)))


def serve(args):
    """``nst-core serve``: load the engine, then answer until SIGINT/SIGTERM. Returns an exit code."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise BadInput("nst-core serve needs aiohttp: pip install 'nst-core[serve]' "
                       "(or: pip install aiohttp) into the engine's environment") from None
    from PIL import Image

    from ..engine.stylizer import Stylizer

    token_file = os.path.abspath(args.token_file or default_token_file())
    clients_dir = os.path.abspath(args.clients_dir or default_clients_dir(token_file))
    if args.add_client or args.revoke_client or args.list_clients:
        return manage_clients(args, clients_dir)
    logging.basicConfig(level=logging.INFO, format="nst-core serve: %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.server").addFilter(ClientFaultsInOneLine())
    if not 0 <= args.queue <= 1000:
        raise BadInput("--queue must be from 0 to 1000")
    if not (args.max_upload_mb > 0 and args.max_pixels > 0 and args.result_ttl > 0 and args.upload_timeout > 0
            and args.stall_timeout > 0):
        raise BadInput("--max-upload-mb, --max-pixels, --result-ttl, --upload-timeout and --stall-timeout "
                       "must be > 0")
    if not args.min_upload_rate >= 0:
        raise BadInput("--min-upload-rate must be >= 0 (0: no minimum)")
    if args.idle_exit is not None and not args.idle_exit > 0:
        raise BadInput("--idle-exit must be a number of seconds > 0 (leave it out to run until stopped)")
    if args.instance is not None and not INSTANCE_NAME.match(args.instance):
        raise BadInput(f"--instance {args.instance!r}: give a short name of letters and digits, such as gpu0")
    Job.prefix = f"{args.instance}-" if args.instance else ""
    keys = Keys(load_or_create_token(token_file), clients_dir)
    # Pillow's decompression-bomb guard, which the engine's own loader turns off for local files
    # (nst_core.imageio): uploads come from the network.
    Image.MAX_IMAGE_PIXELS = args.max_pixels
    uploads = UploadsFolder(default_uploads_root())
    if uploads.removed:
        log.info("removed the uploads of %d service(s) that ended without cleaning up (%s)", uploads.removed,
                 uploads.root)
    try:
        stylizer = Stylizer(args.backbone, args.weights, args.weights_format, args.device)
        asyncio.run(_main(args, stylizer, keys, token_file, uploads))
    except KeyboardInterrupt:
        pass
    finally:
        uploads.close()
    return 0


def manage_clients(args, clients_dir):
    """--add-client, --revoke-client, --list-clients: the clients' token files; no engine, no aiohttp."""
    if args.add_client:
        path = add_client(clients_dir, args.add_client)
        print(f"client {args.add_client!r}: token file {path} (mode 0600). Copy it to the client's machine and "
              "pass it there with --token-file; a running service takes it from its next request on.")
    if args.revoke_client:
        path = revoke_client(clients_dir, args.revoke_client)
        print(f"client {args.revoke_client!r} revoked: {path} removed; its token is refused from now on")
    if args.list_clients:
        names = list_clients(clients_dir)
        print(f"clients in {clients_dir}: {', '.join(names) if names else 'none'} (and 'default', the service's "
              "own token file)")
    return 0


def add_serve_parser(commands):
    serve_parser = commands.add_parser(
        "serve", help="run the engine as a long-lived HTTP service (docs/SERVICE.md)",
        description="Keep the engine loaded and take jobs over HTTP, one at a time, with a token. "
                    "Binds 127.0.0.1 unless told otherwise; for other machines put nginx with TLS in "
                    "front (docs/SERVICE.md).")
    serve_parser.add_argument("--host", default="127.0.0.1",
                              help="address to listen on (default 127.0.0.1: this machine only)")
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                              help=f"TCP port (default {DEFAULT_PORT}; 0 = any free port, printed at start)")
    serve_parser.add_argument("--token-file",
                              help=f"where the token is kept (default: {TOKEN_FILE_NAME} in the engine's data "
                                   "folder); made with mode 0600 on first start")
    serve_parser.add_argument("--clients-dir", metavar="DIR",
                              help="the clients' token files, one per client name (default: service-clients "
                                   "beside the token file)")
    clients = serve_parser.add_mutually_exclusive_group()
    clients.add_argument("--add-client", metavar="NAME",
                         help="make a token file for the client NAME in --clients-dir, print its path, and exit")
    clients.add_argument("--revoke-client", metavar="NAME",
                         help="remove the client NAME's token file, and exit: its token is refused at once")
    clients.add_argument("--list-clients", action="store_true", help="list the clients, and exit")
    serve_parser.add_argument("--instance", metavar="NAME",
                              help="this service's name among several behind one proxy: its job ids start with "
                                   "NAME-, so that the proxy sends a job's later requests to it (docs/SERVICE.md)")
    serve_parser.add_argument("--queue", type=int, default=DEFAULT_QUEUE,
                              help=f"jobs that may wait behind the running one (default {DEFAULT_QUEUE}); "
                                   "more are answered 503 busy")
    serve_parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                              help=f"largest request body (default {DEFAULT_MAX_UPLOAD_MB})")
    serve_parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                              help=f"largest image, in pixels (default {DEFAULT_MAX_PIXELS})")
    serve_parser.add_argument("--result-ttl", type=float, default=DEFAULT_RESULT_TTL,
                              help=f"seconds a finished result waits to be fetched (default {DEFAULT_RESULT_TTL})")
    serve_parser.add_argument("--upload-timeout", type=float, default=DEFAULT_UPLOAD_TIMEOUT, metavar="SECONDS",
                              help=f"the most seconds a job's upload may take (default {DEFAULT_UPLOAD_TIMEOUT}); "
                                   "a slower one is answered 408 and frees its place")
    serve_parser.add_argument("--min-upload-rate", type=float, default=DEFAULT_MIN_UPLOAD_RATE, metavar="KB_S",
                              help=f"the slowest average upload, in KB/s, once its first {UPLOAD_GRACE_SECONDS:g} s "
                                   f"are over (default {DEFAULT_MIN_UPLOAD_RATE}; 0: none); slower is answered 408")
    serve_parser.add_argument("--stall-timeout", type=float, default=DEFAULT_STALL_TIMEOUT, metavar="SECONDS",
                              help="cancel a job whose client has not read its stream for this long (the stream's "
                                   f"write buffer full; default {DEFAULT_STALL_TIMEOUT})")
    serve_parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                              help="stop after this many seconds with no job and no request (default: run "
                                   "until stopped); the GIMP plug-in's local service uses it")
    add_engine_options(serve_parser)
    return serve_parser
