"""The engine: one object that keeps the network loaded, caches style targets between calls, owns the
optimisation loop and reports every iterate through a callback.

    from nst_core import Stylizer, StyleParams
    engine = Stylizer()                                   # VGG-19, weights resolved as documented
    result = engine.run("cat.png", ["wave.jpg"], StyleParams.preset("fast"), on_progress=print)
    result.save("cat-wave.png")

A run, in the order ``Stylizer._run_once`` takes it: plan the sizes (``_plan``), announce them, prepare
the colours and tensors (``_prepare``), optimise scale by scale (``_stylize``), bring the result to the
content's size (``_upscale``), finish it as a picture (``finish_image``) and describe it (``_stats``).
"""

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import __version__
from ..errors import BadInput, Cancelled, OutOfMemory
from ..events import Started, Warned
from ..params import StyleParams
from . import activation_scale, color, devices
from . import weights as weights_mod
from .backbone import VGGFeatures, build_features, deepest_index
from .convergence import ConvergenceRule
from .imageio import LoadedImage, check_output_path, save_image
from .images import as_loaded, bring_to_size, digest, finish_image, resize, smaller_copy, to_tensor
from .losses import gram_matrix
from .objective import Objective
from .progress import ProgressReporter
from .regions import MIN_TILE_COVERAGE, RegionObjective, check_region_weights, load_region_masks, shrink_mask
from .schedule import Stage, fit_long_side, halved_copies, plan_stages, working_size
from .style_cache import StyleCache
from .tiles import feather, tile_grid

MIN_STYLE_SIDE = 16  # a style image shrunk further has no texture left to measure


@dataclass
class StyleResult:
    image: Image.Image  # RGB, or RGBA when the content had alpha
    stats: dict = field(default_factory=dict)

    def save(self, path):
        alpha = None
        image = self.image
        if image.mode == "RGBA":
            alpha = np.asarray(image)[:, :, 3].copy()
            image = image.convert("RGB")
        return save_image(image, path, alpha=alpha)


@dataclass
class StyleSet:
    """The style images of one run as the network sees them: they travel together everywhere."""

    tensors: List[torch.Tensor]  # 1 x 3 x H x W, RGB 0..255 (after any colour preservation)
    masks: List[Optional[torch.Tensor]]  # 1 x 1 x H x W in 0..1 from the style's alpha, or None
    weights: List[float]  # blend weights, summing to 1
    keys: List[str]  # what each tensor holds (a digest): the style cache's key, stable across calls
    # With regions: one 1 x 1 x H x W mask (0..1) per style at the content's full size, and a weight per
    # region; each style is then matched inside its region only, not blended everywhere.
    regions: Optional[List[torch.Tensor]] = None
    region_weights: Optional[List[float]] = None

    def __iter__(self):
        return iter(zip(self.tensors, self.masks, self.weights, self.keys))


@dataclass
class Prepared:
    """A run's inputs on its device, after colour handling."""

    content: LoadedImage  # as given: its colours and alpha are put back on the result
    content_tensor: torch.Tensor  # 1 x 3 x H x W at full size, the colours the optimisation sees
    styles: StyleSet


@dataclass
class RunPlan:
    """Sizes and budgets of one attempt, fixed before any optimisation."""

    working_size: Tuple[int, int]
    capped: bool  # memory, not the request, set the working size
    stages: List[Stage]  # coarse to fine; the last is at the working size
    upscale: str  # none, resize, detail or tiles
    tiles: List[Tuple[int, int, int, int]]  # (x, y, w, h) at full size, for "tiles"
    refine_iterations: int

    @property
    def total_iterations(self):
        return sum(s.iterations for s in self.stages) + len(self.tiles) * self.refine_iterations

    @property
    def parts(self):
        """(most steps, pixels) of each scale, then of each tile: what the run's clock estimates from."""
        tile_pixels = self.tiles[0][2] * self.tiles[0][3] if self.tiles else 0
        tiles = [(self.refine_iterations, tile_pixels)] * len(self.tiles)
        return [(s.iterations, s.cost) for s in self.stages] + tiles


