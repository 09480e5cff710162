"""Record long runs of the standard preset and replay stop rules on them: when does each rule end the
run, and how good is the picture it ends on, by the evaluator?

    python benchmarks/stop_rule.py record --sizes 256 --pairs all      # writes benchmarks/stop_curves.json
    python benchmarks/stop_rule.py replay                               # the table, from that file
    python benchmarks/stop_rule.py sheet                                # stop_rule.webp: 2 % and 10 % side by side

``record`` runs the standard preset on real VGG-16 features with a much stricter loss rule than any
candidate (so every candidate's end is a prefix of the recording), and keeps, for the last scale of
each run: the best loss after every step, the picture change after every step (mean absolute
difference of the best picture against the one ``WINDOW`` steps before, in grey levels, both shrunk
to each of ``SHRINK_SIDES``), and the evaluator's (style, content) distances of the best picture every
``--every`` steps. ``replay`` ends each recorded run by each candidate: the engine's loss rule
(``ConvergenceRule``) at several thresholds, the standard preset's 2 % among them, and a rule on the
shrunk picture's change; it prints the steps each takes on the last scale and the distances of the
picture it stops on. Steps and distances, not seconds: the figures do not depend on the machine's load.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from evaluate import GOOD_CONTENT, GOOD_STYLE, Evaluator, weights_path  # noqa: E402
from time_to_good import parse_pairs  # noqa: E402

CURVES = os.path.join(HERE, "stop_curves.json")
RECORD_LOSS_CHANGE = 0.003  # far past any candidate's end
WINDOW = 10
SHRINK_SIDES = (0, 128, 64, 32)  # long side the pictures are shrunk to before comparing (0: as they are)


def shrunk(image, side):
    import torch.nn.functional as F

    height, width = image.shape[-2:]
    if not side or max(height, width) <= side:
        return image
    scale = side / max(height, width)
    return F.interpolate(image, size=(max(1, round(height * scale)), max(1, round(width * scale))), mode="area")


def record_run(engine, judge, content, style, size, every):
    import numpy as np

    from nst_core.params import StyleParams

    params = StyleParams.preset("standard", size=size, converge_loss_change=RECORD_LOSS_CHANGE)
    scales = []  # per scale: [(loss of the best so far, its image)]

    def on_progress(event):
        if event.event != "progress" or event.phase != "stylize":
            return
        if not scales or scales[-1]["scale"] != event.scale:
            scales.append({"scale": event.scale, "best": None, "steps": []})
        part = scales[-1]
        if part["best"] is None or event.loss < part["best"][0]:
            part["best"] = (event.loss, event.image.detach().float().clone())
        part["steps"].append(part["best"])

    engine.run(content, [style], params, on_progress=on_progress)
    last = scales[-1]["steps"]
    losses = [loss for loss, _ in last]
    changes = {}
    for side in SHRINK_SIDES:
        thumbs = [shrunk(image, side) for _, image in last]
        changes[str(side)] = [None if k < WINDOW else round(float((thumbs[k] - thumbs[k - WINDOW]).abs().mean()), 4)
                              for k in range(len(thumbs))]
    scores = {}
    for k in list(range(every - 1, len(last), every)) + [len(last) - 1]:
        picture = last[k][1][0].permute(1, 2, 0).clamp(0, 255).numpy().astype(np.uint8)
        scores[str(k + 1)] = [round(v, 4) for v in judge(picture, content, style)]
    earlier = sum(len(p["steps"]) for p in scales[:-1])
    return {"run": f"standard:{size}:{os.path.basename(content)}:{os.path.basename(style)}",
            "size": size, "earlier_steps": earlier, "losses": losses, "picture_changes": changes,
            "scores": scores, "working_size": list(last[-1][1].shape[-1:-3:-1])}


def record(args):
    from nst_core.engine.stylizer import Stylizer

    weights = args.weights or weights_path()
    if weights is None:
        raise SystemExit("no VGG-16 weights (../shared/data/weights or NST_TEST_WEIGHTS)")
    engine = Stylizer("vgg16", weights, "caffe", "cpu")
    judge = Evaluator(weights)
    runs = []
    if os.path.exists(args.out) and args.append:
        runs = json.load(open(args.out))["runs"]
    for size in args.sizes:
        for content, style in parse_pairs(args):
            run = record_run(engine, judge, content, style, size, args.every)
            print(f"{run['run']}: {len(run['losses'])} last-scale steps", flush=True)
            runs = [r for r in runs if r["run"] != run["run"]] + [run]
            with open(args.out, "w") as handle:
                json.dump({"about": ABOUT, "window": WINDOW, "every": args.every, "runs": runs}, handle)


ABOUT = ("Last-scale curves of real standard-preset runs (VGG-16 Caffe weights, L-BFGS, the CPU) recorded by "
         "benchmarks/stop_rule.py with a 0.3 % loss rule: the best loss after each step, the best picture's change "
         "over the last 10 steps (mean absolute difference in grey levels, with the pictures shrunk to a long side "
         "of 128, 64 or 32 px, or '0': as they are; null before 10 steps) and the evaluator's (style, content) "
         "distances of the best picture every 5 steps and at the last, keyed by step (1-based).")


def loss_rule_stop(run, loss_change, window):
    """The last-scale step at which the engine's loss rule (ConvergenceRule) ends this recorded run."""
    from nst_core.engine.convergence import ConvergenceRule

    rule = ConvergenceRule(window=window, loss_change=loss_change)
    for k, loss in enumerate(run["losses"]):
        if rule.update(loss):
            return k + 1
    return len(run["losses"])


