"""``nst-core serve`` against slow, malformed, greedy and crashing clients: each test plays one such client
against a real service in a subprocess (the untrained network on the CPU, tiny images) and checks that
the service bounds what it costs, tells the client what went wrong in the protocol's error shape, logs
it as one line, and leaves no files behind.
"""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from helpers.pictures import make_content, make_style
from helpers.protocol_checks import check_fields, documented_events
from helpers.repo import REPO, engine_command
from helpers.service import start_service, stop_service
from nst_core.service.client import multipart

pytest.importorskip("aiohttp", reason="the service needs the serve extra: pip install -e '.[serve]'")

QUICK = {"size": 64, "iterations": 2, "ssim": False}
LONG = {"size": 64, "iterations": 5000, "ssim": False, "converge": False}  # minutes: always cancelled early
BOUNDARY = "test-boundary"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hardening-images")
    make_content().save(folder / "content.png")
    make_style().save(folder / "style.png")
    return folder


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    service = start_service(tmp_path_factory.mktemp("service"), "--queue", "1", "--max-upload-mb", "1",
                            "--max-pixels", "250000")
    yield service
    stop_service(service)


def log_since(service, mark):
    return "".join(service.stderr[mark:])


def job_body(images, params):
    return multipart({"params": json.dumps(params)}, [("content", str(images / "content.png")),
                                                     ("style", str(images / "style.png"))])


def post_job(service, body, content_type, token=None):
    """(status, parsed JSON or the stream's first line) of POST /v1/jobs."""
    connection = service.connect(timeout=60)
    try:
        connection.request("POST", "/v1/jobs", body=body, headers={
            "Content-Type": content_type, "Authorization": f"Bearer {token or service.token}"})
        response = connection.getresponse()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(response.read())
        return response.status, json.loads(response.readline())
    finally:
        connection.close()


def check_error_shape(answer):
    assert isinstance(answer, dict) and answer["event"] == "error", answer
    check_fields(answer, documented_events()["error"])
    assert "Traceback" not in answer["message"]


def raw_request_head(service, content_length, token=None, path="/v1/jobs"):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token or service.token}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {content_length}\r\n\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"c.png\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode("ascii")


def read_http_answer(sock, timeout):
    """(status, parsed JSON body) of the response on ``sock``, read by hand (the upload is unfinished)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status = int(head.split()[1])
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of the answer"
        body += chunk
    return status, json.loads(body[:length])


def trickle(sock, pause, limit, chunk=b"x"):
    """Sends ``chunk`` every ``pause`` seconds until the service answers (True) or ``limit`` seconds pass."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], pause)
        if readable:
            return True
        try:
            sock.sendall(chunk)
        except OSError:
            return True  # the service closed its side: its answer, if any, is waiting to be read
    return False


# ----- slow uploads ------------------------------------------------------------------------------------

def test_a_slow_upload_is_cut_off_told_why_and_frees_its_place(service, images):
    """One byte every half second: under the minimum rate, the upload is refused with a 408 in the error
    shape within the grace period and a second or two, and its place is free again."""
    mark = len(service.stderr)
    sock = socket.create_connection((service.host, service.port), timeout=30)
    try:
        sock.sendall(raw_request_head(service, 100_000))
        started = time.monotonic()
        assert trickle(sock, 0.5, 25), "the slow upload was still accepted after 25 s"
        status, answer = read_http_answer(sock, 10)
    finally:
        sock.close()
    assert status == 408, answer
    check_error_shape(answer)
    assert answer["code"] == "too_slow" and "--min-upload-rate" in answer["message"]
    assert time.monotonic() - started < 20
    service.wait_idle(timeout=15)  # the place it held is free
    assert service.job_folders() == []
    assert "Traceback" not in log_since(service, mark)
    status, first = post_job(service, *job_body(images, QUICK))  # and a normal job still runs
    assert status == 200 and first["event"] == "accepted"
    service.wait_idle()


