"""The engine: one object that keeps the network loaded, caches style targets between calls, owns the
optimisation loop and reports every iterate through a callback.

    from nst_core import Stylizer, StyleParams
    engine = Stylizer()                                   # VGG-19, weights resolved as documented
    result = engine.run("cat.png", ["wave.jpg"], StyleParams.preset("fast"), on_progress=print)
    result.save("cat-wave.png")
"""

import contextlib
import hashlib
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import __version__, color, devices
from . import weights as weights_mod
from .backbone import VGGFeatures, deepest_index
from .errors import BadInput, Cancelled, OutOfMemory
from .events import Progress, Started, Warned
from .imageio import LoadedImage, _to_float_rgb_alpha, check_output_path, load_image, save_image
from .losses import ContentLoss, StyleLoss, TVLoss, gram_matrix
from .params import StyleParams
from .schedule import Stage, plan_stages, working_size

STYLE_CACHE_ENTRIES = 64


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


def as_loaded(image, role):
    """A path, PIL image, H x W x 3/4 array or LoadedImage -> LoadedImage."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, role)
    if isinstance(image, Image.Image):
        rgb, alpha = _to_float_rgb_alpha(image)
        return LoadedImage(np.ascontiguousarray(rgb), alpha, f"<{role} image>")
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] in (3, 4):
        scale = 255.0 if image.dtype.kind == "f" and image.max(initial=0) <= 1.0 else 1.0
        rgb = np.ascontiguousarray(image[:, :, :3], dtype=np.float32) * scale
        alpha = image[:, :, 3].astype(np.uint8) if image.shape[2] == 4 else None
        return LoadedImage(rgb, alpha, f"<{role} array>")
    raise BadInput(f"{role} image must be a path, a PIL image or an H x W x 3 array, not {type(image).__name__}")


def _to_tensor(rgb, device):
    # contiguous: L-BFGS flattens gradients with .view(), which a permuted (strided) tensor refuses.
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def _to_numpy(tensor):
    return tensor.detach().squeeze(0).permute(1, 2, 0).float().cpu().numpy()


def resize(tensor, size):
    """Bicubic resize to (width, height), antialiased when shrinking so small scales are not aliased."""
    width, height = size
    if tensor.shape[-1] == width and tensor.shape[-2] == height:
        return tensor
    shrinking = width < tensor.shape[-1] or height < tensor.shape[-2]
    return F.interpolate(tensor, size=(height, width), mode="bicubic", align_corners=False,
                         antialias=shrinking).clamp_(0, 255)


class Objective(nn.Module):
    """The total loss at one scale: alpha * content + beta * sum_l w_l * style_l + tv * TV."""

    def __init__(self, content_targets, style_grams, params):
        super().__init__()
        normalize = params.loss_normalization == "target"
        self.content_losses = nn.ModuleDict(
            {name: ContentLoss(target, normalize) for name, target in content_targets.items()})
        self.style_losses = nn.ModuleDict(
            {name: StyleLoss(gram, normalize, params.use_ssim, params.ssim_scaling, params.ssim_window,
                             params.ssim_sigma, params.ssim_implementation) for name, gram in style_grams.items()})
        self.layer_weights = dict(zip(params.style_layers, params.layer_weights()))
        self.content_weight = params.content_weight
        self.style_weight = params.style_weight
        self.tv_weight = params.tv_weight
        self.tv = TVLoss()
        self.use_ssim = params.use_ssim

    @property
    def layers(self):
        return list(self.content_losses) + [n for n in self.style_losses if n not in self.content_losses]

    def forward(self, features, image):
        zero = image.new_zeros(())
        content = sum((loss(features[name]) for name, loss in self.content_losses.items()), zero)
        style, factors = zero, []
        for name, loss in self.style_losses.items():
            value, factor = loss(features[name])
            style = style + self.layer_weights[name] * value
            factors.append(factor)
        tv = self.tv(image) if self.tv_weight > 0 else zero
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return total, {"content": content, "style": style, "tv": tv, "factors": factors}


class _Clock:
    """Turns iterations into a time-weighted fraction and an ETA: an iteration costs its pixel count."""

    def __init__(self, total_units):
        self.start = time.perf_counter()
        self.total_units = max(total_units, 1)
        self.done_units = 0
        self.first = None  # (time, units) after the first iteration, whose one-off costs skew the rate

    def tick(self, units):
        self.done_units += units
        now = time.perf_counter()
        if self.first is None:
            self.first = (now, self.done_units)
            eta = None
        else:
            rate = (now - self.first[0]) / max(self.done_units - self.first[1], 1)
            eta = rate * (self.total_units - self.done_units)
        return now - self.start, min(self.done_units / self.total_units, 1.0), eta


class Stylizer:
    """Keeps the network on its device and style targets in a cache, for runs one after another."""

    def __init__(self, backbone="auto", weights=None, weights_format=None, device="auto", download=True):
        self.source = weights_mod.resolve(backbone, weights, weights_format, download=download)
        self.device = devices.pick_device(device)
        last = deepest_index(self.source.architecture, [weights_mod.TRIM_LAYER])
        features = weights_mod.load_features(self.source, last)
        self.net = VGGFeatures(self.source.architecture, features, self.source.preprocessing).to(self.device)
        self._style_cache = OrderedDict()
        if self.device.type == "cuda":
            # Every scale and tile repeats one shape many times: let cuDNN pick its fastest kernels.
            torch.backends.cudnn.benchmark = True

    @property
    def architecture(self):
        return self.source.architecture

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

    def style_grams(self, style_tensors, masks, blend, size_long, params, keys):
        """Blended Gram targets of the style images at a long side of ``size_long`` (cached)."""
        total = {}
        for tensor, mask, weight, key in zip(style_tensors, masks, blend, keys):
            size = _fit(tensor.shape[-1], tensor.shape[-2], size_long)
            cache_key = (key, size, self.net.architecture, self.net.preprocessing, tuple(params.style_layers),
                         devices.autocast_dtype(self.device, params.precision))
            grams = self._style_cache.get(cache_key)
            if grams is None:
                with torch.no_grad():
                    image = resize(tensor, size)
                    feats = self.features(image, params.style_layers, params)
                    small_mask = None if mask is None else F.interpolate(mask, size=image.shape[-2:], mode="area")
                    grams = {name: gram_matrix(feats[name], small_mask) for name in params.style_layers}
                self._style_cache[cache_key] = grams
                while len(self._style_cache) > STYLE_CACHE_ENTRIES:
                    self._style_cache.popitem(last=False)
            else:
                self._style_cache.move_to_end(cache_key)
            for name, gram in grams.items():
                total[name] = total.get(name, 0) + weight * gram
        return total

    def objective(self, content, style_grams, params):
        with torch.no_grad():
            feats = self.features(content, params.content_layers, params)
        targets = {name: feats[name].float() for name in params.content_layers}
        return Objective(targets, style_grams, params).to(self.device)

    def evaluate(self, image, objective, params):
        """Loss of ``image`` (1 x 3 x H x W, 0..255) under ``objective``, without gradients."""
        with torch.no_grad():
            feats = self.features(image, objective.layers, params)
            total, parts = objective(feats, image)
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

    def optimize(self, x, objective, iterations, params, on_iterate, should_stop, previous_optimizer=None):
        """Minimise ``objective`` from ``x`` for ``iterations`` steps.

        Returns the lowest-loss iterate, its loss, its step (``iterations + 1``: the last step's result),
        its loss terms, and the optimiser (whose state a next scale may carry on).

        ``on_iterate(loss, parts, image)`` runs after each step, with the iterate that was evaluated. Pixels are clipped to 0..255 after every
        step, as in the paper, and the best iterate is the one with the lowest loss evaluated.
        """
        x = x.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        optimizer = self._make_optimizer(x, params, previous_optimizer)
        best = (math.inf, None, 0, None)  # loss, image, step, loss terms
        # L-BFGS skips curvature pairs with y.s < 1e-10, an absolute threshold: with normalised losses
        # and 0..255 pixels the gradients are ~1e-6 and it would take tiny steps for many iterations.
        # Scaling the loss so the first gradient averages 1 in size fixes that without moving the optimum.
        loss_scale = [None if params.optimizer == "lbfgs" else 1.0]
        for step in range(1, iterations + 1):
            if should_stop is not None and should_stop():
                raise Cancelled()
            record = {}

            def closure():
                optimizer.zero_grad(set_to_none=True)
                feats = self.features(x, objective.layers, params)
                total, parts = objective(feats, x)
                if loss_scale[0] is None:
                    total.backward()
                    loss_scale[0] = 1.0 / max(float(x.grad.abs().mean()), 1e-30)
                    x.grad.mul_(loss_scale[0])
                else:
                    (total * loss_scale[0]).backward()
                if not record:
                    parts = {"content": parts["content"].detach(), "style": parts["style"].detach(),
                             "tv": parts["tv"].detach(), "factors": [f.detach() for f in parts["factors"]]}
                    record.update(total=total.detach(), parts=parts, image=x.detach().clone())
                return total.detach() * loss_scale[0]

            optimizer.step(closure)
            with torch.no_grad():
                x.clamp_(0, 255)
            loss = float(record["total"])
            if not math.isfinite(loss):
                raise FloatingPointError("the loss became NaN or infinite; try a smaller learning rate")
            if loss < best[0]:
                best = (loss, record["image"], step, record["parts"])
            on_iterate(loss, record["parts"], record["image"])
        # The last step's result has not been evaluated yet: one forward pass tells if it is the best.
        final_loss, final_parts = self.evaluate(x.detach(), objective, params)
        if final_loss < best[0]:
            best = (final_loss, x.detach().clone(), iterations + 1, final_parts)
        return best[1], best[0], best[2], best[3], optimizer

    # ----- the whole run ----------------------------------------------------------------------

    def run(self, content, styles, params=None, on_progress=None, should_stop=None):
        """Stylise ``content`` with ``styles`` (one or several, blended). Returns a :class:`StyleResult`.

        ``on_progress`` receives every event (``Started``, ``Warned``, ``Progress``);
        ``should_stop()`` returning True stops the run within one iteration (raises ``Cancelled``).
        """
        params = params or StyleParams()
        emit = on_progress or (lambda event: None)
        content = as_loaded(content, "content")
        if isinstance(styles, (str, os.PathLike, Image.Image, np.ndarray, LoadedImage)):
            styles = [styles]
        styles = [as_loaded(s, "style") for s in styles]
        if not styles:
            raise BadInput("at least one style image is needed")
        blend = params.style_blend or tuple(1.0 for _ in styles)
        if len(blend) != len(styles):
            raise BadInput(f"style-blend has {len(blend)} weight(s) for {len(styles)} style image(s)")
        blend = [w / sum(blend) for w in blend]
        torch.manual_seed(params.seed)

        attempt_params, attempts = params, 0
        while True:
            try:
                return self._run_once(content, styles, blend, attempt_params, emit, should_stop)
            except (RuntimeError, MemoryError) as error:
                if not (isinstance(error, MemoryError) or devices.is_out_of_memory(error)):
                    raise
                devices.release_cached(self.device)
                attempts += 1
                ran_at = max(self._plan(content, attempt_params)[0])  # the content or a cap may be smaller
                smaller = int(ran_at / math.sqrt(2))
                if attempts > 3 or smaller < 64:
                    if self.device.type != "cpu":
                        emit(Warned(f"{self.device.type} ran out of memory even at {ran_at} px; "
                                    "continuing on the CPU (slower)"))
                        self.to_device("cpu")
                        attempt_params, attempts = params, 0
                        continue
                    raise OutOfMemory(f"out of memory even at a working size of {ran_at} px: "
                                      "close other programs or use a smaller --size") from None
                emit(Warned(f"out of memory at {ran_at} px; retrying at {smaller} px"))
                attempt_params = attempt_params.replace(size=smaller)

    def to_device(self, name):
        self.device = devices.pick_device(name)
        self.net.to(self.device)
        self._style_cache.clear()

    def _plan(self, content, params):
        half = devices.autocast_dtype(self.device, params.precision) is not None
        limit = devices.max_pixels(self.device, self.architecture, params.optimizer, params.memory_fraction, half)
        work, capped = working_size(content.size, params.size, limit)
        stages = plan_stages(work, params.iterations, params.multiscale, params.scale_step, params.min_scale_size,
                             params.coarse_share, params.max_scales)
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
        tiles = _tile_grid(full, tile, params.tile_overlap) if upscale == "tiles" else []
        return work, capped, limit, stages, upscale, tiles

    def _run_once(self, content, styles, blend, params, emit, should_stop):
        start_time = time.perf_counter()
        work, capped, limit, stages, upscale, tiles = self._plan(content, params)
        if capped:
            emit(Warned(f"working size capped to {work[0]}x{work[1]} to fit the {self.device.type} memory "
                        f"({devices.free_bytes(self.device) / 2**30:.1f} GB free); the result still has the "
                        f"content's full size"))
        total_iterations = sum(s.iterations for s in stages) + len(tiles) * params.refine_iterations
        emit(Started(version=__version__, device=str(self.device), backbone=self.architecture,
                     weights=self.source.describe(), content_size=content.size, working_size=work,
                     iterations=total_iterations, scales=[s.size for s in stages], upscale=upscale))

        content_rgb, style_rgbs = content.rgb, [s.rgb for s in styles]
        if params.preserve_colors == "luminance":
            pairs = [color.luminance_only(content_rgb, s) for s in style_rgbs]
            content_rgb, style_rgbs = pairs[0][0], [p[1] for p in pairs]
        elif params.preserve_colors == "histogram":
            style_rgbs = [color.match_color_statistics(s, content_rgb) for s in style_rgbs]

        device = self.device
        full_content = _to_tensor(content_rgb, device)
        style_tensors = [_to_tensor(s, device) for s in style_rgbs]
        masks = [None if s.alpha is None else _to_tensor(s.alpha[:, :, None].astype(np.float32) / 255.0, device)
                 for s in styles]
        keys = [_digest(rgb, s.alpha) for rgb, s in zip(style_rgbs, styles)]

        units = sum(s.iterations * s.pixels for s in stages) + len(tiles) * params.refine_iterations * (
            tiles[0][2] * tiles[0][3] if tiles else 0)
        clock = _Clock(units)
        counter = {"iteration": 0}

        def reporter(phase, scale, pixels):
            def on_iterate(loss, parts, image):
                counter["iteration"] += 1
                elapsed, fraction, eta = clock.tick(pixels)
                emit(Progress(iteration=counter["iteration"], total=total_iterations, fraction=fraction,
                              phase=phase, scale=scale, loss=loss, content_loss=float(parts["content"]),
                              style_loss=float(parts["style"]), tv_loss=float(parts["tv"]),
                              ssim_factors=[float(f) for f in parts["factors"]] if params.use_ssim else [],
                              elapsed=elapsed, eta=eta, image=image))
            return on_iterate

        x, optimizer = None, None
        for index, stage in enumerate(stages):
            scaled_content = resize(full_content, stage.size)
            if x is None:
                x = scaled_content.clone() if params.init == "content" else _noise_like(scaled_content, params.seed)
            else:
                x = resize(x, stage.size)
            grams = self.style_grams(style_tensors, masks, blend, round(max(stage.size) * params.style_scale),
                                     params, keys)
            objective = self.objective(scaled_content, grams, params)
            x, best_loss, best_step, final_parts, optimizer = self.optimize(
                x, objective, stage.iterations, params, reporter("stylize", index, stage.pixels), should_stop,
                optimizer if params.optimizer == "adam" else None)

        result = x
        if upscale in ("resize", "detail", "tiles"):
            result = resize(x, content.size)
            if upscale in ("detail", "tiles"):
                # Put back the content's fine detail that the working size could not hold.
                result = (result + full_content - resize(resize(full_content, work), content.size)).clamp_(0, 255)
            if upscale == "tiles":
                result = self._refine_tiles(result, full_content, style_tensors, masks, blend, keys, tiles,
                                            params, reporter, should_stop, len(stages))
        rgb = _to_numpy(result)
        if params.preserve_colors == "luminance":
            rgb = color.restore_chroma(rgb, content.rgb)
        image = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
        if content.alpha is not None:
            image.putalpha(Image.fromarray(content.alpha, "L"))

        stats = {
            "seconds": round(time.perf_counter() - start_time, 3),
            "iterations": total_iterations,
            "best_iteration": best_step,
            "device": str(self.device),
            "backbone": self.architecture,
            "weights": self.source.describe(),
            "content_size": list(content.size),
            "working_size": list(work),
            "output_size": list(image.size),
            "scales": [list(s.size) for s in stages],
            "upscale": upscale,
            "tiles": len(tiles),
            "capped": capped,
            "loss": best_loss,
            "content_loss": float(final_parts["content"]),
            "style_loss": float(final_parts["style"]),
            "ssim_factors": [float(f) for f in final_parts["factors"]] if params.use_ssim else [],
            "style_layers": list(params.style_layers),
            "params": params.to_dict(),
        }
        return StyleResult(image=image, stats=stats)

    def _refine_tiles(self, canvas, full_content, style_tensors, masks, blend, keys, tiles, params, reporter,
                      should_stop, scale_index):
        """Refine the full-size result tile by tile, against style targets computed once for it."""
        grams = self.style_grams(style_tensors, masks, blend, round(max(canvas.shape[-2:]) * params.style_scale),
                                 params, keys)
        out = torch.zeros_like(canvas)
        weight_sum = torch.zeros_like(canvas[:, :1])
        for x0, y0, w, h in tiles:
            region = (slice(None), slice(None), slice(y0, y0 + h), slice(x0, x0 + w))
            objective = self.objective(full_content[region], grams, params)
            refined, _, _, _, _ = self.optimize(canvas[region], objective, params.refine_iterations, params,
                                             reporter("refine", scale_index, w * h), should_stop)
            feather = _feather(w, h, params.tile_overlap, canvas.device)
            out[region] += refined * feather
            weight_sum[region] += feather
        return (out / weight_sum.clamp_min(1e-6)).clamp_(0, 255)


def stylize(content, styles, params=None, *, output=None, on_progress=None, should_stop=None,
            backbone="auto", weights=None, weights_format=None, device="auto", stylizer=None):
    """One call: stylise ``content`` with ``styles`` and return a :class:`StyleResult`.

    ``output``, when given, is checked before any work and written atomically at the end.
    Pass ``stylizer`` to reuse a loaded network; otherwise one is built from the other arguments.
    """
    sources = [p for p in ([content] + list(styles if isinstance(styles, (list, tuple)) else [styles]))
               if isinstance(p, (str, os.PathLike))]
    target = check_output_path(output, sources) if output is not None else None
    engine = stylizer or Stylizer(backbone, weights, weights_format, device)
    result = engine.run(content, styles, params, on_progress=on_progress, should_stop=should_stop)
    if target is not None:
        result.stats["output"] = result.save(target)
    return result


def _fit(width, height, long_side):
    scale = long_side / max(width, height)
    return max(16, round(width * scale)), max(16, round(height * scale))


def _digest(rgb, alpha):
    digest = hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16)
    if alpha is not None:
        digest.update(alpha.tobytes())
    return digest.hexdigest()


def _noise_like(image, seed):
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.rand(image.shape, generator=generator) * 255.0).to(image.device)


def _tile_grid(size, tile, overlap):
    """Tiles (x, y, w, h) covering ``size`` with at least ``overlap`` pixels shared by neighbours."""
    def starts(length):
        if length <= tile:
            return [0], length
        count = math.ceil((length - overlap) / (tile - overlap))
        step = (length - tile) / (count - 1)
        return [round(i * step) for i in range(count)], tile

    xs, w = starts(size[0])
    ys, h = starts(size[1])
    return [(x, y, w, h) for y in ys for x in xs]


def _feather(width, height, overlap, device):
    """Blend weights: 1 inside, ramping down across the overlap so neighbouring tiles cross-fade."""
    def ramp(n):
        r = torch.ones(n, device=device)
        k = min(overlap, n // 2)  # a tile as small as the image itself has no neighbour to fade into
        if k > 0:
            edge = torch.linspace(1.0 / (k + 1), 1.0, k, device=device)
            r[:k] = torch.minimum(r[:k], edge)
            r[-k:] = torch.minimum(r[-k:], edge.flip(0))
        return r
    return (ramp(height)[:, None] * ramp(width)[None, :]).view(1, 1, height, width)
