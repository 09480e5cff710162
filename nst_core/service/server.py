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
import secrets
import shutil
import signal
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
from .token import TOKEN_FILE_NAME, default_token_file, load_or_create_token, token_matches

log = logging.getLogger("nst_core.service")

API = "/v1"
DEFAULT_PORT = 8765
DEFAULT_QUEUE = 4
DEFAULT_MAX_UPLOAD_MB = 64
DEFAULT_MAX_PIXELS = 40_000_000  # 8000 x 5000; a 4096 x 3072 layer is 12.6 MP
DEFAULT_RESULT_TTL = 600
MAX_STYLES = 16
MAX_PARAMS_BYTES = 64 * 1024
# Silence on the stream for this long sends a `heartbeat` line: proxies (nginx's proxy_read_timeout
# is 60 s) keep the connection, and a client that went away is noticed at the failed write.
HEARTBEAT_SECONDS = 10.0
KEPT_RESULTS = 16  # finished results held for download at most, oldest dropped first

JSON_LINES = "application/x-ndjson"


# ----- uploads ----------------------------------------------------------------------------------

class TooLarge(BadInput):
    """An upload over the service's limits (HTTP 413)."""

    code = "too_large"


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

    def __init__(self, folder):
        self.id = f"{next(self._ids)}-{secrets.token_hex(4)}"
        self.folder = folder  # the uploads; removed when the job ends, whatever the end
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

    def cancel(self, reason):
        if not self.cancel_event.is_set():
            self.cancel_reason = reason
            self.cancel_event.set()

    def remove_files(self):
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


class Service:
    """The engine, its queue and the jobs' records; all methods run on the event loop's thread."""

    def __init__(self, stylizer, token, queue_size=DEFAULT_QUEUE, max_upload_bytes=DEFAULT_MAX_UPLOAD_MB << 20,
                 max_pixels=DEFAULT_MAX_PIXELS, result_ttl=DEFAULT_RESULT_TTL):
        self.stylizer = stylizer
        self.token = token
        self.queue_size = queue_size
        self.max_upload_bytes = max_upload_bytes
        self.max_pixels = max_pixels
        self.result_ttl = result_ttl
        self.jobs = {}
        self.waiting = []
        self.running = None
        self.receiving = 0  # requests holding a place while their upload arrives
        self.counters = {"jobs_done": 0, "jobs_failed": 0, "jobs_cancelled": 0}
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="nst-engine")
        self.wakeup = asyncio.Event()
        self.closing = False
        self.last_active = time.monotonic()  # the last authorised request or finished job (--idle-exit)

    # ----- queue ---------------------------------------------------------------------------------

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
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            return "failed", _error_line(NSTError(
                f"internal error ({type(error).__name__}: {error}); the traceback is in the service's log. "
                "Please report it."))

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
                       "max_styles": MAX_STYLES, "result_ttl": self.result_ttl},
            "stats": dict(self.counters, style_cache=stylizer.style_cache.stats()),
        }


def _load_upload(upload, role):
    from ..engine.imageio import load_image

    path, label = upload
    try:
        return load_image(path, role)
    except BadInput as error:  # the message names the service's temporary path: name the upload instead
        raise BadInput(str(error).replace(path, label)) from None


def _png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _error_line(error):
    return encode_event("error", code=error.code, exit_code=error.exit_code, message=str(error))


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
        if not token_matches(request.headers.get("Authorization"), service.token):
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
        except Exception:
            log.error("request %s %s failed:\n%s", request.method, request.path, traceback.format_exc())
            return refuse(500, "internal", "internal error in the service; the traceback is in its log")

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
        job = Job(tempfile.mkdtemp(prefix="nst-serve-"))
        service.receiving += 1  # holds its place while the upload arrives: a full queue stays full
        accepted = False
        try:
            await _receive(request, job, service)
            job.params, job.preview_every = await asyncio.get_running_loop().run_in_executor(
                None, _check_job, job, service.max_pixels)
            accepted = True
        except TooLarge as error:
            return refuse(413, error.code, str(error))
        except BadInput as error:
            return refuse(400, error.code, str(error))
        finally:
            service.receiving -= 1
            if not accepted:  # refused, or the client went away during the upload
                job.remove_files()
        service.jobs[job.id] = job
        service.enqueue(job)
        return await _stream(request, job, service)

    async def result(request):
        job = service.jobs.get(request.match_info["id"])
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
        job = service.jobs.get(request.match_info["id"])
        if job is None:
            return refuse(404, "not_found", "no such job (finished long ago, or never existed)")
        if job.preview_png is None:
            return refuse(409, "not_ready", f"job {job.id} has no preview yet: ask for one with the job "
                                            "parameter preview-every, and fetch it after a 'preview' event")
        return web.Response(body=job.preview_png, content_type="image/png", headers={"Cache-Control": "no-store"})

    async def cancel(request):
        job = service.jobs.get(request.match_info["id"])
        if job is None:
            return refuse(404, "not_found", "no such job (finished long ago, or never existed)")
        if job.finished_at is None:
            job.cancel("cancel requested over HTTP")
            service.drop_waiting(job, "cancel requested over HTTP")
        return web.json_response({"id": job.id, "state": job.state if job.finished_at else "cancelling"})

    async def stop(request):
        job = service.jobs.get(request.match_info["id"])
        if job is None:
            return refuse(404, "not_found", "no such job (finished long ago, or never existed)")
        if job.finished_at is None:
            if job.state in ("queued", "receiving"):
                service.drop_waiting(job, "stop requested over HTTP")
            else:
                job.keep_requested.set()
        return web.json_response({"id": job.id, "state": job.state if job.finished_at else "stopping"})

    async def forget(request):
        job = service.jobs.get(request.match_info["id"])
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