@pytest.fixture(scope="module")
def strict_service(tmp_path_factory):
    """A service with short timeouts: the whole upload within 4 s, a stream not read for 2 s ends its job."""
    service = start_service(tmp_path_factory.mktemp("strict"), "--queue", "1", "--upload-timeout", "4",
                            "--stall-timeout", "2")
    yield service
    stop_service(service)


def test_an_upload_that_outlasts_the_deadline_is_cut_off(strict_service):
    """Fast enough for the minimum rate, but never finished: cut at --upload-timeout."""
    sock = socket.create_connection((strict_service.host, strict_service.port), timeout=30)
    try:
        sock.sendall(raw_request_head(strict_service, 60 << 20))
        started = time.monotonic()
        assert trickle(sock, 0.25, 20, chunk=b"x" * 32768), "still receiving after 20 s"
        status, answer = read_http_answer(sock, 10)
    finally:
        sock.close()
    assert status == 408, answer
    check_error_shape(answer)
    assert "--upload-timeout" in answer["message"] and "4 s" in answer["message"]
    assert time.monotonic() - started < 10
    strict_service.wait_idle(timeout=15)
    assert strict_service.job_folders() == []


# ----- one size limit ----------------------------------------------------------------------------------

def noise_bmp(path, width, height, seed=0):
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, format="BMP")
    return path


def chunked_post(service, body, content_type):
    connection = service.connect(timeout=60)
    try:  # chunked: no Content-Length for the service to refuse the request on
        connection.request("POST", "/v1/jobs", body=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                           headers={"Content-Type": content_type, "Authorization": f"Bearer {service.token}"},
                           encode_chunked=True)
        response = connection.getresponse()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(response.read())
        return response.status, json.loads(response.readline())
    finally:
        connection.close()


@pytest.mark.parametrize("params_parts", [1, 30], ids=["params-last", "many-params-parts"])
def test_params_parts_count_toward_the_upload_limit(service, images, tmp_path, params_parts):
    """Images just under the 1 MB limit, then params parts that take the request over it: refused."""
    content = noise_bmp(tmp_path / "content.bmp", 490, 500)  # 735 kB
    style = noise_bmp(tmp_path / "style.bmp", 300, 300, seed=1)  # 270 kB: 1005 kB in all
    body, content_type = multipart({}, [("content", str(content)), ("style", str(style))])
    filler = json.dumps(dict(QUICK)) + " " * 60_000
    params = "".join(f"--{content_type.split('boundary=')[1]}\r\nContent-Disposition: form-data; name=\"params\""
                     f"\r\n\r\n{filler}\r\n" for _ in range(params_parts))
    closing = body.rindex(b"--" + content_type.split("boundary=")[1].encode())
    body = body[:closing] + params.encode() + body[closing:]
    before = service.wait_idle()["stats"]
    status, answer = chunked_post(service, body, content_type)
    assert status in (400, 413), answer
    check_error_shape(answer)
    if params_parts == 1:
        assert status == 413 and "--max-upload-mb" in answer["message"]
    after = service.wait_idle()["stats"]
    assert after["jobs_done"] + after["jobs_failed"] + after["jobs_cancelled"] == \
        before["jobs_done"] + before["jobs_failed"] + before["jobs_cancelled"], "no job may have run"
    assert service.job_folders() == []


# ----- malformed bodies --------------------------------------------------------------------------------

def _png(images):
    return (images / "content.png").read_bytes()


def _part(name, data, filename=None, content_type="application/octet-stream"):
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (f"Content-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n").encode() + data


