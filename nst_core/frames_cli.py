"""``nst-core stylize-frames FRAME... STYLE -o FOLDER``: the frames of an animation, styled in order
without flicker (nst_core.engine.frames), one result per frame in FOLDER.

The results are written when the run ends: a cancelled run writes nothing (and removes FOLDER when it
made it), a stopped one writes the frames done. A result never replaces an input.
"""

import os
import sys
import traceback

from .errors import BadInput, Cancelled, NSTError, OutOfMemory
from .options import add_engine_options, add_frames_options, add_job_options, check_style_blend, params_from_args

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
    from .cli import Reporter, StopSignal

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
                                 should_stop=stop, should_finish=stop.finish_requested)
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
        if made_folder is not None:
            for name in os.listdir(made_folder):
                os.unlink(os.path.join(made_folder, name))
            os.rmdir(made_folder)
