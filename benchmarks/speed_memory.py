"""Seconds per iteration and peak memory: the engine beside a plain reference loop.

    python benchmarks/speed_memory.py [--sizes 256 512] [--iterations 6] [--device cpu]

Each measurement runs in its own process so that peak memory is its own: on the CPU the growth of
peak RSS over the process's size before the loop, on CUDA ``torch.cuda.max_memory_allocated``. Both
sides use VGG-19 (untrained weights: speed and memory do not depend on the values), single scale, the
same optimiser and the same loss modules; the reference runs the whole ``features`` stack as the
PyTorch tutorial does. The first iteration (allocator and kernel warm-up) is not timed.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def worker(kind, size, iterations, device, optimizer):
    import psutil
    import torch

    from nst_core.params import StyleParams

    # The standard preset on one scale, so that every iteration is a full-size one on both sides.
    params = StyleParams.preset("standard", size=size, iterations=iterations + 1, optimizer=optimizer,
                                multiscale=False, precision="fp32" if kind == "engine-fp32" else "auto")
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, size * 3 // 4, size, generator=generator) * 255
    style = torch.rand(1, 3, size, size, generator=generator) * 255
    times = []
    if kind.startswith("engine"):
        from nst_core.engine.stylizer import Stylizer

        engine = Stylizer("vgg19", "random", "caffe", device)
        content, style = content.to(engine.device), style.to(engine.device)
        from PIL import Image

        to_pil = lambda t: Image.fromarray(t[0].permute(1, 2, 0).byte().cpu().numpy())  # noqa: E731
        content_image, style_image = to_pil(content), to_pil(style)
        baseline = psutil.Process().memory_info().rss
        if engine.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        last = [None]

        def on_progress(event):
            if event.event == "progress":
                now = time.perf_counter()
                if last[0] is not None:
                    times.append(now - last[0])
                last[0] = now

        engine.run(content_image, [style_image], params, on_progress=on_progress)
        device_type = engine.device.type
    else:
        from reference import ReferenceNST

        ref = ReferenceNST("vgg19", "caffe", None, device)
        content, style = content.to(ref.device), style.to(ref.device)
        baseline = psutil.Process().memory_info().rss
        if ref.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        stamps = []
        ref.run(content, style, params, iterations + 1, optimizer, lambda t, loss, image: stamps.append(t))
        times = [b - a for a, b in zip(stamps, stamps[1:])][:iterations]
        device_type = ref.device.type
    if device_type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = peak_rss_bytes() - baseline
    return {"seconds_per_iteration": sum(times) / len(times), "peak_bytes": peak, "iterations": len(times)}


def measure(kind, size, iterations, device, optimizer):
    command = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--sizes", str(size),
               "--iterations", str(iterations), "--device", device, "--optimizer", optimizer]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} at {size} px failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--worker", choices=("engine", "engine-fp32", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.sizes[0], args.iterations, args.device, args.optimizer)))
        return

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}; VGG-19, {args.optimizer}, "
          f"{args.iterations} timed iterations after one warm-up")
    print(f"{'size':>9} | {'reference':>16} | {'engine, float32':>22} | {'engine, default precision':>26}")
    print(f"{'':>9} | {'s/it':>6} {'peak MB':>9} | {'s/it':>6} {'peak MB':>8} {'ratio':>6} | "
          f"{'s/it':>6} {'peak MB':>8} {'ratios':>10}")
    for size in args.sizes:
        reference = measure("reference", size, args.iterations, args.device, args.optimizer)
        rows = [measure(kind, size, args.iterations, args.device, args.optimizer) for kind in ("engine-fp32", "engine")]
        cells = []
        for row in rows:
            speed = row["seconds_per_iteration"] / reference["seconds_per_iteration"]
            memory = row["peak_bytes"] / max(reference["peak_bytes"], 1)
            cells.append(f"{row['seconds_per_iteration']:>6.3f} {row['peak_bytes'] / 2**20:>8.0f} "
                         f"{speed:>4.2f}/{memory:.2f}")
        print(f"{size}x{size * 3 // 4:<5} | {reference['seconds_per_iteration']:>6.3f} "
              f"{reference['peak_bytes'] / 2**20:>9.0f} | {cells[0]:>22} | {cells[1]:>26}", flush=True)
    print("ratios: engine / reference, time then memory (below 1: the engine is faster / smaller)")


if __name__ == "__main__":
    main()
