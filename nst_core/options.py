"""The options of a stylize job, owned in one place: ``nst-core stylize``'s and the HTTP service's.

A job is the preset it starts from, the :class:`~nst_core.params.StyleParams` fields that declare an
option (``params.cli``), and the preview interval. This module adds them to a parser, turns parsed
arguments into ``StyleParams``, and turns a job's JSON object (docs/PROTOCOL.md, *HTTP transport*)
into arguments and back. The engine's own options (device, network, weights) are the process's,
not a job's: ``add_engine_options``. No torch here.
"""

import argparse
import json

from .engine.devices import DEVICES
from .errors import BadInput
from .params import DEFAULT_TEMPORAL_WEIGHT, PRESETS, StyleParams, cli_fields

STYLIZE_PROG = "nst-core stylize"
# Options of `nst-core stylize` that are not a job's: the engine's (a service has one engine, set when
# it starts) and the local command line's own. A job that names one is told so.
ENGINE_OPTIONS = ("device", "backbone", "weights", "weights-format")
LOCAL_OPTIONS = ("output", "progress", "ignore-stdin", "server", "token-file", "preview-dir", "help")
# The word that stands, in place of a mask file, for "what the other masks leave"; over HTTP a 'mask'
# part whose body is this word (docs/PROTOCOL.md).
REST_MASK = "rest"


def whole_number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def add_job_options(parser):
    """--preset, one option per StyleParams field that declares one, and --preview-every. Every
    option defaults to None: left out, it takes the preset's value."""
    parser.add_argument("--preset", choices=list(PRESETS), default="standard",
                        help="standard: multi-scale, a good result soonest; fast: a quick look; "
                             "paper: the paper's settings (default: standard)")
    defaults = StyleParams()
    for spec in cli_fields():
        options = dict(spec.metadata["cli"])
        flag = options.pop("flag") or "--" + spec.name.replace("_", "-")
        kind = options.pop("type", None) or type(getattr(defaults, spec.name))
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif options["choices"] is None:
            options["type"] = {int: whole_number, float: number}[kind]
        parser.add_argument(flag, dest=spec.name, default=None,
                            **{key: value for key, value in options.items() if value is not None})
    parser.add_argument("--preview-every", type=number, metavar="SECONDS",
                        help="with --progress jsonl: a preview event (a PNG of the best result so far, at full "
                             "size) at most this often, the first after the first step (default: none)")


def add_region_options(parser):
    """--style-mask: a region per style. Masks are files, like the styles: over HTTP they travel as
    'mask' parts, not in a job's params."""
    parser.add_argument("--style-mask", nargs="+", metavar="MASK", dest="style_masks",
                        help="one mask per style, in the same order: each style paints only where its mask is "
                             "white (grey PNG) or opaque (PNG with alpha); soft edges blend; any size of the "
                             f"content's shape. '{REST_MASK}' for one style: what the other masks leave. Parts "
                             "no mask covers stay the photo. See --region-weight")


def check_style_masks(masks, style_count, what="--style-mask"):
    """--style-mask as given (None: no regions), or BadInput saying what to give."""
    if masks is None:
        return None
    if len(masks) != style_count:
        raise BadInput(f"{what} has {len(masks)} mask(s) for {style_count} style image(s): give one mask per "
                       f"style, in the same order ('{REST_MASK}' for the one style that takes what the others "
                       "leave)")
    if sum(1 for m in masks if m == REST_MASK) > 1:
        raise BadInput(f"{what} names '{REST_MASK}' more than once: only one style can take what the "
                       "other masks leave")
    return list(masks)


def add_engine_options(parser):
    """The engine's options: which device and network, for `stylize` and `serve`."""
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--backbone", choices=("auto", "vgg19", "vgg16"), default="auto",
                        help="auto: VGG-19 when its weights are at hand, else a local VGG-16")
    parser.add_argument("--weights", help="weights file (torchvision-layout state dict), or 'random' for tests")
    parser.add_argument("--weights-format", choices=("torchvision", "caffe"),
                        help="the preprocessing the weights expect (default: what the file declares, "
                             "else torchvision)")


def params_from_args(args):
    """The :class:`StyleParams` of parsed job options."""
    overrides = {}
    for spec in cli_fields():
        value = getattr(args, spec.name)
        overrides[spec.name] = tuple(value) if isinstance(value, list) else value  # nargs gives lists
    return StyleParams.preset(args.preset, **overrides)


def check_style_blend(params, style_count):
    if params.style_blend is not None and len(params.style_blend) != style_count:
        raise BadInput(f"--style-blend has {len(params.style_blend)} weight(s) for {style_count} style image(s)")


