"""Animation frames styled one by one against coherent frames (nst_core.engine.frames), side by side.

    python benchmarks/frames.py [--frames 12] [--size 256] [--photo coffee.png] [--style great_wave.jpg]
                                [--animation benchmarks/frames.webp] [--weights FILE] [--threads N]

On the synthetic pan with a slow zoom of tests/helpers/animation.py (known motion), with the real
VGG-16 and the standard preset (--preset), it prints for each way: the flicker (mean absolute difference, grey levels,
between styled frame t and styled frame t-1 carried along the true motion, over pixels visible in
both), the steps and seconds of each frame, the total time, and the share of frames in the evaluator's
good region (benchmarks/evaluate.py). With ``--animation`` it writes both sequences side by side
(independent left, coherent right) as an animated WebP or GIF. Timings mean something only on a
machine with nothing else running.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for folder in (REPO, HERE, os.path.join(REPO, "tests")):
    if folder not in sys.path:
        sys.path.insert(0, folder)

import evaluate  # noqa: E402

from helpers.animation import flicker, make_animation  # noqa: E402


def style_sequence(engine, pictures, style, params, coherent, temporal_weight):
    from nst_core.engine.frames import stylize_frames

    started = time.perf_counter()
    results = stylize_frames(engine, pictures, [style], params, coherent=coherent, temporal_weight=temporal_weight)
    return results, time.perf_counter() - started


def side_by_side(left, right, path, delay_ms):
    from PIL import Image, ImageDraw

    frames = []
    for a, b in zip(left, right):
        width, height = a.size
        sheet = Image.new("RGB", (2 * width + 4, height), (255, 255, 255))
        sheet.paste(a.convert("RGB"), (0, 0))
        sheet.paste(b.convert("RGB"), (width + 4, 0))
        draw = ImageDraw.Draw(sheet)
        for x, label in ((4, "independent"), (width + 8, "coherent")):
            draw.text((x + 1, 3), label, fill=(0, 0, 0))
            draw.text((x, 2), label, fill=(255, 255, 255))
        frames.append(sheet)
    options = {"save_all": True, "append_images": frames[1:], "duration": delay_ms, "loop": 0}
    if path.lower().endswith(".webp"):
        frames[0].save(path, quality=70, method=6, **options)
    else:
        frames[0].save(path, optimize=True, **options)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256, help="frame long side = working size (default 256)")
    parser.add_argument("--photo", default="coffee.png", help="an example photo (examples/)")
    parser.add_argument("--style", default="great_wave.jpg", help="an example style (examples/)")
    parser.add_argument("--pan", type=float, default=3.0, help="photo pixels per frame")
    parser.add_argument("--zoom", type=float, default=0.99, help="scale factor per frame")
    parser.add_argument("--preset", default="standard", choices=["standard", "fast"])
    parser.add_argument("--temporal-weight", type=float, default=None)
    parser.add_argument("--animation", help="write both sequences side by side here (.webp or .gif)")
    parser.add_argument("--delay", type=int, default=120, help="ms per frame of the animation")
    parser.add_argument("--weights", default=None, help="the VGG-16 file (default: the shared copy)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)

    import torch

    from nst_core import StyleParams
    from nst_core.engine.stylizer import Stylizer
    from nst_core.params import DEFAULT_TEMPORAL_WEIGHT

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.weights or evaluate.weights_path()
    if weights is None:
        raise SystemExit("no VGG-16 weights: give --weights FILE")
    examples = os.path.join(REPO, "examples")
    style = os.path.join(examples, args.style)
    size = (args.size, round(args.size * 2 / 3))
    pictures, path = make_animation(os.path.join(examples, args.photo), size, args.frames, args.pan, args.zoom)
    engine = Stylizer("vgg16", weights, "caffe", "cpu")
    judge = evaluate.Evaluator(weights)
    params = StyleParams.preset(args.preset, size=args.size)
    weight = DEFAULT_TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight
    print(f"{args.frames} frames {size[0]}x{size[1]} ({args.photo}, pan {args.pan:g} px/frame, zoom "
          f"{args.zoom:g}/frame), style {args.style}, {args.preset} preset, temporal weight {weight:g}, "
          f"{torch.get_num_threads()} thread(s)")
    rows, sequences = [], {}
    for name, coherent in (("independent", False), ("coherent", True)):
        results, seconds = style_sequence(engine, pictures, style, params, coherent, weight)
        images = [r.image for r in results]
        sequences[name] = images
        scores = [judge(image, picture, style) for image, picture in zip(images, pictures)]
        good = sum(evaluate.is_good(s, c) for s, c in scores)
        values = flicker(images, path)
        steps = [r.stats["steps"] for r in results]
        times = [r.stats["seconds"] for r in results]
        rows.append((name, sum(values) / len(values), steps[0], sum(steps[1:]) / max(len(steps) - 1, 1), times[0],
                     sum(times[1:]) / max(len(times) - 1, 1), seconds, good, len(images),
                     max(s for s, _ in scores), max(c for _, c in scores)))
    print("\n| frames | flicker (grey levels) | steps: first / later (mean) | s: first / later (mean) | total s "
          "| good frames | worst style / content |")
    print("|---|---|---|---|---|---|---|")
    for name, fl, s0, s1, t0, t1, total, good, count, worst_s, worst_c in rows:
        print(f"| {name} | {fl:.2f} | {s0} / {s1:.1f} | {t0:.1f} / {t1:.1f} | {total:.0f} | {good}/{count} "
              f"| {worst_s:.3f} / {worst_c:.3f} |")
    print(f"\nflicker ratio coherent / independent: {rows[1][1] / rows[0][1]:.2f}")
    if args.animation:
        written = side_by_side(sequences["independent"], sequences["coherent"], args.animation, args.delay)
        print(f"wrote {written} ({os.path.getsize(written) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