@dataclass
class Iterate:
    """One evaluated image of an optimisation: the image after ``step`` steps of it."""

    step: int  # 0 is the starting image
    loss: float
    parts: dict  # the loss terms: content, style, tv, factors (detached tensors)
    image: torch.Tensor  # 1 x 3 x H x W, 0..255


@dataclass
class Optimized:
    """What ``Stylizer.optimize`` returns: its lowest-loss iterate and the optimiser that made it."""

    best: Iterate
    steps: int  # steps taken
    optimizer: Any  # a next scale may carry on Adam's state
    finished_early: bool = False  # ``should_finish`` ended it before ``iterations`` steps
    stop_reason: str = "max_iterations"  # or "converged" (its ConvergenceRule ended it)


@dataclass
class RunControl:
    """How a caller steers a run while it works (see ``Stylizer.run``)."""

    should_stop: Optional[Callable[[], bool]] = None  # cancel: no result
    should_finish: Optional[Callable[[], bool]] = None  # stop and keep the best iterate so far
    preview_every: Optional[float] = None  # seconds between previews; None: no previews
    # Guidance from a caller that runs several related pictures (frames of an animation):
    init_image: Optional[torch.Tensor] = None  # 1 x 3 x H x W, 0..255: the first scale starts here
    extra_loss: Optional[Callable[[torch.Tensor], torch.Tensor]] = None  # image -> a term added to the loss

    def finish_requested(self):
        return self.should_finish is not None and bool(self.should_finish())


