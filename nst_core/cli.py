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
from .engine.devices import prefer_passive_threads
from .errors import BadInput, Cancelled, NSTError, OutOfMemory, WeightsMissing
from .options import (
    REST_MASK,
    add_engine_options,
    add_frames_options,
    add_job_options,
    add_region_options,
    check_preview_every,
    check_style_blend,
    check_style_masks,
    json_from_args,
    params_from_args,
)
from .protocol import JsonlWriter


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
    add_job_options(run)
    add_region_options(run)
    add_engine_options(run)
    run.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                     help="auto: a bar on a terminal; jsonl: protocol events on stdout")
    run.add_argument("--ignore-stdin", action="store_true",
                     help="do not stop when stdin closes (for shell pipelines)")
    run.add_argument("--server", metavar="URL",
                     help="send the job to a running `nst-core serve` at URL (docs/SERVICE.md) instead of "
                          "running it here")
    run.add_argument("--token-file", metavar="FILE",
                     help="with --server: the service's token (default: the one in this engine's data folder)")
    run.add_argument("--preview-dir", metavar="DIR",
                     help="folder for the preview PNGs (default: beside the output); they are removed at the end")
    run.set_defaults(handler=cmd_stylize)

    add_frames_parser(commands).set_defaults(handler=cmd_stylize_frames)

    from .service.server import add_serve_parser

    add_serve_parser(commands).set_defaults(handler=cmd_serve)

    doctor = commands.add_parser("doctor", help="report torch, devices and weights")
    doctor.add_argument("--json", action="store_true", help="one JSON object on stdout")
    doctor.set_defaults(handler=cmd_doctor)

    weights = commands.add_parser("weights", help="prepare the network weights ahead of time")
    actions = weights.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    fetch = actions.add_parser("fetch", help="download torchvision's ImageNet weights once, keep the trimmed copy",
                               description="Download torchvision's ImageNet weights once (548 MB for VGG-19) "
                                           "and keep the 61 MB the engine uses. Offline, it says what is "
                                           "already installed and how to import a file instead.")
    fetch.add_argument("--backbone", choices=("vgg19", "vgg16"), default="vgg19",
                       help="the network whose weights to download (default: vgg19)")
    fetch.set_defaults(handler=cmd_weights_fetch)
    imp = actions.add_parser("import", help="check a local weights file and keep its trimmed copy (offline)",
                             description="Check a local weights file, keep the part the engine uses and make "
                                         "it the copy the engine uses from now on (it replaces an earlier copy "
                                         "of the same network). Known files (torchvision's vgg16-397923af.pth "
                                         "and vgg19-dcbb9e9d.pth, the Caffe-converted VGG-16 "
                                         "vgg16-imagenet-caffe-features.pth) are recognised by their sha256; "
                                         "any other must be a torchvision-layout VGG-16/19 state dict, and "
                                         "needs --weights-format unless the file declares its preprocessing.")
    imp.add_argument("file", help="the .pth file: a state dict with torchvision's features.N.weight/bias keys")
    imp.add_argument("--backbone", choices=("auto", "vgg19", "vgg16"), default="auto",
                     help="the network the file is for (default auto: told from its tensors' shapes; "
                          "a known file is checked against it)")
    imp.add_argument("--weights-format", choices=("torchvision", "caffe"), default=None,
                     help="the preprocessing the weights were trained with: torchvision (RGB 0..1, ImageNet "
                          "mean/std) or caffe (BGR 0..255 minus the mean). Needed for a file the engine does "
                          "not recognise and that does not say; refused if it contradicts a known file")
    imp.set_defaults(handler=cmd_weights_import)
    path = actions.add_parser("path", help="print the weights file the engine uses",
                              description="Print the weights file the engine uses (stdout) and why (stderr). "
                                          "With none installed yet it says so on stderr, with what to do, "
                                          "and prints where that copy will be kept.")
    path.add_argument("--backbone", choices=("auto", "vgg19", "vgg16"), default="auto",
                      help="the file used with stylize --backbone (default auto: the engine's own choice)")
    path.add_argument("--weights-format", choices=("torchvision", "caffe"), default=None,
                      help="the file used with stylize --weights-format (default: any)")
    path.set_defaults(handler=cmd_weights_path)
    return parser


