"""Where one optimisation step's time goes, and what the field's usual speed-ups do to it.

    python benchmarks/step_profile.py                       # 512 px, chelsea / Starry Night, real VGG-16
    python benchmarks/step_profile.py --size 256 --steps 6  # quicker

The last scale of a standard-preset run (the content at the working size, the halved copy matched too
from 400 px) is set up as the engine sets it up, then timed piece by piece, each on its own, repeated:

  step               one L-BFGS step as the engine takes it (closure, update, clipping), the mean
                     over a run of steps
  loss f+b           the closure: the loss and its gradient
  VGG f+b            the network alone, forward and backward, for the picture and its halved copy
  loss terms f+b     content, Gram, SSIM and TV terms and their gradients, on features already made
  SSIM f+b           of those, what the SSIM factor adds (the terms with and without it)
  optimiser          step minus loss f+b: the L-BFGS update, clipping, the reported iterate

then whole steps under each variant (fp32 / bf16 autocast, channels_last, ``torch.compile`` of the
network), side by side in one run. Seconds on this machine: run it with nothing else running.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from evaluate import weights_path  # noqa: E402


def synchronize():
    """Wait for queued GPU work, so that a time covers it."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(function, repeats):
    """Median seconds of ``function()`` over ``repeats`` calls, after one call to warm up."""
    function()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def set_up(engine, params, content_path, style_path):
    from nst_core.engine.images import as_loaded, resize

    content = as_loaded(content_path, "content")
    style = as_loaded(style_path, "style")
    plan = engine._plan(content, params)
    prepared = engine._prepare(content, [style], [1.0], params)
    stage = plan.stages[-1]
    scaled = resize(prepared.content_tensor, stage.size)
    return stage, scaled, engine.scale_objective(scaled, prepared.styles, stage, params)


def profile(engine, params, x, objective, repeats):
    """Seconds of each piece of a step (see the module's docstring); pieces are timed alone, so the
    network's and the terms' add up to a little more than the loss's (each has its own start-up)."""
    import torch

    from nst_core.engine.images import smaller_copy

    def loss_fb():
        image = x.detach().clone().requires_grad_(True)
        total, _ = engine.loss(image, objective, params)
        total.backward()

    def vgg_fb():
        image = x.detach().clone().requires_grad_(True)
        outputs = [engine.features(image, objective.layers, params)]
        outputs += [engine.features(smaller_copy(image, size), objective.layers, params)
                    for size in objective.copy_sizes]
        sum(f.float().mean() for feats in outputs for f in feats.values()).backward()

    with torch.no_grad():
        feats = engine.features(x, objective.layers, params)
        copies = [engine.features(smaller_copy(x, size), objective.layers, params) for size in objective.copy_sizes]

    leaves = [{k: v.detach().clone().requires_grad_(True) for k, v in f.items()} for f in [feats] + copies]
    image = x.detach().clone().requires_grad_(True)

    def terms_fb(target):
        def run():
            for tensor in [image] + [t for f in leaves for t in f.values()]:
                tensor.grad = None
            total, _ = target(leaves[0], image, leaves[1:])
            total.backward()
        return run

    step = steps_per_second(engine, params, x, objective, repeats)
    rows = {"step": step, "loss f+b": timed(loss_fb, repeats), "VGG f+b": timed(vgg_fb, repeats),
            "loss terms f+b": timed(terms_fb(objective), repeats)}
    if params.use_ssim:
        for term in _style_terms(objective):
            term.use_ssim = False
        rows["SSIM f+b"] = rows["loss terms f+b"] - timed(terms_fb(objective), repeats)
        for term in _style_terms(objective):
            term.use_ssim = True
    rows["optimiser"] = step - rows["loss f+b"]
    return rows


def _style_terms(objective):
    from nst_core.engine.losses import StyleLoss

    return [m for m in objective.modules() if isinstance(m, StyleLoss)]


def steps_per_second(engine, params, x, objective, steps):
    """Seconds per step of ``steps`` L-BFGS steps (after a warm-up step) with ``params``."""
    engine.optimize(x, objective, 2, params)
    synchronize()
    start = time.perf_counter()
    engine.optimize(x, objective, steps, params)
    synchronize()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--content", default=os.path.join(REPO, "examples", "chelsea.png"))
    parser.add_argument("--style", default=os.path.join(REPO, "examples", "starry_night.jpg"))
    parser.add_argument("--weights", default=weights_path())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps timed per variant")
    parser.add_argument("--variants", nargs="+", default=["default", "fp32", "channels_last", "compile"])
    args = parser.parse_args()
    if not args.weights:
        raise SystemExit("no VGG-16 weights (../shared/data/weights or NST_TEST_WEIGHTS)")

    import torch

    from nst_core.engine import devices
    from nst_core.engine.stylizer import Stylizer
    from nst_core.params import StyleParams

    engine = Stylizer("vgg16", args.weights, "caffe", args.device)
    params = StyleParams.preset("standard", size=args.size, converge=False)
    stage, x, objective = set_up(engine, params, args.content, args.style)
    dtype = devices.autocast_dtype(engine.device, params.precision)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, autocast {dtype or 'off (fp32)'}; "
          f"last scale {stage.size[0]} x {stage.size[1]}, copies {list(stage.copies)}")
    rows = profile(engine, params, x, objective, args.repeats)
    print(f"\n{'piece':22} {'seconds':>8} {'of a step':>10}")
    for name, seconds in rows.items():
        print(f"{name:22} {seconds:8.3f} {seconds / rows['step']:9.0%}")

    print(f"\n{'variant':22} {'s / step':>8} {'vs default':>10}")
    base = None
    for variant in args.variants:
        run_params, net = params, engine.net
        if variant == "fp32":
            run_params = params.replace(precision="fp32")
        elif variant == "channels_last":
            run_params = params.replace(channels_last=True)
        elif variant == "compile":
            try:
                engine.net = torch.compile(net)
                steps_per_second(engine, run_params, x, objective, 1)
            except Exception as exc:  # a missing compiler is a result too
                engine.net = net
                print(f"{variant:22} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}")
                continue
        _, _, objective = set_up(engine, run_params, args.content, args.style)
        seconds = steps_per_second(engine, run_params, x, objective, args.steps)
        engine.net = net
        base = base or seconds
        print(f"{variant:22} {seconds:8.3f} {seconds / base:9.2f}x")


if __name__ == "__main__":
    main()