@contextlib.contextmanager
def _cudnn_autotune(device):
    """cuDNN picks its fastest kernels for this run (every scale and tile repeats one shape many
    times); the process-wide setting is restored after, so other code in the process is unaffected."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


class Stylizer:
    """Keeps the network on its device and style targets in a cache, for runs one after another.

    A run changes nothing that outlives it: no global seed, no lasting backend setting, and an
    out-of-memory fallback to the CPU uses a CPU copy of the network for that run only.
    """

    def __init__(self, backbone="auto", weights=None, weights_format=None, device="auto", download=True):
        self.source = weights_mod.resolve(backbone, weights, weights_format, download=download)
        self.device = devices.pick_device(device)
        last = deepest_index(self.source.architecture, [weights_mod.TRIM_LAYER])
        features = weights_mod.load_features(self.source, last)
        self.net = VGGFeatures(self.source.architecture, features, self.source.preprocessing).to(self.device)
        self.style_cache = StyleCache()

    @property
    def architecture(self):
        return self.source.architecture

    def _cpu_copy(self):
        """A Stylizer on the CPU with this one's network, for one run that did not fit the device."""
        twin = Stylizer.__new__(Stylizer)
        twin.source, twin.device, twin.style_cache = self.source, torch.device("cpu"), StyleCache()
        with torch.random.fork_rng(devices=[]):  # the layers' default init draws from the global RNG
            features = build_features(self.net.architecture, len(self.net.features) - 1)
        twin.net = VGGFeatures(self.net.architecture, features, self.net.preprocessing)
        twin.net.load_state_dict({k: v.detach().to("cpu") for k, v in self.net.state_dict().items()})
        return twin

    # ----- features and targets ---------------------------------------------------------------

    def _autocast(self, params):
        dtype = devices.autocast_dtype(self.device, params.precision)
        if dtype is None:
            # Not torch.autocast(enabled=False): older torch rejects device_type "mps" even then.
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def features(self, image, layers, params):
        if params.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with self._autocast(params):
            return self.net(image, layers)

    def style_grams(self, styles, long_side, params):
        """Blended Gram targets of the :class:`StyleSet` ``styles`` at a long side of ``long_side`` (cached)."""
        total = {}
        for tensor, mask, weight, key in styles:
            grams = self._one_style_grams(tensor, mask, key, long_side, params)
            for name, gram in grams.items():
                total[name] = total.get(name, 0) + weight * gram
        return total

    def style_grams_each(self, styles, long_side, params):
        """The Gram targets of each style of ``styles`` on its own (regions), in order (cached)."""
        return [self._one_style_grams(tensor, mask, key, long_side, params) for tensor, mask, _, key in styles]

    def _one_style_grams(self, tensor, mask, key, long_side, params):
        size = fit_long_side((tensor.shape[-1], tensor.shape[-2]), long_side, minimum=MIN_STYLE_SIDE)
        cache_key = (key, size, self.net.architecture, self.net.preprocessing, tuple(params.style_layers),
                     devices.autocast_dtype(self.device, params.precision))
        grams = self.style_cache.get(cache_key)
        if grams is None:
            with torch.no_grad():
                image = resize(tensor, size)
                feats = self.features(image, params.style_layers, params)
                small_mask = None if mask is None else F.interpolate(mask, size=image.shape[-2:], mode="area")
                grams = {name: gram_matrix(feats[name], small_mask) for name in params.style_layers}
            self.style_cache.put(cache_key, grams)
        return grams

    def objective(self, content, style_grams, params, copy_grams=()):
        """The :class:`Objective` of ``content`` (at the scale's size) against ``style_grams``;
        ``copy_grams``: (size, Gram targets) of each smaller copy of the image, matched too (their
        content targets are made here, from ``content`` shrunk)."""
        def content_targets(image):
            with torch.no_grad():
                feats = self.features(image, params.content_layers, params)
            return {name: feats[name].float() for name in params.content_layers}

        copies = [(size, content_targets(smaller_copy(content, size)), grams) for size, grams in copy_grams]
        return Objective(content_targets(content), style_grams, params, copies).to(self.device)

    def scale_objective(self, content, styles, stage, params):
        """The objective of one scale: ``content`` at ``stage.size`` against the :class:`StyleSet`
        ``styles`` rendered at that size, and likewise for each of the stage's smaller copies."""
        if styles.regions is not None:
            return self.region_objective(content, styles, [stage.size] + list(stage.copies), params)

        def grams(size):
            return self.style_grams(styles, round(max(size) * params.style_scale), params)

        return self.objective(content, grams(stage.size), params, [(size, grams(size)) for size in stage.copies])

    def region_objective(self, content, styles, sizes, params, masks=None, style_long_side=None):
        """The :class:`RegionObjective` of ``content`` (at ``sizes[0]``; ``sizes[1:]``: the smaller
        copies, also matched) against each style of ``styles`` inside its region. ``masks``: the
        regions on ``content`` (default: ``styles.regions`` brought to its size); ``style_long_side``:
        the size of the style targets (default: each size's, times ``params.style_scale``)."""
        masks = masks if masks is not None else styles.regions
        copies = []
        for size in sizes:
            grams = self.style_grams_each(styles, style_long_side or round(max(size) * params.style_scale), params)
            level_masks = [shrink_mask(mask, (size[1], size[0])) for mask in masks]
            with torch.no_grad():
                image = content if tuple(content.shape[-2:]) == (size[1], size[0]) else smaller_copy(content, size)
                feats = self.features(image, params.content_layers, params)
            copies.append((size, {name: feats[name].float() for name in params.content_layers}, grams, level_masks))
        (_, targets, grams, level_masks), rest = copies[0], copies[1:]
        return RegionObjective(targets, grams, level_masks, styles.region_weights, params, rest).to(self.device)

    def loss(self, image, objective, params):
        """(total, parts) of ``image`` (1 x 3 x H x W, 0..255) under ``objective``, with gradients."""
        feats = self.features(image, objective.layers, params)
        copy_features = [self.features(smaller_copy(image, size), objective.layers, params)
                         for size in objective.copy_sizes]
        return objective(feats, image, copy_features)

    def evaluate(self, image, objective, params):
        """Loss of ``image`` (1 x 3 x H x W, 0..255) under ``objective``, without gradients."""
        with torch.no_grad():
            total, parts = self.loss(image, objective, params)
        return float(total), parts

    # ----- optimisation -----------------------------------------------------------------------

    def _make_optimizer(self, x, params, previous=None):
        if params.optimizer == "lbfgs":
            return torch.optim.LBFGS([x], lr=params.learning_rate, max_iter=1,
                                     history_size=devices.LBFGS_HISTORY, tolerance_grad=-1, tolerance_change=-1)
        optimizer = torch.optim.Adam([x], lr=params.learning_rate, betas=params.adam_betas, eps=params.adam_eps)
        if previous is not None:
            # Coarse-to-fine: Adam's moments are images too; resizing them keeps the step sizes it learnt.
            old = previous.state.get(previous.param_groups[0]["params"][0])
            if old:
                optimizer.state[x] = {
                    "step": old["step"].clone(),
                    "exp_avg": F.interpolate(old["exp_avg"], size=x.shape[-2:], mode="bilinear", align_corners=False),
                    "exp_avg_sq": F.interpolate(old["exp_avg_sq"], size=x.shape[-2:], mode="bilinear",
                                                align_corners=False).clamp_min_(0),
                }
        return optimizer

    def optimize(self, x, objective, iterations, params, on_iterate=None, should_stop=None, previous_optimizer=None,
                 should_finish=None, convergence=None):
        """Minimise ``objective`` from ``x`` for at most ``iterations`` steps; returns an :class:`Optimized`.

        Pixels are clipped to 0..255 after every step, as in the paper. Step k's loss evaluation (inside
        the optimiser's closure) is of the image after k - 1 steps, so the image after step k is reported
        at step k + 1, and the last one by a final forward pass: ``on_iterate(current, best)`` runs once
        per step with the :class:`Iterate` after that step and the lowest-loss one so far. The starting
        image (step 0) is a candidate for the best too, though not reported.

        ``should_stop()`` true before a step raises ``Cancelled``; ``should_finish()`` true ends the
        optimisation there, with the lowest-loss iterate so far (``finished_early``). ``convergence`` (a
        :class:`ConvergenceRule`) ends it once the best iterate stops changing (``stop_reason``).
        """
        x = x.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        optimizer = self._make_optimizer(x, params, previous_optimizer)
        best = None
        # L-BFGS skips curvature pairs with y.s < 1e-10, an absolute threshold: with normalised losses
        # and 0..255 pixels the gradients are ~1e-6 and it would take tiny steps for many iterations.
        # Scaling the loss so the first gradient averages 1 in size fixes that without moving the optimum.
        loss_scale = [None if params.optimizer == "lbfgs" else 1.0]

        def consider(iterate):
            nonlocal best
            if not math.isfinite(iterate.loss):
                raise FloatingPointError("the loss became NaN or infinite; try a smaller learning rate")
            if best is None or iterate.loss < best.loss:
                best = iterate
            if iterate.step > 0 and convergence is not None:
                convergence.update(best.loss, best.image)  # before on_iterate: the ETA reads it
            if iterate.step > 0 and on_iterate is not None:
                on_iterate(iterate, best)

        steps, stop_reason, finished_early = 0, "max_iterations", False
        for step in range(1, iterations + 1):
            if convergence is not None and convergence.converged:
                stop_reason = "converged"
                break
            if should_stop is not None and should_stop():
                raise Cancelled()
            if should_finish is not None and should_finish():
                finished_early = True
                break
            record = {}

            def closure():
                optimizer.zero_grad(set_to_none=True)
                total, parts = self.loss(x, objective, params)
                if loss_scale[0] is None:
                    total.backward()
                    loss_scale[0] = 1.0 / max(float(x.grad.abs().mean()), 1e-30)
                    x.grad.mul_(loss_scale[0])
                else:
                    (total * loss_scale[0]).backward()
                if not record:
                    record["iterate"] = Iterate(step=step - 1, loss=float(total.detach()), parts=_detached(parts),
                                                image=x.detach().clone())
                return total.detach() * loss_scale[0]

            optimizer.step(closure)
            with torch.no_grad():
                x.clamp_(0, 255)
            consider(record["iterate"])
            steps = step
        # The last step's result has not been evaluated yet: one forward pass without gradients.
        final_loss, final_parts = self.evaluate(x.detach(), objective, params)
        consider(Iterate(step=steps, loss=final_loss, parts=_detached(final_parts), image=x.detach().clone()))
        return Optimized(best=best, steps=steps, optimizer=optimizer, finished_early=finished_early,
                         stop_reason=stop_reason)

    # ----- the whole run ----------------------------------------------------------------------

    def run(self, content, styles, params=None, on_progress=None, should_stop=None, should_finish=None,
            preview_every=None, init_image=None, extra_loss=None, regions=None):
        """Stylise ``content`` with ``styles`` (one or several, blended). Returns a :class:`StyleResult`.

        ``on_progress`` receives every event (``Started``, ``Warned``, ``Progress``, ``Preview``);
        ``should_stop()`` returning True cancels the run within one iteration (raises ``Cancelled``);
        ``should_finish()`` returning True ends it within one iteration with the best iterate so far as
        the result (``stats["stop_reason"] == "stopped"``); ``preview_every`` (seconds) asks for a
        ``Preview`` of the best iterate so far, finished like the result, at most that often.

        ``init_image`` (1 x 3 x H x W, RGB 0..255, any size) replaces ``params.init`` as the starting
        picture; ``extra_loss(image)`` (image at the scale's size, with gradients) returns a scalar
        added to every scale's loss (reported as the ``extra`` part). Both serve ``engine.frames``.

        ``regions``: one mask per style (a path, PIL image or array; grey or alpha, any size of the
        content's shape; None for the one style that takes what the others leave): each style then
        paints its region only (nst_core/engine/regions.py), weighted by ``params.region_weights``.
        """
        params = params or StyleParams()
        emit = on_progress or (lambda event: None)
        content = as_loaded(content, "content")
        if isinstance(styles, (str, os.PathLike, Image.Image, np.ndarray, LoadedImage)):
            styles = [styles]
        styles = [as_loaded(s, "style") for s in styles]
        if not styles:
            raise BadInput("at least one style image is needed")
        masks = None
        if regions is not None:
            if params.style_blend is not None:
                raise BadInput("--style-blend mixes styles everywhere; with --style-mask each style has its region: "
                               "weigh the regions with --region-weight instead")
            masks = load_region_masks(regions, len(styles), content)
        check_region_weights(params.region_weights, len(styles), masks is not None)
        blend = params.style_blend or tuple(1.0 for _ in styles)
        if len(blend) != len(styles):
            raise BadInput(f"style-blend has {len(blend)} weight(s) for {len(styles)} style image(s)")
        blend = [w / sum(blend) for w in blend]
        if params.strength_ignored:
            emit(Warned(f"style strength {params.style_strength:g} ignored: the style and content weights "
                        f"{'of the paper preset ' if params.loss_normalization == 'raw' else ''}set the balance "
                        "(leave --style-weight/--content-weight out, or use the standard or fast preset)"))
        for warning in activation_scale.check(self.source, params):  # refuses what the weights cannot mean
            emit(Warned(warning))
        control = RunControl(should_stop, should_finish, preview_every, init_image, extra_loss)
        return self._run_with_fallback(content, styles, blend, params, emit, control, masks)

    def _run_with_fallback(self, content, styles, blend, params, emit, control, masks=None):
        """``_run_once``, retried smaller after an out-of-memory error, and at last on a CPU copy."""
        engine, attempt_params, attempts = self, params, 0
        regions = {} if masks is None else {"masks": masks}  # a run without regions is called as it always was
        while True:
            try:
                with _cudnn_autotune(engine.device):
                    return engine._run_once(content, styles, blend, attempt_params, emit, control, **regions)
            except (RuntimeError, MemoryError) as error:
                if not (isinstance(error, MemoryError) or devices.is_out_of_memory(error)):
                    raise
                devices.release_cached(engine.device)
                attempts += 1
                ran_at = max(engine._plan(content, attempt_params).working_size)  # content or cap may be smaller
                smaller = int(ran_at / math.sqrt(2))
                if attempts > 3 or smaller < 64:
                    if engine.device.type != "cpu":
                        emit(Warned(f"{engine.device.type} ran out of memory even at {ran_at} px; "
                                    "continuing on the CPU (slower)"))
                        engine, attempt_params, attempts = self._cpu_copy(), params, 0
                        continue
                    raise OutOfMemory(f"out of memory even at a working size of {ran_at} px: "
                                      "close other programs or use a smaller --size") from None
                emit(Warned(f"out of memory at {ran_at} px; retrying at {smaller} px"))
                attempt_params = attempt_params.replace(size=smaller)

    def _plan(self, content, params):
        half = devices.autocast_dtype(self.device, params.precision) is not None
        limit = devices.max_pixels(self.device, self.architecture, params.optimizer, params.memory_fraction, half)
        work, capped = working_size(content.size, params.size, limit)
        if params.pyramid and halved_copies(work, params.pyramid_min_side):
            # The halved copies' activations: at most 1/4 + 1/16 + ... = 1/3 more. A size too small
            # for a copy keeps the whole limit.
            limit = int(limit * 0.75)
            work, capped = working_size(content.size, params.size, limit)
        stages = plan_stages(work, params.iterations, params.multiscale, params.scale_step, params.min_scale_size,
                             params.coarse_share, params.max_scales,
                             params.pyramid_min_side if params.pyramid else None)
        full = content.size
        upscale = params.upscale
        if work == full:
            upscale = "none"
        elif upscale == "auto":
            # Tiled refinement costs refine_iterations per tile: cheap on a GPU, minutes per
            # megapixel on a CPU, where it is used only for up to 2x the working area.
            affordable = self.device.type != "cpu" or full[0] * full[1] <= 2 * work[0] * work[1]
            upscale = "tiles" if affordable and params.refine_iterations > 0 else "detail"
        tile = min(params.tile_size, max(128, int(math.sqrt(max(limit, 1)))))
        tiles = tile_grid(full, tile, params.tile_overlap) if upscale == "tiles" else []
        return RunPlan(working_size=work, capped=capped, stages=stages, upscale=upscale, tiles=tiles,
                       refine_iterations=params.refine_iterations)

    def _run_once(self, content, styles, blend, params, emit, control, masks=None):
        """One attempt at the plan's size; an out-of-memory error escapes to ``_run_with_fallback``."""
        start_time = time.perf_counter()
        plan = self._plan(content, params)
        self._announce(plan, content, emit)
        prepared = self._prepare(content, styles, blend, params, masks)

        def make_preview(image):  # what the result would be now, without the tile refinement
            with_detail = plan.upscale in ("detail", "tiles")
            return finish_image(bring_to_size(image, prepared.content_tensor, content.size, with_detail),
                                content, params)

        progress = ProgressReporter(plan, params, emit, control.preview_every, make_preview)
        # Anything random in a run draws from its own generator: the process's global RNG is left alone.
        generator = torch.Generator(device="cpu").manual_seed(params.seed)
        best, finished, stop_reason = self._stylize(plan, prepared, params, progress, control, generator)
        result, upscale, finished = self._upscale(best.image, finished, plan, prepared, params, progress, control)
        image = finish_image(result, content, params)
        stats = self._stats(plan, params, best, progress, image, upscale, "stopped" if finished else stop_reason,
                            seconds=time.perf_counter() - start_time)
        stats["regions"] = 0 if masks is None else len(masks)
        return StyleResult(image=image, stats=stats)

    def _announce(self, plan, content, emit):
        work = plan.working_size
        if plan.capped:
            emit(Warned(f"working size capped to {work[0]}x{work[1]} to fit the {self.device.type} memory "
                        f"({devices.free_bytes(self.device) / 2**30:.1f} GB free); the result still has the "
                        f"content's full size"))
        emit(Started(version=__version__, device=str(self.device), backbone=self.architecture,
                     weights=self.source.describe(), content_size=content.size, working_size=work,
                     iterations=plan.total_iterations, scales=[s.size for s in plan.stages], upscale=plan.upscale))

    def _prepare(self, content, styles, blend, params, masks=None):
        """Colour preservation applied, then everything on the device."""
        content_rgb, style_rgbs = content.rgb, [s.rgb for s in styles]
        if params.preserve_colors == "luminance":
            pairs = [color.luminance_only(content_rgb, s) for s in style_rgbs]
            content_rgb, style_rgbs = pairs[0][0], [p[1] for p in pairs]
        elif params.preserve_colors == "histogram":
            style_rgbs = [color.match_color_statistics(s, content_rgb) for s in style_rgbs]
        device = self.device
        style_set = StyleSet(
            tensors=[to_tensor(s, device) for s in style_rgbs],
            masks=[None if s.alpha is None else to_tensor(s.alpha[:, :, None].astype(np.float32) / 255.0, device)
                   for s in styles],
            weights=list(blend),
            keys=[digest(rgb, s.alpha) for rgb, s in zip(style_rgbs, styles)])
        if masks is not None:
            style_set.regions = [torch.from_numpy(m)[None, None].to(device) for m in masks]
            style_set.region_weights = check_region_weights(params.region_weights, len(styles), True)
        return Prepared(content=content, content_tensor=to_tensor(content_rgb, device), styles=style_set)

    def _stylize(self, plan, prepared, params, progress, control, generator):
        """Coarse to fine: each scale starts from the previous scale's best iterate, resized. With
        ``params.converge`` each scale ends once its picture stops changing (the next one starts then).

        Returns the best :class:`Iterate` of the last scale run, whether a finish request ended it, and
        why the last scale ended ("converged" or "max_iterations")."""
        x, stylized = None, None
        for index, stage in enumerate(plan.stages):
            if stylized is not None and control.finish_requested():
                return stylized.best, True, stylized.stop_reason
            scaled_content = resize(prepared.content_tensor, stage.size)
            if x is None and control.init_image is not None:
                x = resize(control.init_image.to(self.device).float(), stage.size)
            elif x is None:
                x = scaled_content.clone() if params.init == "content" else _noise_like(scaled_content, generator)
            else:
                x = resize(x, stage.size)
            objective = self.scale_objective(scaled_content, prepared.styles, stage, params)
            if control.extra_loss is not None:
                objective = WithExtraTerm(objective, control.extra_loss)
            carried = stylized.optimizer if stylized is not None and params.optimizer == "adam" else None
            rule = ConvergenceRule.from_params(params)
            stylized = self.optimize(x, objective, stage.iterations, params,
                                     progress.for_stage("stylize", index, rule), control.should_stop,
                                     carried, control.should_finish, convergence=rule)
            x = stylized.best.image
            if stylized.finished_early:
                break
        return stylized.best, stylized.finished_early, stylized.stop_reason

    def _upscale(self, image, finished, plan, prepared, params, progress, control):
        """The best iterate brought to the content's size as ``plan.upscale`` says. Returns it, the way it
        was done, and whether a finish request ended the run (which skips the tile refinement)."""
        upscale = plan.upscale
        at_full_size = tuple(image.shape[-2:]) == tuple(prepared.content_tensor.shape[-2:])
        if finished and (upscale == "tiles" or not at_full_size and upscale == "none"):
            upscale = "detail"  # as the previews showed it; a run ended at a coarse scale is small
        if upscale == "none":
            return image, upscale, finished
        result = bring_to_size(image, prepared.content_tensor, prepared.content.size, upscale != "resize")
        if upscale == "tiles":
            refined = self._refine_tiles(result, prepared, plan.tiles, params, progress, control, len(plan.stages))
            if refined is None:
                return result, "detail", True
            result = refined
        return result, upscale, finished

    def _stats(self, plan, params, best, progress, image, upscale, stop_reason, seconds):
        content_weight, style_weight = params.weights()
        return {
            "seconds": round(seconds, 3),
            "iterations": plan.total_iterations,  # the most the plan allowed
            "steps": progress.iteration,  # taken, over every scale and tile: fewer on convergence or a stop
            "stop_reason": stop_reason,  # "stopped", or how the last scale ended: "converged", "max_iterations"
            # A step number of the whole run, as progress events count them (0: the starting image).
            "best_iteration": progress.best_iteration,
            "content_weight": content_weight,  # as used (given, or from the style strength)
            "style_weight": style_weight,
            "device": str(self.device),
            "backbone": self.architecture,
            "weights": self.source.describe(),
            "content_size": list(image.size),  # the result always has the content's size
            "working_size": list(plan.working_size),
            "output_size": list(image.size),
            "scales": [list(s.size) for s in plan.stages],
            "upscale": upscale,
            "tiles": len(plan.tiles) if upscale == "tiles" else 0,
            "capped": plan.capped,
            "loss": best.loss,
            "content_loss": float(best.parts["content"]),
            "style_loss": float(best.parts["style"]),
            "ssim_factors": [float(f) for f in best.parts["factors"]] if params.use_ssim else [],
            "style_layers": list(params.style_layers),
            "params": params.to_dict(),
        }

    def _refine_tiles(self, canvas, prepared, tiles, params, progress, control, scale_index):
        """Refine the full-size result tile by tile, against style targets computed once for it.

        Returns None when told to finish meanwhile: a half-refined canvas would show its seams."""
        regions = prepared.styles.regions
        long_side = round(max(canvas.shape[-2:]) * params.style_scale)
        grams = None if regions is not None else self.style_grams(prepared.styles, long_side, params)
        out = torch.zeros_like(canvas)
        weight_sum = torch.zeros_like(canvas[:, :1])
        for x0, y0, w, h in tiles:
            if control.finish_requested():
                return None
            region = (slice(None), slice(None), slice(y0, y0 + h), slice(x0, x0 + w))
            if regions is None:
                objective = self.objective(prepared.content_tensor[region], grams, params)
            else:  # the tile's part of each region, against the style targets at the canvas's size
                masks = [m[region] if float(m[region].mean()) >= MIN_TILE_COVERAGE else torch.zeros_like(m[region])
                         for m in regions]
                objective = self.region_objective(prepared.content_tensor[region], prepared.styles, [(w, h)], params,
                                                  masks=masks, style_long_side=long_side)
            rule = ConvergenceRule.from_params(params)
            refined = self.optimize(canvas[region], objective, params.refine_iterations, params,
                                    progress.for_stage("refine", scale_index, rule), control.should_stop,
                                    should_finish=control.should_finish, convergence=rule)
            if refined.finished_early:
                return None
            weights = feather(w, h, params.tile_overlap, canvas.device)
            out[region] += refined.best.image * weights
            weight_sum[region] += weights
        return (out / weight_sum.clamp_min(1e-6)).clamp_(0, 255)