# ----- stopping -------------------------------------------------------------------------------

class StopSignal:
    """Cancel (no output): set by SIGINT/SIGTERM, by ``cancel`` on stdin, by stdin closing (the caller
    died) or by stdout closing. Finish (stop and keep the best so far): ``stop`` on stdin or SIGUSR1
    (no such signal on Windows: there, ``stop`` on stdin only)."""

    def __init__(self):
        self.event = threading.Event()
        self.reason = ""
        self.finish_event = threading.Event()

    def finish_requested(self):
        return self.finish_event.is_set()

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
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, lambda _signum, _frame: self.finish_event.set())

    def watch_stdin(self, stream=None):
        """When stdin is a pipe, a line ``cancel`` or end-of-file cancels the run, a line ``stop`` finishes
        it. End-of-file after ``stop`` does not cancel: the caller has said what it wants."""
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
                    command = line.strip().lower()
                    if command == "cancel":
                        self.set("cancel requested on stdin")
                        return
                    if command == "stop":
                        self.finish_event.set()  # and read on: a cancel may still follow
            except (OSError, ValueError):
                pass
            if not self.finish_requested():
                self.set("stdin closed (the caller has gone)")

        threading.Thread(target=reader, name="stdin-watch", daemon=True).start()
        return True


# ----- progress -------------------------------------------------------------------------------

class StdoutClosed(Cancelled):
    """The reader of the JSON lines closed its end: it has gone, so the run is cancelled, quietly."""

    def __init__(self):
        super().__init__("cancelled (stdout closed: the caller has gone): no output was written")


class PreviewFiles:
    """Each preview in a new PNG (written atomically), the newest two kept (a reader may still be
    opening the one before), all removed at the end of the run."""

    def __init__(self, folder, output):
        self.prefix = os.path.join(os.path.abspath(folder), f".{os.path.basename(output)}.preview-{os.getpid()}-")
        self.count = 0
        self.kept = []

    def write(self, image):
        from .engine.imageio import save_image

        self.count += 1
        path = save_image(image, f"{self.prefix}{self.count}.png", fast=True)
        self.kept.append(path)
        while len(self.kept) > 2:
            self._remove(self.kept.pop(0))
        return path

    def remove_all(self):
        while self.kept:
            self._remove(self.kept.pop())

    @staticmethod
    def _remove(path):
        try:
            os.unlink(path)
        except OSError:
            pass  # a reader on Windows may hold it open; it is a hidden file in the caller's folder


