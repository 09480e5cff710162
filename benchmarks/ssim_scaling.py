"""The standard preset with the SSIM on Grams divided by max|A| (its own) against raw Grams (the paper's).

    python benchmarks/ssim_scaling.py [--size 256] [--pairs chelsea.png:starry_night.jpg ...]

Each example pair is stylised twice with the standard preset at its default strength, once per
``ssim_scaling``, on the Caffe-format VGG-16 of ../shared/data/weights (the one backbone here whose raw
Grams have the paper's scale), and judged by benchmarks/evaluate.py (style and content distance; good:
style <= 0.15 and content <= 0.5), not by the loss either run optimised. Prints one table row per run.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

import evaluate  # noqa: E402  (benchmarks/evaluate.py)

DEFAULT_PAIRS = ("chelsea.png:starry_night.jpg", "coffee.png:great_wave.jpg", "astronaut.png:hubble_deep_field.jpg")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--preset", default="standard", choices=("standard", "fast"))
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), metavar="CONTENT:STYLE",
                        help="example file names (examples/)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    from nst_core import StyleParams
    from nst_core.engine.imageio import load_image
    from nst_core.engine.stylizer import Stylizer

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = evaluate.weights_path()
    if weights is None:
        raise SystemExit("no Caffe-format VGG-16: ../shared/data/weights is absent and NST_TEST_WEIGHTS unset")
    engine = Stylizer("vgg16", weights, "caffe", "cpu")
    judge = evaluate.Evaluator(weights)
    print(f"{args.preset} preset, {args.size} px, default strength, {engine.source.describe()}")
    print("| pair | ssim_scaling | style distance | content distance | good | steps | final SSIM factors | s |")
    print("|---|---|---|---|---|---|---|---|")
    for pair in args.pairs:
        content_name, style_name = pair.split(":")
        content_path, style_path = (os.path.join(REPO, "examples", n) for n in (content_name, style_name))
        content, style = load_image(content_path), load_image(style_path)
        for scaling in ("max", "none"):
            params = StyleParams.preset(args.preset, size=args.size, ssim_scaling=scaling)
            start = time.perf_counter()
            result = engine.run(content, [style], params)
            seconds = time.perf_counter() - start
            sd, cd = judge(result.image.convert("RGB"), content_path, style_path)
            factors = " ".join(f"{f:.2f}" for f in result.stats["ssim_factors"])
            print(f"| {content_name} + {style_name} | {scaling} | {sd:.3f} | {cd:.3f} | "
                  f"{'yes' if evaluate.is_good(sd, cd) else 'no'} | {result.stats['steps']} | {factors} | "
                  f"{seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
