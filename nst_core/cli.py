"""``nst-core``: the command line. It parses, then consumes the engine's events; no logic of its own.

torch is imported only inside the commands that need it, so ``nst-core --help`` answers at once.
The contract with callers (options, JSON lines, exit codes, stopping) is docs/PROTOCOL.md.
"""

import argparse
import json
import os
import signal
import stat
import sys
import threading
import traceback

from . import __version__
from .errors import BadInput, Cancelled, NSTError, WeightsMissing
from .params import COLOR_MODES, NORMALIZATIONS, OPTIMIZERS, PRECISIONS, PRESETS, SSIM_SCALINGS, UPSCALES
from .protocol import JsonlWriter


def _int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return value


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, plus an ``error`` event for a caller that asked for JSON lines."""

    def error(self, message):
        argv = sys.argv[1:]
        if "jsonl" in argv or "--progress=jsonl" in argv:
            JsonlWriter(sys.stdout).emit("error", code=BadInput.code, exit_code=BadInput.exit_code,
                                         message=f"{self.prog}: {message}")
        super().error(message)


def build_parser():
    parser = _Parser(
        prog="nst-core",
        description="SSIM-weighted neural style transfer (Prabhu & McAteer, 2020). "
                    "Protocol for callers: docs/PROTOCOL.md.")
    parser.add_argument("--version", action="version", version=f"nst-core {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("stylize", help="stylise a content image with one or more style images",
                              description="Stylise CONTENT with STYLE (several are blended). Options left out "
                                          "take the preset's value.")
    run.add_argument("content", help="content image (its alpha channel is kept)")
    run.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s)")
    run.add_argument("-o", "--output", required=True, help="result file; format from the extension")
    run.add_argument("--preset", choices=list(PRESETS), default="standard",
                     help="standard: multi-scale, a good result soonest; fast: a quick look; "
                          "paper: the paper's exact settings (default: standard)")
    run.add_argument("--size", type=_int, help="working long side in pixels (standard: 512)")
    run.add_argument("--iterations", type=_int, help="optimisation steps over all scales")
    run.add_argument("--content-weight", type=_number, help="content weight alpha")
    run.add_argument("--style-weight", type=_number, help="style weight beta")
    run.add_argument("--tv-weight", type=_number, help="total-variation smoothing weight")
    run.add_argument("--ssim", dest="use_ssim", action=argparse.BooleanOptionalAction, default=None,
                     help="the SSIM factor per style layer (--no-ssim: plain Gatys)")
    run.add_argument("--ssim-scaling", choices=SSIM_SCALINGS,
                     help="max: Grams divided by max|A| before SSIM (default); none: raw Grams")
    run.add_argument("--loss-normalization", choices=NORMALIZATIONS,
                     help="target: each term divided by its target's magnitude; raw: the paper's formula")
    run.add_argument("--optimizer", choices=OPTIMIZERS)
    run.add_argument("--learning-rate", type=_number)
    run.add_argument("--init", choices=("content", "noise"))
    run.add_argument("--preserve-colors", nargs="?", const="luminance", choices=COLOR_MODES,
                     help="keep the content's colours (luminance when given bare)")
    run.add_argument("--style-blend", type=_number, nargs="+", metavar="W", help="one weight per style image")
    run.add_argument("--style-scale", type=_number, help="style size relative to the working size")
    run.add_argument("--seed", type=_int, help="random seed (default 0)")
    run.add_argument("--multiscale", action=argparse.BooleanOptionalAction, default=None,
                     help="coarse-to-fine optimisation")
    run.add_argument("--upscale", choices=UPSCALES,
                     help="how the result reaches the content's full size when that exceeds --size")
    run.add_argument("--refine-iterations", type=_int, help="steps per tile with --upscale tiles")
    run.add_argument("--precision", choices=PRECISIONS,
                     help="autocast dtype (auto: bf16 on CPUs with native bf16, float32 elsewhere)")
    _add_engine_options(run)
    run.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                     help="auto: a bar on a terminal; jsonl: protocol events on stdout")
    run.add_argument("--ignore-stdin", action="store_true",
                     help="do not stop when stdin closes (for shell pipelines)")
    run.add_argument("--server", metavar="URL",
                     help="send the job to a running `nst-core serve` at URL (docs/SERVICE.md) instead of "
                          "running it here")
    run.add_argument("--token-file", metavar="FILE",
                     help="with --server: the service's token (default: the one in this engine's data folder)")
    run.set_defaults(handler=cmd_stylize)

    from .serve import add_serve_parser

    add_serve_parser(commands, _add_engine_options).set_defaults(handler=cmd_serve)

    doctor = commands.add_parser("doctor", help="report torch, devices and weights")
    doctor.add_argument("--json", action="store_true", help="one JSON object on stdout")
    doctor.set_defaults(handler=cmd_doctor)

    weights = commands.add_parser("weights", help="prepare the network weights ahead of time")
    actions = weights.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    fetch = actions.add_parser("fetch", help="download torchvision's ImageNet weights once, keep the trimmed copy")
    fetch.add_argument("--backbone", choices=("vgg19", "vgg16"), default="vgg19")
    fetch.set_defaults(handler=cmd_weights_fetch)
    imp = actions.add_parser("import", help="check a local weights file and keep its trimmed copy (offline)")
    imp.add_argument("file")
    imp.add_argument("--backbone", choices=("auto", "vgg19", "vgg16"), default="auto")
    imp.add_argument("--weights-format", choices=("torchvision", "caffe"), default="torchvision")
    imp.set_defaults(handler=cmd_weights_import)
    path = actions.add_parser("path", help="print where the trimmed copy is kept")
    path.add_argument("--backbone", choices=("vgg19", "vgg16"), default="vgg19")
    path.add_argument("--weights-format", choices=("torchvision", "caffe"), default="torchvision")
    path.set_defaults(handler=cmd_weights_path)
    return parser


def _add_engine_options(parser):
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--backbone", choices=("auto", "vgg19", "vgg16"), default="auto",
                        help="auto: VGG-19 when its weights are at hand, else a local VGG-16")
    parser.add_argument("--weights", help="weights file (torchvision-layout state dict), or 'random' for tests")
    parser.add_argument("--weights-format", choices=("torchvision", "caffe"),
                        help="the preprocessing the weights expect (default: what the file declares, "
                             "else torchvision)")


def params_from_args(args):
    from .params import StyleParams

    overrides = {
        "size": args.size, "iterations": args.iterations, "content_weight": args.content_weight,
        "style_weight": args.style_weight, "tv_weight": args.tv_weight, "use_ssim": args.use_ssim,
        "ssim_scaling": args.ssim_scaling, "loss_normalization": args.loss_normalization,
        "optimizer": args.optimizer, "learning_rate": args.learning_rate, "init": args.init,
        "preserve_colors": args.preserve_colors, "style_scale": args.style_scale, "seed": args.seed,
        "multiscale": args.multiscale, "upscale": args.upscale, "refine_iterations": args.refine_iterations,
        "precision": args.precision,
        "style_blend": tuple(args.style_blend) if args.style_blend else None,
    }
    return StyleParams.preset(args.preset, **overrides)


# ----- stopping -------------------------------------------------------------------------------

class StopSignal:
    """Set by SIGINT/SIGTERM, by ``cancel`` on stdin, or by stdin closing (the caller died)."""

    def __init__(self):
        self.event = threading.Event()
        self.reason = ""

    def __call__(self):
        return self.event.is_set()

    def set(self, reason):
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def install_signal_handlers(self):
        def handler(signum, _frame):
            if self.event.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self.set(signal.Signals(signum).name)

        signal.signal(signal.SIGINT, handler)
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, handler)

    def watch_stdin(self, stream=None):
        """When stdin is a pipe, a line ``cancel`` or end-of-file stops the run."""
        stream = stream or sys.stdin
        try:
            mode = os.fstat(stream.fileno()).st_mode
        except (OSError, ValueError, AttributeError):
            return False
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            return False

        def reader():
            try:
                for line in stream:
                    if line.strip().lower() == "cancel":
                        self.set("cancel requested on stdin")
                        return
            except (OSError, ValueError):
                pass
            self.set("stdin closed (the caller has gone)")

        threading.Thread(target=reader, name="stdin-watch", daemon=True).start()
        return True


# ----- progress -------------------------------------------------------------------------------

class Reporter:
    """Turns engine events into the chosen progress display."""

    def __init__(self, mode, stream_out=None, stream_err=None):
        self.out = stream_out or sys.stdout
        self.err = stream_err or sys.stderr
        if mode == "auto":
            mode = "bar" if self.err.isatty() else "none"
        self.mode = mode
        self.jsonl = JsonlWriter(self.out) if mode == "jsonl" else None
        self.bar = None

    def __call__(self, event):
        if self.jsonl is not None:
            self.jsonl.emit(event.event, **event.as_dict())
            return
        if event.event == "warning":
            self._close_bar()
            print(f"warning: {event.message}", file=self.err)
        elif event.event == "start":
            print(f"nst-core {event.version}: {event.device}, {event.weights}; working size "
                  f"{event.working_size[0]}x{event.working_size[1]}, scales "
                  f"{', '.join(f'{w}x{h}' for w, h in event.scales)}, upscale: {event.upscale}", file=self.err)
            if self.mode == "bar":
                from tqdm import tqdm

                self.bar = tqdm(total=event.iterations, file=self.err, unit="it", dynamic_ncols=True)
        elif event.event == "progress" and self.bar is not None:
            self.bar.set_description(f"{event.phase} {event.scale + 1}")
            factors = " ".join(f"{f:.3f}" for f in event.ssim_factors)
            self.bar.set_postfix_str(f"loss {event.loss:.4g}" + (f" ssim-factors {factors}" if factors else ""))
            self.bar.update(1)

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def done(self, output, stats):
        self._close_bar()
        if self.jsonl is not None:
            self.jsonl.emit("done", output=output, stats=stats)
        else:
            factors = ", ".join(f"{f:.3f}" for f in stats.get("ssim_factors", []))
            print(f"wrote {output} ({stats['output_size'][0]}x{stats['output_size'][1]}) in {stats['seconds']:.1f} s;"
                  f" best loss {stats['loss']:.5g} at iteration {stats['best_iteration']} of the last scale"
                  + (f"; SSIM factors (1-SSIM)/2 per style layer: {factors}" if factors else ""), file=self.err)

    def error(self, error):
        self._close_bar()
        if self.jsonl is not None:
            self.jsonl.emit("error", code=error.code, exit_code=error.exit_code, message=str(error))
        print(f"nst-core: error: {error}", file=self.err)


# ----- commands -------------------------------------------------------------------------------

def cmd_stylize(args):
    reporter = Reporter(args.progress)
    stop = StopSignal()
    stop.install_signal_handlers()
    if not args.ignore_stdin:
        stop.watch_stdin()
    try:
        from .imageio import check_output_path

        params = params_from_args(args)
        if params.style_blend is not None and len(params.style_blend) != len(args.styles):
            raise BadInput(f"--style-blend has {len(params.style_blend)} weight(s) for {len(args.styles)} style image(s)")
        for path in [args.content] + args.styles:
            if not os.path.exists(path):
                raise BadInput(f"{'content' if path == args.content else 'style'} image not found: {path}")
        output = check_output_path(args.output, [args.content] + args.styles)
        if stop():
            raise Cancelled()
        if args.server:  # a running service does the work (nst_core.client): no torch here
            from .client import stylize_remote

            return stylize_remote(args, output, reporter, stop)

        from .stylizer import Stylizer, as_loaded

        content = as_loaded(args.content, "content")
        styles = [as_loaded(path, "style") for path in args.styles]
        if args.weights == "random" or (args.weights is None and os.environ.get("NST_WEIGHTS") == "random"):
            print("nst-core: using an UNTRAINED network (--weights random): for tests only, "
                  "the result is not a style transfer", file=sys.stderr)
        engine = Stylizer(args.backbone, args.weights, args.weights_format, args.device)
        result = engine.run(content, styles, params, on_progress=reporter, should_stop=stop)
        if stop():  # a stop that came after the last iteration still means: no output
            raise Cancelled()
        written = result.save(output)
        reporter.done(written, result.stats)
        return 0
    except Cancelled as error:
        if stop.reason:
            error = Cancelled(f"cancelled ({stop.reason}): no output was written")
        reporter.error(error)
        return error.exit_code
    except KeyboardInterrupt:
        error = Cancelled("cancelled (interrupted): no output was written")
        reporter.error(error)
        return error.exit_code
    except NSTError as error:
        reporter.error(error)
        return error.exit_code
    except MemoryError:
        from .errors import OutOfMemory

        error = OutOfMemory("out of memory: use a smaller --size or close other programs")
        reporter.error(error)
        return error.exit_code
    except OSError as error:
        wrapped = BadInput(f"could not write the result: {error}")
        reporter.error(wrapped)
        return wrapped.exit_code
    except Exception as error:  # a bug: say so plainly, keep the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        wrapped = NSTError(f"internal error ({type(error).__name__}: {error}); the traceback is on stderr "
                           "(the GIMP plug-in keeps it in its log). Please report it.")
        reporter.error(wrapped)
        return wrapped.exit_code


def doctor_report():
    from . import weights

    report = {"version": __version__, "python": sys.version.split()[0], "executable": sys.executable,
              "data_dir": weights.data_dir()}
    try:
        import torch
        import torchvision
    except Exception as error:  # a broken install is exactly what doctor is for
        report["torch_error"] = f"{type(error).__name__}: {error}"
        return report
    report["torch"] = torch.__version__
    report["torchvision"] = torchvision.__version__
    report["cpu_threads"] = torch.get_num_threads()
    report["cuda"] = torch.cuda.is_available()
    report["cuda_devices"] = [
        {"name": torch.cuda.get_device_name(i),
         "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
        for i in range(torch.cuda.device_count())] if report["cuda"] else []
    report["mps"] = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    report["weights"] = {}
    for arch in ("vgg19", "vgg16"):
        try:
            source = weights.resolve(arch, download=False)
            report["weights"][arch] = {"found": True, "path": source.path, "preprocessing": source.preprocessing,
                                       "origin": source.origin}
        except (WeightsMissing, BadInput) as error:
            report["weights"][arch] = {"found": False, "message": str(error)}
    report["ready"] = any(w["found"] for w in report["weights"].values())
    return report


def cmd_doctor(args):
    report = doctor_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if "torch_error" in report else 0
    print(f"nst-core {report['version']} on Python {report['python']} ({report['executable']})")
    if "torch_error" in report:
        print(f"torch: cannot be imported: {report['torch_error']}\n"
              "  reinstall the engine (python3 installer/install.py)")
        return 1
    print(f"torch {report['torch']}, torchvision {report['torchvision']}, {report['cpu_threads']} CPU threads")
    print(f"CUDA: {'yes' if report['cuda'] else 'no'}"
          + "".join(f"\n  {d['name']} ({d['memory_gb']} GB)" for d in report["cuda_devices"]))
    print(f"Apple MPS: {'yes' if report['mps'] else 'no'}")
    print(f"data folder: {report['data_dir']}")
    for arch, info in report["weights"].items():
        where = f"{info['path']} ({info['preprocessing']}, {info['origin']})" if info["found"] else "not found"
        print(f"{arch} weights: {where}")
    if not report["ready"]:
        print("next step: `nst-core weights fetch` (online) or `nst-core weights import FILE` (offline)")
    return 0


def cmd_serve(args):
    from .serve import serve

    return serve(args)


def cmd_weights_fetch(args):
    from . import weights

    print(weights.fetch(args.backbone))
    return 0


def cmd_weights_import(args):
    from . import weights

    print(weights.import_file(args.file, args.backbone, args.weights_format))
    return 0


def cmd_weights_path(args):
    from . import weights

    print(weights.trimmed_path(args.backbone, args.weights_format))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.handler is cmd_stylize:
        return args.handler(args)
    try:
        return args.handler(args)
    except NSTError as error:
        print(f"nst-core: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return Cancelled.exit_code


if __name__ == "__main__":
    sys.exit(main())