async def _receive(request, job, service):
    """Streams the multipart upload into the job's folder, counting bytes against the limit."""
    reader = await request.multipart()
    total = 0
    params_text = None
    while True:
        part = await reader.next()
        if part is None:
            break
        name = part.name
        if name == "params":
            raw = bytearray()
            while True:  # in chunks, so an endless part is refused at the limit instead of held whole
                chunk = await part.read_chunk(1 << 14)
                if not chunk:
                    break
                raw += chunk
                if len(raw) > MAX_PARAMS_BYTES:
                    raise BadInput(f"the params part is over {MAX_PARAMS_BYTES // 1024} KB: send only the "
                                   "parameters, as a JSON object")
            total += len(raw)
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
                total += len(chunk)
                if total > service.max_upload_bytes:
                    raise TooLarge(_upload_too_large(total, service.max_upload_bytes))
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
        if not finished:  # the client went away (or the service is stopping): nothing runs on for nobody
            job.cancel("the client disconnected")
            service.drop_waiting(job, "the client disconnected")
    return response


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


async def _main(args, stylizer, token, token_file):
    from aiohttp import web

    service = Service(stylizer, token, args.queue, int(args.max_upload_mb * 2**20), args.max_pixels,
                      args.result_ttl)
    runner = web.AppRunner(build_app(service), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    print(f"nst-core serve: listening on {url} ({stylizer.device}, {stylizer.source.describe()}); "
          f"token file {token_file}", flush=True)
    warning = exposure_warning(args.host)
    if warning:
        print(f"nst-core serve: WARNING: {warning}", file=sys.stderr, flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stopping.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C arrives as KeyboardInterrupt
            pass
    dispatcher = asyncio.create_task(service.dispatch())
    idle_watch = asyncio.create_task(_exit_when_idle(service, args.idle_exit, stopping)) if args.idle_exit else None
    try:
        await stopping.wait()
    finally:
        if idle_watch is not None:
            idle_watch.cancel()
        service.closing = True
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

    logging.basicConfig(level=logging.INFO, format="nst-core serve: %(message)s", stream=sys.stderr)
    if not 0 <= args.queue <= 1000:
        raise BadInput("--queue must be from 0 to 1000")
    if not (args.max_upload_mb > 0 and args.max_pixels > 0 and args.result_ttl > 0):
        raise BadInput("--max-upload-mb, --max-pixels and --result-ttl must be > 0")
    if args.idle_exit is not None and not args.idle_exit > 0:
        raise BadInput("--idle-exit must be a number of seconds > 0 (leave it out to run until stopped)")
    token_file = os.path.abspath(args.token_file or default_token_file())
    token = load_or_create_token(token_file)
    # Pillow's decompression-bomb guard, which the engine's own loader turns off for local files
    # (nst_core.imageio): uploads come from the network.
    Image.MAX_IMAGE_PIXELS = args.max_pixels
    stylizer = Stylizer(args.backbone, args.weights, args.weights_format, args.device)
    try:
        asyncio.run(_main(args, stylizer, token, token_file))
    except KeyboardInterrupt:
        pass
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
    serve_parser.add_argument("--queue", type=int, default=DEFAULT_QUEUE,
                              help=f"jobs that may wait behind the running one (default {DEFAULT_QUEUE}); "
                                   "more are answered 503 busy")
    serve_parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                              help=f"largest request body (default {DEFAULT_MAX_UPLOAD_MB})")
    serve_parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                              help=f"largest image, in pixels (default {DEFAULT_MAX_PIXELS})")
    serve_parser.add_argument("--result-ttl", type=float, default=DEFAULT_RESULT_TTL,
                              help=f"seconds a finished result waits to be fetched (default {DEFAULT_RESULT_TTL})")
    serve_parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                              help="stop after this many seconds with no job and no request (default: run "
                                   "until stopped); the GIMP plug-in's local service uses it")
    add_engine_options(serve_parser)
    return serve_parser
