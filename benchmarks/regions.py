"""Regions against the old way: one two-region run, and two one-style runs composited by the same mask.

    python benchmarks/regions.py [--size 512] [--preset fast] [--content examples/chelsea.png]
    python benchmarks/regions.py --per-step 30 --size 256 --preset standard     # the cost of a step only

Prints, side by side: the time of each run (the two-region run against one one-style run: the
question is whether it costs much more than one run, where the old way costs two), the evaluator's
style distance (benchmarks/evaluate.py, real VGG-16) inside each region to each style, the content
distance of the middle third left to the photo, and a seam measure across a feathered boundary (the
mean colour's largest step and the texture's energy at the edge, each against what the regions have
inside). Writes a contact sheet (the two masks, the composited pair, the two-region run) and the
figures as JSON beside it. Each run starts with an empty style cache, so each pays for its targets.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]

STYLES = [os.path.join(REPO, "examples", name) for name in ("starry_night.jpg", "great_wave.jpg")]


def soft_bands(width, height, edges, feather):
    """One vertical band per (lo, hi) in 0..1 of the width, its edges faded over ``feather``."""
    x = np.linspace(0, 1, width)[None, :].repeat(height, 0)
    return [np.clip(np.minimum((x - lo) / feather + 0.5, (hi - x) / feather + 0.5), 0, 1).astype(np.float32)
            for lo, hi in edges]


def column_profiles(image, smooth=5):
    """Per column, smoothed: the mean grey level and the mean squared gradient (texture energy)."""
    grey = image.mean(axis=2)
    gy, gx = np.gradient(grey)
    kernel = np.ones(smooth) / smooth
    return (np.convolve(grey.mean(axis=0), kernel, mode="valid"),
            np.convolve((gx ** 2 + gy ** 2).mean(axis=0), kernel, mode="valid"))


def seam(image, edge, inside):
    """Across ``edge`` (a column slice) against the ``inside`` slices: (largest step of the mean colour at
    the edge / largest inside, lowest texture energy at the edge / mean inside, highest / highest inside)."""
    mean, energy = column_profiles(image)
    steps = np.abs(np.diff(mean))
    return (float(steps[edge].max() / max(steps[s].max() for s in inside)),
            float(energy[edge].min() / np.mean([energy[s].mean() for s in inside])),
            float(energy[edge].max() / max(energy[s].max() for s in inside)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", default=os.path.join(REPO, "examples", "chelsea.png"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--iterations", type=int, help="default: the preset's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=os.path.join(HERE, "regions.png"), help="the contact sheet (PNG)")
    parser.add_argument("--per-step", type=int, metavar="STEPS",
                        help="only time STEPS steps without convergence, one style against two regions, "
                             "twice each, interleaved (the cost of a step, apart from how many steps converge)")
    args = parser.parse_args(argv)

    import evaluate
    import torch
    from PIL import Image

    from nst_core import StyleParams
    from nst_core.engine.style_cache import StyleCache
    from nst_core.engine.stylizer import Stylizer

    torch.set_num_threads(args.threads)
    weights = evaluate.weights_path()
    if weights is None:
        raise SystemExit("no real VGG-16 weights: see benchmarks/evaluate.py")
    engine = Stylizer("vgg16", weights, "caffe", "cpu")
    content = Image.open(args.content).convert("RGB")
    width, height = content.size
    # A on the left, B on the right, each fading over a tenth of the width; the middle stays the photo.
    masks = soft_bands(width, height, [(-1, 0.4), (0.6, 2)], feather=0.1)
    params = StyleParams.preset(args.preset, size=args.size,
                                **({"iterations": args.iterations} if args.iterations else {}))

    def timed(styles, regions=None):
        engine.style_cache = StyleCache()
        started = time.perf_counter()
        result = engine.run(content, styles, params, regions=regions)
        return np.asarray(result.image, np.float32), time.perf_counter() - started, result.stats["steps"]

    if args.per_step:
        params = StyleParams.preset(args.preset, size=args.size, iterations=args.per_step, converge=False)
        print(f"{args.size} px, preset {args.preset}, {args.per_step} steps without convergence, "
              f"{args.threads} threads, each run with its own style targets:")
        for _ in range(2):
            (_, one, one_steps), (_, two, two_steps) = timed(STYLES[:1]), timed(STYLES, masks)
            print(f"  one style {one:6.1f} s ({one_steps} steps)   two regions {two:6.1f} s ({two_steps} steps)"
                  f"   per step {(two / two_steps) / (one / one_steps):4.2f}x")
        return

    (a, time_a, steps_a), (b, time_b, steps_b) = timed(STYLES[:1]), timed(STYLES[1:])
    ours, time_ours, steps_ours = timed(STYLES, masks)
    composite = a * masks[0][:, :, None] + b * masks[1][:, :, None] \
        + np.asarray(content, np.float32) * np.clip(1 - masks[0] - masks[1], 0, 1)[:, :, None]

    judge = evaluate.Evaluator()
    photo = np.asarray(content, np.float32)
    crops = {"A": slice(0, int(0.3 * width)), "photo": slice(int(0.45 * width), int(0.55 * width)),
             "B": slice(int(0.7 * width), width)}
    figures = {"size": args.size, "preset": args.preset, "threads": args.threads,
               "seconds": {"one style A": time_a, "one style B": time_b, "two regions": time_ours},
               "steps": {"one style A": steps_a, "one style B": steps_b, "two regions": steps_ours}}
    for name, image in (("composite", composite), ("regions", ours)):
        distances = {}
        for region, columns in crops.items():
            scores = [judge(image[:, columns], photo[:, columns], style) for style in STYLES]
            distances[region] = {"style to A": scores[0][0], "style to B": scores[1][0], "content": scores[0][1]}
        figures[name] = distances

    # The seam: a second pair of runs whose two regions meet at one feathered edge in the middle.
    halves = soft_bands(width, height, [(-1, 0.5), (0.5, 2)], feather=0.2)
    ours_edge, _, _ = timed(STYLES, halves)
    composite_edge = a * halves[0][:, :, None] + b * halves[1][:, :, None]
    smooth_width = width - 4
    edge = slice(int(0.42 * smooth_width), int(0.58 * smooth_width))
    inside = [slice(int(0.05 * smooth_width), int(0.3 * smooth_width)),
              slice(int(0.7 * smooth_width), int(0.95 * smooth_width))]
    figures["seam"] = {name: dict(zip(("colour step", "energy low", "energy high"), seam(image, edge, inside)))
                       for name, image in (("composite", composite_edge), ("regions", ours_edge))}

    def tile(array):
        return Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8))

    grey = [tile(np.repeat(m[:, :, None] * 255, 3, axis=2)) for m in masks]
    row = [*grey, tile(composite), tile(ours), tile(composite_edge), tile(ours_edge)]
    sheet = Image.new("RGB", (width * 3, height * 2), "white")
    for index, picture in enumerate(row):
        sheet.paste(picture, ((index % 3) * width, (index // 3) * height))
    sheet.save(args.out)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as handle:
        json.dump(figures, handle, indent=2)

    print(f"{args.size} px, preset {args.preset}, {args.threads} threads; sheet: {args.out}")
    print("  (top: mask A, mask B, the two one-style runs composited; bottom: two regions, the composite "
          "of two runs at one middle edge, two regions with that edge)")
    for name, seconds in figures["seconds"].items():
        print(f"  {name:12s} {seconds:7.1f} s  {figures['steps'][name]:4d} steps  "
              f"{seconds / time_a:5.2f}x one style A")
    print(f"  {'':22s}{'composite':>30s}{'two regions':>30s}")
    for region in crops:
        cells = [figures[name][region] for name in ("composite", "regions")]
        print(f"  inside {region:6s} style to A / to B, content"
              + "".join(f"{c['style to A']:10.3f}{c['style to B']:10.3f}{c['content']:10.3f}" for c in cells))
    for key in ("colour step", "energy low", "energy high"):
        print(f"  seam {key:11s} (edge / inside)" + "".join(f"{figures['seam'][n][key]:30.2f}"
                                                       for n in ("composite", "regions")))


if __name__ == "__main__":
    main()
