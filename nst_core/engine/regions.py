"""Regions: several styles in one picture, each where its mask says (Gatys et al. 2017, "Controlling
Perceptual Factors in Neural Style Transfer", guided Gram matrices).

Each style has a soft mask (0..1) on the content. At every style layer the mask is brought to the
layer's size by area averaging, and the picture's Gram matrix of the region is taken over the
features weighted by the mask and divided by the mask's sum; it is matched to that style's own target
(the style's alpha still weights its target, as in a one-style run), with its own SSIM factor, so the
paper's weighting holds per region. A region's loss counts in proportion to the share of the picture
it covers, times its weight: a region covering everything is exactly the one-style loss, and a pixel
gets about the pull it would get in a one-style run, whatever the size of its region. Parts no mask
covers are held by the content loss alone. Masks that overlap or fade pull a pixel toward each style
in proportion, so the boundary blends instead of showing a seam.
"""

from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..errors import BadInput
from .imageio import LoadedImage, load_image
from .losses import StyleLoss
from .objective import Objective

MAX_REGIONS = 8  # each region costs a Gram per style layer and a style's targets; the service's style limit
EMPTY_LEVEL = 1.0 / 255.0  # a mask whose largest value is under one grey level covers nothing
ASPECT_TOLERANCE = 0.02  # relative: a mask exported at another size rounds its sides differently
REST = "rest"  # the command line's word for "the style that takes what the other masks leave"
# A region that covers less than this share of a tile is left out of that tile's refinement: its
# Gram over a handful of pixels would be noise.
MIN_TILE_COVERAGE = 1e-3


def mask_values(loaded, source):
    """A loaded mask picture -> float32 H x W in 0..1: its alpha where it has one (a layer's alpha),
    else its grey level (a channel or a saved selection: white is inside)."""
    if loaded.alpha is not None:
        return loaded.alpha.astype(np.float32) / 255.0
    rgb = loaded.rgb
    return (0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]).astype(np.float32) / 255.0


def _as_mask(mask, source):
    if isinstance(mask, LoadedImage):
        return mask_values(mask, source)
    if isinstance(mask, Image.Image):
        from .images import as_loaded

        return mask_values(as_loaded(mask, "style mask"), source)
    if isinstance(mask, np.ndarray) and mask.ndim == 2:
        values = mask.astype(np.float32)
        if mask.dtype == np.uint8 or values.max(initial=0) > 1.0:
            values = values / 255.0
        return np.clip(values, 0.0, 1.0)
    if isinstance(mask, np.ndarray) and mask.ndim == 3:
        from .images import as_loaded

        return mask_values(as_loaded(mask, "style mask"), source)
    return mask_values(load_image(mask, "style mask"), source)