class Reporter:
    """Turns engine events into the chosen progress display."""

    def __init__(self, mode, stream_out=None, stream_err=None, previews=None):
        self.out = stream_out or sys.stdout
        self.err = stream_err or sys.stderr
        if mode == "auto":
            mode = "bar" if self.err.isatty() else "none"
        self.mode = mode
        self.jsonl = JsonlWriter(self.out) if mode == "jsonl" else None
        self.bar = None
        self.previews = previews  # PreviewFiles, with --preview-every
        self.stdout_closed = False

    def _send(self, name, **fields):
        """One JSON line; a closed stdout cancels the run (StdoutClosed) instead of a traceback."""
        if self.stdout_closed:
            raise StdoutClosed()
        try:
            self.jsonl.emit(name, **fields)
        except (OSError, ValueError):  # BrokenPipeError, EINVAL on Windows, or a closed file object
            self.stdout_closed = True
            _discard_stdout()
            raise StdoutClosed() from None

    def _say(self, text):
        """A line on stderr for a person; a closed stderr is no reason to fail a run."""
        try:
            print(text, file=self.err)
        except (OSError, ValueError):
            pass

    def __call__(self, event):
        if self.jsonl is not None:
            if event.event == "preview":
                self._preview(event)
            else:
                self._send(event.event, **event.as_dict())
            return
        if event.event == "preview":
            return
        if event.event == "queued":
            if self.mode != "none":
                self._say(f"waiting for the service: {event.position} job(s) ahead")
        elif event.event == "warning":
            self._close_bar()
            self._say(f"warning: {event.message}")
        elif event.event == "start":
            self._say(f"nst-core {event.version}: {event.device}, {event.weights}; working size "
                  f"{event.working_size[0]}x{event.working_size[1]}, scales "
                      f"{', '.join(f'{w}x{h}' for w, h in event.scales)}, upscale: {event.upscale}")
            if self.mode == "bar":
                from tqdm import tqdm

                self.bar = tqdm(total=event.iterations, file=self.err, unit="it", dynamic_ncols=True)
        elif event.event == "progress" and self.bar is not None:
            self.bar.set_description(f"{event.phase} {event.scale + 1}")
            factors = " ".join(f"{f:.3f}" for f in event.ssim_factors)
            self.bar.set_postfix_str(f"loss {event.loss:.4g}" + (f" ssim-factors {factors}" if factors else ""))
            self.bar.update(1)

    def _preview(self, event):
        if self.previews is None:
            return
        try:
            path = self.previews.write(event.image)
        except OSError as error:  # a full disk: the run goes on without previews
            self.previews = None
            self._send("warning", message=f"previews stopped: could not write one ({error})")
            return
        self._send("preview", path=path, **event.as_dict())

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def done(self, output, stats):
        self._close_bar()
        if self.jsonl is not None:
            try:
                self._send("done", output=output, stats=stats)
            except StdoutClosed:
                pass  # the result is written; nobody is left to tell
        else:
            factors = ", ".join(f"{f:.3f}" for f in stats.get("ssim_factors", []))
            stopped = f"; stopped early, after {stats['steps']} steps" if stats.get("stop_reason") == "stopped" else ""
            width, height = stats["output_size"]
            self._say(f"wrote {output} ({width}x{height}) in {stats['seconds']:.1f} s;"
                      f" best loss {stats['loss']:.5g} after {stats['best_iteration']} of {stats['iterations']} steps"
                      + stopped + (f"; SSIM factors (1-SSIM)/2 per style layer: {factors}" if factors else ""))

    def error(self, error):
        self._close_bar()
        if self.jsonl is not None and not self.stdout_closed:
            try:
                self._send("error", code=error.code, exit_code=error.exit_code, message=str(error))
            except StdoutClosed:
                pass
        self._say(f"nst-core: error: {error}")


