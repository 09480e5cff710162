"""Time to a good result: how soon each method's picture first lies in the good region.

    python benchmarks/time_to_good.py [--sizes 256 512] [--neural-style-pt DIR]

For each size, in one run, on one content/style pair (default examples/chelsea.png with
examples/starry_night.jpg), each method in its own process (so its peak memory is its own):

  standard          the engine's standard preset as shipped (``Stylizer.run``)
  fast              the engine's fast preset as shipped
  neural-style-pt   ProGamerGov/neural-style-pt's ``neural_style.py`` with its defaults (1000 L-BFGS
                    evaluations from noise, content 5, style 100, TV 1e-3, relu4_2 content) on the same
                    VGG-16 Caffe weights; not a dependency: pass its folder with --neural-style-pt or
                    NEURAL_STYLE_PT, skipped with a message when absent
  reference         plain single-scale L-BFGS at full size (benchmarks/reference.py, as the PyTorch
                    tutorial writes it) on Gatys et al. (2016)'s loss as their paper states it: content
                    relu4_2 with 1/2 sum (F - P)^2, style relu1_1..relu5_1 each weighted 1/5 with
                    sum (G - A)^2 / (4 N^2 M^2), alpha/beta = 1e-3, no SSIM factor; float32, from the
                    content (the Caffe VGG-16 here: their network was Caffe's VGG-19)

All use the real ImageNet VGG-16 (Caffe preprocessing) of ../shared/data/weights (or NST_TEST_WEIGHTS).
Every iterate is written to disk with its wall time (from the start of the run, after the network is
loaded); after all methods ran, benchmarks/evaluate.py judges them (judging time is not counted).
"good at" is the wall time of the first iterate at the final working size whose style distance is
<= 0.15 and content distance <= 0.5 (coarser scales do not count: they are not what the user gets).
"final" scores the image each method returns. "ETA ok" (the engine's presets): the share of its time-left
estimates, made once a tenth of the run had passed, within 25 % of the real time left (or within its
last step, at the very end). Peak memory is the growth of peak RSS over the process
before the run. Writes the table, benchmarks/time_to_good.json and a contact sheet of the final
images (benchmarks/time_to_good.png).
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

from calibrate import first_good  # noqa: E402
from evaluate import GOOD_CONTENT, GOOD_STYLE, Evaluator, weights_path  # noqa: E402
from reference import STRONG_MAX_ITER  # noqa: E402
from speed_memory import peak_rss_bytes  # noqa: E402

METHODS = ("standard", "fast", "strong", "neural-style-pt", "reference")
PHOTOS = ("chelsea", "astronaut", "coffee")  # examples/LICENSES.md: the content images
PAINTINGS = ("starry_night", "great_wave")  # the style images (hubble_deep_field is one too: --pairs)
GATYS_ALPHA_OVER_BETA = 1e-3  # Gatys, Ecker, Bethge (2016), the ratio of their main figures


def gatys_loss(content_numel):
    """Gatys et al.'s loss in the reference's terms (mean-squared errors, Gram = F F^T / M):
    1/2 sum (F - P)^2 = (numel / 2) mean (F - P)^2 at relu4_2, and per style layer
    sum (F F^T - P P^T)^2 / (4 N^2 M^2) = mean (G - A)^2 / 4 with G = F F^T / M, weighted 1/5 each
    (the params' default layer weights), style scaled by beta / alpha."""
    return {"use_ssim": False, "loss_normalization": "raw", "content_layers": ("relu4_2",),
            "content_weight": content_numel / 2.0, "style_weight": 0.25 / GATYS_ALPHA_OVER_BETA}
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)


