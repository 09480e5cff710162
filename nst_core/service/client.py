"""``nst-core stylize --server URL``: the command line's job sent to a running ``nst-core serve``.

Standard library only (urllib), and no torch: the images go up as they are on disk, the events come
back as JSON lines and are shown exactly as a local run shows them, and the result is written with the
same atomic writer. The HTTP API is docs/PROTOCOL.md's *HTTP transport* section.
"""

import json
import os
import queue
import secrets
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request

from ..errors import BadInput, Cancelled, NSTError
from ..options import REST_MASK

# The server writes at least a heartbeat every 10 s; a read that waits this long means the link is gone.
READ_TIMEOUT = 120
CONNECT_TIMEOUT = 30


class RemoteError(NSTError):
    """An error the service reported, with its protocol code and exit code."""

    def __init__(self, code, exit_code, message):
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


class RemoteEvent:
    """A protocol event from the stream, shaped like the engine's event objects for the Reporter."""

    def __init__(self, fields):
        self.fields = {k: v for k, v in fields.items() if k != "event"}
        self.event = fields["event"]
        self.__dict__.update(self.fields)

    def as_dict(self):
        return dict(self.fields)


def multipart(fields, files):
    """(body, content type) of a multipart/form-data request: ``fields`` {name: text}, ``files`` [(name, path)];
    a ``path`` that is bytes is sent as the part's body itself."""
    boundary = "nst-" + secrets.token_hex(16)
    chunks = []
    for name, text in fields.items():
        chunks.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n"
                      f"Content-Type: application/json\r\n\r\n".encode("ascii") + text.encode("utf-8") + b"\r\n")
    for name, path in files:
        if isinstance(path, bytes):
            data, path = path, path.decode("ascii", "replace")
        else:
            with open(path, "rb") as handle:
                data = handle.read()
        filename = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                           for c in os.path.basename(path)) or "image"
        chunks.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                      "Content-Type: application/octet-stream\r\n\r\n".encode("ascii") + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class Connection:
    """The service's base URL and token; every request carries the token."""

    def __init__(self, url, token):
        url = url.rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInput(f"--server {url!r} is not an http:// or https:// address such as http://127.0.0.1:8765")
        self.url = url
        self.token = token

    def open(self, method, path, body=None, content_type=None, timeout=CONNECT_TIMEOUT):
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            raise self._refusal(error) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise NSTError(f"the TLS certificate of {self.url} was not accepted ({reason.verify_message}): "
                               "for a certificate of your own, point SSL_CERT_FILE at it") from None
            raise NSTError(f"cannot reach the service at {self.url} ({reason}): is `nst-core serve` running "
                           "there, and is the address right?") from None
        except (OSError, ValueError) as error:
            raise NSTError(f"lost the connection to {self.url} ({error}): try again") from None

    def _refusal(self, error):
        try:
            body = json.loads(error.read().decode("utf-8"))
            message, code = body["message"], body.get("code", "bad_input")
        except (ValueError, KeyError, TypeError, OSError):
            message, code = f"HTTP {error.code} {error.reason}", "bad_input"
        if error.code == 401:
            message += " (this client sends the token from --token-file)"
        if error.code == 503 or error.code >= 500:
            return RemoteError(code, NSTError.exit_code, f"the service at {self.url} says: {message}")
        return RemoteError(code, BadInput.exit_code, f"the service at {self.url} says: {message}")


def _read_lines(response, events):
    """On a thread: each JSON line of the stream into ``events``; None at the end or on a failure."""
    try:
        for raw in response:
            raw = raw.strip()
            if raw:
                events.put(json.loads(raw.decode("ascii")))
    except (OSError, ValueError) as error:
        events.put(error)
    finally:
        events.put(None)


def stylize_remote(server, token, content, styles, params, output, on_event, should_stop, masks=None):
    """Runs a job on the service at ``server`` and writes its result to ``output``.

    ``params``: the job's JSON object (nst_core.options.json_from_args); ``on_event`` gets each of the
    service's ``queued``, ``start``, ``warning`` and ``progress`` events as a :class:`RemoteEvent`;
    ``should_stop()`` true cancels the job. ``masks``: one mask file per style (regions), or the word
    ``rest`` for the style that takes what the others leave. Returns (the path written, the ``done``
    event's stats).
    """
    from ..engine.imageio import save_image

    connection = Connection(server, token)
    parts = [("content", content)] + [("style", path) for path in styles]
    parts += [("mask", REST_MASK.encode("ascii") if mask == REST_MASK else mask) for mask in masks or []]
    body, content_type = multipart({"params": json.dumps(params)}, parts)
    response = connection.open("POST", "/v1/jobs", body, content_type, timeout=READ_TIMEOUT)
    events = queue.Queue()
    threading.Thread(target=_read_lines, args=(response, events), name="nst-stream", daemon=True).start()
    job_id, cancel_sent = None, False
    try:
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                event = False
            if should_stop() and not cancel_sent:
                cancel_sent = True
                if job_id is None:
                    raise Cancelled()
                try:  # the service then ends the stream with `error` cancelled, which is reported below
                    connection.open("POST", f"/v1/jobs/{job_id}/cancel").close()
                except NSTError:
                    raise Cancelled() from None
            if event is False:
                continue
            if event is None or isinstance(event, Exception):
                raise NSTError(f"the connection to {connection.url} ended before the job did"
                               + (f" ({event})" if event else "") + ": try again")
            name = event.get("event")
            if name == "accepted":
                job_id = event["id"]
            elif name in ("queued", "start", "warning", "progress"):
                on_event(RemoteEvent(event))
            elif name == "error":
                if event.get("code") == Cancelled.code:
                    raise Cancelled(event.get("message") or "cancelled: no output was written")
                raise RemoteError(event.get("code", "internal"), int(event.get("exit_code", 1)),
                                  event.get("message", "the service reported an error without a message"))
            elif name == "done":
                if should_stop():
                    raise Cancelled()
                written = _fetch_result(connection, event["output"], output, save_image)
                _forget(connection, job_id)
                return written, event.get("stats", {})
            # heartbeat and events this client does not know: ignored, as the protocol says
    finally:
        response.close()


def _fetch_result(connection, path, output, save_image):
    import io

    from PIL import Image

    with connection.open("GET", path, timeout=READ_TIMEOUT) as response:
        data = response.read()
    image = Image.open(io.BytesIO(data))
    image.load()
    alpha = None
    if image.mode == "RGBA":
        alpha = image.getchannel("A")
        import numpy as np

        alpha = np.asarray(alpha).copy()
    return save_image(image.convert("RGB"), output, alpha=alpha)


def _forget(connection, job_id):
    try:
        connection.open("DELETE", f"/v1/jobs/{job_id}").close()
    except NSTError:
        pass  # the service forgets it by itself after its result's time to live
