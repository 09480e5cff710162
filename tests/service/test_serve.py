"""``nst-core serve``, the engine as an HTTP service (docs/SERVICE.md, docs/PROTOCOL.md's HTTP section),
tested against a real service in a subprocess on a free loopback port, with the untrained network on
the CPU at tiny sizes. One service serves the whole module, as it would serve a user: each test leaves
it idle (its queue is checked empty at the end of every test that used it).
"""

import http.client
import io
import json
import os
import re
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers.pictures import make_content, make_style
from helpers.protocol_checks import check_fields, documented_events
from helpers.repo import REPO, engine_command
from helpers.service import start_service, stop_service
from nst_core.service.client import multipart

pytest.importorskip("aiohttp", reason="the service needs the serve extra: pip install -e '.[serve]'")

SERVICE_DOC = REPO / "docs" / "SERVICE.md"
QUICK = {"size": 64, "iterations": 2, "ssim": False}
LONG = {"size": 64, "iterations": 5000, "ssim": False}  # minutes: always cancelled long before its end
MAX_PIXELS = 250_000


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-images")
    make_content(alpha=True).save(folder / "content.png")
    # Another picture of the same size: the same working size, so the style's targets can be reused.
    make_content().transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "content2.png")
    make_style().save(folder / "style.png")
    make_style(seed=7).save(folder / "style2.png")
    return folder


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    service = start_service(tmp_path_factory.mktemp("service"), "--queue", "1", "--max-upload-mb", "1",
                            "--max-pixels", MAX_PIXELS)
    yield service
    stop_service(service)


def job_body(images, params, content="content.png", styles=("style.png",)):
    return multipart({"params": json.dumps(params)},
                     [("content", str(images / content))] + [("style", str(images / s)) for s in styles])


class Stream:
    """A job's streaming response, read line by line as it arrives."""

    def __init__(self, service, body, content_type, token=True):
        self.connection = service.connect()
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {service.token}"
        self.connection.request("POST", "/v1/jobs", body=body, headers=headers)
        self.response = self.connection.getresponse()
        self.events = []

    def next(self):
        line = self.response.readline()
        assert line, f"the stream ended after {[e['event'] for e in self.events]}"
        event = json.loads(line)
        self.events.append(event)
        return event

    def until(self, *names):
        while True:
            event = self.next()
            if event["event"] in names:
                return event

    def close(self):
        self.connection.close()


def submit(service, images, params, **files):
    body, content_type = job_body(images, params, **files)
    return Stream(service, body, content_type)


def run_job(service, images, params, **files):
    """A whole job: (events, result PNG bytes)."""
    stream = submit(service, images, params, **files)
    try:
        assert stream.response.status == 200, stream.response.read()
        assert stream.response.getheader("Content-Type").startswith("application/x-ndjson")
        end = stream.until("done", "error")
        assert end["event"] == "done", end
        assert stream.response.readline() == b"", "nothing may follow the done event"
    finally:
        stream.close()
    status, png = service.call("GET", end["output"])
    assert status == 200, png
    return stream.events, png


# ----- health and the token ----------------------------------------------------------------------

def test_health_reports_the_engine_and_an_empty_queue(service):
    health = service.health()
    assert health["status"] == "ok"
    assert health["protocol"] == 1
    assert health["device"] == "cpu"
    assert health["backbone"] == "vgg19"
    assert "random" in health["weights"]
    assert health["queue"] == {"running": 0, "waiting": 0, "receiving": 0, "capacity": 1}
    assert health["limits"]["max_pixels"] == MAX_PIXELS
    from nst_core import __version__

    assert health["version"] == __version__