class WithExtraTerm(torch.nn.Module):
    """An :class:`Objective` plus a caller's term of the image: same layers, same parts, and ``extra``."""

    def __init__(self, objective, term):
        super().__init__()
        self.objective, self.term = objective, term

    @property
    def layers(self):
        return self.objective.layers

    @property
    def copy_sizes(self):
        return self.objective.copy_sizes

    def forward(self, features, image, copy_features=()):
        total, parts = self.objective(features, image, copy_features)
        extra = self.term(image)
        return total + extra, {**parts, "extra": extra}


def stylize(content, styles, params=None, *, output=None, on_progress=None, should_stop=None, should_finish=None,
            preview_every=None, backbone="auto", weights=None, weights_format=None, device="auto", stylizer=None,
            regions=None):
    """One call: stylise ``content`` with ``styles`` and return a :class:`StyleResult`.

    ``output``, when given, is checked before any work and written atomically at the end.
    Pass ``stylizer`` to reuse a loaded network; otherwise one is built from the other arguments.
    ``regions``: one mask per style, as :meth:`Stylizer.run` takes them.
    """
    sources = [p for p in ([content] + list(styles if isinstance(styles, (list, tuple)) else [styles]))
               if isinstance(p, (str, os.PathLike))]
    target = check_output_path(output, sources) if output is not None else None
    engine = stylizer or Stylizer(backbone, weights, weights_format, device)
    result = engine.run(content, styles, params, on_progress=on_progress, should_stop=should_stop,
                        should_finish=should_finish, preview_every=preview_every, regions=regions)
    if target is not None:
        result.stats["output"] = result.save(target)
    return result


def _detached(parts):
    return {"content": parts["content"].detach(), "style": parts["style"].detach(), "tv": parts["tv"].detach(),
            "factors": [f.detach() for f in parts["factors"]]}


def _noise_like(image, generator):
    return (torch.rand(image.shape, generator=generator) * 255.0).to(image.device)
