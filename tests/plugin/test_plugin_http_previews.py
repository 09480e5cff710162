"""HttpEngine's previews against a small stand-in service (stdlib http.server, no torch, no aiohttp):
each `preview` event is downloaded into the job's output folder and handed on with `path` naming that
local file, as an engine process does; a preview that cannot be downloaded is left out, not fatal.
The real service's previews: tests/plugin/test_plugin_http.py."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from PIL import Image

from nst_client import http_engine, protocol


def png_bytes(color):
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), color).save(buffer, "PNG")
    return buffer.getvalue()


class StandIn(BaseHTTPRequestHandler):
    """POST /v1/jobs streams events with three previews (the second one's download fails);
    GET .../preview serves the newest; GET .../result the result."""

    protocol_version = "HTTP/1.0"
    previews = [png_bytes((255, 0, 0)), None, png_bytes((0, 0, 255))]
    received = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        StandIn.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        events = [{"event": "accepted", "id": "J1"}, {"event": "start", "protocol": 1}]
        for index in range(3):
            events.append({"event": "progress", "iteration": index + 1, "total": 3})
            events.append({"event": "preview", "path": "/v1/jobs/J1/preview?n=%d" % index,
                           "iteration": index + 1, "loss": 1.0, "size": [12, 8]})
        events.append({"event": "done", "output": "/v1/jobs/J1/result", "stats": {}})
        for event in events:
            self.wfile.write((json.dumps(event) + "\n").encode("utf-8"))
            self.wfile.flush()

    def do_GET(self):
        if "/preview" in self.path:
            data = StandIn.previews[int(self.path.rsplit("=", 1)[1])]
        else:
            data = png_bytes((0, 255, 0))
        if data is None:
            self.send_response(409)
            self.end_headers()
            self.wfile.write(b'{"code": "not_ready", "message": "no preview yet"}')
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_DELETE(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def stand_in():
    server = HTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StandIn.received = []
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_previews_are_local_files_and_a_failed_download_is_left_out(stand_in, tmp_path):
    (tmp_path / "token").write_text("secret")
    for name in ("content.png", "style.png"):
        Image.new("RGB", (12, 8)).save(str(tmp_path / name))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    engine = http_engine.HttpEngine(stand_in, str(tmp_path / "token"), str(tmp_path / "logs"),
                                    str(tmp_path))
    job = protocol.Job(str(tmp_path / "content.png"), [str(tmp_path / "style.png")],
                       str(run_dir / "result.png"), {"preset": "fast"}, preview_every=0.5)
    shown = []

    def on_event(event):
        if event["event"] == "preview":
            with Image.open(event["path"]) as picture:
                shown.append((event["path"], event["iteration"], picture.getpixel((0, 0))))
    done = engine.run(job, on_event)
    local = str(run_dir / "preview.png")
    assert shown == [(local, 1, (255, 0, 0)), (local, 3, (0, 0, 255))]
    assert not Path(local).exists()  # gone with the run
    assert done["output"] == str(run_dir / "result.png")
    # the job asked for previews by its parameter
    assert b'"preview-every": "0.5"' in StandIn.received[0]
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    assert "preview of job J1 not shown" in log


def test_a_job_without_previews_does_not_ask_for_them(stand_in, tmp_path):
    (tmp_path / "token").write_text("secret")
    for name in ("content.png", "style.png"):
        Image.new("RGB", (12, 8)).save(str(tmp_path / name))
    engine = http_engine.HttpEngine(stand_in, str(tmp_path / "token"), str(tmp_path / "logs"),
                                    str(tmp_path))
    job = protocol.Job(str(tmp_path / "content.png"), [str(tmp_path / "style.png")],
                       str(tmp_path / "result.png"), {"preset": "fast"})
    engine.run(job)
    assert b"preview-every" not in StandIn.received[0]
