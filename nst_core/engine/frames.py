"""Frames of an animation styled one after another without flicker (Ruder, Dosovitskiy & Brox 2016,
"Artistic style transfer for videos").

The first frame is styled as a single picture. Every later frame starts from the styled frame before it,
carried to the new frame along the optical flow between the two content frames, and its loss gains a
temporal term that keeps the picture close to that carried frame wherever the flow is reliable: a
forward-backward consistency check marks occlusions and motion boundaries, which are left free. Later
frames run at the working size only (no coarse scales): they start close to done, so the convergence
rule ends them after few steps.

Optical flow comes from OpenCV's DIS flow (the engine's optional ``frames`` extra). Without OpenCV each
later frame starts from the previous styled frame as it is, without the temporal term (said once).

    from nst_core.engine.frames import stylize_frames
    results = stylize_frames(engine, ["f1.png", "f2.png"], ["wave.jpg"], StyleParams.preset("fast"))
"""

import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import BadInput
from ..events import FrameDone, FrameStarted, Progress, SequenceProgress, Warned
from ..params import DEFAULT_TEMPORAL_WEIGHT, StyleParams
from . import color
from .images import as_loaded, to_tensor

# Ruder et al.'s thresholds (in pixels of flow): a pixel is disoccluded when the forward flow at its
# backward-flow target does not undo the backward flow, and on a motion boundary where the flow's
# gradient is large against the flow itself.
CONSISTENCY_RELATIVE, CONSISTENCY_ABSOLUTE = 0.01, 0.5
BOUNDARY_RELATIVE, BOUNDARY_ABSOLUTE = 0.01, 0.002

NO_FLOW_MESSAGE = ("optical flow needs OpenCV (pip install 'nst-gimp-core[frames]' or opencv-python-headless); "
                   "each frame starts from the previous styled frame without motion and without the temporal "
                   "loss, so moving pictures may flicker more")


def _import_cv2():
    import cv2

    return cv2


def flow_backend():
    """A function ``(grey_a, grey_b) -> H x W x 2 flow`` (a(x) ~ b(x + flow(x))), or None without OpenCV."""
    try:
        cv2 = _import_cv2()
    except ImportError:
        return None
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def compute(grey_a, grey_b):
        return flow.calc(grey_a, grey_b, None).astype(np.float32)
    return compute


def grey(rgb):
    """H x W x 3 float 0..255 -> H x W uint8, what the flow is computed on."""
    luma = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114
    return np.clip(luma + 0.5, 0, 255).astype(np.uint8)