def picture_rule_stop(run, side, level):
    """The first last-scale step whose picture (shrunk to ``side``) moved by less than ``level`` grey
    levels over the window: a candidate that was measured against the loss rule."""
    for k, change in enumerate(run["picture_changes"][str(side)]):
        if change is not None and change < level:
            return k + 1
    return len(run["losses"])


def score_at(run, step):
    """The evaluator's distances of the recorded step nearest after ``step``."""
    keyed = sorted((int(k), v) for k, v in run["scores"].items())
    for k, value in keyed:
        if k >= step:
            return k, value
    return keyed[-1]


def replay(args):
    data = json.load(open(args.curves))
    window = data["window"]
    rules = {f"loss {c:g}": (lambda run, c=c: loss_rule_stop(run, c, window)) for c in args.loss_changes}
    for side, level in (tuple(map(float, spec.split(":"))) for spec in args.picture_rules):
        rules[f"picture {side:g}px {level:g}"] = lambda run, s=int(side), v=level: picture_rule_stop(run, s, v)
    runs = [r for r in data["runs"] if not args.sizes or r["size"] in args.sizes]
    print(f"{'run (last-scale steps, style / content; ! not good)':52} " + " ".join(f"{name:>20}" for name in rules))
    totals = {name: [0, 0, 0, 0] for name in rules}
    for run in runs:
        cells = []
        for name, stop in rules.items():
            step = stop(run)
            _, (style, content) = score_at(run, step)
            good = style <= GOOD_STYLE and content <= GOOD_CONTENT
            cells.append(f"{step:4d} {style:.3f}/{content:.3f}{'' if good else '!'}")
            total = totals[name]
            total[0] += step
            total[1] += style
            total[2] += content
            total[3] += good
        print(f"{run['run']:52} " + " ".join(f"{c:>20}" for c in cells))
    n = len(runs)
    print(f"{'mean (good share)':52} " + " ".join(
        f"{t[0] / n:4.0f} {t[1] / n:.3f}/{t[2] / n:.3f} {t[3]}/{n}".rjust(20) for t in totals.values()))


def sheet(args):
    """Each pair styled under each rule, side by side in one picture (one row per pair)."""
    import numpy as np
    from PIL import Image

    from nst_core.engine.stylizer import Stylizer
    from nst_core.params import StyleParams

    engine = Stylizer("vgg16", args.weights or weights_path(), "caffe", "cpu")
    rows = []
    for content, style in parse_pairs(args):
        row = []
        for loss_change in args.loss_changes:
            params = StyleParams.preset("standard", size=args.size, converge_loss_change=loss_change)
            result = engine.run(content, [style], params)
            print(f"{os.path.basename(content)} / {os.path.basename(style)}, {loss_change:g}: "
                  f"{result.stats['steps']} steps", flush=True)
            picture = Image.fromarray(np.asarray(result.image))
            row.append(picture.resize((args.size, round(args.size * picture.height / picture.width))))
        rows.append(row)
    out = Image.new("RGB", (args.size * len(args.loss_changes), sum(r[0].height for r in rows)), "white")
    top = 0
    for row in rows:
        for column, picture in enumerate(row):
            out.paste(picture, (column * args.size, top))
        top += row[0].height
    out.save(args.out, quality=80)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--sizes", type=int, nargs="+", default=[256])
    rec.add_argument("--pairs", nargs="+", default=["all"], help="CONTENT:STYLE example names, or all")
    rec.add_argument("--every", type=int, default=5)
    rec.add_argument("--weights")
    rec.add_argument("--out", default=CURVES)
    rec.add_argument("--append", action="store_true", help="keep the runs already in --out")
    rep = sub.add_parser("replay")
    rep.add_argument("--curves", default=CURVES)
    rep.add_argument("--sizes", type=int, nargs="+", help="only the runs at these sizes")
    rep.add_argument("--loss-changes", type=float, nargs="+", default=[0.02, 0.05, 0.08, 0.1, 0.15])
    rep.add_argument("--picture-rules", nargs="+", default=["32:2.5", "64:3"],
                     help="SIDE:LEVEL candidates: stop once the picture shrunk to SIDE px moved < LEVEL grey levels")
    pic = sub.add_parser("sheet", help="the pairs styled under each rule, side by side")
    pic.add_argument("--pairs", nargs="+", default=["coffee:great_wave", "astronaut:starry_night"])
    pic.add_argument("--loss-changes", type=float, nargs="+", default=[0.02, 0.1])
    pic.add_argument("--size", type=int, default=256)
    pic.add_argument("--weights")
    pic.add_argument("--out", default=os.path.join(HERE, "stop_rule.webp"))
    args = parser.parse_args()
    {"record": record, "replay": replay, "sheet": sheet}[args.command](args)


if __name__ == "__main__":
    main()