class FrameSink:
    """Appends uint8 iterates to one raw file (so they do not count in the process's memory)."""

    def __init__(self, folder):
        self.folder = folder
        self.raw = open(os.path.join(folder, "frames.raw"), "wb")
        self.index = []
        self.start = None
        self.baseline = None
        self.extra = {}

    def begin(self):
        """The run starts: the network is loaded; memory from here on is the run's."""
        import psutil

        process = psutil.Process()
        self.baseline = process.memory_info().rss
        self.extra["process_start_to_begin"] = time.time() - process.create_time()  # the cold offset
        self.start = time.perf_counter()

    def add(self, image):
        """``image``: 1 x 3 x H x W RGB, 0..255 (any float dtype)."""
        seconds = time.perf_counter() - self.start
        frame = image.detach().float().clamp(0, 255).round().byte().cpu()[0].permute(1, 2, 0).contiguous()
        self.index.append({"seconds": seconds, "width": frame.shape[1], "height": frame.shape[0],
                           "offset": self.raw.tell()})
        self.raw.write(frame.numpy().tobytes())

    def close(self, extra):
        self.raw.close()
        with open(os.path.join(self.folder, "frames.json"), "w") as handle:
            json.dump({"frames": self.index, **self.extra, **extra}, handle)


def load_frames(folder):
    import numpy as np

    with open(os.path.join(folder, "frames.json")) as handle:
        info = json.load(handle)
    data = np.memmap(os.path.join(folder, "frames.raw"), dtype=np.uint8, mode="r")

    def frame(i):
        f = info["frames"][i]
        size = f["width"] * f["height"] * 3
        return np.array(data[f["offset"]:f["offset"] + size]).reshape(f["height"], f["width"], 3).astype(np.float32)

    return info, frame


# ----- workers (one process each) -------------------------------------------------------------------

def engine_worker(args, sink):
    from nst_core.engine.stylizer import Stylizer
    from nst_core.params import StyleParams

    engine = Stylizer("vgg16", args.weights, "caffe", args.device)
    params = StyleParams.preset(args.worker, size=args.size, iterations=args.iterations)

    estimates = []

    def on_progress(event):
        if event.event == "progress":
            estimates.append((event.elapsed, event.eta))
            if event.phase == "stylize":
                sink.add(event.image)

    sink.begin()
    result = engine.run(args.content, [args.style], params, on_progress=on_progress)
    sink.extra["estimates"] = estimates
    sink.extra["engine_seconds"] = result.stats["seconds"]
    sink.extra["steps"] = result.stats["steps"]
    sink.extra["stop_reason"] = result.stats["stop_reason"]
    return result.image.convert("RGB")


def eta_accuracy(estimates, total):
    """The share of the time-left estimates made once a tenth of the run had passed that were within
    25 % of the real time left (the bound the time left aims at), or within the run's last step where almost nothing
    is left (as tests/engine/test_eta_recorded.py counts); None without estimates."""
    times = [elapsed for elapsed, _ in estimates]
    last_step = times[-1] - times[-2] if len(times) > 1 else 0.0
    judged = [abs(eta - (total - elapsed)) <= max(0.25 * (total - elapsed), last_step)
              for elapsed, eta in estimates if elapsed >= 0.1 * total and eta is not None]
    return round(sum(judged) / len(judged), 3) if judged else None


def reference_worker(args, sink):
    import torch
    from PIL import Image
    from reference import ReferenceNST

    from nst_core.engine.imageio import load_image
    from nst_core.engine.images import resize, to_tensor
    from nst_core.engine.schedule import working_size
    from nst_core.params import StyleParams

    content, style = load_image(args.content, "content"), load_image(args.style, "style")
    final = working_size(content.size, args.size)[0]
    ref = ReferenceNST("vgg16", "caffe", args.weights, args.device)
    c = resize(to_tensor(content.rgb, ref.device), final)
    s = resize(to_tensor(style.rgb, ref.device), final)
    with torch.no_grad():
        content_numel = ref._activations(c, ("relu4_2",))["relu4_2"].numel()
    params = StyleParams.preset("paper", size=args.size, **gatys_loss(content_numel))
    sink.begin()
    image = ref.run(c, s, params, args.reference_evaluations, "lbfgs", lambda t, loss, x: sink.add(x))
    rgb = image[0].permute(1, 2, 0).round().byte().cpu().numpy()
    return Image.fromarray(rgb, "RGB")


