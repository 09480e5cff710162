"""Calibration of the default strength and schedule against the evaluator (benchmarks/evaluate.py).

    python benchmarks/calibrate.py --size 256 --preset fast --style-weights 2 4 8 [--pairs chelsea:starry_night ...]
        [--set coarse_share=1 max_scales=2 ...] [--label NAME] [--json benchmarks/calibration.json]

Runs the engine's Python API (one ``Stylizer`` with the real VGG-16 Caffe weights, reused for every run)
on content/style pairs from ``examples/``, keeps every iterate that the ``Progress`` events carry, then
judges them with ``benchmarks/evaluate.py`` after the run (judging costs no engine time). For each run it
records when the result first lies in the good region (style <= 0.15, content <= 0.5):

  step       the engine iteration (1-based, over all scales) of the first good iterate at the FULL size
             (iterates of a coarser scale are not a result the user gets, so they do not count here;
             ``first_good_any_scale`` records them, upscaled to the evaluation size, for information)
  cost       the same point in full-size-step equivalents: each step weighted by its pixels over the
             final size's (a VGG step costs about its pixel count), so the figure does not depend on
             how busy the CPU was
  final      distances of the returned result (``StyleResult.image``, the engine's best iterate brought
             to the content's size)

Every ``--every``-th iterate is judged, then the ones before the first hit, so the first good step is
exact. Seconds are recorded too but mean little on a shared machine; compare steps and cost.
Results are appended to the JSON file (a list of runs).
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from evaluate import EXAMPLES, Evaluator, is_good, weights_path  # noqa: E402

CONTENTS = ("chelsea", "coffee", "astronaut")
STYLES = ("starry_night", "great_wave")


def example(name):
    for ext in (".png", ".jpg"):
        path = os.path.join(EXAMPLES, name + ext)
        if os.path.isfile(path):
            return path
    raise SystemExit(f"no example image named {name}")


def parse_value(text):
    if "," in text:  # layer lists: content_layers=relu4_2 style_layers=relu1_1,relu2_1
        return tuple(text.split(","))
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


class Recorder:
    """Collects the iterates of one run from the engine's Progress events (uint8, on the CPU)."""

    def __init__(self):
        self.frames = []  # (iteration, elapsed seconds, scale index, (w, h), uint8 tensor)
        self.last_scale = None

    def __call__(self, event):
        # Tiled refinement (a content larger than the working size) is not counted: its iterates are
        # tiles; the returned result, which includes it, is judged as "final".
        if event.event == "progress" and event.phase == "stylize" and event.image is not None:
            image = event.image.detach().clamp(0, 255).round().byte().cpu()
            self.frames.append((event.iteration, event.elapsed, event.scale,
                                (image.shape[-1], image.shape[-2]), image))


def first_good(frames, judge, every=10, only_full=True):
    """Index into ``frames`` of the first good iterate (and the scores seen), or None.

    ``judge(i)`` -> (style, content). Scans every ``every``-th candidate and the last, then the
    candidates between the previous scanned one and the first hit.
    """
    full = frames[-1][3] if frames else None
    candidates = [i for i, f in enumerate(frames) if not only_full or f[3] == full]
    if not candidates:
        return None
    grid = candidates[::every] + ([candidates[-1]] if (len(candidates) - 1) % every else [])
    previous = None
    for position in grid:
        if is_good(*judge(position)):
            start = candidates.index(previous) + 1 if previous is not None else 0
            for earlier in candidates[start:candidates.index(position)]:
                if is_good(*judge(earlier)):
                    return earlier
            return position
        previous = position
    return None


def run_one(engine, judge, content, style, params, every):
    recorder = Recorder()
    started = time.perf_counter()
    result = engine.run(content, [style], params, on_progress=recorder)
    seconds = time.perf_counter() - started
    frames = recorder.frames
    scores = {}

    def score(i):
        if i not in scores:
            scores[i] = judge(frames[i][4].float(), content, style)
        return scores[i]

    full_pixels = frames[-1][3][0] * frames[-1][3][1]
    costs, total = [], 0.0
    for f in frames:
        total += f[3][0] * f[3][1] / full_pixels
        costs.append(total)
    hit = first_good(frames, score, every)
    hit_any = first_good(frames, score, every, only_full=False)
    final_style, final_content = judge(result.image.convert("RGB"), content, style)
    curve = sorted((frames[i][0], round(s, 4), round(c, 4)) for i, (s, c) in scores.items())

    def point(i):
        if i is None:
            return None
        return {"step": frames[i][0], "cost": round(costs[i], 1), "seconds": round(frames[i][1], 2),
                "style": round(scores[i][0], 4), "content": round(scores[i][1], 4)}

    return result, {
        "steps": len(frames), "cost": round(costs[-1], 1), "seconds": round(seconds, 1),
        "scales": sorted({f[3] for f in frames}, key=lambda s: s[0] * s[1]),
        "first_good": point(hit), "first_good_any_scale": point(hit_any),
        "final": {"style": round(final_style, 4), "content": round(final_content, 4),
                  "good": is_good(final_style, final_content)},
        "curve": curve,
    }