def test_token_file_is_made_on_first_start_for_its_owner_only(service):
    mode = stat.S_IMODE(service.token_file.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert len(service.token) >= 32


@pytest.mark.parametrize("token", [None, "Bearer wrong-token-wrong-token-wrong", "Basic abc", "Bearer "],
                         ids=["missing", "wrong", "other-scheme", "empty"])
@pytest.mark.parametrize("method,path", [("GET", "/v1/health"), ("POST", "/v1/jobs"),
                                         ("GET", "/v1/jobs/1-x/result"), ("POST", "/v1/jobs/1-x/cancel")])
def test_every_request_without_the_right_token_is_refused(service, images, token, method, path):
    body, content_type = job_body(images, QUICK) if method == "POST" else (None, "text/plain")
    status, answer = service.call(method, path, body=body, headers={"Content-Type": content_type},
                                  token=token or False)
    assert status == 401
    assert answer["event"] == "error" and answer["code"] == "unauthorized"
    assert "Authorization: Bearer" in answer["message"]
    service.wait_idle()
    assert service.job_folders() == []


def test_token_file_that_others_can_read_is_refused(tmp_path):
    from nst_core.errors import BadInput
    from nst_core.service.token import load_or_create_token

    path = tmp_path / "token"
    first = load_or_create_token(str(path))
    assert load_or_create_token(str(path)) == first
    path.chmod(0o644)
    with pytest.raises(BadInput, match="chmod 600"):
        load_or_create_token(str(path))


@pytest.mark.parametrize("host,exposed", [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                          ("127.0.0.2", False), ("0.0.0.0", True), ("192.0.2.10", True),
                                          ("::", True), ("gpu.example.org", True)])
def test_binding_beyond_loopback_warns_and_says_how_to_add_tls(host, exposed):
    from nst_core.service.server import exposure_warning

    warning = exposure_warning(host)
    assert (warning is not None) == exposed
    if exposed:
        assert "TLS" in warning and "docs/SERVICE.md" in warning


# ----- jobs ---------------------------------------------------------------------------------------

def test_two_jobs_in_a_row_reuse_the_network_and_the_style_targets(service, images):
    before = service.wait_idle()["stats"]
    events, png = run_job(service, images, QUICK)
    names = [e["event"] for e in events]
    assert names[0] == "accepted" and names[1] == "start" and names[-1] == "done"
    assert names.count("progress") == 2
    start = events[1]
    assert start["protocol"] == 1 and start["content_size"] == [96, 64]
    progress = [e for e in events if e["event"] == "progress"]
    assert [p["iteration"] for p in progress] == [1, 2] and progress[-1]["total"] == 2
    result = Image.open(io.BytesIO(png))
    assert result.size == (96, 64) and result.mode == "RGBA"  # the content's size and alpha
    alpha = np.asarray(result)[:, :, 3]
    expected_alpha = np.asarray(Image.open(images / "content.png"))[:, :, 3]
    assert np.array_equal(alpha, expected_alpha)
    first = service.wait_idle()["stats"]
    assert first["style_cache"]["misses"] > before["style_cache"]["misses"]  # the style's targets computed

    events, _ = run_job(service, images, QUICK, content="content2.png")  # another content, the same style
    second = service.wait_idle()["stats"]
    assert second["jobs_done"] == first["jobs_done"] + 1
    assert second["style_cache"]["misses"] == first["style_cache"]["misses"]  # nothing recomputed...
    # ...the cached targets were used: the same engine, its network loaded once, served both jobs
    assert second["style_cache"]["hits"] > first["style_cache"]["hits"]
    assert service.job_folders() == []


def http_events_table():
    """{event: documented fields} of the HTTP section's stream table (its own events only)."""
    text = (REPO / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text.split("## HTTP transport", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+`", cells[0]):
            table[cells[0].strip("`")] = set(re.findall(r"`(\w+)`", cells[2].split(":")[0]))
    return table


def test_stream_events_have_the_documented_fields(service, images):
    events, _ = run_job(service, images, dict(QUICK, ssim=True))
    engine_events = documented_events()
    http_events = http_events_table()
    assert http_events["accepted"] == {"id", "result", "cancel", "stop"}
    assert http_events["queued"] == {"id", "position"}
    for event in events:
        name = event["event"]
        if name in ("accepted", "queued"):
            assert set(event) - {"event"} == http_events[name], event
        elif name == "done":  # over HTTP, output is the result's path, not a file's
            check_fields(event, engine_events["done"])
            assert event["output"] == f"/v1/jobs/{events[0]['id']}/result"
        else:
            check_fields(event, engine_events[name])
    assert {e["event"] for e in events} == {"accepted", "start", "progress", "done"}
    service.wait_idle()


def test_same_seed_same_result_whatever_ran_between(service, images):
    seeded = dict(QUICK, seed=3, init="noise")
    _, first = run_job(service, images, seeded)
    _, between = run_job(service, images, dict(QUICK, seed=11, init="noise", **{"preserve-colors": "histogram",
                                                                              "style-weight": 5}),
                         styles=("style2.png", "style.png"))
    _, again = run_job(service, images, seeded)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(first))), np.asarray(Image.open(io.BytesIO(again))))
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(first))),
                              np.asarray(Image.open(io.BytesIO(between))))
    service.wait_idle()