def _discard_stdout():
    """Point stdout's file descriptor at the null device, so that the interpreter's last flush at exit
    does not print a BrokenPipeError of its own (as the Python docs advise for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# ----- commands -------------------------------------------------------------------------------

def cmd_stylize(args):
    reporter = Reporter(args.progress)
    stop = StopSignal()
    stop.install_signal_handlers()
    if not args.ignore_stdin:
        stop.watch_stdin()
    try:
        from .engine.imageio import check_output_path

        params = params_from_args(args)
        check_style_blend(params, len(args.styles))
        masks = check_style_masks(args.style_masks, len(args.styles))
        mask_files = [m for m in masks or [] if m != REST_MASK]
        for path in [args.content] + args.styles:
            if not os.path.exists(path):
                raise BadInput(f"{'content' if path == args.content else 'style'} image not found: {path}")
        for path in mask_files:
            if not os.path.exists(path):
                raise BadInput(f"style mask not found: {path} (or write '{REST_MASK}' for the style that takes "
                               "what the other masks leave)")
        output = check_output_path(args.output, [args.content] + args.styles + mask_files)
        preview_every = _preview_interval(args, reporter)
        if preview_every is not None:
            reporter.previews = PreviewFiles(args.preview_dir or os.path.dirname(output), output)
        if stop():
            raise Cancelled()
        if args.server:  # a running service does the work (nst_core.service.client): no torch here
            return _stylize_remote(args, output, reporter, stop)

        from .engine.images import as_loaded
        from .engine.stylizer import Stylizer

        content = as_loaded(args.content, "content")
        styles = [as_loaded(path, "style") for path in args.styles]
        if args.weights == "random" or (args.weights is None and os.environ.get("NST_WEIGHTS") == "random"):
            print("nst-core: using an UNTRAINED network (--weights random): for tests only, "
                  "the result is not a style transfer", file=sys.stderr)
        engine = Stylizer(args.backbone, args.weights, args.weights_format, args.device)
        regions = None if masks is None else [None if m == REST_MASK else m for m in masks]
        result = engine.run(content, styles, params, on_progress=reporter, should_stop=stop,
                            should_finish=stop.finish_requested, preview_every=preview_every, regions=regions)
        if stop():  # a cancel that came after the last iteration still means: no output
            raise Cancelled()
        written = result.save(output)
        reporter.done(written, result.stats)
        return 0
    except Cancelled as error:
        if stop.reason and not isinstance(error, StdoutClosed):
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
    finally:
        if reporter.previews is not None:
            reporter.previews.remove_all()


def _stylize_remote(args, output, reporter, stop):
    """The job of ``args`` on the service at ``args.server``, shown and written as a local run is."""
    from .service.client import stylize_remote
    from .service.token import default_token_file, read_token

    given = [name for name, default in (("device", "auto"), ("backbone", "auto"), ("weights", None),
                                        ("weights_format", None)) if getattr(args, name) != default]
    if given:
        raise BadInput(f"--{given[0].replace('_', '-')} is the service's choice with --server: it was set when "
                       "`nst-core serve` started (GET /v1/health says which); leave it out")
    token = read_token(args.token_file or default_token_file())
    written, stats = stylize_remote(args.server, token, args.content, args.styles, json_from_args(args), output,
                                    reporter, stop, masks=args.style_masks)
    reporter.done(written, stats)
    return 0


def _preview_interval(args, reporter):
    """--preview-every in seconds, or None: previews go out as JSON lines only."""
    if check_preview_every(args.preview_every) is None:
        return None
    if args.preview_dir is not None and not os.path.isdir(args.preview_dir):
        raise BadInput(f"--preview-dir {args.preview_dir} is not a folder: create it, or leave the option out "
                       "to have the previews beside the output")
    return args.preview_every if reporter.jsonl is not None else None


def doctor_report():
    from .engine import weights

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
    report["weights_dir"] = weights.weights_dir()
    report["installed_weights"] = [{"architecture": c.architecture, "preprocessing": c.preprocessing,
                                    "path": c.path} for c in weights.installed_copies()]
    try:
        in_use = weights.resolve("auto", download=False)
        report["weights_in_use"] = {"architecture": in_use.architecture, "preprocessing": in_use.preprocessing,
                                    "path": in_use.path, "origin": in_use.origin, "why": in_use.why,
                                    "description": in_use.describe()}
    except (WeightsMissing, BadInput):
        report["weights_in_use"] = None
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
    if report["weights_in_use"]:
        print(f"weights in use (stylize without --backbone/--weights): {report['weights_in_use']['description']}")
    if not report["ready"]:
        print("next step: `nst-core weights fetch` (online) or `nst-core weights import FILE` (offline)")
    return 0


def cmd_serve(args):
    from .service.server import serve

    return serve(args)


def cmd_weights_fetch(args):
    from .engine import weights

    kept = weights.fetch(args.backbone)
    print(kept)
    in_use = weights.default_copy()
    if in_use is not None and in_use.path != kept:
        print(f"note: without --backbone the engine uses {in_use.describe()}", file=sys.stderr)
    return 0


def cmd_weights_import(args):
    from .engine import weights

    print(weights.import_file(args.file, args.backbone, args.weights_format,
                              report=lambda text: print(text, file=sys.stderr)))
    return 0


def cmd_weights_path(args):
    from .engine import weights

    try:
        source = weights.resolve(args.backbone, preprocessing=args.weights_format, download=False)
    except WeightsMissing:
        arch = "vgg19" if args.backbone == "auto" else args.backbone
        fmt = args.weights_format or "torchvision"
        print(f"no {arch.upper()} weights installed{'' if fmt == 'torchvision' else f' for {fmt} preprocessing'}"
              f" yet: `nst-core weights fetch` downloads them (online); "
              f"{weights.offline_advice(arch)} The copy will be kept at the path below.", file=sys.stderr)
        print(weights.trimmed_path(arch, fmt))
        return 0
    if source.kind == weights.RANDOM:
        print(f"the engine uses an untrained network ({source.origin}=random): for tests only", file=sys.stderr)
        print(weights.RANDOM)
        return 0
    print(f"in use: {source.describe()}", file=sys.stderr)
    print(source.path)
    return 0


# ----- nst-core stylize-frames FRAME... STYLE -o FOLDER ----------------------------------------
# The frames of an animation, styled in order without flicker (nst_core.engine.frames), one result per
# frame in FOLDER. The results are written when the run ends: a cancelled run writes nothing (and
# removes FOLDER when it made it), a stopped one writes the frames done. A result never replaces an input.

OUTPUT_FORMATS = ("png", "jpg", "webp", "tif")


def add_frames_parser(commands):
    parser = commands.add_parser(
        "stylize-frames", help="stylise the frames of an animation, in order, without flicker",
        description="Stylise FRAME... (in the order given, all one size) with STYLE: each frame after the "
                    "first starts from the styled frame before it, carried along the optical flow. One result "
                    "per frame in the output folder, named after the frame.")
    parser.add_argument("inputs", nargs="+", metavar="FRAME... STYLE",
                        help="the frame images in order, then the style image")
    parser.add_argument("-o", "--output", required=True, metavar="FOLDER",
                        help="folder for the styled frames (made if missing; its parent must exist)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="png", help="the results' format (default png)")
    add_frames_options(parser)
    add_job_options(parser)
    add_engine_options(parser)
    parser.add_argument("--progress", choices=("auto", "bar", "jsonl", "none"), default="auto",
                        help="auto: a bar on a terminal; jsonl: protocol events on stdout")
    parser.add_argument("--ignore-stdin", action="store_true",
                        help="do not stop when stdin closes (for shell pipelines)")
    parser.add_argument("--preview-dir", metavar="DIR",
                        help="folder for the preview PNGs of the frame being styled (default: the output "
                             "folder's parent); they are removed at the end")
    return parser


def plan_outputs(frames, folder, extension):
    """One result path per frame in ``folder``, named after the frame; checked before any work."""
    from .engine.imageio import check_output_path

    seen, outputs = {}, []
    for frame in frames:
        name = os.path.splitext(os.path.basename(frame))[0] + "." + extension
        if name in seen:
            raise BadInput(f"frames {seen[name]} and {frame} would both be written as {name}: give frames "
                           "with different names")
        seen[name] = frame
        outputs.append(os.path.join(folder, name))
    # Probed in place when the folder exists; otherwise its parent is (the folder is made later).
    for path in outputs:
        if os.path.isdir(folder):
            check_output_path(path, frames)
        elif any(os.path.abspath(path) == os.path.abspath(f) for f in frames):
            raise BadInput(f"output {path} is one of the input images: choose another folder")
    return outputs


class FrameReporter:
    """The command's ``Reporter`` plus the frame events: JSON lines as they come; for a person, a line
    per frame and a fresh bar for each frame's run."""

    def __init__(self, reporter):
        self.reporter = reporter
        self.started = False  # the engine's line is said once, with the first frame

    def __call__(self, event):
        reporter = self.reporter
        if reporter.jsonl is not None or event.event not in ("frame_start", "frame_done", "start"):
            return reporter(event)
        if event.event == "start":
            if not self.started:
                self.started = True
                return reporter(event)
            return self._bar(event) if reporter.mode == "bar" else None
        reporter._close_bar()
        if reporter.mode == "none":
            return
        if event.event == "frame_start":
            how = {"first": "", "flow": f" (from the frame before, along the motion: {event.reliable_share:.0%} held)"
                   if event.reliable_share is not None else "", "previous": " (from the frame before, no flow)",
                   "independent": ""}[event.mode]
            reporter._say(f"frame {event.frame}/{event.frames}: {event.source}{how}")
        else:
            left = f", about {event.sequence_eta:.0f} s left" if event.sequence_eta else ""
            reporter._say(f"frame {event.frame}/{event.frames} done: {event.steps} steps, {event.seconds:.1f} s{left}")

    def _bar(self, event):
        from tqdm import tqdm

        self.reporter.bar = tqdm(total=event.iterations, file=self.reporter.err, unit="it", dynamic_ncols=True)


