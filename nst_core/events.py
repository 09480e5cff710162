"""What a run reports while it works. Each event's ``event`` name and ``as_dict()`` fields are exactly
the JSON-lines protocol's (docs/PROTOCOL.md), so the CLI writes them as they come.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from .protocol import PROTOCOL_VERSION


@dataclass
class _Event:
    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}


@dataclass
class Started(_Event):
    version: str
    device: str
    backbone: str
    weights: str
    content_size: Tuple[int, int]
    working_size: Tuple[int, int]
    iterations: int
    scales: List[Tuple[int, int]]
    upscale: str
    protocol: int = PROTOCOL_VERSION
    event = "start"


@dataclass
class Warned(_Event):
    message: str
    event = "warning"


@dataclass
class Progress(_Event):
    iteration: int  # 1-based, over every scale and tile
    total: int
    fraction: float  # of the whole job's expected time
    phase: str  # "stylize" or "refine"
    scale: int
    loss: float
    content_loss: float
    style_loss: float
    tv_loss: float
    ssim_factors: List[float]
    elapsed: float
    eta: Optional[float]
    # The iterate this loss belongs to (1 x 3 x H x W, RGB 0..255, at the scale's or tile's size), for
    # library callers that watch or record the optimisation; not part of the JSON-lines protocol.
    image: Any = field(default=None, repr=False, compare=False)
    event = "progress"


@dataclass
class Preview(_Event):
    """The best iterate so far, finished like the result (colours, alpha) at the content's full size
    (resized, without the tile refinement). The CLI writes ``image`` to a PNG and sends its ``path``."""

    iteration: int  # the step the image comes from, numbered as Progress counts them
    loss: float
    size: Tuple[int, int]  # (width, height): the content's
    image: Any = field(default=None, repr=False, compare=False)  # a PIL image
    event = "preview"


# ----- a sequence of frames (``nst-core stylize-frames``): each frame's events come between these -----


@dataclass
class FrameStarted(_Event):
    frame: int  # 1-based
    frames: Optional[int]  # None when the sequence's length is not known (the service)
    source: str  # the frame's file, or a description of the picture given
    mode: str  # "first", "flow" (carried along the optical flow), "previous" (no flow), "independent"
    reliable_share: Optional[float] = None  # share of pixels the temporal term holds ("flow" only)
    event = "frame_start"


@dataclass
class SequenceProgress(Progress):
    """A frame's ``Progress`` with the whole sequence's place: the same fields, and these."""

    frame: int = 0
    frames: Optional[int] = None
    sequence_fraction: Optional[float] = None  # None when the sequence's length is not known
    sequence_eta: Optional[float] = None  # seconds left for every frame still to come; None: not known yet


@dataclass
class FrameDone(_Event):
    frame: int
    frames: Optional[int]
    steps: int
    seconds: float
    stop_reason: str  # as the result's stats say: "stopped", "converged", "max_iterations"
    sequence_fraction: Optional[float]
    sequence_eta: Optional[float]
    event = "frame_done"
