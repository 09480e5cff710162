"""What the SSIM term does at the paper's settings: the paper preset against the same run with --no-ssim.

    python benchmarks/paper_vs_no_ssim.py [--size 512] [--iterations 1000] [--out benchmarks/paper_vs_no_ssim.png]

Both runs use the paper preset (raw formula, 1e3 / 1e-2, Adam 5 / 0.99 / eps 0.1, one scale, the best
iterate resized), on the Caffe-format VGG-16 of ../shared/data/weights (or the file NST_TEST_WEIGHTS
names; the paper's VGG-19 with Caffe weights is not available here), and differ only in the SSIM factor.
Prints, side by side, the evaluator's figures (benchmarks/evaluate.py: style and content distance, not the
loss either run optimised), the final SSIM factors, and how far the two pictures are apart; writes one PNG:
content | paper | --no-ssim | their difference, amplified.
"""

import argparse
import os
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

import evaluate  # noqa: E402  (benchmarks/evaluate.py)

DIFFERENCE_GAIN = 4  # the difference panel shows |paper - no-ssim| times this, so small changes show


def run(engine, content, style, params, label):
    start = time.perf_counter()
    last = [start]

    def on_progress(event):
        step = getattr(event, "iteration", None)
        if step and step % 100 == 0 and time.perf_counter() - last[0] > 1:
            last[0] = time.perf_counter()
            print(f"  {label}: step {step} ({last[0] - start:.0f} s)", flush=True)

    result = engine.run(content, [style], params, on_progress=on_progress)
    return result, time.perf_counter() - start


def panel(image, title, height):
    image = image.convert("RGB")
    image = image.resize((round(image.width * height / image.height), height), Image.LANCZOS)
    canvas = Image.new("RGB", (image.width, height + 22), "white")
    canvas.paste(image, (0, 22))
    ImageDraw.Draw(canvas).text((4, 5), title, fill="black")
    return canvas


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", default=os.path.join(REPO, "examples", "chelsea.png"))
    parser.add_argument("--style", default=os.path.join(REPO, "examples", "starry_night.jpg"))
    parser.add_argument("--size", type=int, default=512, help="working long side (the paper's: 512)")
    parser.add_argument("--iterations", type=int, default=1000, help="Adam steps (the paper's: 1000)")
    parser.add_argument("--weights", default=None, help="Caffe-format VGG file (default: the shared VGG-16)")
    parser.add_argument("--backbone", default="vgg16", choices=("vgg16", "vgg19"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=os.path.join(HERE, "paper_vs_no_ssim.png"))
    args = parser.parse_args(argv)

    import torch

    from nst_core import StyleParams
    from nst_core.engine.imageio import load_image
    from nst_core.engine.stylizer import Stylizer

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.weights or evaluate.weights_path()
    if weights is None:
        raise SystemExit("no Caffe-format VGG weights: pass --weights FILE or set NST_TEST_WEIGHTS")
    engine = Stylizer(args.backbone, weights, "caffe", args.device)
    content, style = load_image(args.content), load_image(args.style)
    judge = evaluate.Evaluator(evaluate.weights_path())
    rows, pictures = [], {}
    for label, use_ssim in (("paper", True), ("paper --no-ssim", False)):
        params = StyleParams.preset("paper", size=args.size, iterations=args.iterations, use_ssim=use_ssim)
        result, seconds = run(engine, content, style, params, label)
        style_distance, content_distance = judge(result.image.convert("RGB"), args.content, args.style)
        pictures[label] = result.image.convert("RGB")
        factors = " ".join(f"{f:.3f}" for f in result.stats["ssim_factors"]) or "-"
        rows.append((label, style_distance, content_distance, result.stats["best_iteration"], factors, seconds))
    a, b = (np.asarray(pictures[k], dtype=np.float32) for k in ("paper", "paper --no-ssim"))
    difference = np.abs(a - b)

    print(f"\n{os.path.basename(args.content)} + {os.path.basename(args.style)}, {args.size} px, "
          f"{args.iterations} steps, {engine.source.describe()}")
    print("| run | style distance | content distance | best step | final SSIM factors (relu1_1..relu5_1) | s |")
    print("|---|---|---|---|---|---|")
    for label, sd, cd, best, factors, seconds in rows:
        print(f"| {label} | {sd:.3f} | {cd:.3f} | {best} | {factors} | {seconds:.0f} |")
    print(f"mean |paper - no-ssim| = {difference.mean():.2f} grey levels (max {difference.max():.0f})")

    height = min(pictures["paper"].height, 384)
    shown = Image.fromarray(np.clip(difference * DIFFERENCE_GAIN, 0, 255).astype(np.uint8))
    panels = [panel(Image.open(args.content), "content", height),
              panel(pictures["paper"], "paper preset (SSIM)", height),
              panel(pictures["paper --no-ssim"], "paper --no-ssim", height),
              panel(shown, f"|difference| x{DIFFERENCE_GAIN}", height)]
    sheet = Image.new("RGB", (sum(p.width for p in panels) + 6 * (len(panels) - 1), panels[0].height), "white")
    x = 0
    for item in panels:
        sheet.paste(item, (x, 0))
        x += item.width + 6
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