def cmd_stylize_frames(args):
    reporter = Reporter(args.progress)
    stop = StopSignal()
    stop.install_signal_handlers()
    if not args.ignore_stdin:
        stop.watch_stdin()
    made_folder = None
    try:
        if len(args.inputs) < 2:
            raise BadInput("give the frames in order, then the style image: nst-core stylize-frames "
                           "frame-*.png style.jpg -o out/")
        frames, style = args.inputs[:-1], args.inputs[-1]
        params = params_from_args(args)
        check_style_blend(params, 1)
        for path in args.inputs:
            if not os.path.exists(path):
                raise BadInput(f"{'style' if path == style else 'frame'} image not found: {path}")
        folder = os.path.abspath(args.output)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise BadInput(f"output {args.output} is a file: give a folder for the styled frames")
        if not os.path.isdir(os.path.dirname(folder)):
            raise BadInput(f"the output folder's parent {os.path.dirname(folder)} does not exist")
        outputs = plan_outputs(frames, folder, args.format)
        preview_every = _preview_interval(args, reporter)
        if preview_every is not None:
            reporter.previews = PreviewFiles(args.preview_dir or os.path.dirname(folder), outputs[0])
        if stop():
            raise Cancelled()

        from .engine.frames import stylize_frames
        from .engine.imageio import check_output_path
        from .engine.stylizer import Stylizer

        if args.weights == "random" or (args.weights is None and os.environ.get("NST_WEIGHTS") == "random"):
            print("nst-core: using an UNTRAINED network (--weights random): for tests only, "
                  "the result is not a style transfer", file=sys.stderr)
        engine = Stylizer(args.backbone, args.weights, args.weights_format, args.device)
        results = stylize_frames(engine, frames, [style], params, temporal_weight=args.temporal_weight,
                                 coherent=not args.independent, on_progress=FrameReporter(reporter),
                                 should_stop=stop, should_finish=stop.finish_requested,
                                 preview_every=preview_every)
        if stop():  # a cancel after the last iteration still means: nothing written
            raise Cancelled()
        if not os.path.isdir(folder):
            os.mkdir(folder)
            made_folder = folder
        written = [result.save(check_output_path(path, frames)) for result, path in zip(results, outputs)]
        made_folder = None
        stats = {"frames": [r.stats for r in results], "outputs": written, "frames_done": len(written),
                 "frames_given": len(frames), "stop_reason": "stopped" if len(written) < len(frames) or any(
                     r.stats["stop_reason"] == "stopped" for r in results) else "done",
                 "seconds": round(sum(r.stats["seconds"] for r in results), 3)}
        reporter._close_bar()
        if reporter.jsonl is not None:
            reporter._send("done", output=folder, outputs=written, stats=stats)
        else:
            reporter._say(f"wrote {len(written)} of {len(frames)} frames to {folder} in {stats['seconds']:.1f} s")
        return 0
    except Cancelled as error:
        if stop.reason and type(error).__name__ != "StdoutClosed":
            error = Cancelled(f"cancelled ({stop.reason}): no frame was written")
        reporter.error(error)
        return error.exit_code
    except KeyboardInterrupt:
        error = Cancelled("cancelled (interrupted): no frame was written")
        reporter.error(error)
        return error.exit_code
    except NSTError as error:
        reporter.error(error)
        return error.exit_code
    except MemoryError:
        error = OutOfMemory("out of memory: use a smaller --size or close other programs")
        reporter.error(error)
        return error.exit_code
    except OSError as error:
        wrapped = BadInput(f"could not write the frames: {error}")
        reporter.error(wrapped)
        return wrapped.exit_code
    except Exception as error:  # a bug: say so plainly, keep the traceback on stderr
        traceback.print_exc(file=sys.stderr)
        wrapped = NSTError(f"internal error ({type(error).__name__}: {error}); the traceback is on stderr. "
                           "Please report it.")
        reporter.error(wrapped)
        return wrapped.exit_code
    finally:
        if reporter.previews is not None:
            reporter.previews.remove_all()
        if made_folder is not None:
            for name in os.listdir(made_folder):
                os.unlink(os.path.join(made_folder, name))
            os.rmdir(made_folder)


def main(argv=None):
    # The console script enters here: idle OpenMP threads must sleep on a shared CPU, and torch (loaded
    # later, by the command) reads the setting on loading. An OMP_WAIT_POLICY the user set is kept.
    prefer_passive_threads()
    args = build_parser().parse_args(argv)
    if args.handler in (cmd_stylize, cmd_stylize_frames):
        return args.handler(args)  # they report their own errors, in their --progress format
    try:
        return args.handler(args)
    except NSTError as error:
        print(f"nst-core: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return Cancelled.exit_code


if __name__ == "__main__":
    sys.exit(main())