def strong_worker(args, sink):
    """The strong plain baseline (benchmarks/reference.py, StrongBaseline); its clock starts once the
    network is loaded and the targets are computed, at the optimisation's start."""
    from PIL import Image
    from reference import StrongBaseline

    from nst_core.engine.imageio import load_image
    from nst_core.engine.images import resize, to_tensor
    from nst_core.engine.schedule import working_size

    content, style = load_image(args.content, "content"), load_image(args.style, "style")
    final = working_size(content.size, args.size)[0]
    baseline = StrongBaseline("vgg16", "caffe", args.weights, args.device)
    c = resize(to_tensor(content.rgb, baseline.device), final)
    s = resize(to_tensor(style.rgb, baseline.device), final)
    targets = baseline.targets(c, s)
    sink.begin()
    image, evaluations = baseline.run(c, s, targets, lambda t, loss, x: sink.add(x), args.strong_iterations)
    sink.extra["steps"] = evaluations
    sink.extra["stop_reason"] = "max_iter" if evaluations >= args.strong_iterations else "lbfgs_tolerance"
    rgb = image[0].permute(1, 2, 0).round().byte().cpu().numpy()
    return Image.fromarray(rgb, "RGB")


def neural_style_pt_worker(args, sink, folder):
    """Runs neural_style.py's own ``main`` with its defaults; our VGG-16 goes in through its loader.

    Its loader picks the architecture from the file name ("vgg" and "16") and loads a torchvision-layout
    state dict (``features.N.weight``), which is what our Caffe-converted file holds; ``-disable_check``
    lets the absent classifier stay unset. Each L-BFGS evaluation's image is recorded by wrapping the
    closure it passes to ``LBFGS.step``.
    """
    import torch
    from PIL import Image

    from nst_core.engine.weights import _feature_tensors, _read_state_dict

    tensors = _feature_tensors(_read_state_dict(args.weights))
    # A bare file name in the run's own folder: its loader reads the architecture from the whole path
    # (a "19" anywhere in a temporary folder's name would pick VGG-19).
    os.chdir(folder)
    model = "vgg16-caffe-features.pth"
    torch.save({f"features.{i}.{k}": v for i, pair in tensors.items() for k, v in pair.items()}, model)
    output = os.path.join(folder, "nspt-out.png")
    sys.path.insert(0, args.neural_style_pt)
    sys.argv = ["neural_style.py", "-content_image", args.content, "-style_image", args.style,
                "-image_size", str(args.size), "-gpu", "c" if args.device == "cpu" else "0",
                "-model_file", model, "-disable_check", "-print_iter", "0", "-save_iter", "0",
                "-output_image", output]
    if args.neural_style_pt_iterations:
        sys.argv += ["-num_iterations", str(args.neural_style_pt_iterations)]
    import neural_style  # parses sys.argv on import

    mean_bgr = torch.tensor(CAFFE_MEAN_RGB[::-1]).view(1, 3, 1, 1)
    original_loader, original_lbfgs = neural_style.loadCaffemodel, torch.optim.LBFGS

    def loader(*a, **k):
        loaded = original_loader(*a, **k)
        sink.begin()  # the clock starts once the network is loaded, as for the other methods
        return loaded

    class RecordingLBFGS(original_lbfgs):
        def step(self, closure):
            image = self.param_groups[0]["params"][0]

            def recorded():
                loss = closure()
                with torch.no_grad():
                    sink.add((image.detach().cpu() + mean_bgr)[:, [2, 1, 0]])
                return loss
            return super().step(recorded)

    neural_style.loadCaffemodel = loader
    neural_style.optim = type("optim", (), {"LBFGS": RecordingLBFGS, "Adam": torch.optim.Adam})
    neural_style.main()
    return Image.open(output).convert("RGB")


