"""Two ``nst-core serve`` instances on loopback behind a real nginx running docs/SERVICE.md's multi-service
block (``upstream``, ``least_conn``, a 503 passed to the next service, a job's requests routed by its id):
jobs spread over both, a full service's jobs go to the other, and a service killed mid-job gives its
client a clear error while the next job goes to the survivor. The command line's ``--server`` is the
client, unchanged."""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from helpers.pictures import make_content, make_style
from helpers.repo import REPO, engine_command
from helpers.service import start_service, stop_service
from nst_core.service.client import multipart

pytest.importorskip("aiohttp", reason="the service needs the serve extra: pip install -e '.[serve]'")
pytestmark = pytest.mark.slow

SERVICE_DOC = REPO / "docs" / "SERVICE.md"
QUICK = {"size": 64, "iterations": 2, "ssim": False}
LONG = {"size": 64, "iterations": 5000, "ssim": False, "converge": False}


def documented_multi_service_config():
    """The nginx block of docs/SERVICE.md that has an ``upstream``: the several-services set-up."""
    text = SERVICE_DOC.read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```nginx\n")[1:]]
    found = [b for b in blocks if "upstream nst_services" in b]
    assert found, "docs/SERVICE.md has no nginx block with 'upstream nst_services'"
    return found[0]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def two_services(tmp_path):
    """Two services sharing a data folder (so one token), each with --queue 0: one job each at a time."""
    data = tmp_path / "data"
    first = start_service(tmp_path / "gpu0", "--queue", "0", "--instance", "gpu0", data=data)
    second = start_service(tmp_path / "gpu1", "--queue", "0", "--instance", "gpu1", data=data)
    services = {"gpu0": first, "gpu1": second}
    yield services
    for service in services.values():
        if service.process.poll() is None:
            stop_service(service)


@pytest.fixture
def proxy(two_services, tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx or not shutil.which("openssl"):
        pytest.skip("nginx and openssl are needed (tests/run installs Debian's nginx when run as root)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    port = _free_port()
    config = documented_multi_service_config()
    for documented, ours in (("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
                             ("/etc/ssl/nst/cert.pem", str(cert)), ("/etc/ssl/nst/key.pem", str(key)),
                             ("127.0.0.1:8765", f"127.0.0.1:{two_services['gpu0'].port}"),
                             ("127.0.0.1:8766", f"127.0.0.1:{two_services['gpu1'].port}")):
        assert documented in config, f"docs/SERVICE.md's nginx block no longer has {documented!r}"
        config = config.replace(documented, ours)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                               "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n{temp}\n{config}\n}}\n")
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
    yield port, cert
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def images(tmp_path):
    make_content().save(tmp_path / "content.png")
    make_style().save(tmp_path / "style.png")
    return tmp_path


class ProxiedJob:
    """A job sent through the proxy, its stream read line by line."""

    def __init__(self, port, cert, token, images, params):
        context = ssl.create_default_context(cafile=str(cert))
        self.connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=120)
        body, content_type = multipart({"params": json.dumps(params)}, [("content", str(images / "content.png")),
                                                                         ("style", str(images / "style.png"))])
        self.connection.request("POST", "/v1/jobs", body=body,
                                headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.first = json.loads(self.response.readline())

    def until(self, *names):
        while True:
            event = json.loads(self.response.readline())
            if event["event"] in names:
                return event

    def close(self):
        self.connection.close()


def proxied_call(port, cert, token, method, path):
    context = ssl.create_default_context(cafile=str(cert))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
    try:
        connection.request(method, path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def stylize_through(port, cert, token_file, images, out, *options):
    return subprocess.run(
        engine_command("stylize", images / "content.png", images / "style.png", "-o", out, "--size", "64",
                       "--no-ssim", "--progress", "jsonl", "--server", f"https://127.0.0.1:{port}",
                       "--token-file", token_file, *options),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180, cwd=str(REPO),
        env=dict(os.environ, SSL_CERT_FILE=str(cert)))


def test_jobs_spread_a_full_service_passes_them_on_and_a_killed_one_is_survived(two_services, proxy, images,
                                                                                tmp_path):
    port, cert = proxy
    token = two_services["gpu0"].token
    token_file = two_services["gpu0"].token_file

    # Two long jobs at once: one on each service.
    jobs = [ProxiedJob(port, cert, token, images, LONG) for _ in range(2)]
    try:
        for job in jobs:
            assert job.status == 200 and job.first["event"] == "accepted", job.first
            job.until("progress")
        instances = sorted(job.first["id"].split("-", 1)[0] for job in jobs)
        assert instances == ["gpu0", "gpu1"], instances
        for name, service in two_services.items():
            assert service.health()["queue"]["running"] == 1, name
        # A job's own requests reach the service that holds it, through the one address.
        for job in jobs:
            status, _ = proxied_call(port, cert, token, "POST", f"/v1/jobs/{job.first['id']}/cancel")
            assert status == 200
            assert job.until("error")["code"] == "cancelled"
    finally:
        for job in jobs:
            job.close()
    for service in two_services.values():
        service.wait_idle()

    # gpu0 full (a job running, no queue), its job sent to it directly so that nginx sees no connection to
    # either service: least_conn's tie sends some jobs to gpu0 first, whose 503 passes them on to gpu1.
    gpu0 = two_services["gpu0"]
    direct = gpu0.connect()
    try:
        body, content_type = multipart({"params": json.dumps(LONG)}, [("content", str(images / "content.png")),
                                                                       ("style", str(images / "style.png"))])
        direct.request("POST", "/v1/jobs", body=body,
                       headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
        stream = direct.getresponse()
        while json.loads(stream.readline())["event"] != "progress":
            pass
        done_before = gpu0.health()["stats"]["jobs_done"]
        for _ in range(4):
            quick = ProxiedJob(port, cert, token, images, QUICK)
            try:
                assert quick.status == 200, quick.first
                assert quick.first["id"].startswith("gpu1-"), quick.first
                assert quick.until("done", "error")["event"] == "done"
            finally:
                quick.close()
        assert gpu0.health()["stats"]["jobs_done"] == done_before
    finally:
        direct.close()
    for service in two_services.values():
        service.wait_idle()

    # A service killed in the middle of a job: its client is told, the next job runs on the survivor.
    process = subprocess.Popen(
        engine_command("stylize", images / "content.png", images / "style.png", "-o", tmp_path / "lost.png",
                       "--size", "64", "--iterations", "5000", "--no-converge", "--no-ssim", "--progress", "jsonl",
                       "--server", f"https://127.0.0.1:{port}", "--token-file", token_file),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
        env=dict(os.environ, SSL_CERT_FILE=str(cert)))
    try:
        for line in process.stdout:
            if json.loads(line)["event"] == "progress":
                break
        victim = next(name for name, s in two_services.items() if s.health()["queue"]["running"] == 1)
        two_services[victim].process.kill()
        two_services[victim].process.wait(timeout=30)
        assert process.wait(timeout=60) == 1
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert "ended before the job did" in stderr and "Traceback" not in stderr, stderr
    assert not (tmp_path / "lost.png").exists()
    survivor = two_services["gpu1" if victim == "gpu0" else "gpu0"]
    before = survivor.health()["stats"]["jobs_done"]
    for index in range(2):  # whichever service nginx tries first, the job runs on the survivor
        out = tmp_path / f"after-{index}.png"
        proc = stylize_through(port, cert, token_file, images, out, "--iterations", "2")
        assert proc.returncode == 0, proc.stderr
        assert out.exists()
    assert survivor.health()["stats"]["jobs_done"] == before + 2