def malformed(case, images):
    png, style = _png(images), (images / "style.png").read_bytes()
    b = BOUNDARY.encode()
    good = (b"--" + b + b"\r\n" + _part("content", png, "c.png") + b"\r\n--" + b + b"\r\n"
            + _part("style", style, "s.png") + b"\r\n")
    multipart_type = f"multipart/form-data; boundary={BOUNDARY}"
    if case == "no-boundary":
        return good + b"--" + b + b"--\r\n", "multipart/form-data"
    if case == "garbage":
        return os.urandom(2000), multipart_type
    if case == "no-closing-boundary":
        return good, multipart_type
    if case == "no-crlf-before-closing":
        return good[:-2] + b"--" + b + b"--\r\n", multipart_type
    if case == "nested-multipart":
        inner = (b"--inner\r\n" + _part("content", png, "c.png") + b"\r\n--inner--\r\n")
        nested = (b"--" + b + b"\r\nContent-Disposition: form-data; name=\"content\"\r\n"
                  b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n" + inner + b"\r\n")
        return nested + b"--" + b + b"--\r\n", multipart_type
    if case == "headers-only":
        return b"--" + b + b"\r\nContent-Disposition: form-data; name=\"content\"", multipart_type
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["no-boundary", "garbage", "no-closing-boundary", "no-crlf-before-closing",
                                  "nested-multipart", "headers-only"])
def test_every_malformed_multipart_body_is_a_400_without_a_traceback(service, images, case):
    mark = len(service.stderr)
    body, content_type = malformed(case, images)
    before = service.wait_idle()["stats"]
    status, answer = post_job(service, body, content_type)
    assert status == 400, answer
    check_error_shape(answer)
    assert answer["code"] == "bad_input" and "multipart" in answer["message"]
    after = service.wait_idle()["stats"]
    assert after["jobs_done"] == before["jobs_done"]
    assert service.job_folders() == []
    time.sleep(0.3)  # the log line, if any, is written
    assert "Traceback" not in log_since(service, mark), log_since(service, mark)


# ----- the engine's messages through the service -------------------------------------------------------

def test_a_truncated_upload_is_named_once_in_the_message(service, images, tmp_path):
    png = _png(images)
    truncated = tmp_path / "c.png"
    truncated.write_bytes(png[:len(png) * 2 // 3])  # the header is whole: refused when the job decodes it
    body, content_type = multipart({"params": json.dumps(QUICK)},
                                   [("content", str(truncated)), ("style", str(images / "style.png"))])
    connection = service.connect(timeout=60)
    try:
        connection.request("POST", "/v1/jobs", body=body,
                           headers={"Content-Type": content_type, "Authorization": f"Bearer {service.token}"})
        response = connection.getresponse()
        events = [json.loads(line) for line in response]
    finally:
        connection.close()
    end = events[-1]
    assert end["event"] == "error" and end["code"] == "bad_input", events
    assert "content upload 'c.png' is truncated or corrupt" in end["message"]
    assert "image content upload" not in end["message"]
    service.wait_idle()


# ----- parameters with no sane end ---------------------------------------------------------------------

@pytest.mark.parametrize("params,fragment", [
    ({"refine-iterations": 1_000_000_000}, "refine-iterations"),
], ids=["refine-iterations"])
def test_parameters_without_a_sane_end_are_refused(service, images, params, fragment):
    status, answer = post_job(service, *job_body(images, dict(QUICK, **params)))
    assert status == 400, answer
    check_error_shape(answer)
    assert fragment in answer["message"] and "from" in answer["message"]
    service.wait_idle()


# ----- a client that stops reading -----------------------------------------------------------------------

def test_a_client_that_stops_reading_its_stream_has_its_job_cancelled(strict_service, images):
    before = strict_service.wait_idle()["stats"]["jobs_cancelled"]
    mark = len(strict_service.stderr)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the service's side fills soon
    sock.connect((strict_service.host, strict_service.port))
    body, content_type = job_body(images, dict(LONG, **{"preview-every": 0}))
    try:
        sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {strict_service.token}\r\n"
                      f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        deadline = time.monotonic() + 90  # and never reads a byte
        while strict_service.health()["stats"]["jobs_cancelled"] == before:
            assert time.monotonic() < deadline, "the job still runs for a client that reads nothing"
            time.sleep(0.5)
    finally:
        sock.close()
    strict_service.wait_idle()
    log = log_since(strict_service, mark)
    assert "stopped reading" in log and "Traceback" not in log, log


# ----- the log ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("request_head", [
    b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(300)) + b"\r\n",
    b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
], ids=["header-too-long", "too-many-headers", "bad-length"])
def test_a_bad_request_before_authentication_is_one_log_line(service, request_head):
    mark = len(service.stderr)
    with socket.create_connection((service.host, service.port), timeout=10) as sock:
        sock.sendall(request_head)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.") and answer.split()[1].startswith(b"4"), answer
    time.sleep(0.5)
    log = log_since(service, mark)
    assert "Traceback" not in log and len(log.splitlines()) <= 1, log