def test_result_can_be_fetched_again_then_forgotten(service, images):
    events, png = run_job(service, images, QUICK)
    path = events[-1]["output"]
    status, again = service.call("GET", path)
    assert status == 200 and again == png
    job_id = events[0]["id"]
    status, answer = service.call("DELETE", f"/v1/jobs/{job_id}")
    assert status == 200 and answer["state"] == "forgotten"
    status, answer = service.call("GET", path)
    assert status == 404 and answer["code"] == "not_found"


def test_queued_job_is_told_its_place_and_a_full_queue_is_busy_at_once(service, images):
    running = submit(service, images, LONG)
    queued = None
    try:
        job_id = running.until("accepted")["id"]
        running.until("progress")
        queued = submit(service, images, QUICK)
        assert queued.until("accepted")
        assert queued.next() == {"event": "queued", "id": queued.events[0]["id"], "position": 1}
        health = service.health()["queue"]
        assert (health["running"], health["waiting"]) == (1, 1)

        body, content_type = job_body(images, QUICK)
        status, answer = service.call("POST", "/v1/jobs", body=body, headers={"Content-Type": content_type})
        assert status == 503 and answer["code"] == "busy" and "try again" in answer["message"]

        status, answer = service.call("POST", f"/v1/jobs/{job_id}/cancel")
        assert status == 200 and answer["state"] == "cancelling"
        end = running.until("done", "error")
        assert end["code"] == "cancelled" and end["exit_code"] == 4
        assert "cancel requested" in end["message"]
        status, answer = service.call("GET", f"/v1/jobs/{job_id}/result")
        assert status == 409 and answer["code"] == "not_ready"

        names = []
        while not names or names[-1] not in ("done", "error"):
            names.append(queued.next()["event"])
        assert names[0] == "start" and names[-1] == "done", names
    finally:
        running.close()
        if queued:
            queued.close()
    health = service.wait_idle()
    assert health["stats"]["jobs_cancelled"] >= 1
    assert service.job_folders() == []


def test_cancel_a_waiting_job_and_the_stop_call(service, images):
    running = submit(service, images, LONG)
    waiting = submit(service, images, QUICK)
    try:
        running_id = running.until("accepted")["id"]
        waiting_id = waiting.until("accepted")["id"]
        assert waiting.until("queued")["position"] == 1
        status, answer = service.call("POST", f"/v1/jobs/{waiting_id}/cancel")
        assert status == 200
        end = waiting.until("done", "error")
        assert end["code"] == "cancelled" and "before it started" in end["message"]
        assert service.health()["queue"]["waiting"] == 0

        assert service.health()["stop_and_keep"] is True
        running.until("progress")
        status, answer = service.call("POST", f"/v1/jobs/{running_id}/stop")
        assert status == 200
        done = running.until("done", "error")
        assert done["event"] == "done" and done["stats"]["stop_reason"] == "stopped", done
        status, answer = service.call("POST", "/v1/jobs/no-such-job/cancel")
        assert status == 404 and answer["code"] == "not_found"
    finally:
        running.close()
        waiting.close()
    service.wait_idle()
    assert service.job_folders() == []


def test_a_client_that_vanishes_cancels_its_job_and_frees_its_place(service, images):
    before = service.wait_idle()["stats"]["jobs_cancelled"]
    running = submit(service, images, LONG)
    running.until("progress")
    waiting = submit(service, images, LONG)
    waiting.until("queued")
    waiting.close()  # gone while waiting
    running.close()  # gone mid-job
    health = service.wait_idle(timeout=60)
    assert health["stats"]["jobs_cancelled"] == before + 2
    assert service.job_folders() == []
    events, _ = run_job(service, images, QUICK)  # and the service still works
    assert events[-1]["event"] == "done"


