"""Sharing the CPU: one engine alone, then two side by side, under a few thread settings.

    python benchmarks/cpu_sharing.py [--steps 30] [--size 160]
        [--settings default passive free-cores passive+free-cores]

Each engine is its own process running ``Stylizer.run`` (standard preset on one scale, L-BFGS, untrained
VGG-19 weights: speed does not depend on the values) for ``--steps`` steps on a ``--size`` px picture;
the time is that of the run, measured inside the process after the network is loaded (start-up not
counted). Side by side, both processes load first and start their runs together (a file they wait
for), so the runs really overlap. Settings:

  default             what the engine does today (torch's own thread count and OpenMP wait policy)
  passive             OMP_WAIT_POLICY=PASSIVE in the environment, so it is set before torch loads:
                      idle OpenMP threads sleep instead of spinning
  free-cores          torch.set_num_threads(the cores not busy now: cores minus the 1-minute load
                      average, rounded, at least 1), decided just before the run
  passive+free-cores  both

Figures: seconds alone, seconds of each of the two side by side, and their ratio to alone (a fair
share of two cores between two engines is 2x; the target is at most 2.5x, with nothing lost
alone). Run it on an otherwise idle machine: its figures mean nothing while other work runs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

SETTINGS = ("default", "passive", "free-cores", "passive+free-cores")


def free_cores():
    cores = os.cpu_count() or 1
    return max(1, round(cores - os.getloadavg()[0]))


def worker(args):
    import numpy as np
    import torch

    from nst_core.engine.stylizer import Stylizer
    from nst_core.params import StyleParams

    rng = np.random.default_rng(0)
    content = rng.uniform(0, 255, (args.size * 3 // 4, args.size, 3)).astype(np.float32)
    style = rng.uniform(0, 255, (args.size, args.size, 3)).astype(np.float32)
    engine = Stylizer("vgg19", "random", "torchvision", "cpu")
    params = StyleParams.preset("standard", size=args.size, iterations=args.steps, multiscale=False)
    engine.run(content, [style], params.replace(iterations=2))  # warm-up: allocator, kernels
    if args.go:
        open(args.go + ".ready-" + str(os.getpid()), "w").close()
        while not os.path.exists(args.go):
            time.sleep(0.01)
    threads = torch.get_num_threads()
    if "free-cores" in args.setting:
        threads = free_cores()
        torch.set_num_threads(threads)
    started = time.perf_counter()
    engine.run(content, [style], params)
    print(json.dumps({"seconds": time.perf_counter() - started, "threads": threads}))


def launch(args, setting, go=None):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if "passive" in setting:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--setting", setting,
               "--steps", str(args.steps), "--size", str(args.size)]
    if go:
        command += ["--go", go]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)


def result(process):
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"an engine failed:\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def side_by_side(args, setting):
    with tempfile.TemporaryDirectory() as folder:
        go = os.path.join(folder, "go")
        processes = [launch(args, setting, go) for _ in range(2)]
        while len([n for n in os.listdir(folder) if n.startswith("go.ready-")]) < 2:
            if any(p.poll() is not None for p in processes):
                break
            time.sleep(0.05)
        open(go, "w").close()
        return [result(p) for p in processes]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--setting", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--go", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.2f}; {args.steps} steps at {args.size} px")
    print(f"  {'setting':<20} {'threads':>7} {'alone s':>8} {'side by side s':>16} {'x alone':>12}")
    rows = {}
    for setting in args.settings:
        alone = result(launch(args, setting))
        pair = side_by_side(args, setting)
        ratios = [p["seconds"] / alone["seconds"] for p in pair]
        rows[setting] = {"alone": alone, "side_by_side": pair, "ratios": ratios}
        threads = f"{alone['threads']}/{pair[0]['threads']},{pair[1]['threads']}"
        print(f"  {setting:<20} {threads:>7} {alone['seconds']:>8.2f} "
              f"{pair[0]['seconds']:>7.2f} {pair[1]['seconds']:>7.2f} {ratios[0]:>5.1f} {ratios[1]:>5.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