def test_a_client_reset_mid_stream_is_one_log_line(service, images):
    mark = len(service.stderr)
    before = service.wait_idle()["stats"]["jobs_cancelled"]
    sock = socket.create_connection((service.host, service.port), timeout=30)
    body, content_type = job_body(images, LONG)
    sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {service.token}\r\n"
                  f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
    received = b""
    while b'"progress"' not in received:
        received += sock.recv(4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, not a close
    deadline = time.monotonic() + 30
    while service.health()["stats"]["jobs_cancelled"] == before:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    log = log_since(service, mark)
    assert "Traceback" not in log and "request failed" not in log, log
    assert len(log.splitlines()) <= 2, log


# ----- stopping and crashing -----------------------------------------------------------------------------

def test_sigterm_tells_an_uploading_client_and_exits_within_seconds(tmp_path):
    service = start_service(tmp_path)
    sock = socket.create_connection((service.host, service.port), timeout=30)
    try:
        sock.sendall(raw_request_head(service, 100_000) + b"x" * 100)  # and nothing more
        deadline = time.monotonic() + 10
        while service.health()["queue"]["receiving"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        started = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        status, answer = read_http_answer(sock, 10)
        assert status == 503, answer
        check_error_shape(answer)
        assert "stopping" in answer["message"]
        assert service.process.wait(timeout=15) == 0
        assert time.monotonic() - started < 8, "SIGTERM took too long"
    finally:
        sock.close()
        if service.process.poll() is None:
            service.process.kill()
    assert "Traceback" not in "".join(service.stderr), "".join(service.stderr)
    assert service.job_folders() == []


def upload_files(root):
    """Every file a job's uploads may have left under the service's folders and the system temp folder."""
    found = []
    for top in list((root / "tmp").glob("nst-serve-*")) + [root / "data"]:
        for folder, _, files in os.walk(top):
            for name in files:
                path = os.path.join(folder, name)
                if name == "service-token" or "service-clients" in path:
                    continue
                if name == "lock":
                    continue
                found.append(os.path.relpath(path, root))
    return sorted(found)


def test_kill_9_leaves_nothing_after_a_restart(tmp_path, images):
    service = start_service(tmp_path, "--queue", "1")
    running = waiting = None
    try:
        body, content_type = job_body(images, LONG)
        running = service.connect()
        running.request("POST", "/v1/jobs", body=body, headers={
            "Content-Type": content_type, "Authorization": f"Bearer {service.token}"})
        running_response = running.getresponse()
        while b'"progress"' not in running_response.readline():
            pass
        waiting = service.connect()
        waiting.request("POST", "/v1/jobs", body=body, headers={
            "Content-Type": content_type, "Authorization": f"Bearer {service.token}"})
        waiting_response = waiting.getresponse()
        while b'"queued"' not in waiting_response.readline():
            pass
        assert upload_files(tmp_path), "the waiting job's uploads should be on disk"
        assert not list((tmp_path / "tmp").glob("nst-serve-*")), "uploads go to the service's data folder"
        service.process.kill()
        service.process.wait(timeout=30)
    finally:
        for connection in (running, waiting):
            if connection:
                connection.close()
        if service.process.poll() is None:
            service.process.kill()
    again = start_service(tmp_path)
    try:
        assert upload_files(tmp_path) == []
    finally:
        stop_service(again)


# ----- clients and their jobs -----------------------------------------------------------------------------

def clients_command(service, *args):
    return subprocess.run(engine_command("serve", *args), capture_output=True, text=True, env=service.env,
                          stdin=subprocess.DEVNULL, timeout=60, cwd=str(REPO))


@pytest.fixture
def own_service(tmp_path):
    """A service of the test's own, killed if the test ends before it stops it."""
    started = []
    yield lambda *options: started.append(start_service(tmp_path, *options)) or started[-1]
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=30)


def test_jobs_belong_to_the_client_that_sent_them_and_tokens_are_revocable(own_service, tmp_path, images):
    service = own_service()
    tokens = {}
    for name in ("alice", "bob"):
        proc = clients_command(service, "--add-client", name)
        assert proc.returncode == 0, proc.stderr
        path = tmp_path / "data" / "service-clients" / name
        assert str(path) in proc.stdout
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        tokens[name] = path.read_text().strip()
    assert clients_command(service, "--add-client", "alice").returncode == 2  # no silent replacement
    assert clients_command(service, "--add-client", "../x").returncode == 2
    listed = clients_command(service, "--list-clients")
    assert listed.returncode == 0 and "alice" in listed.stdout and "bob" in listed.stdout, listed.stdout

    connection = service.connect()
    try:
        body, content_type = job_body(images, LONG)
        connection.request("POST", "/v1/jobs", body=body,
                           headers={"Content-Type": content_type, "Authorization": f"Bearer {tokens['alice']}"})
        response = connection.getresponse()
        job_id = json.loads(response.readline())["id"]
        while json.loads(response.readline())["event"] != "progress":
            pass
        for token in (tokens["bob"], service.token):  # another client, and the service's own token
            for method, path in (("POST", "cancel"), ("POST", "stop"), ("GET", "result"), ("GET", "preview"),
                                 ("DELETE", "")):
                status, answer = service.call(method, f"/v1/jobs/{job_id}/{path}".rstrip("/"),
                                              token=f"Bearer {token}")
                assert status == 404 and answer["code"] == "not_found", (method, path, answer)
        status, answer = service.call("POST", f"/v1/jobs/{job_id}/cancel", token=f"Bearer {tokens['alice']}")
        assert status == 200
        while True:
            event = json.loads(response.readline())
            if event["event"] == "error":
                break
        assert event["code"] == "cancelled"
    finally:
        connection.close()

    assert service.call("GET", "/v1/health", token=f"Bearer {tokens['bob']}")[0] == 200
    proc = clients_command(service, "--revoke-client", "bob")
    assert proc.returncode == 0, proc.stderr
    assert service.call("GET", "/v1/health", token=f"Bearer {tokens['bob']}")[0] == 401  # at once, no restart
    assert service.call("GET", "/v1/health", token=f"Bearer {tokens['alice']}")[0] == 200
    assert service.call("GET", "/v1/health")[0] == 200  # the single token file still works
    assert clients_command(service, "--revoke-client", "bob").returncode == 2
    service.wait_idle()
    stop_service(service)
    job_lines = [line for line in service.stderr if job_id in line]
    assert job_lines and all("alice" in line for line in job_lines), service.stderr


# ----- the documentation ---------------------------------------------------------------------------------

def test_service_doc_lists_every_serve_option_and_its_default():
    import argparse
    import re

    from nst_core.service.server import add_serve_parser

    commands = argparse.ArgumentParser().add_subparsers()
    parser = add_serve_parser(commands)
    table = (REPO / "docs" / "SERVICE.md").read_text(encoding="utf-8").split("| option |", 1)[1].split("\n\n", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)", table))
    options = {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
    assert options == documented, (sorted(options - documented), sorted(documented - options))
    for action in parser._actions:
        if isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
            row = next(line for line in table.splitlines() if f"`{action.option_strings[-1]} " in line
                       or f"`{action.option_strings[-1]}`" in line)
            assert f"`{action.default:.12g}`" in row, (action.option_strings, row)