def test_stopping_the_service_cancels_its_jobs_and_removes_their_files(tmp_path, images):
    service = start_service(tmp_path, "--queue", "2")
    running = submit(service, images, LONG)
    waiting = submit(service, images, QUICK)
    try:
        running.until("progress")
        waiting.until("queued")
        assert len(service.job_folders()) == 1  # the waiting job's uploads (the running one's are decoded)
        stop_service(service)
        for stream in (running, waiting):  # each client is told, before the connection closes
            end = stream.until("done", "error")
            assert end["code"] == "cancelled" and "the service is stopping" in end["message"]
    finally:
        running.close()
        waiting.close()
    assert service.job_folders() == []
    assert "stopped" in "".join(iter_queue(service.stdout))


def iter_queue(lines):
    while not lines.empty():
        yield lines.get()


# ----- refused requests: 4xx with a JSON error, before any work ----------------------------------

def png_header_only(width, height):
    """A PNG that declares width x height pixels in a few dozen bytes: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def refused(service, images, tmp_path, content_bytes=None, params=QUICK, styles=("style.png",), raw=None):
    before = service.wait_idle()["stats"]
    if raw is not None:
        body, content_type = raw
    else:
        content = images / "content.png"
        if content_bytes is not None:
            content = tmp_path / "upload.png"
            content.write_bytes(content_bytes)
        body, content_type = multipart({"params": json.dumps(params)},
                                       [("content", str(content))] + [("style", str(images / s)) for s in styles])
    status, answer = service.call("POST", "/v1/jobs", body=body, headers={"Content-Type": content_type})
    assert isinstance(answer, dict), answer
    assert answer["event"] == "error" and answer["message"] and "Traceback" not in answer["message"]
    check_fields(answer, documented_events()["error"])  # shaped as the protocol's error event
    after = service.wait_idle()["stats"]
    assert after["jobs_done"] + after["jobs_failed"] + after["jobs_cancelled"] == \
        before["jobs_done"] + before["jobs_failed"] + before["jobs_cancelled"], "no job may have run"
    assert service.job_folders() == [], "the upload's folder must be gone"
    return status, answer


def test_oversized_upload_is_413(service, images, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="BMP")  # 1.4 MB, over the service's 1 MB
    status, answer = refused(service, images, tmp_path, content_bytes=buffer.getvalue())
    assert status == 413 and answer["code"] == "too_large"
    assert "--max-upload-mb" in answer["message"] and "at most 1.0 MB" in answer["message"]


def test_oversized_upload_without_a_length_is_413_when_counted(service, images, tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="BMP")
    path = tmp_path / "big.bmp"
    path.write_bytes(buffer.getvalue())
    body, content_type = multipart({}, [("content", str(path)), ("style", str(images / "style.png"))])
    connection = service.connect()
    try:  # chunked: the service cannot know the size before it has counted it
        connection.request("POST", "/v1/jobs", body=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                           headers={"Content-Type": content_type, "Authorization": f"Bearer {service.token}"},
                           encode_chunked=True)
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413 and answer["code"] == "too_large"
    service.wait_idle()
    assert service.job_folders() == []


def test_decompression_bomb_is_refused_from_its_header(service, images, tmp_path):
    status, answer = refused(service, images, tmp_path, content_bytes=png_header_only(40000, 40000))
    assert status == 413 and answer["code"] == "too_large" and "--max-pixels" in answer["message"]
    assert "decompression-bomb guard" in answer["message"]  # Pillow refused it before any pixel was read


def test_image_over_the_pixel_limit_is_413(service, images, tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (600, 500), (10, 20, 30)).save(buffer, format="PNG")  # 0.3 MP, a few kB
    status, answer = refused(service, images, tmp_path, content_bytes=buffer.getvalue())
    assert status == 413 and "600x500 (300,000 pixels)" in answer["message"]
    assert "at most 250,000 pixels" in answer["message"] and "scale it down" in answer["message"]


def test_non_image_upload_is_400(service, images, tmp_path):
    status, answer = refused(service, images, tmp_path, content_bytes=b"%PDF-1.4 not a picture at all\n" * 20)
    assert status == 400 and answer["code"] == "bad_input"
    assert "content upload 'upload.png' is not an image" in answer["message"]
    assert str(service.tmpdir) not in answer["message"]  # no server-side paths


def test_tiny_image_is_400(service, images, tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (10, 40)).save(buffer, format="PNG")
    status, answer = refused(service, images, tmp_path, content_bytes=buffer.getvalue())
    assert status == 400 and "10x40 pixels: too small" in answer["message"]


def cli_message(images, tmp_path, *options):
    """What ``nst-core stylize`` itself says about these options (it answers before importing torch)."""
    proc = subprocess.run(engine_command("stylize", images / "content.png", images / "style.png", "-o",
                                         tmp_path / "o.png", "--progress", "jsonl", *options),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, cwd=str(REPO))
    assert proc.returncode == 2, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])["message"]


@pytest.mark.parametrize("params,options", [
    ({"size": 5}, ["--size", "5"]),
    ({"size": "big"}, ["--size", "big"]),
    ({"iterations": 0}, ["--iterations", "0"]),
    ({"preset": "slow"}, ["--preset", "slow"]),
    ({"style-weight": -1}, ["--style-weight=-1"]),
    ({"optimizer": "sgd"}, ["--optimizer", "sgd"]),
    ({"preserve-colors": "sepia"}, ["--preserve-colors", "sepia"]),
], ids=["size-small", "size-text", "iterations", "preset", "style-weight", "optimizer", "preserve-colors"])
def test_bad_parameters_get_the_command_lines_message(service, images, tmp_path, params, options):
    status, answer = refused(service, images, tmp_path, params=params)
    assert status == 400 and answer["code"] == "bad_input"
    assert answer["message"] == cli_message(images, tmp_path, *options)


@pytest.mark.parametrize("params,fragment", [
    ({"colour": 1}, "unknown parameter 'colour'"),
    ({"style_weight": 2}, "write it as 'style-weight'"),
    ({"device": "cuda"}, "is the service's"),
    ({"weights": "/etc/passwd"}, "is the service's"),
    ({"size": "--weights=random"}, "expected a whole number"),
    ({"style-blend": [1, 2]}, "--style-blend has 2 weight(s) for 1 style image(s)"),
    ({"ssim": "yes"}, "on or off"),
    ([1, 2], "params must be a JSON object"),
], ids=["unknown", "underscore", "device", "weights", "injection", "blend-count", "bool", "not-object"])
def test_bad_parameters_say_what_to_do(service, images, tmp_path, params, fragment):
    status, answer = refused(service, images, tmp_path, params=params)
    assert status == 400 and answer["code"] == "bad_input"
    assert fragment in answer["message"]


@pytest.mark.parametrize("fields,parts,fragment", [
    (None, None, "multipart/form-data"),
    ({}, ["style"], "a part 'content'"),
    ({"params": "{not json"}, ["content", "style"], "not JSON"),
    ({}, ["content"], "at least one part 'style'"),
    ({}, ["content", "content", "style"], "more than one 'content'"),
    ({}, ["content", "thumbnail"], "unexpected part 'thumbnail'"),
    ({"params": " " * 70000 + "{}"}, ["content", "style"], "params part is over 64 KB"),
], ids=["json-body", "no-content", "params-not-json", "no-style", "two-contents", "unknown-part", "params-huge"])
def test_malformed_jobs_are_400(service, images, tmp_path, fields, parts, fragment):
    if parts is None:
        raw = (b"{}", "application/json")
    else:
        raw = multipart(fields, [(name, str(images / ("content.png" if name == "content" else "style.png")))
                                 for name in parts])
    status, answer = refused(service, images, tmp_path, raw=raw)
    assert status == 400 and fragment in answer["message"]


def documented_endpoints():
    text = (REPO / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    section = text.split("## HTTP transport", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(GET|POST|DELETE) (/v1/[a-zA-Z/]+)` \|", section, re.MULTILINE)


def test_protocol_documents_every_endpoint_and_each_answers(service):
    endpoints = documented_endpoints()
    assert {path for _, path in endpoints} == {"/v1/health", "/v1/jobs", "/v1/jobs/ID/result", "/v1/jobs/ID/preview",
                                              "/v1/jobs/ID/cancel", "/v1/jobs/ID/stop", "/v1/jobs/ID"}
    for method, path in endpoints:
        status, answer = service.call(method, path.replace("ID", "no-such-job"),
                                      body=b"" if method == "POST" else None)
        assert status not in (405, 500), (method, path, answer)
        if status == 404:  # a job that does not exist, not an address that does not
            assert "no such job" in answer["message"], (method, path, answer)
    service.wait_idle()


def test_unknown_address_is_a_json_404(service):
    status, answer = service.call("GET", "/v2/jobs")
    assert status == 404 and answer["code"] == "not_found" and "/v1" in answer["message"]


# ----- the command line as a client --------------------------------------------------------------

def test_stylize_with_server_streams_the_same_lines_and_writes_the_file(service, images, tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"an older file")
    proc = subprocess.run(
        engine_command("stylize", images / "content.png", images / "style.png", "-o", out, "--size", "64",
                       "--iterations", "2", "--no-ssim", "--progress", "jsonl", "--server", service.url,
                       "--token-file", service.token_file),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["start", "progress", "progress", "done"]
    assert events[-1]["output"] == str(out.resolve())
    assert events[-1]["stats"]["output_size"] == [96, 64]
    result = Image.open(out)
    assert result.size == (96, 64) and result.mode == "RGBA"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # written atomically, nothing beside it
    service.wait_idle()


def test_stylize_with_server_cancel_on_stdin_cancels_the_job_on_the_service(service, images, tmp_path):
    before = service.wait_idle()["stats"]["jobs_cancelled"]
    out = tmp_path / "out.png"
    process = subprocess.Popen(
        engine_command("stylize", images / "content.png", images / "style.png", "-o", out, "--size", "64",
                       "--iterations", "5000", "--no-ssim", "--progress", "jsonl", "--server", service.url,
                       "--token-file", service.token_file),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
    try:
        for line in process.stdout:
            if json.loads(line)["event"] == "progress":
                break
        process.stdin.write("cancel\n")
        process.stdin.flush()
        rest = process.stdout.read()
        assert process.wait(timeout=60) == 4, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    last = json.loads(rest.splitlines()[-1])
    assert last["event"] == "error" and last["code"] == "cancelled"
    assert not out.exists()
    assert service.wait_idle()["stats"]["jobs_cancelled"] == before + 1


@pytest.mark.parametrize("case", ["wrong-token", "unreachable", "device"])
def test_stylize_with_server_refusals_are_one_line_errors(service, images, tmp_path, case):
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token-of-this-service\n")
    server = service.url
    extra = []
    if case == "unreachable":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            server = f"http://127.0.0.1:{probe.getsockname()[1]}"
    if case == "device":
        extra = ["--device", "cpu"]
    proc = subprocess.run(
        engine_command("stylize", images / "content.png", images / "style.png", "-o", tmp_path / "out.png",
                       "--size", "64", "--iterations", "2", "--progress", "jsonl", "--server", server,
                       "--token-file", token_file, *extra),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, cwd=str(REPO))
    expected = {"wrong-token": (2, "unauthorized"), "unreachable": (1, "internal"), "device": (2, "bad_input")}
    assert (proc.returncode, json.loads(proc.stdout.splitlines()[-1])["code"]) == expected[case], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.png").exists()


# ----- through nginx with TLS (docs/SERVICE.md's configuration) -----------------------------------

def _nginx():
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def documented_nginx_server_block():
    """The ``server { ... }`` block of docs/SERVICE.md, the one the documentation tells people to use."""
    text = SERVICE_DOC.read_text(encoding="utf-8")
    block = text.split("```nginx\n", 1)[1].split("```", 1)[0]
    assert block.lstrip().startswith("server {"), block
    return block


@pytest.fixture
def nginx_proxy(service, tmp_path):
    nginx = _nginx()
    missing = [name for name, path in (("nginx", nginx), ("openssl", shutil.which("openssl"))) if not path]
    if missing:
        if os.environ.get("CI") == "true" and os.geteuid() == 0:
            pytest.fail(f"{' and '.join(missing)} missing under CI as root: tests/run installs them with apt-get")
        pytest.skip(f"{' and '.join(missing)} not installed (tests/run installs Debian's nginx when run as root)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    port = _free_port()
    block = documented_nginx_server_block()
    for documented, ours in (("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
                             ("/etc/ssl/nst/cert.pem", str(cert)), ("/etc/ssl/nst/key.pem", str(key)),
                             ("http://127.0.0.1:8765", service.url)):
        assert documented in block, f"docs/SERVICE.md's nginx block no longer has {documented!r}"
        block = block.replace(documented, ours)
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers reach the test's 0700 folders
    temp = "\n".join(f"    {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                               "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n{temp}\n{block}\n}}\n")
    process = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e",
                                str(tmp_path / "error.log"), "-g", "daemon off;"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log = (tmp_path / "error.log").read_text() if (tmp_path / "error.log").exists() else ""
                pytest.fail(f"nginx did not start: {process.stdout.read().decode()} {log}")
            time.sleep(0.1)
    yield f"https://127.0.0.1:{port}", cert
    process.terminate()
    process.wait(timeout=30)


def test_job_through_nginx_with_tls_streams_and_writes_the_result(service, images, tmp_path, nginx_proxy):
    url, cert = nginx_proxy
    out = tmp_path / "through-nginx.png"
    proc = subprocess.run(
        engine_command("stylize", images / "content.png", images / "style.png", "-o", out, "--size", "64",
                       "--iterations", "2", "--no-ssim", "--progress", "jsonl", "--server", url,
                       "--token-file", service.token_file),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180, cwd=str(REPO),
        env=dict(os.environ, SSL_CERT_FILE=str(cert)))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["start", "progress", "progress", "done"]
    assert Image.open(out).size == (96, 64)

    # Unbuffered: the first progress of a job that would run for minutes arrives through the proxy.
    # A buffering proxy would hold it until the end, and this read would time out.
    context = ssl.create_default_context(cafile=str(cert))
    host, port = url.split("//")[1].split(":")
    body, content_type = job_body(images, LONG)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=60)
    try:
        connection.request("POST", "/v1/jobs", body=body, headers={
            "Content-Type": content_type, "Authorization": f"Bearer {service.token}"})
        response = connection.getresponse()
        assert response.status == 200
        job_id = json.loads(response.readline())["id"]
        while json.loads(response.readline())["event"] != "progress":
            pass
        cancel = http.client.HTTPSConnection(host, int(port), context=context, timeout=60)
        cancel.request("POST", f"/v1/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {service.token}"})
        assert cancel.getresponse().status == 200
        cancel.close()
        while True:
            event = json.loads(response.readline())
            if event["event"] == "error":
                break
        assert event["code"] == "cancelled"
    finally:
        connection.close()
    service.wait_idle()

    # Without the certificate the client refuses the connection and says what to do.
    proc = subprocess.run(
        engine_command("stylize", images / "content.png", images / "style.png", "-o", tmp_path / "no.png",
                       "--server", url, "--token-file", service.token_file),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120, cwd=str(REPO),
        env={k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"})
    assert proc.returncode == 1 and "SSL_CERT_FILE" in proc.stderr, proc.stderr


def test_previews_stream_as_events_and_the_newest_is_fetched_by_get(service, images):
    events, _ = run_job(service, images, dict(QUICK, **{"preview-every": 0}))
    previews = [e for e in events if e["event"] == "preview"]
    assert previews and events[-1]["event"] == "done", [e["event"] for e in events]
    job_id = events[0]["id"]
    assert {p["path"] for p in previews} == {f"/v1/jobs/{job_id}/preview"}
    status, body = service.call("GET", f"/v1/jobs/{job_id}/preview")
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n", body
    preview = Image.open(io.BytesIO(body))
    assert preview.size == Image.open(images / "content.png").size  # the content's size, as the result's
    assert preview.mode == "RGBA"  # finished as the result is: the content's alpha kept