def _sampling_grid(flow):
    """H x W x 2 flow (pixels) -> the 1 x H x W x 2 grid of ``grid_sample`` at x + flow(x)."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    px, py = xs + flow[:, :, 0], ys + flow[:, :, 1]
    grid = np.stack([2 * px / max(width - 1, 1) - 1, 2 * py / max(height - 1, 1) - 1], axis=-1)
    return torch.from_numpy(grid[None]), px, py


def warp(image, flow):
    """``image`` (1 x C x H x W) sampled at x + flow(x); returns it and where x + flow(x) lies inside
    the picture (H x W bool)."""
    grid, px, py = _sampling_grid(flow)
    warped = F.grid_sample(image, grid.to(image.device, image.dtype), mode="bilinear", padding_mode="border",
                           align_corners=True)
    height, width = flow.shape[:2]
    inside = (px >= 0) & (px <= width - 1) & (py >= 0) & (py <= height - 1)
    return warped, inside


def reliable_mask(backward, forward):
    """Where the backward flow (frame t -> t-1) can be trusted: inside the picture, consistent with the
    forward flow (t-1 -> t) and off motion boundaries. H x W float32 in {0, 1}."""
    as_image = torch.from_numpy(np.ascontiguousarray(forward.transpose(2, 0, 1)))[None]
    forward_there, inside = warp(as_image, backward)
    forward_there = forward_there[0].numpy().transpose(1, 2, 0)
    total = forward_there + backward
    squared = lambda v: (v ** 2).sum(axis=-1)  # noqa: E731
    consistent = squared(total) <= CONSISTENCY_RELATIVE * (squared(forward_there) + squared(backward)) \
        + CONSISTENCY_ABSOLUTE
    du_y, du_x = np.gradient(backward[:, :, 0])
    dv_y, dv_x = np.gradient(backward[:, :, 1])
    gradient = du_x ** 2 + du_y ** 2 + dv_x ** 2 + dv_y ** 2
    off_boundary = gradient <= BOUNDARY_RELATIVE * squared(backward) + BOUNDARY_ABSOLUTE
    return (inside & consistent & off_boundary).astype(np.float32)


class TemporalLoss:
    """weight * mean over pixels of mask * ((image - target) / 255)^2, at whatever size the image has."""

    def __init__(self, target, mask, weight):
        self.target, self.mask, self.weight = target, mask, weight  # 1 x 3 x H x W, 1 x 1 x H x W
        self._fitted = {}  # (size, device) -> (target, mask): every step of a scale asks for the same

    def _fit(self, image):
        key = (tuple(image.shape[-2:]), image.device)
        if key not in self._fitted:
            target, mask = self.target.to(image.device), self.mask.to(image.device)
            if target.shape[-2:] != image.shape[-2:]:
                target = F.interpolate(target, size=key[0], mode="bilinear", align_corners=False)
                mask = F.interpolate(mask, size=key[0], mode="area")
            self._fitted[key] = (target.to(image.dtype), mask.to(image.dtype))
        return self._fitted[key]

    def __call__(self, image):
        target, mask = self._fit(image)
        return self.weight * (mask * ((image - target) / 255.0) ** 2).mean()


@dataclass
class Carried:
    """The previous styled frame brought to the next frame: where to start and what to stay close to."""

    start: torch.Tensor  # 1 x 3 x H x W, 0..255
    target: Optional[torch.Tensor]  # the warped styled frame, or None without flow
    mask: Optional[torch.Tensor]  # 1 x 1 x H x W reliable pixels, or None without flow
    reliable_share: Optional[float]


def carry(previous_styled, previous_rgb, rgb, flow, fill_rgb=None):
    """The styled frame before (1 x 3 x H x W) carried to the frame ``rgb`` (H x W x 3) along ``flow``
    (None: as it is). Pixels that come into view start from the new frame's content (``fill_rgb``: that
    content as the optimisation sees it, when not ``rgb``)."""
    if flow is None:
        return Carried(previous_styled, None, None, None)
    a, b = grey(rgb), grey(previous_rgb)
    backward, forward = flow(a, b), flow(b, a)
    warped, inside = warp(previous_styled, backward)
    mask = reliable_mask(backward, forward)
    device = previous_styled.device
    content = to_tensor((rgb if fill_rgb is None else fill_rgb).astype(np.float32), device)
    inside_t = torch.from_numpy(inside.astype(np.float32))[None, None].to(device)
    start = warped * inside_t + content * (1 - inside_t)
    return Carried(start, warped, torch.from_numpy(mask)[None, None].to(device), float(mask.mean()))


class SequenceClock:
    """Time left for the whole sequence: the current frame's own forecast plus the frames after it at
    the mean time of the later frames done so far (before any, the first frame's time)."""

    def __init__(self, frames):
        self.frames = frames
        self.start = time.perf_counter()
        self.times = []  # seconds of each finished frame

    def estimate(self, frame, frame_fraction, frame_eta):
        """(fraction, eta) of the sequence while frame ``frame`` (1-based) is ``frame_fraction`` done."""
        elapsed = time.perf_counter() - self.start
        later = self.times[1:]
        per_frame = (sum(later) / len(later)) if later else (self.times[0] if self.times else None)
        remaining_after = self.frames - frame
        if frame_eta is None or (per_frame is None and remaining_after > 0):
            return (frame - 1 + (frame_fraction or 0.0)) / self.frames, None
        eta = frame_eta + remaining_after * (per_frame or 0.0)
        total = elapsed + eta
        return (elapsed / total if total > 0 else 1.0), eta

    def finished(self, seconds):
        self.times.append(seconds)


def _check_temporal_weight(weight):
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise BadInput(f"temporal-weight must be a number >= 0, got {weight!r}")
    return float(weight)


class FrameSequence:
    """The state between the frames of one animation: the styled frame before, its content frame and
    the flow backend. ``style(frame)`` styles the next frame; a frame cancelled or failed leaves the
    state as it was, so that the same frame can be sent again. Used by ``stylize_frames`` and by the
    service, which keeps one per sequence between uploads."""

    def __init__(self, stylizer, styles, params=None, temporal_weight=DEFAULT_TEMPORAL_WEIGHT, coherent=True):
        self.stylizer = stylizer
        self.styles = [as_loaded(s, "style") for s in (styles if isinstance(styles, (list, tuple)) else [styles])]
        self.params = params or StyleParams()
        self.temporal_weight = _check_temporal_weight(temporal_weight)
        self.coherent = coherent
        self.count = 0  # frames styled so far
        self.size = None  # (width, height) of the frames
        self.previous = None  # the styled frame before, 1 x 3 x H x W on the engine's device
        self.previous_rgb = None  # its content frame, H x W x 3
        self._flow = None
        self._flow_known = False

    def flow(self, emit):
        if not self._flow_known:
            self._flow, self._flow_known = flow_backend(), True
            if self._flow is None:
                emit(Warned(NO_FLOW_MESSAGE))
        return self._flow

    def _working(self, rgb):
        """A picture as the optimisation sees it: grey when only the luminance is styled (its colours
        are the content's, put back on each result)."""
        if self.params.preserve_colors == "luminance":
            return color.grey_rgb(color.luminance(rgb))
        return rgb

    def check(self, frame):
        """The frame as a LoadedImage, refused when its size is not the sequence's."""
        frame = as_loaded(frame, "frame")
        if self.size is not None and frame.size != self.size:
            raise BadInput(f"frame {self.count + 1} ({frame.path}) is {frame.size[0]}x{frame.size[1]}, the frames "
                           f"before are {self.size[0]}x{self.size[1]}: all frames must have one size")
        return frame

    def style(self, frame, on_progress=None, should_stop=None, should_finish=None, preview_every=None,
              frames=None, clock=None):
        """Style the next frame; returns its StyleResult. ``frames``: the sequence's length when known
        (for the events); ``clock``: a SequenceClock for the sequence's time left."""
        emit = on_progress or (lambda event: None)
        frame = self.check(frame)
        number = self.count + 1
        init, extra, mode, share = None, None, "first" if self.previous is None else "independent", None
        if self.coherent and self.previous is not None:
            carried = carry(self.previous, self.previous_rgb, frame.rgb, self.flow(emit), self._working(frame.rgb))
            init, share = carried.start, carried.reliable_share
            if carried.target is not None and self.temporal_weight > 0:
                extra = TemporalLoss(carried.target, carried.mask, self.temporal_weight)
            mode = "flow" if carried.target is not None else "previous"
        emit(FrameStarted(frame=number, frames=frames, source=frame.path, mode=mode,
                          reliable_share=None if share is None else round(share, 4)))

        def forward(event):
            if isinstance(event, Progress):
                fraction, eta = (clock.estimate(number, event.fraction, event.eta) if clock is not None
                                 else (None, None))
                event = SequenceProgress(**{k: getattr(event, k) for k in event.__dataclass_fields__},
                                         frame=number, frames=frames, sequence_fraction=fraction,
                                         sequence_eta=eta)
            elif isinstance(event, Warned) and number > 1 and "style strength" in event.message:
                return  # said with the first frame
            emit(event)

        # Later frames start close to done at the working size: no coarse scales.
        run_params = self.params if (self.previous is None or not self.coherent) else \
            self.params.replace(multiscale=False)
        result = self.stylizer.run(frame, self.styles, run_params, on_progress=forward, should_stop=should_stop,
                                   should_finish=should_finish, preview_every=preview_every, init_image=init,
                                   extra_loss=extra)
        result.stats["frame"] = number
        result.stats["frame_mode"] = mode
        if share is not None:
            result.stats["reliable_share"] = share
        self.count, self.size, self.previous_rgb = number, frame.size, frame.rgb
        styled = self._working(np.asarray(result.image.convert("RGB"), dtype=np.float32))
        self.previous = to_tensor(np.ascontiguousarray(styled), self.stylizer.device)
        if clock is not None:
            clock.finished(result.stats["seconds"])
            fraction, eta = clock.estimate(number, 1.0, 0.0)
        else:
            fraction, eta = None, None
        emit(FrameDone(frame=number, frames=frames, steps=result.stats["steps"], seconds=result.stats["seconds"],
                       stop_reason=result.stats["stop_reason"], sequence_fraction=fraction, sequence_eta=eta))
        return result


def stylize_frames(stylizer, frames, styles, params=None, *, temporal_weight=DEFAULT_TEMPORAL_WEIGHT,
                   coherent=True, on_progress=None, should_stop=None, should_finish=None, preview_every=None,
                   on_frame: Optional[Callable] = None) -> List:
    """Style ``frames`` (paths, PIL images or arrays, in order, all one size) with ``styles``; returns
    one :class:`~nst_core.engine.stylizer.StyleResult` per frame styled.

    ``coherent=False`` styles every frame on its own (the first frame's way), for comparison.
    ``temporal_weight`` 0 keeps the warm start but drops the temporal term. ``on_progress`` gets each
    frame's events between a ``FrameStarted`` and a ``FrameDone``, its ``Progress`` as
    ``SequenceProgress`` (with the sequence's fraction and time left). ``should_stop()`` cancels
    (raises ``Cancelled``, nothing is returned); ``should_finish()`` ends the frame being styled with its
    best picture so far and styles no more: the frames done so far are returned. ``on_frame(index,
    result)`` runs after each frame (0-based index).
    """
    sequence = FrameSequence(stylizer, styles, params, temporal_weight, coherent)
    loaded = [sequence.check(f) for f in frames]  # every frame read and checked before any work
    if not loaded:
        raise BadInput("no frames given: name the frame images in order")
    for index, frame in enumerate(loaded[1:], start=2):
        if frame.size != loaded[0].size:
            raise BadInput(f"frame {index} ({frame.path}) is {frame.size[0]}x{frame.size[1]}, frame 1 is "
                           f"{loaded[0].size[0]}x{loaded[0].size[1]}: all frames must have one size")
    emit = on_progress or (lambda event: None)
    if coherent and len(loaded) > 1:
        sequence.flow(emit)  # said before the first frame, not in the middle of the sequence
    clock = SequenceClock(len(loaded))
    results = []
    for index, frame in enumerate(loaded):
        if results and should_finish is not None and should_finish():
            break  # stopped between frames: the next one would be the carried picture unchanged
        result = sequence.style(frame, emit, should_stop, should_finish, preview_every, len(loaded), clock)
        results.append(result)
        if on_frame is not None:
            on_frame(index, result)
        if result.stats["stop_reason"] == "stopped":
            break
    return results