def _fit(values, size, name):
    """``values`` (H x W, 0..1) resized to the content's (width, height), after checking its shape."""
    height, width = values.shape
    content_width, content_height = size
    ratio = (width / height) / (content_width / content_height)
    if abs(ratio - 1.0) > ASPECT_TOLERANCE:
        raise BadInput(f"style mask {name} is {width}x{height} but the content is {content_width}x{content_height}: "
                       "another shape. Make the mask from the content image (the same shape, any size)")
    if (width, height) == (content_width, content_height):
        return values
    shrinking = width > content_width or height > content_height
    picture = Image.fromarray(values, mode="F").resize(
        (content_width, content_height), Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    return np.clip(np.asarray(picture, dtype=np.float32), 0.0, 1.0)


def load_region_masks(masks: Sequence, style_count: int, content: LoadedImage) -> List[np.ndarray]:
    """One float32 H x W mask (0..1, the content's size) per style, from ``masks``: paths, PIL images,
    arrays (H x W in 0..1 or 0..255, or pictures) or, for at most one style, None (or "rest"): what
    the others leave uncovered. Raises BadInput, with what to do, for a wrong count, an empty mask or
    one of another shape."""
    masks = list(masks)
    if len(masks) != style_count:
        raise BadInput(f"{len(masks)} style mask(s) for {style_count} style image(s): give one mask per style, in "
                       f"the same order (or '{REST}' for the one style that takes what the other masks leave)")
    if style_count > MAX_REGIONS:
        raise BadInput(f"{style_count} regions: at most {MAX_REGIONS} styles can have a region each")
    rest = [i for i, m in enumerate(masks) if m is None or (isinstance(m, str) and m == REST)]
    if len(rest) > 1:
        raise BadInput(f"'{REST}' is given for {len(rest)} styles: only one style can take what the masks leave")
    if rest and style_count == 1:
        raise BadInput(f"a single style whose mask is '{REST}' covers everything: leave --style-mask out")
    inside = None if content.alpha is None else content.alpha.astype(np.float32) / 255.0
    values = [None] * style_count
    for index, mask in enumerate(masks):
        if index in rest:
            continue
        name = _describe(mask, index)
        values[index] = _fit(_as_mask(mask, name), content.size, name)
        seen = values[index] if inside is None else values[index] * inside
        if float(seen.max(initial=0.0)) < EMPTY_LEVEL:
            where = " where the content is not transparent" if inside is not None else ""
            raise BadInput(f"style mask {name} is empty (all black{where}): paint the region white (or opaque) "
                           "where this style should go, or leave the style out")
    if rest:
        covered = np.sum([v for v in values if v is not None], axis=0)
        values[rest[0]] = np.clip(1.0 - covered, 0.0, 1.0).astype(np.float32)
        if float(values[rest[0]].max(initial=0.0)) < EMPTY_LEVEL:
            raise BadInput(f"the other masks cover the whole picture, so the '{REST}' style has nowhere to go: "
                           "leave it out, or give it a mask of its own")
    return values


def _describe(mask, index):
    if isinstance(mask, str) or hasattr(mask, "__fspath__"):
        return str(mask)
    return f"#{index + 1}"


def check_region_weights(weights: Optional[Sequence[float]], style_count: int, with_masks: bool):
    """The per-region weights (one per style), or BadInput saying what to give."""
    if weights is None:
        return [1.0] * style_count
    if not with_masks:
        raise BadInput("--region-weight weighs the styles' regions: give --style-mask too (or use --style-blend "
                       "to blend styles everywhere)")
    if len(weights) != style_count:
        raise BadInput(f"--region-weight has {len(weights)} weight(s) for {style_count} style image(s): "
                       "give one per style, in the same order")
    return [float(w) for w in weights]


def shrink_mask(mask, size):
    """A 1 x 1 x H x W mask brought to (height, width) by area averaging (its share of each cell)."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=tuple(size), mode="area")


def masked_gram(flat, weights, total):
    """G = F diag(m) F^T / sum(m): ``flat`` N x C x HW float32, ``weights`` 1 x 1 x HW, ``total`` its sum."""
    return (flat * weights) @ flat.transpose(1, 2) / total


class _MaskedGrams(torch.autograd.Function):
    """:func:`masked_gram` for every region at once, with a backward pass of one matrix product per
    region: dL/dF = sum_r m_r (dG_r + dG_r^T) F / s_r (each G_r is symmetric). Autograd's takes two
    products per region and keeps a mask-weighted copy of F for each."""

    @staticmethod
    def forward(ctx, flat, weights, totals):
        ctx.save_for_backward(flat, weights)
        ctx.totals = totals
        transposed = flat.transpose(1, 2)
        return tuple((flat * weights[index]) @ transposed / total for index, total in enumerate(totals))

    @staticmethod
    def backward(ctx, *grads):
        flat, weights = ctx.saved_tensors
        grad_flat = None
        for index, (grad, total) in enumerate(zip(grads, ctx.totals)):
            part = ((grad + grad.transpose(1, 2)) @ flat).mul_(weights[index] / total)
            grad_flat = part if grad_flat is None else grad_flat.add_(part)
        return grad_flat, None, None


def masked_grams(flat, weights, totals):
    """The Gram of each region: ``flat`` N x C x HW float32, ``weights`` R x 1 x 1 x HW, ``totals`` R sums."""
    return _MaskedGrams.apply(flat, weights, tuple(totals))


class RegionStyleLoss(nn.Module):
    """The style loss of one layer over several regions, each against its own style's Gram target.

    Returns ``(loss, factor)`` as :class:`StyleLoss` does: the loss is sum_r weight_r * coverage_r *
    loss_r, the factor the coverage-weighted mean of the regions' SSIM factors (what progress shows).
    """

    def __init__(self, losses: List[StyleLoss], masks: List[torch.Tensor], weights: List[float]):
        super().__init__()
        self.losses = nn.ModuleList(losses)
        for index, mask in enumerate(masks):
            self.register_buffer(f"mask{index}", mask.detach().float(), persistent=False)
        self.weights = list(weights)
        # (h, w) -> [(weights 1 x 1 x HW, sum, coverage)] per region; ("covered", h, w) -> _covered's
        self._at_size = {}

    def _masks(self, height, width):
        key = (height, width)
        if key not in self._at_size:
            levels = []
            for index in range(len(self.losses)):
                small = shrink_mask(getattr(self, f"mask{index}"), (height, width)).reshape(1, 1, height * width)
                total = float(small.sum())
                levels.append((small, max(total, 1e-8), total / (height * width)))
            self._at_size[key] = levels
        return self._at_size[key]

    def _covered(self, height, width):
        """The regions that cover part of a (height, width) map: [(index, coverage)], their
        stacked masks (R x 1 x 1 x HW) and mask sums."""
        key = ("covered", height, width)
        if key not in self._at_size:
            levels = self._masks(height, width)
            used = [index for index, (_mask, _total, coverage) in enumerate(levels) if coverage > 0.0]
            stacked = torch.stack([levels[index][0] for index in used]) if used else None
            self._at_size[key] = ([(index, levels[index][2]) for index in used], stacked,
                                  [levels[index][1] for index in used])
        return self._at_size[key]

    def forward(self, features):
        n, c, h, w = features.shape
        flat = features.float().reshape(n, c, h * w)
        value = features.new_zeros((), dtype=torch.float32)
        factor_sum, coverage_sum = value, 0.0
        used, stacked, totals = self._covered(h, w)
        grams = masked_grams(flat, stacked, totals) if used else ()
        for (index, coverage), gram in zip(used, grams):
            part, factor = self.losses[index].compare(gram)
            value = value + self.weights[index] * coverage * part
            factor_sum = factor_sum + coverage * factor
            coverage_sum += coverage
        return value, factor_sum / max(coverage_sum, 1e-8)


class RegionObjective(Objective):
    """:class:`Objective` whose style terms are :class:`RegionStyleLoss`: ``style_grams`` is one dict
    of Gram targets per style, ``masks`` one 1 x 1 x H x W mask per style at the image's size;
    ``copies``: (size, content targets, Gram targets per style, masks at that size) of each smaller copy."""

    def __init__(self, content_targets, style_grams, masks, weights, params, copies=()):
        super().__init__(content_targets, {}, params, [(size, targets, {}) for size, targets, _, _ in copies])
        normalize = params.loss_normalization == "target"

        def region_losses(grams_per_style, level_masks):
            layers = list(grams_per_style[0]) if grams_per_style else []
            return nn.ModuleDict({
                name: RegionStyleLoss(
                    [StyleLoss(grams[name], normalize, params.use_ssim, params.ssim_scaling, params.ssim_window,
                               params.ssim_sigma, params.ssim_implementation) for grams in grams_per_style],
                    level_masks, weights)
                for name in layers})

        self.style_losses = region_losses(style_grams, masks)
        self.copy_style = nn.ModuleList([region_losses(grams, level_masks) for _, _, grams, level_masks in copies])
