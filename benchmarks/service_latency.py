"""Time from the request to the first progress event: a new ``nst-core stylize`` process (cold) against
a running ``nst-core serve`` (warm).

    python benchmarks/service_latency.py [--repeats 3] [--size 256] [--weights FILE|random] [--device cpu]

Cold: each run is a new ``python -m nst_core stylize --progress jsonl`` process, timed from its start
to its first ``progress`` line (importing torch, loading the weights, the style's targets, the first
step). Warm: one service is started (its start-up is printed, not counted), then each job is timed
from the moment its request is sent to its first ``progress`` line: the first job with a style the
service has not seen yet, the later ones with the same style (targets cached) on another content.
Both sides take the first step, so the difference is what the service saves. Needs the serve extra
(aiohttp). Default images: examples/chelsea.png in the style of examples/starry_night.jpg.
"""

import argparse
import http.client
import json
import os
import platform
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


def engine(*args):
    return [sys.executable, "-m", "nst_core", *map(str, args)]


def cold_run(args, folder):
    started = time.perf_counter()
    process = subprocess.Popen(engine("stylize", args.content, args.style, "-o", os.path.join(folder, "cold.png"),
                                      "--progress", "jsonl", "--size", args.size, "--iterations", args.iterations,
                                      "--device", args.device, *(["--weights", args.weights] if args.weights else [])),
                               stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=REPO)
    first = None
    for line in process.stdout:
        if json.loads(line)["event"] == "progress" and first is None:
            first = time.perf_counter() - started
    if process.wait() != 0 or first is None:
        raise SystemExit("the cold run failed")
    return first


def start_service(args, folder):
    env = dict(os.environ, NST_DATA_DIR=os.path.join(folder, "data"))
    command = engine("serve", "--port", "0", "--device", args.device,
                     *(["--weights", args.weights] if args.weights else []))
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                               cwd=REPO)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the service did not start: {line}")
    ready = time.perf_counter() - started
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    url = line.split("listening on ", 1)[1].split()[0]
    with open(os.path.join(folder, "data", "service-token"), encoding="ascii") as handle:
        token = handle.read().strip()
    return process, url, token, ready


def warm_run(args, url, token, content):
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    params = {"size": int(args.size), "iterations": int(args.iterations)}
    body, content_type = multipart({"params": json.dumps(params)}, [("content", content), ("style", args.style)])
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    started = time.perf_counter()
    connection.request("POST", "/v1/jobs", body=body,
                       headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    if response.status != 200:
        raise SystemExit(f"the service refused the job: {response.read()!r}")
    first = None
    for line in response:
        event = json.loads(line)
        if event["event"] == "progress" and first is None:
            first = time.perf_counter() - started
        if event["event"] in ("done", "error"):
            break
    connection.close()
    if first is None or event["event"] != "done":
        raise SystemExit(f"the warm run failed: {event}")
    return first


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", default=os.path.join(REPO, "examples", "chelsea.png"))
    parser.add_argument("--other-content", default=os.path.join(REPO, "examples", "coffee.png"),
                        help="the warm runs alternate contents, so no result is reused")
    parser.add_argument("--style", default=os.path.join(REPO, "examples", "starry_night.jpg"))
    parser.add_argument("--size", default="256")
    parser.add_argument("--iterations", default="3")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--weights", help="weights file or 'random' (default: what the engine resolves)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nst-latency-") as folder:
        cold = [cold_run(args, folder) for _ in range(args.repeats)]
        process, url, token, ready = start_service(args, folder)
        try:
            first_style = warm_run(args, url, token, args.content)
            warm = [warm_run(args, url, token, args.other_content if i % 2 == 0 else args.content)
                    for i in range(args.repeats)]
        finally:
            process.terminate()
            process.wait(timeout=120)

    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; device {args.device}, size {args.size}, weights "
          f"{args.weights or 'resolved by the engine'}")
    print("| run | request to first progress event (s) |")
    print("|---|---|")
    print(f"| cold: new `nst-core stylize` process, median of {args.repeats} | {statistics.median(cold):.3f} "
          f"({', '.join(f'{t:.3f}' for t in cold)}) |")
    print(f"| service start-up (once, not a job) | {ready:.3f} |")
    print(f"| warm: service, a style not seen before | {first_style:.3f} |")
    print(f"| warm: service, the same style again, median of {args.repeats} | {statistics.median(warm):.3f} "
          f"({', '.join(f'{t:.3f}' for t in warm)}) |")


if __name__ == "__main__":
    main()
