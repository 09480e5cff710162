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

# DEFAULT_TEMPORAL_WEIGHT: chosen on the synthetic pan of tests/engine/test_frames.py (real VGG-16, fast
# preset), where the flicker fell far below a third of independent frames'.
from ..options import DEFAULT_TEMPORAL_WEIGHT
from ..params import StyleParams
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

    def __call__(self, image):
        size = image.shape[-2:]
        target, mask = self.target, self.mask
        if target.shape[-2:] != size:
            target = F.interpolate(target, size=size, mode="bilinear", align_corners=False)
            mask = F.interpolate(mask, size=size, mode="area")
        return self.weight * (mask * ((image - target) / 255.0) ** 2).mean()


@dataclass
class Carried:
    """The previous styled frame brought to the next frame: where to start and what to stay close to."""

    start: torch.Tensor  # 1 x 3 x H x W, 0..255
    target: Optional[torch.Tensor]  # the warped styled frame, or None without flow
    mask: Optional[torch.Tensor]  # 1 x 1 x H x W reliable pixels, or None without flow
    reliable_share: Optional[float]


def carry(previous_styled, previous_rgb, rgb, flow):
    """The styled frame before (1 x 3 x H x W) carried to the frame ``rgb`` (H x W x 3) along ``flow``
    (None: as it is). Pixels that come into view start from the new frame's content."""
    if flow is None:
        return Carried(previous_styled, None, None, None)
    a, b = grey(rgb), grey(previous_rgb)
    backward, forward = flow(a, b), flow(b, a)
    warped, inside = warp(previous_styled, backward)
    mask = reliable_mask(backward, forward)
    device = previous_styled.device
    content = to_tensor(rgb.astype(np.float32), device)
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
    params = params or StyleParams()
    emit = on_progress or (lambda event: None)
    if not isinstance(temporal_weight, (int, float)) or not temporal_weight >= 0:
        raise BadInput(f"temporal-weight must be a number >= 0, got {temporal_weight!r}")
    loaded = [as_loaded(f, "frame") for f in frames]
    if not loaded:
        raise BadInput("no frames given: name the frame images in order")
    first_size = loaded[0].size
    for index, frame in enumerate(loaded[1:], start=2):
        if frame.size != first_size:
            raise BadInput(f"frame {index} ({frame.path}) is {frame.size[0]}x{frame.size[1]}, frame 1 is "
                           f"{first_size[0]}x{first_size[1]}: all frames must have one size")
    styles_loaded = [as_loaded(s, "style") for s in (styles if isinstance(styles, (list, tuple)) else [styles])]
    flow = flow_backend() if coherent and len(loaded) > 1 else None
    if coherent and len(loaded) > 1 and flow is None:
        emit(Warned(NO_FLOW_MESSAGE))
    later_params = params.replace(multiscale=False)  # starts close to done at the working size
    clock = SequenceClock(len(loaded))
    results, previous = [], None
    for index, frame in enumerate(loaded):
        if results and should_finish is not None and should_finish():
            break  # stopped between frames: the next one would be the carried picture unchanged
        number = len(results) + 1
        init, extra, mode, share = None, None, "first" if index == 0 else "independent", None
        if coherent and previous is not None:
            carried = carry(previous, loaded[index - 1].rgb, frame.rgb, flow)
            init, share = carried.start, carried.reliable_share
            if carried.target is not None and temporal_weight > 0:
                extra = TemporalLoss(carried.target, carried.mask, float(temporal_weight))
            mode = "flow" if carried.target is not None else "previous"
        emit(FrameStarted(frame=number, frames=len(loaded), source=frame.path, mode=mode,
                          reliable_share=None if share is None else round(share, 4)))

        def forward(event, number=number):
            if isinstance(event, Progress):
                fraction, eta = clock.estimate(number, event.fraction, event.eta)
                event = SequenceProgress(**{k: getattr(event, k) for k in event.__dataclass_fields__},
                                         frame=number, frames=len(loaded), sequence_fraction=fraction,
                                         sequence_eta=eta)
            elif isinstance(event, Warned) and number > 1 and "style strength" in event.message:
                return  # said with the first frame
            emit(event)

        run_params = params if (index == 0 or not coherent) else later_params
        result = stylizer.run(frame, styles_loaded, run_params, on_progress=forward, should_stop=should_stop,
                              should_finish=should_finish, preview_every=preview_every, init_image=init,
                              extra_loss=extra)
        result.stats["frame"] = number
        result.stats["frame_mode"] = mode
        if share is not None:
            result.stats["reliable_share"] = share
        clock.finished(result.stats["seconds"])
        results.append(result)
        fraction, eta = clock.estimate(number, 1.0, 0.0)
        emit(FrameDone(frame=number, frames=len(loaded), steps=result.stats["steps"],
                       seconds=result.stats["seconds"], stop_reason=result.stats["stop_reason"],
                       sequence_fraction=fraction, sequence_eta=eta))
        if on_frame is not None:
            on_frame(index, result)
        if result.stats["stop_reason"] == "stopped":
            break
        previous = to_tensor(np.asarray(result.image.convert("RGB"), dtype=np.float32), stylizer.device)
    return results
