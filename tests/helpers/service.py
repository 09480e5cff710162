"""A real ``nst-core serve`` in a subprocess on a free loopback port, with the untrained network on the
CPU, and a small HTTP client for it: for the service's tests and the plug-in's HTTP transport tests."""

import http.client
import json
import os
import queue
import subprocess
import threading
import time

import pytest

from helpers.repo import REPO, engine_command

READ_TIMEOUT = 120


class Service:
    def __init__(self, process, url, token_file, tmpdir):
        self.process, self.url, self.token_file, self.tmpdir = process, url, token_file, tmpdir
        self.token = token_file.read_text().strip()
        self.host, self.port = url.split("//")[1].split(":")
        self.port = int(self.port)

    def connect(self, timeout=READ_TIMEOUT):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def call(self, method, path, body=None, headers=None, token=True):
        """(status, parsed JSON or raw bytes) of one request."""
        headers = dict(headers or {})
        if token is True:
            headers["Authorization"] = f"Bearer {self.token}"
        elif token:
            headers["Authorization"] = token
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data

    def health(self):
        status, body = self.call("GET", "/v1/health")
        assert status == 200, body
        return body

    def wait_idle(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            health = self.health()
            queue_state = health["queue"]
            if queue_state["running"] == 0 and queue_state["waiting"] == 0 and queue_state["receiving"] == 0:
                return health
            assert time.monotonic() < deadline, f"the service did not become idle: {queue_state}"
            time.sleep(0.2)

    def job_folders(self):
        """The jobs' upload folders: under the service's data folder, and none in the system's temp folder."""
        folders = [p.name for p in self.tmpdir.iterdir() if p.name.startswith("nst-serve-")]
        uploads = self.token_file.parent / "service-uploads"
        if uploads.is_dir():
            folders += [job.name for instance in uploads.iterdir() if instance.is_dir()
                        for job in instance.iterdir() if job.is_dir()]
        return sorted(folders)


def start_service(root, *options, data=None):
    """A real ``nst-core serve`` on a free loopback port: (Service, its stderr lines so far). ``data``: the
    engine's data folder (default ROOT/data), shared by several services to share their token."""
    tmpdir = root / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)  # exists when a test restarts a service on the same folders
    data = data or root / "data"
    token_file = data / "service-token"
    env = dict(os.environ, NST_DATA_DIR=str(data), TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    process = subprocess.Popen(
        engine_command("serve", "--port", "0", "--weights", "random", "--device", "cpu", *options),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=str(REPO))
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    stderr = []
    threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True).start()
    deadline = time.monotonic() + 180
    while True:
        try:
            first = lines.get(timeout=0.5)
            break
        except queue.Empty:
            if process.poll() is not None or time.monotonic() > deadline:  # exited, or never got going
                process.kill()
                time.sleep(0.2)
                pytest.fail(f"the service did not start: {''.join(stderr)}")
    assert "listening on http://127.0.0.1:" in first, first + "".join(stderr)
    url = first.split("listening on ", 1)[1].split()[0]
    service = Service(process, url, token_file, tmpdir)
    service.stdout, service.stderr, service.env = lines, stderr, env
    return service


def stop_service(service):
    """SIGTERM, as a service manager stops it: exit 0 within a minute, no traceback."""
    service.process.terminate()
    try:
        code = service.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        service.process.kill()
        pytest.fail("the service did not stop within 60 s of SIGTERM")
    assert code == 0, "".join(service.stderr)
    assert "Traceback" not in "".join(service.stderr), "".join(service.stderr)