def check_preview_every(seconds):
    """--preview-every as given (None: no previews), or BadInput."""
    if seconds is not None and not (seconds >= 0 and seconds != float("inf")):
        raise BadInput(f"--preview-every must be a number of seconds >= 0, got {seconds}")
    return seconds


class _JobParser(argparse.ArgumentParser):
    """A parser of job options alone; its errors are BadInput with the command line's wording
    (argparse would print the usage and exit the whole process)."""

    def error(self, message):
        raise BadInput(f"{self.prog}: {message}")


def job_parser():
    parser = _JobParser(prog=STYLIZE_PROG, add_help=False)
    add_job_options(parser)
    return parser


def job_option_actions(parser=None):
    """{JSON key: argparse action} of every job option: its long name without the dashes."""
    parser = parser or job_parser()
    actions = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-")]
        if longs:
            actions[longs[0][2:]] = action
    return actions


def args_from_json(params):
    """A job's ``params`` object -> the parsed job options it stands for.

    Keys are the long option names without the dashes (``"style-weight"``); ``true``/``false`` for
    on/off options, a list for ``style-blend``, ``null`` for the preset's value. Each scalar travels
    as ``--option=value``, so a value can never be read as another option.
    """
    if not isinstance(params, dict):
        raise BadInput("params must be a JSON object such as {\"preset\": \"fast\", \"size\": 256}")
    parser = job_parser()
    actions = job_option_actions(parser)
    argv = []
    for key, value in params.items():
        action = actions.get(key)
        if action is None:
            if key.replace("_", "-") in actions:
                raise BadInput(f"unknown parameter {key!r}: write it as {key.replace('_', '-')!r}, "
                               "the command line's option name without the dashes")
            if key.replace("_", "-").lstrip("-") in ("style-mask", "style-masks"):
                raise BadInput(f"parameter {key!r}: masks are files, sent as one 'mask' part per style (in the "
                               f"styles' order; a part holding the word '{REST_MASK}' for what the others leave), "
                               "not in params")
            if key.replace("_", "-").lstrip("-") in ENGINE_OPTIONS + LOCAL_OPTIONS:
                raise BadInput(f"parameter {key!r} is the service's, not a job's: it is set when the service "
                               "starts (nst-core serve --help); leave it out")
            raise BadInput(f"unknown parameter {key!r}; a job takes: {', '.join(sorted(actions))}")
        argv.extend(_argv_of(key, value, action))
    return parser.parse_args(argv)


def _argv_of(key, value, action):
    option = "--" + key
    if value is None:
        return []
    if isinstance(value, bool):
        if action.nargs == 0:  # --ssim / --no-ssim, --multiscale / --no-multiscale
            return [option if value else "--no-" + key]
        if action.nargs == "?" and action.const is not None:  # --preserve-colors [MODE]
            return [option] if value else []
        raise BadInput(f"parameter {key!r} takes a value, not {json.dumps(value)}")
    if isinstance(value, list):
        if action.nargs != "+" or not value or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise BadInput(f"parameter {key!r} does not take a list" if action.nargs != "+"
                           else f"parameter {key!r} takes a list of numbers, got {json.dumps(value)}")
        return [option] + [repr(float(v)) for v in value]
    if isinstance(value, (int, float, str)):
        if action.nargs == 0:
            raise BadInput(f"parameter {key!r} is on or off: give true or false")
        return [f"{option}={value}"]
    raise BadInput(f"parameter {key!r} must be a number, a string, true/false or a list")


def settings_from_json(params, style_count):
    """(StyleParams, preview interval in seconds or None): what a job's ``params`` ask for."""
    args = args_from_json(params)
    result = params_from_args(args)
    check_style_blend(result, style_count)
    return result, check_preview_every(args.preview_every)


def json_from_args(args):
    """A job's ``params`` object from parsed `nst-core stylize` options: what was given, and the preset."""
    params = {}
    for key, action in job_option_actions().items():
        value = getattr(args, action.dest, None)
        if value is not None:
            params[key] = list(value) if isinstance(value, (list, tuple)) else value
    return params


def add_frames_options(parser):
    """The options ``nst-core stylize-frames`` adds to a job's: how strongly a frame holds to the one before."""
    parser.add_argument("--temporal-weight", type=number, default=DEFAULT_TEMPORAL_WEIGHT, metavar="W",
                        help=f"how strongly each frame keeps to the previous styled frame carried along the "
                             f"motion (default {DEFAULT_TEMPORAL_WEIGHT:g}; 0: warm start only)")
    parser.add_argument("--independent", action="store_true",
                        help="style every frame on its own, as single pictures (flickers; for comparison)")
