"""A soak of ``nst-core serve`` on loopback: N clients each send M jobs, as fast as the service takes them.

    python benchmarks/service_soak.py [--clients 4] [--jobs 5] [--size 64] [--iterations 3] [--queue 4]
                                      [--time-limit 300] [--weights random] [--device cpu]

One service is started in a temporary data folder; a warm-up job runs first (its time is not counted) and
the service's memory (RSS) and open file descriptors are read then and again after the last job. Each
client thread sends its jobs one after another: a 503 (queue full) is counted and the job sent again
after half a second. A job's latency runs from its request to its result downloaded. At the end: the
jobs done and failed, the 503s, latency p50/p95, RSS and fds at start and end, and the upload files
left in the service's folders (want 0). Bounded in count (N x M) and time (--time-limit; what is left
is counted as not done). Not part of the tests: run it on a quiet machine for figures worth keeping.
Needs the serve extra (aiohttp); Linux for RSS and fds (/proc).
"""

import argparse
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from nst_core.service.client import multipart  # noqa: E402


def start_service(args, root):
    data, tmp = os.path.join(root, "data"), os.path.join(root, "tmp")
    os.makedirs(tmp)
    env = dict(os.environ, NST_DATA_DIR=data, TMPDIR=tmp, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "nst_core", "serve", "--port", "0", "--queue", str(args.queue),
                                "--weights", args.weights, "--device", args.device],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                               text=True, env=env, cwd=REPO)
    line = process.stdout.readline()
    if "listening on http://" not in line:
        process.kill()
        raise SystemExit(f"the service did not start: {line!r}")
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    host, port = line.split("listening on http://", 1)[1].split()[0].split(":")
    with open(os.path.join(data, "service-token"), encoding="ascii") as handle:
        token = handle.read().strip()
    return process, host, int(port), token, data, tmp


def proc_figures(pid):
    """(RSS in MB, open fds) of a process, from /proc; (None, None) elsewhere."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None, None


def left_files(data, tmp):
    found = 0
    for top in (os.path.join(data, "service-uploads"), tmp):
        for folder, _, files in os.walk(top):
            found += sum(1 for name in files if name != "lock" and (top != tmp or "nst-serve-" in folder))
    return found


def one_job(host, port, token, body, content_type):
    """("done" | "failed" | "busy", seconds) of one job, its result fetched and forgotten."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=600)
    try:
        connection.request("POST", "/v1/jobs", body=body,
                           headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        if response.status == 503:
            response.read()
            return "busy", 0.0
        if response.status != 200:
            response.read()
            return "failed", 0.0
        end = None
        for raw in response:
            event = json.loads(raw)
            if event["event"] in ("done", "error"):
                end = event
                break
    finally:
        connection.close()
    if end is None or end["event"] != "done":
        return "failed", 0.0
    connection = http.client.HTTPConnection(host, port, timeout=600)
    try:
        connection.request("GET", end["output"], headers={"Authorization": f"Bearer {token}"})
        png = connection.getresponse().read()
        connection.request("DELETE", end["output"].rsplit("/", 1)[0], headers={"Authorization": f"Bearer {token}"})
        connection.getresponse().read()
    finally:
        connection.close()
    return ("done" if png[:4] == b"\x89PNG" else "failed"), time.perf_counter() - started


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=5, help="jobs per client")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--queue", type=int, default=4)
    parser.add_argument("--time-limit", type=float, default=300, help="seconds for all the jobs")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--content", default=os.path.join(REPO, "examples", "chelsea.png"))
    parser.add_argument("--style", default=os.path.join(REPO, "examples", "starry_night.jpg"))
    args = parser.parse_args()

    params = {"size": args.size, "iterations": args.iterations, "converge": False}
    body, content_type = multipart({"params": json.dumps(params)}, [("content", args.content), ("style", args.style)])
    with tempfile.TemporaryDirectory(prefix="nst-soak-") as root:
        process, host, port, token, data, tmp = start_service(args, root)
        try:
            one_job(host, port, token, body, content_type)  # warm-up: the style's targets, the first allocations
            rss_start, fds_start = proc_figures(process.pid)
            counts = {"done": 0, "failed": 0, "busy": 0}
            latencies = []
            lock = threading.Lock()
            deadline = time.monotonic() + args.time_limit

            def client():
                for _ in range(args.jobs):
                    while time.monotonic() < deadline:
                        outcome, seconds = one_job(host, port, token, body, content_type)
                        with lock:
                            counts[outcome] += 1
                            if outcome == "done":
                                latencies.append(seconds)
                        if outcome != "busy":
                            break
                        time.sleep(0.5)

            started = time.monotonic()
            threads = [threading.Thread(target=client) for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            time.sleep(1.0)
            rss_end, fds_end = proc_figures(process.pid)
            left = left_files(data, tmp)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                code = "killed after 30 s"

    wanted = args.clients * args.jobs
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}; device {args.device}, "
          f"weights {args.weights}; {args.clients} clients x {args.jobs} jobs, {args.size} px, "
          f"{args.iterations} iterations, --queue {args.queue}")
    print(f"{'figure':<28}{'value':>14}   want")
    rows = [("jobs done", f"{counts['done']} / {wanted}", f"{wanted}"),
            ("jobs failed", counts["failed"], "0"),
            ("503 busy (sent again)", counts["busy"], "-"),
            ("wall time, s", f"{elapsed:.1f}", f"< {args.time_limit:g}"),
            ("latency p50, s", f"{percentile(latencies, 0.5):.2f}", "-"),
            ("latency p95, s", f"{percentile(latencies, 0.95):.2f}", "-"),
            ("mean, s", f"{statistics.mean(latencies):.2f}" if latencies else "nan", "-"),
            ("RSS start / end, MB", f"{rss_start:.0f} / {rss_end:.0f}" if rss_start else "n/a", "flat"),
            ("open fds start / end", f"{fds_start} / {fds_end}" if fds_start else "n/a", "flat"),
            ("upload files left", left, "0"),
            ("exit code on SIGTERM", code, "0")]
    for name, value, want in rows:
        print(f"{name:<28}{str(value):>14}   {want}")
    return 0 if counts["done"] == wanted and left == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