def worker(args):
    folder = args.out
    sink = FrameSink(folder)
    if args.worker in ("standard", "fast"):
        image = engine_worker(args, sink)
    elif args.worker == "reference":
        image = reference_worker(args, sink)
    elif args.worker == "strong":
        image = strong_worker(args, sink)
    else:
        image = neural_style_pt_worker(args, sink, folder)
    seconds = time.perf_counter() - sink.start
    image.save(os.path.join(folder, "final.png"))
    sink.close({"seconds": seconds, "peak_bytes": peak_rss_bytes() - sink.baseline, "pair": [args.content, args.style]})


# ----- the parent: run, judge, print ----------------------------------------------------------------

def run_method(args, method, size, folder):
    command = [sys.executable, os.path.abspath(__file__), "--worker", method, "--size", str(size), "--out", folder,
               "--content", args.content, "--style", args.style, "--weights", args.weights,
               "--device", args.device, "--reference-evaluations", str(args.reference_evaluations),
               "--strong-iterations", str(args.strong_iterations)]
    if args.neural_style_pt:
        command += ["--neural-style-pt", args.neural_style_pt]
    if args.neural_style_pt_iterations:
        command += ["--neural-style-pt-iterations", str(args.neural_style_pt_iterations)]
    if args.iterations:
        command += ["--iterations", str(args.iterations)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{method} at {size} px failed:\n{done.stderr[-3000:]}")


def judge_method(judge, folder, content, style, every):
    from PIL import Image

    info, frame = load_frames(folder)
    frames = info["frames"]
    scores = {}

    def score(i):
        if i not in scores:
            scores[i] = judge(frame(i), content, style)
        return scores[i]

    # calibrate.first_good wants (iteration, seconds, scale, (w, h), image) tuples; only the size matters.
    rows = [(i + 1, f["seconds"], None, (f["width"], f["height"]), None) for i, f in enumerate(frames)]
    hit = first_good(rows, score, every)
    final = judge(Image.open(os.path.join(folder, "final.png")).convert("RGB"), content, style)
    cold = info.get("process_start_to_begin")
    return {
        "cold_good_at_seconds": round(cold + frames[hit]["seconds"], 2) if hit is not None and cold else None,
        "cold_seconds": round(cold + info["seconds"], 2) if cold else None,
        "steps": info.get("steps", len(frames)), "stop_reason": info.get("stop_reason", "-"),
        "iterates": len(frames), "seconds": round(info["seconds"], 2),
        "good_at_seconds": round(frames[hit]["seconds"], 2) if hit is not None else None,
        "good_at_step": hit + 1 if hit is not None else None,
        "final_style": round(final[0], 4), "final_content": round(final[1], 4),
        "eta_within_25pct": eta_accuracy(info["estimates"], info["engine_seconds"]) if "estimates" in info else None,
        "peak_mb": round(info["peak_bytes"] / 2**20),
        "working_size": [frames[-1]["width"], frames[-1]["height"]],
    }


def contact_sheet(rows, path):
    """One row per pair and size: content, style, then each method's final image, labelled."""
    from PIL import Image, ImageDraw

    tile, label_height = 256, 44
    columns = 2 + max(len(methods) for _, methods in rows)
    sheet = Image.new("RGB", (columns * tile, len(rows) * (tile + label_height)), "white")
    draw = ImageDraw.Draw(sheet)

    def put(image, column, row, lines):
        scale = min(tile / image.width, tile / image.height)  # small results are shown enlarged
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
        top = row * (tile + label_height)
        sheet.paste(image, (column * tile + (tile - image.width) // 2, top + (tile - image.height) // 2))
        for k, line in enumerate(lines):
            draw.text((column * tile + 4, top + tile + 2 + 13 * k), line, fill="black")

    for r, (label, methods) in enumerate(rows):
        info_path = os.path.join(methods[0][1], "frames.json")
        with open(info_path) as handle:
            pair = json.load(handle)["pair"]
        put(Image.open(pair[0]).convert("RGB"), 0, r, ["content", f"{label} px"])
        put(Image.open(pair[1]).convert("RGB"), 1, r, ["style"])
        for c, (name, folder, result) in enumerate(methods):
            good = f"good at {result['good_at_seconds']:.0f} s" if result["good_at_seconds"] is not None else "not good"
            put(Image.open(os.path.join(folder, "final.png")), 2 + c, r,
                [name, f"style {result['final_style']:.2f} content {result['final_content']:.2f}", good])
    sheet.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--content", default=os.path.join(REPO, "examples", "chelsea.png"))
    parser.add_argument("--style", default=os.path.join(REPO, "examples", "starry_night.jpg"))
    parser.add_argument("--pairs", nargs="+", help="CONTENT:STYLE example names (chelsea:great_wave ...), or "
                                                   "'all': every example photo with every example painting")
    parser.add_argument("--weights", default=weights_path(), help="VGG-16, Caffe preprocessing (torchvision layout)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--neural-style-pt", default=os.environ.get("NEURAL_STYLE_PT"),
                        help="folder holding neural_style.py and CaffeLoader.py (or NEURAL_STYLE_PT)")
    parser.add_argument("--strong-iterations", type=int, default=STRONG_MAX_ITER,
                        help="the strong baseline's LBFGS max_iter (100; smaller only for a quick check)")
    parser.add_argument("--reference-evaluations", type=int, default=300, help="the reference's L-BFGS closure calls")
    parser.add_argument("--neural-style-pt-iterations", type=int,
                        help="override neural-style-pt's own default (1000), e.g. for a quick check")
    parser.add_argument("--iterations", type=int, help="override both presets' step counts (for a quick check only)")
    parser.add_argument("--every", type=int, default=10, help="judge every N-th iterate, then the ones before a hit")
    parser.add_argument("--json", default=os.path.join(HERE, "time_to_good.json"))
    parser.add_argument("--sheet", default=os.path.join(HERE, "time_to_good.png"))
    parser.add_argument("--keep", help="keep every method's iterates and final image in this folder")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("content", "style"):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    if args.worker:
        worker(args)
        return
    if not args.weights:
        raise SystemExit("the real VGG-16 weights are needed: ../shared/data/weights/vgg16-imagenet-caffe-"
                         "features.pth, NST_TEST_WEIGHTS or --weights")
    methods = list(args.methods)
    if "neural-style-pt" in methods:
        script = os.path.join(args.neural_style_pt or "", "neural_style.py")
        if not args.neural_style_pt or not os.path.isfile(script):
            print("neural-style-pt skipped: pass --neural-style-pt DIR (or NEURAL_STYLE_PT) naming a folder with "
                  "its neural_style.py and CaffeLoader.py (github.com/ProGamerGov/neural-style-pt)")
            methods.remove("neural-style-pt")
        else:
            args.neural_style_pt = os.path.abspath(args.neural_style_pt)

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, device {args.device}")
    print(f"content {os.path.basename(args.content)}, style {os.path.basename(args.style)}, VGG-16 {args.weights}")
    print(f"good: style <= {GOOD_STYLE} and content <= {GOOD_CONTENT} (benchmarks/evaluate.py)")
    judge = Evaluator(args.weights)
    report, sheet_rows = {"pairs": {}, "sizes": {}}, []
    pairs = parse_pairs(args)
    with tempfile.TemporaryDirectory(prefix="time-to-good-") as scratch:
        root = args.keep or scratch
        for content, style in pairs:
            pair = f"{os.path.splitext(os.path.basename(content))[0]}/{os.path.splitext(os.path.basename(style))[0]}"
            args.content, args.style = content, style
            for size in args.sizes:
                results, sheet_methods = {}, []
                for method in methods:
                    folder = os.path.join(root, f"{pair.replace('/', '-')}-{size}-{method}")
                    os.makedirs(folder, exist_ok=True)
                    started = time.perf_counter()
                    run_method(args, method, size, folder)
                    results[method] = judge_method(judge, folder, content, style, args.every)
                    sheet_methods.append((method, folder, results[method]))
                    print(f"  ran {method} at {size} px on {pair}: {results[method]['iterates']} iterates, "
                          f"{results[method]['seconds']:.0f} s (with judging {time.perf_counter() - started:.0f} s)",
                          flush=True)
                print_table(pair, size, results)
                report["pairs"].setdefault(pair, {})[str(size)] = results
                if len(pairs) == 1:
                    report["content"], report["style"] = content, style
                    report["sizes"][str(size)] = results
                sheet_rows.append((f"{pair} {size}", sheet_methods))
        if sheet_rows and args.sheet:
            contact_sheet(sheet_rows, args.sheet)
            print(f"\ncontact sheet: {args.sheet}")
    report["machine"] = {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                         "torch": torch.__version__, "device": args.device}
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=1)
    print(f"results: {args.json}")


def parse_pairs(args):
    """(content path, style path) of each pair: --pairs NAME:NAME ... or "all" (every example photo with
    every example painting), else --content with --style."""
    if not args.pairs:
        return [(args.content, args.style)]
    names = [f"{c}:{s}" for c in PHOTOS for s in PAINTINGS] if args.pairs == ["all"] else args.pairs
    pairs = []
    for name in names:
        if ":" not in name:
            raise SystemExit(f"--pairs takes CONTENT:STYLE names of examples/ (e.g. chelsea:starry_night), "
                             f"got {name!r}")
        pairs.append(tuple(example_path(part) for part in name.split(":", 1)))
    return pairs


def example_path(name):
    folder = os.path.join(REPO, "examples")
    for entry in sorted(os.listdir(folder)):
        if os.path.splitext(entry)[0] == name:
            return os.path.join(folder, entry)
    raise SystemExit(f"no example image named {name!r} in {folder}")


def ratio(value, against):
    return round(value / against, 2) if value is not None and against else None


def print_table(pair, size, results):
    """One size of one pair: each method, then its time to good and whole run against the strong
    baseline (the headline) and against the weak paper-loss reference (second, labelled)."""
    work = next(iter(results.values()))["working_size"] if results else None
    print(f"\n{pair}, size {size}" + (f" (working size {work[0]}x{work[1]})" if work else ""))
    print(f"  {'method':<16} {'steps':>5} {'stop':>15} {'good at':>16} {'cold good':>9} {'run s':>6} {'cold run':>8} "
          f"{'style':>6} {'content':>7} {'peak MB':>7} {'ETA ok':>6}")
    for method, r in results.items():
        good = f"{r['good_at_seconds']:.1f} s (#{r['good_at_step']})" if r["good_at_seconds"] is not None \
            else "not reached"
        cold_good = "-" if r["cold_good_at_seconds"] is None else f"{r['cold_good_at_seconds']:.1f}"
        cold_run = "-" if r["cold_seconds"] is None else f"{r['cold_seconds']:.1f}"
        eta_ok = "-" if r["eta_within_25pct"] is None else f"{100 * r['eta_within_25pct']:.0f} %"
        print(f"  {method:<16} {r['steps']:>5} {r['stop_reason']:>15} {good:>16} {cold_good:>9} {r['seconds']:>6.1f} "
              f"{cold_run:>8} {r['final_style']:>6.3f} {r['final_content']:>7.3f} {r['peak_mb']:>7} {eta_ok:>6}")
    for against, label in (("strong", "x strong baseline"), ("reference", "x weak reference (Gatys raw loss)")):
        base = results.get(against)
        if base is None:
            continue
        for method, r in results.items():
            if method in ("strong", "reference"):
                continue
            r[f"x_{against}"] = {"good": ratio(r["good_at_seconds"], base["good_at_seconds"]),
                                 "cold_good": ratio(r["cold_good_at_seconds"], base["cold_good_at_seconds"]),
                                 "run": ratio(r["seconds"], base["seconds"]),
                                 "cold_run": ratio(r["cold_seconds"], base["cold_seconds"])}
            x = r[f"x_{against}"]
            shown = {k: "-" if v is None else f"{v:.2f}" for k, v in x.items()}
            print(f"  {method} {label}: good {shown['good']} (cold {shown['cold_good']}), "
                  f"whole run {shown['run']} (cold {shown['cold_run']})")


if __name__ == "__main__":
    main()