def print_table(runs):
    print("| run | pair | px | W | steps | first good (full size): step, cost | style, content there "
          "| final style | final content |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        hit = r["first_good"]
        where = f"{hit['step']}, {hit['cost']}" if hit else "not reached"
        there = f"{hit['style']:.3f}, {hit['content']:.3f}" if hit else "-"
        extra = " ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in r["overrides"].items())
        print(f"| {r['label'] or r['preset']}{' ' + extra if extra else ''} | {r['pair']} | {r['size']} "
              f"| {r['style_weight']:g} | {r['steps']} | {where} | {there} | {r['final']['style']:.3f} "
              f"| {r['final']['content']:.3f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--style-weights", type=float, nargs="+", default=[1.0])
    parser.add_argument("--pairs", nargs="+", help="content:style names from examples/ (default: all 6)")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="StyleParams overrides")
    parser.add_argument("--every", type=int, default=10, help="judge every N-th iterate, then refine")
    parser.add_argument("--label", default="")
    parser.add_argument("--json", default=os.path.join(HERE, "calibration.json"))
    parser.add_argument("--save", help="folder for the final images (PNG)")
    parser.add_argument("--table", action="store_true", help="only print the JSON's runs as a Markdown table")
    args = parser.parse_args()
    if args.table:
        print_table(json.load(open(args.json)))
        return

    from nst_core.engine.stylizer import Stylizer
    from nst_core.params import StyleParams

    weights = weights_path()
    if weights is None:
        raise SystemExit("the real VGG-16 weights are needed (NST_TEST_WEIGHTS or ../shared/data/weights)")
    engine = Stylizer("vgg16", weights, "caffe", "cpu")
    judge = Evaluator(weights)
    pairs = args.pairs or [f"{c}:{s}" for c in CONTENTS for s in STYLES]
    overrides = dict(item.split("=", 1) for item in args.set)
    overrides = {k: parse_value(v) for k, v in overrides.items()}
    for key in ("content_layers", "style_layers"):
        if isinstance(overrides.get(key), str):
            overrides[key] = (overrides[key],)
    runs = json.load(open(args.json)) if os.path.isfile(args.json) else []
    for pair in pairs:
        content_name, style_name = pair.split(":")
        content, style = example(content_name), example(style_name)
        for weight in args.style_weights:
            params = StyleParams.preset(args.preset, size=args.size, style_weight=weight, **overrides)
            result, record = run_one(engine, judge, content, style, params, args.every)
            record.update({"label": args.label, "pair": pair, "size": args.size, "preset": args.preset,
                           "style_weight": weight, "overrides": overrides,
                           "engine": {"best_iteration": result.stats["best_iteration"],
                                      "working_size": result.stats["working_size"]}})
            runs.append(record)
            hit = record["first_good"]
            reach = f"step {hit['step']} (cost {hit['cost']})" if hit else "not reached"
            print(f"{args.label or args.preset} {pair} {args.size}px W={weight:g} {overrides or ''}: "
                  f"good at {reach}; final style {record['final']['style']:.3f} "
                  f"content {record['final']['content']:.3f}; {record['steps']} steps {record['seconds']:.0f} s",
                  flush=True)
            if args.save:
                os.makedirs(args.save, exist_ok=True)
                tag = "-".join(",".join(v) if isinstance(v, tuple) else str(v) for v in overrides.values())
                suffix = "-" + tag if tag else ""
                name = f"{content_name}-{style_name}-{args.size}-{args.preset}-w{weight:g}{suffix}.png"
                result.image.save(os.path.join(args.save, name))
            with open(args.json, "w") as handle:
                json.dump(runs, handle, indent=1)


if __name__ == "__main__":
    main()
