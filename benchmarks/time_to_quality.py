"""Time to quality: how soon each method reaches the reference's final loss, judged by one evaluator.

    python benchmarks/time_to_quality.py [--sizes 256 512] [--large 4096x3072]

Methods, all on the same content, style and final size, each in its own process (so its peak memory
is its own), every iterate saved with its wall time:
  reference         single-scale L-BFGS as in the PyTorch tutorial (benchmarks/reference.py)
  default           the engine's standard preset (multi-scale, 500 steps), optimising the evaluator's loss
  default-x3        the same schedule with three times the steps (1500)
  single-scale      the engine's machinery without multi-scale: 300 L-BFGS steps at the final size
  default-shipped   the standard preset exactly as shipped (normalised loss weights), for the record
  paper             the paper preset (single-scale Adam), stopped at the reference's total time
One fixed evaluator then scores every saved iterate: the paper's loss (content relu5_2 + SSIM-weighted
Gram style loss, raw formula, alpha 1e3, beta 1e-2) at the final size; iterates of smaller scales are
resized to it first. Evaluation time is not counted. With ../shared/data/weights present, features
are real (ImageNet VGG-16, Caffe preprocessing); without them the network is untrained and the
figures say little about quality.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
SHARED_WEIGHTS = os.path.join(os.path.dirname(REPO), "shared", "data", "weights", "vgg16-imagenet-caffe-features.pth")

PAPER_LOSS = {"loss_normalization": "raw", "content_weight": 1e3, "style_weight": 1e-2}

from speed_memory import peak_rss_bytes  # noqa: E402  (after the sys.path lines above)


def _images(args, size):
    from nst_core.engine.imageio import load_image
    from nst_core.engine.schedule import working_size

    content = load_image(args.content, "content")
    style = load_image(args.style, "style")
    return content, style, working_size(content.size, size)[0]


def worker(args):
    """Run one method, save its iterates (uint8) and times to args.out; print peak memory."""
    import psutil
    import torch

    from nst_core.engine.images import resize, to_tensor
    from nst_core.engine.stylizer import Stylizer
    from nst_core.params import StyleParams

    size = args.sizes[0]
    content, style, final = _images(args, size)
    times, frames = [], []

    def keep(seconds, image):
        times.append(seconds)
        frames.append(image.clamp(0, 255).round().to(torch.uint8).cpu())

    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    if args.worker == "reference":
        from reference import ReferenceNST

        params = StyleParams.preset("paper", size=size)
        ref = ReferenceNST(args.backbone, args.weights_format, args.weights, args.device)
        c = resize(to_tensor(content.rgb, ref.device), final)
        s = resize(to_tensor(style.rgb, ref.device), final)
        ref.run(c, s, params, args.evaluations, "lbfgs", lambda t, loss, image: keep(t, image))
    else:
        engine = Stylizer(args.backbone, args.weights, args.weights_format, args.device)
        overrides = {"size": size}
        if args.worker == "default":
            params = StyleParams.preset("standard", **overrides, **PAPER_LOSS)
        elif args.worker == "default-x3":
            params = StyleParams.preset("standard", **overrides, **PAPER_LOSS, iterations=1500)
        elif args.worker == "single-scale":
            params = StyleParams.preset("standard", **overrides, **PAPER_LOSS, iterations=300, multiscale=False)
        elif args.worker == "default-shipped":
            params = StyleParams.preset("standard", **overrides)
        else:
            params = StyleParams.preset("paper", **overrides)
        deadline = args.time_limit or None

        def on_progress(event):
            if event.event == "progress" and event.phase == "stylize":
                keep(event.elapsed, event.image)

        should_stop = (lambda: time.perf_counter() - start > deadline) if deadline else None
        try:
            engine.run(content, [style], params, on_progress=on_progress, should_stop=should_stop)
        except Exception as error:  # a time-limited run ends with Cancelled: its iterates still count
            if type(error).__name__ != "Cancelled":
                raise
    peak = peak_rss_bytes() - baseline
    if torch.cuda.is_available() and args.device != "cpu":
        peak = torch.cuda.max_memory_allocated()
    torch.save({"times": times, "frames": frames}, args.out)
    print(json.dumps({"peak_bytes": peak, "seconds": time.perf_counter() - start, "count": len(times)}))


def run_method(args, method, size, out, time_limit=None):
    command = [sys.executable, os.path.abspath(__file__), "--worker", method, "--sizes", str(size),
               "--out", out, "--content", args.content, "--style", args.style, "--backbone", args.backbone,
               "--weights-format", args.weights_format, "--device", args.device,
               "--evaluations", str(args.evaluations)]
    if args.weights:
        command += ["--weights", args.weights]
    if time_limit:
        command += ["--time-limit", str(time_limit)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} at {size} px failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Evaluator:
    """The paper's loss at the final size, on the benchmark's backbone."""

    def __init__(self, args, size):
        from nst_core.engine.images import resize, to_tensor
        from nst_core.engine.stylizer import StyleSet, Stylizer
        from nst_core.params import StyleParams

        self.resize = resize
        self.engine = Stylizer(args.backbone, args.weights, args.weights_format, args.device)
        self.params = StyleParams.preset("paper", size=size)
        content, style, self.final = _images(args, size)
        c = resize(to_tensor(content.rgb, self.engine.device), self.final)
        s = to_tensor(style.rgb, self.engine.device)
        grams = self.engine.style_grams(StyleSet([s], [None], [1.0], ["style"]), max(self.final), self.params)
        self.objective = self.engine.objective(c, grams, self.params)
        self.cache = {}

    def __call__(self, frames, index):
        key = (id(frames), index)  # one cache for every method's iterates
        if key not in self.cache:
            image = frames[index].float().to(self.engine.device)
            image = self.resize(image, self.final)
            self.cache[key] = self.engine.evaluate(image, self.objective, self.params)[0]
        return self.cache[key]


def first_reaching(evaluate, frames, times, target, stride=8):
    """(seconds, index) of the first iterate whose loss is <= target, or None; plus the best loss seen.

    Scans every ``stride``-th iterate, then the ones just before the first hit, so that a run of
    hundreds of iterates needs only tens of evaluations.
    """
    count = len(frames)
    grid = list(range(0, count, stride)) + ([count - 1] if (count - 1) % stride else [])
    best = min(evaluate(frames, i) for i in grid)
    for position, index in enumerate(grid):
        if evaluate(frames, index) <= target:
            previous = grid[position - 1] if position else -1
            for earlier in range(previous + 1, index):
                if evaluate(frames, earlier) <= target:
                    return (times[earlier], earlier), best
            return (times[index], index), best
    return None, best


def large_image_run(args, spec):
    """Peak memory and time of the engine's default on a huge content layer (CLI, own process)."""
    from PIL import Image

    width, height = (int(v) for v in spec.lower().split("x"))
    with tempfile.TemporaryDirectory() as folder:
        content = os.path.join(folder, "large.png")
        Image.open(args.content).convert("RGB").resize((width, height), Image.BICUBIC).save(content)
        out = os.path.join(folder, "out.png")
        command = [sys.executable, "-c",
                   "import resource, sys, runpy; sys.argv = sys.argv[1:]; "
                   "code = 0\ntry:\n runpy.run_module('nst_core', run_name='__main__')\n"
                   "except SystemExit as e:\n code = e.code\n"
                   "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)",
                   "nst-core", "stylize", content, args.style, "-o", out, "--progress", "none",
                   "--backbone", args.backbone, "--weights-format", args.weights_format, "--device", args.device]
        if args.weights:
            command += ["--weights", args.weights]
        command += args.large_options
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        peak_kb = [int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK")]
        summary = [line for line in done.stderr.splitlines() if line.startswith("wrote") or "error" in line]
        ok = done.returncode == 0 and os.path.isfile(out) and Image.open(out).size == (width, height)
        return {"ok": ok, "seconds": seconds, "peak_bytes": (peak_kb[0] * 1024) if peak_kb else None,
                "summary": summary[-1] if summary else done.stderr[-500:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--content", default=os.path.join(REPO, "examples", "chelsea.png"))
    parser.add_argument("--style", default=os.path.join(REPO, "examples", "starry_night.jpg"))
    parser.add_argument("--weights", default=SHARED_WEIGHTS if os.path.isfile(SHARED_WEIGHTS) else None)
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--weights-format", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--evaluations", type=int, default=300, help="the reference's L-BFGS closure calls")
    methods = ["reference", "default", "default-x3", "single-scale", "default-shipped", "paper"]
    parser.add_argument("--methods", nargs="+", choices=methods, default=methods)
    parser.add_argument("--large", default="4096x3072", help="WxH of the large-layer memory run ('' to skip)")
    parser.add_argument("--large-options", nargs=argparse.REMAINDER, default=[],
                        help="extra stylize options for the large run (last on the line)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--time-limit", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.weights is None:
        args.weights = "random"
    if args.backbone is None:
        args.backbone = "vgg16" if args.weights == SHARED_WEIGHTS else "vgg19"
    if args.weights_format is None:
        args.weights_format = "caffe" if args.weights == SHARED_WEIGHTS else "torchvision"
    if args.worker:
        worker(args)
        return

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, device {args.device}")
    print(f"backbone {args.backbone} ({args.weights_format}), weights {args.weights}")
    print(f"content {os.path.basename(args.content)}, style {os.path.basename(args.style)}; evaluator: the "
          "paper's loss at the final size")
    for size in args.sizes:
        evaluate = Evaluator(args, size)
        results = {}
        with tempfile.TemporaryDirectory() as folder:
            for method in args.methods:
                limit = None
                if method == "paper" and "reference" in results:
                    limit = results["reference"]["seconds"]
                out = os.path.join(folder, f"{method}.pt")
                info = run_method(args, method, size, out, limit)
                saved = torch.load(out, weights_only=True)
                info["times"], info["frames"] = saved["times"], saved["frames"]
                results[method] = info
                print(f"  ran {method} at {size}: {info['count']} iterates, {info['seconds']:.0f} s", flush=True)
            reference = results.get("reference")
            target = evaluate(reference["frames"], len(reference["frames"]) - 1) if reference else None
            print(f"\nfinal size {evaluate.final[0]}x{evaluate.final[1]}: reference final loss "
                  f"{target:.4g}" if target else "")
            print(f"  {'method':<16} {'iterates':>8} {'run s':>7} {'best loss':>10} {'reaches ref. at':>16} "
                  f"{'x ref. time':>11} {'peak MB':>8}")
            for method, info in results.items():
                hit, best = first_reaching(evaluate, info["frames"], info["times"], target) if target else (None, None)
                reach = f"{hit[0]:.0f} s (#{hit[1] + 1})" if hit else "not reached"
                ratio = f"{hit[0] / reference['times'][-1]:.2f}" if hit else "-"
                print(f"  {method:<16} {info['count']:>8} {info['seconds']:>7.0f} {best:>10.4g} {reach:>16} "
                      f"{ratio:>11} {info['peak_bytes'] / 2**20:>8.0f}", flush=True)
    if args.large:
        info = large_image_run(args, args.large)
        peak = f"{info['peak_bytes'] / 2**30:.1f} GB" if info["peak_bytes"] else "unknown"
        print(f"\nlarge layer {args.large}: {'completed' if info['ok'] else 'FAILED'} in {info['seconds']:.0f} s, "
              f"peak RSS {peak}\n  {info['summary']}")


if __name__ == "__main__":
    main()
