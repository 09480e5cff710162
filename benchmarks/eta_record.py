"""Record real runs' progress events for the time-left replay test (tests/engine/test_eta_recorded.py).

    python benchmarks/eta_record.py [--runs standard:512:chelsea:starry_night ...] [--out tests/data/eta_runs.json]

Each run is the engine's preset as shipped, on a pair from ``examples/``, with the real ImageNet VGG-16
(Caffe preprocessing) of ../shared/data/weights (or NST_TEST_WEIGHTS), on the CPU, alone on the
machine. Per step the file keeps what the ``progress`` events say: seconds since the run started, the
part (scale, or tile) and the loss; per run the plan's parts (most steps, pixels per step), the run's
total seconds and how each part ended. The replay feeds those losses to the convergence rule and those
times to the run clock, so it tests today's time-left code against real runs' pace and losses.
"""

import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from evaluate import weights_path  # noqa: E402

# Pairs whose working size is the content's own at 512 px (coffee, 600 px wide, would be refined in
# tiles there, which the recording cannot tell apart), at both sizes, both presets.
DEFAULT_RUNS = ["standard:512:chelsea:starry_night", "standard:512:astronaut:great_wave",
                "standard:512:chelsea:great_wave", "fast:512:astronaut:starry_night",
                "standard:256:coffee:starry_night", "fast:256:chelsea:great_wave"]
EXAMPLES = os.path.join(REPO, "examples")


def example(name):
    for extension in (".png", ".jpg"):
        if os.path.isfile(os.path.join(EXAMPLES, name + extension)):
            return os.path.join(EXAMPLES, name + extension)
    raise SystemExit(f"no examples/{name}.png or .jpg")


def record(engine, spec):
    from nst_core.engine.images import as_loaded
    from nst_core.params import StyleParams

    preset, size, content, style = spec.split(":")
    params = StyleParams.preset(preset, size=int(size))
    content_image = as_loaded(example(content), "content")
    plan = engine._plan(content_image, params)
    if plan.tiles:
        raise SystemExit(f"{spec}: a run refined in tiles is not recorded (its tiles' events share a scale index)")
    steps, part, last_scale = [], -1, None

    def on_progress(event):
        nonlocal part, last_scale
        if event.event != "progress":
            return
        if event.scale != last_scale:
            part, last_scale = part + 1, event.scale
        steps.append([round(event.elapsed, 4), part, event.loss])

    started = time.perf_counter()
    result = engine.run(content_image, [example(style)], params, on_progress=on_progress)
    return {"run": spec, "parts": [list(p) for p in plan.parts], "scales": len(plan.stages),
            "rule": params.converge_loss_change, "seconds": round(time.perf_counter() - started, 3),
            "steps_taken": result.stats["steps"], "stop_reason": result.stats["stop_reason"], "steps": steps}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="preset:size:content:style")
    parser.add_argument("--out", default=os.path.join(REPO, "tests", "data", "eta_runs.json"))
    parser.add_argument("--weights", default=weights_path())
    args = parser.parse_args()
    if not args.weights:
        raise SystemExit("the real VGG-16 weights are needed (../shared/data/weights or NST_TEST_WEIGHTS)")
    import torch

    from nst_core.engine.stylizer import Stylizer

    engine = Stylizer("vgg16", args.weights, "caffe", "cpu")
    runs = []
    for spec in args.runs:
        runs.append(record(engine, spec))
        print(f"{spec}: {runs[-1]['seconds']:.0f} s, {runs[-1]['steps_taken']} steps, {runs[-1]['stop_reason']}",
              flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                               "torch": torch.__version__}, "runs": runs}, handle, separators=(",", ":"))
        handle.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
