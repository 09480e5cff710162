"""Every setting of a style-transfer run, in one validated dataclass, with named presets.

A field that the command line offers says so in its metadata (``cli(...)``: help text, choices); the
``stylize`` options are built from those, so a new setting is added here once, with its label.
No torch here: the CLI builds and checks parameters before it pays for importing torch.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

from .errors import BadInput

PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PAPER_CONTENT_LAYERS = ("relu5_2",)
GATYS_CONTENT_LAYERS = ("relu4_2",)

OPTIMIZERS = ("adam", "lbfgs")
INITS = ("content", "noise")
NORMALIZATIONS = ("target", "raw")
SSIM_SCALINGS = ("max", "none")
COLOR_MODES = ("luminance", "histogram")
UPSCALES = ("auto", "tiles", "detail", "resize")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

MIN_SIZE = 32
MAX_SIZE = 16384
# Caps for counts that only ever cost time or memory when huge: a job that asks past them is refused.
MAX_ITERATIONS = 100000
MAX_REFINE_ITERATIONS = 10000
MAX_SSIM_WINDOW = 63

# Style strength (standard and fast presets): one number from 0 to 10 that sets style against content.
# Each step multiplies the style weight (content weight 1, normalised losses) by STRENGTH_FACTOR, so
# the range spans 2**-5 to 2**5 times the calibrated middle, DEFAULT_STRENGTH. The middle's style weight
# depends on the style loss: the SSIM factor (1 - SSIM) / 2 shrinks each layer's Gram loss as the
# Grams approach their targets, so it needs a larger weight for the same look than the plain Gram loss.
# Calibrated with benchmarks/evaluate.py so that strength 5 puts every example pair in its good region
# (benchmarks/README.md, "Calibration of the strength").
MIN_STRENGTH, MAX_STRENGTH, DEFAULT_STRENGTH = 0.0, 10.0, 5.0
STRENGTH_FACTOR = 2.0
CALIBRATED_STYLE_WEIGHT_SSIM = 64.0  # the standard and fast presets' loss
CALIBRATED_STYLE_WEIGHT = 8.0  # with --no-ssim (plain Gatys)
# Frames of an animation (nst_core.engine.frames): how strongly each frame keeps to the styled frame
# before it, carried along the motion. On the synthetic pan of tests/engine/test_frames.py (real VGG-16,
# fast preset, 256 px) 100 cut the flicker to a fifth of independent frames', every frame still good.
DEFAULT_TEMPORAL_WEIGHT = 100.0
def strength_to_style_weight(strength, use_ssim=True):
    """The style weight (against a content weight of 1) that ``strength`` stands for: log-spaced,
    monotone, ``DEFAULT_STRENGTH`` -> the calibrated weight of the style loss in use."""
    if not (isinstance(strength, (int, float)) and math.isfinite(strength)
            and MIN_STRENGTH <= strength <= MAX_STRENGTH):
        raise BadInput(f"style-strength must be a number from {MIN_STRENGTH:g} to {MAX_STRENGTH:g} "
                       f"(default {DEFAULT_STRENGTH:g}; higher is more painted), got {strength!r}")
    middle = CALIBRATED_STYLE_WEIGHT_SSIM if use_ssim else CALIBRATED_STYLE_WEIGHT
    return middle * STRENGTH_FACTOR ** (strength - DEFAULT_STRENGTH)


def cli(help=None, flag=None, choices=None, **argparse_options):
    """Field metadata: the field is a ``stylize`` option. ``flag`` defaults to the field's name in
    --kebab-case; the option's type follows the field's (int, float, bool: --x/--no-x, str: choices);
    ``argparse_options`` (nargs, const, metavar, type) are for the fields that need more."""
    return {"cli": {"help": help, "flag": flag, "choices": choices, **argparse_options}}


def _option(default, *args, **kwargs):
    return field(default=default, metadata=cli(*args, **kwargs))


@dataclass(frozen=True)
class StyleParams:
    """Settings of one run. ``StyleParams.preset(name, **overrides)`` starts from a named preset.

    Weights are in the chosen loss formulation: with ``loss_normalization="target"`` each term is
    divided by its target's magnitude, so 1.0/1.0 is a balanced start for any backbone; with
    ``"raw"`` (the paper) they multiply the plain sums, and the paper's 1e3/1e-2 fit Caffe-scale VGG.
    """

    # The working long side: the result keeps the content's own size.
    size: int = _option(512, "working long side in pixels (standard: 512)")
    iterations: int = _option(500, "the most optimisation steps over all scales (fewer with --converge)")
    # Stop on convergence (nst_core/engine/convergence.py): a scale ends once, over the last converge_window
    # steps, its best loss fell by less than converge_loss_change (relative), and, when
    # converge_pixel_change is set, its best picture moved by less than that many grey levels (mean
    # absolute, 0..255); the last scale's ends the run.
    converge: bool = _option(True, "end each scale once its picture stops changing (--no-converge: "
                                   "run every step of --iterations)")
    # The loss alone decides by default: fine texture keeps moving long after the loss has settled, so a
    # pixel criterion lengthens runs for no better score (benchmarks/README.md, "When a scale has converged").
    # 10 % per 10 steps: the picture is done there by the evaluator; a stricter rule doubles the last
    # scale's steps for distances that move by a few thousandths (benchmarks/README.md, "Where a run ends").
    converge_window: int = 10
    converge_loss_change: float = 0.10
    converge_pixel_change: Optional[float] = None
    # The balance: --style-strength, unless a weight is given. None = not given: the weights follow
    # the strength (content 1, style strength_to_style_weight); a weight given wins over the strength,
    # and the missing one is then 1. The paper preset gives both, so the strength never applies there.
    style_strength: Optional[float] = _option(
        None, f"style against content, {MIN_STRENGTH:g} to {MAX_STRENGTH:g} (default {DEFAULT_STRENGTH:g}; each "
              f"step x{STRENGTH_FACTOR:g} style); --style-weight/--content-weight win over it; the paper "
              "preset ignores it", type=float, metavar="S")
    content_weight: Optional[float] = _option(None, "content weight alpha (overrides --style-strength)", type=float)
    style_weight: Optional[float] = _option(None, "style weight beta (overrides --style-strength)", type=float)
    tv_weight: float = _option(0.0, "total-variation smoothing weight")
    use_ssim: bool = _option(True, "the SSIM factor per style layer (--no-ssim: plain Gatys)", flag="--ssim")
    # What SSIM compares (METHOD.md section 2): "max", the Grams divided by the style target's max|A|,
    # means the same on every backbone (the standard and fast presets'); "none", the raw Grams, is
    # what tf.image.ssim(G, A, max_val=1) saw in the paper and means that only at the scale of
    # Caffe-preprocessed VGG activations (the paper preset's; other trained weights are refused).
    ssim_scaling: str = _option("max", "max: Grams divided by max|A| before SSIM, the same on every backbone "
                                       "(default); none: raw Grams, as the paper (needs Caffe-format weights)",
                                choices=SSIM_SCALINGS)
    ssim_window: int = 11
    ssim_sigma: float = 1.5
    ssim_implementation: str = "fast"  # or "pytorch_msssim": the library's call, same values, slower
    loss_normalization: str = _option(
        "target", "target: each term divided by its target's magnitude; raw: the paper's formula",
        choices=NORMALIZATIONS)
    content_layers: Tuple[str, ...] = PAPER_CONTENT_LAYERS
    style_layers: Tuple[str, ...] = PAPER_STYLE_LAYERS
    style_layer_weights: Optional[Tuple[float, ...]] = None  # default: equal, summing to 1
    optimizer: str = _option("lbfgs", choices=OPTIMIZERS)
    learning_rate: float = _option(1.0)
    adam_betas: Tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    init: str = _option("content", choices=INITS)
    seed: int = _option(0, "random seed (default 0)")
    multiscale: bool = _option(True, "coarse-to-fine optimisation")
    scale_step: float = math.sqrt(2.0)
    # Long side of the first scale, at the smallest: 200 runs a 256 px request on one scale, which was
    # faster than two there; 451 px still gets three (225, 319, 451).
    min_scale_size: int = 200
    max_scales: int = 3  # 3: from half the working size, in sqrt(2) steps
    # Each coarser scale gets this many times the steps of the next finer one. Short coarse scales: the
    # first full-size iterate is already good, so their length is the time to a good picture.
    coarse_share: float = 0.15
    style_scale: float = _option(1.0, "style size relative to the working size")
    # VGG's deepest style layer (relu5_1) sees about 200 px, so on a larger scale no layer measures the
    # style's large shapes (Starry Night's swirls, the Great Wave's crests) and refining at full size
    # trades them for fine texture. With pyramid, a scale whose long side is at least
    # twice pyramid_min_side is also matched (content and style) as a copy halved (and halved again
    # while that stays >= pyramid_min_side); each term is the mean over the image and its copies, so
    # every copy keeps the balance that the strength was calibrated for at 256 px, where there is none.
    pyramid: bool = _option(True, "also match content and style on the picture halved, on scales of 400 px and "
                                  "more, so large pictures keep the style's large shapes (--no-pyramid: off)")
    pyramid_min_side: int = 200
    style_blend: Optional[Tuple[float, ...]] = _option(None, "one weight per style image", type=float, nargs="+",
                                                      metavar="W")
    # With --style-mask: how hard each style paints its region (one factor per style on the style
    # weight; 1 = as a one-style run at the same strength).
    region_weights: Optional[Tuple[float, ...]] = _option(
        None, "with --style-mask: one weight per style for its region (1: as hard as --style-strength says; "
              "0.5: half as hard)", flag="--region-weight", type=float, nargs="+", metavar="W")
    preserve_colors: Optional[str] = _option(None, "keep the content's colours (luminance when given bare)",
                                             choices=COLOR_MODES, nargs="?", const="luminance")
    upscale: str = _option("auto", "how the result reaches the content's full size when that exceeds --size",
                           choices=UPSCALES)
    refine_iterations: int = _option(30, "steps per tile with --upscale tiles")  # refined at full resolution
    tile_size: int = 512
    tile_overlap: int = 64
    precision: str = _option("auto", "autocast dtype (auto: bf16 on CPUs with native bf16, float32 elsewhere)",
                             choices=PRECISIONS)  # nst_core.engine.devices.autocast_dtype
    channels_last: bool = False  # measured no faster on the CPU (fp32 or bf16); unmeasured on GPUs
    memory_fraction: float = 0.6  # share of free device memory the working size may plan for

    def __post_init__(self):
        self._validate()

    @classmethod
    def preset(cls, name="standard", **overrides):
        try:
            base = PRESETS[name]
        except KeyError:
            raise BadInput(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}") from None
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise BadInput(f"unknown parameter(s): {', '.join(sorted(unknown))}")
        values = {**base, **{k: v for k, v in overrides.items() if v is not None}}
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)

    @property
    def strength_ignored(self):
        """A strength was given, but weights (given, or the paper preset's) set the balance."""
        return self.style_strength is not None and (self.content_weight, self.style_weight) != (None, None)

    def weights(self):
        """(content weight, style weight) this run uses: the given ones, else those of the strength."""
        if self.content_weight is None and self.style_weight is None:
            strength = DEFAULT_STRENGTH if self.style_strength is None else self.style_strength
            return 1.0, strength_to_style_weight(strength, self.use_ssim)
        return (1.0 if self.content_weight is None else self.content_weight,
                1.0 if self.style_weight is None else self.style_weight)

    def layer_weights(self):
        if self.style_layer_weights is None:
            return tuple(1.0 / len(self.style_layers) for _ in self.style_layers)
        return tuple(self.style_layer_weights)

    def _validate(self):
        def need(condition, message):
            if not condition:
                raise BadInput(message)

        def finite_nonneg(name):
            value = getattr(self, name)
            if value is None and name != "tv_weight":
                return  # a weight not given: the strength's
            need(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
                 f"{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")

        need(isinstance(self.size, int) and MIN_SIZE <= self.size <= MAX_SIZE,
             f"size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, got {self.size!r}")
        need(isinstance(self.iterations, int) and 1 <= self.iterations <= MAX_ITERATIONS,
             f"iterations must be from 1 to {MAX_ITERATIONS}, got {self.iterations!r}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            finite_nonneg(name)
        if self.style_strength is not None:
            strength_to_style_weight(self.style_strength)  # raises the message for an out-of-range one
        need(sum(self.weights()) > 0, "content-weight and style-weight cannot both be 0")
        need(isinstance(self.converge_window, int) and 2 <= self.converge_window <= MAX_ITERATIONS,
             f"converge-window must be from 2 to {MAX_ITERATIONS}")
        need(self.converge_loss_change >= 0 and (self.converge_pixel_change or 0) >= 0,
             "converge-loss-change and converge-pixel-change must be >= 0")
        need(self.ssim_scaling in SSIM_SCALINGS, f"ssim-scaling must be one of {SSIM_SCALINGS}")
        need(isinstance(self.ssim_window, int) and 3 <= self.ssim_window <= MAX_SSIM_WINDOW
             and self.ssim_window % 2 == 1, f"ssim-window must be an odd number from 3 to {MAX_SSIM_WINDOW}")
        need(self.ssim_sigma > 0, "ssim-sigma must be > 0")
        need(self.ssim_implementation in ("fast", "pytorch_msssim"),
             "ssim-implementation must be fast or pytorch_msssim")
        need(self.loss_normalization in NORMALIZATIONS, f"loss-normalization must be one of {NORMALIZATIONS}")
        need(len(self.content_layers) >= 1 or self.content_weight == 0, "at least one content layer is needed")
        need(len(self.style_layers) >= 1, "at least one style layer is needed")
        if self.style_layer_weights is not None:
            need(len(self.style_layer_weights) == len(self.style_layers),
                 "style-layer-weights needs one weight per style layer")
            need(all(w >= 0 for w in self.style_layer_weights), "style-layer-weights must be >= 0")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}")
        need(math.isfinite(self.learning_rate) and self.learning_rate > 0, "learning-rate must be > 0")
        need(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
             "adam betas must lie in [0, 1)")
        need(self.adam_eps > 0, "adam eps must be > 0")
        need(self.init in INITS, f"init must be one of {INITS}")
        need(isinstance(self.seed, int) and 0 <= self.seed < 2**63, "seed must be a whole number >= 0")
        need(self.scale_step > 1.05, "scale-step must be > 1.05")
        need(MIN_SIZE <= self.min_scale_size, f"min-scale-size must be >= {MIN_SIZE}")
        need(0.1 <= self.coarse_share <= 8, "coarse-share must lie between 0.1 and 8")
        need(isinstance(self.max_scales, int) and 1 <= self.max_scales <= 12, "max-scales must be from 1 to 12")
        need(math.isfinite(self.style_scale) and 0.05 <= self.style_scale <= 8,
             "style-scale must lie between 0.05 and 8")
        need(isinstance(self.pyramid_min_side, int) and self.pyramid_min_side >= MIN_SIZE,
             f"pyramid-min-side must be a whole number >= {MIN_SIZE}")
        if self.style_blend is not None:
            need(all(math.isfinite(w) and w >= 0 for w in self.style_blend) and sum(self.style_blend) > 0,
                 "style-blend weights must be >= 0 and not all 0")
        if self.region_weights is not None:
            need(all(math.isfinite(w) and w >= 0 for w in self.region_weights) and sum(self.region_weights) > 0,
                 "region-weight values must be >= 0 and not all 0")
        need(self.preserve_colors in (None,) + COLOR_MODES,
             f"preserve-colors must be one of {COLOR_MODES} (or off)")
        need(self.upscale in UPSCALES, f"upscale must be one of {UPSCALES}")
        need(isinstance(self.refine_iterations, int) and 0 <= self.refine_iterations <= MAX_REFINE_ITERATIONS,
             f"refine-iterations must be from 0 to {MAX_REFINE_ITERATIONS}, got {self.refine_iterations!r}")
        need(128 <= self.tile_size <= 4096, "tile-size must lie between 128 and 4096")
        need(0 <= self.tile_overlap <= self.tile_size // 4, "tile-overlap must lie between 0 and tile-size/4")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        need(0.05 <= self.memory_fraction <= 0.95, "memory-fraction must lie between 0.05 and 0.95")


def cli_fields():
    """The fields offered as ``stylize`` options, in declaration order."""
    return [f for f in dataclasses.fields(StyleParams) if "cli" in f.metadata]


PRESETS = {
    # Multi-scale, normalised losses, the SSIM-weighted style loss, content at relu4_2 (Gatys et al.'s
    # layer: with the paper's relu5_2 no style weight put every example pair in the good region, see
    # CALIBRATED_STYLE_WEIGHT_SSIM): a clearly styled result soonest. The default.
    "standard": {"content_layers": GATYS_CONTENT_LAYERS},
    # A quick look: fewer steps, fewer per tile when a large layer is refined in tiles, shorter coarse
    # scales, and each scale ends once its loss falls by less than 20 % over 10 steps (standard: 10 %),
    # which still leaves every example pair in the good region (benchmarks/README.md, "Where a run ends").
    "fast": {"iterations": 150, "refine_iterations": 10, "content_layers": GATYS_CONTENT_LAYERS, "coarse_share": 0.3,
             "converge_loss_change": 0.2},
    # Prabhu & McAteer (2020) as far as their settings are known (docs/METHOD.md, "Where the paper preset
    # comes from"): single scale, raw formula, raw-Gram SSIM, Adam(5, 0.99, eps 0.1), 1000 steps, and
    # the 512 px best iterate brought to the content's size by plain resizing. The raw weights and SSIM
    # assume Caffe-scale activations: engine/activation_scale.py refuses other trained weights.
    "paper": {
        "size": 512,
        "iterations": 1000,
        "content_weight": 1e3,
        "style_weight": 1e-2,
        "loss_normalization": "raw",
        "ssim_scaling": "none",
        "optimizer": "adam",
        "learning_rate": 5.0,
        "adam_betas": (0.99, 0.999),
        "adam_eps": 0.1,
        "multiscale": False,
        "precision": "fp32",
        "converge": False,  # the paper's 1000 steps, every one
        "pyramid": False,
        "upscale": "resize",  # the authors kept their 512 px picture; no detail pass, no tiled refinement
    },
}
