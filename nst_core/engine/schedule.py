"""Sizes and the iteration budget of a coarse-to-fine run (pure arithmetic, no torch).

A VGG iteration costs about its pixel count, so a scale sqrt(2) smaller costs half as much. How the
steps are shared between scales is the caller's choice (``coarse_share``); the standard preset gives
most of them to the full size, where measured quality is decided (benchmarks/README.md).
"""

import math
from dataclasses import dataclass
from typing import List, Tuple

MIN_ITERATIONS_PER_SCALE = 10


@dataclass(frozen=True)
class Stage:
    size: Tuple[int, int]  # (width, height)
    iterations: int
    copies: Tuple[Tuple[int, int], ...] = ()  # smaller copies of the image, matched too (StyleParams.pyramid)

    @property
    def pixels(self):
        return self.size[0] * self.size[1]

    @property
    def cost(self):
        """Pixels through the network per step: the image and its smaller copies."""
        return self.pixels + sum(w * h for w, h in self.copies)


def fit_long_side(size, long_side, minimum=1):
    """(w, h) scaled so that its longer side is ``long_side``, keeping the aspect ratio; neither side
    below ``minimum``."""
    width, height = size
    scale = long_side / max(width, height)
    return max(minimum, round(width * scale)), max(minimum, round(height * scale))


def working_size(content_size, requested_long_side, max_pixels=None):
    """The size the optimisation runs at: never larger than the content, nor than memory allows.

    Returns ``(size, capped)`` where ``capped`` says whether memory, not the request, set it.
    """
    long_side = min(requested_long_side, max(content_size))
    size = fit_long_side(content_size, long_side)
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        shrink = math.sqrt(max_pixels / (size[0] * size[1]))
        return fit_long_side(content_size, max(16, int(long_side * shrink))), True
    return size, False


def halved_copies(size, min_long_side):
    """The sizes of ``size`` halved, and halved again, while the long side stays >= ``min_long_side``."""
    copies, long_side = [], max(size)
    while long_side / 2 >= min_long_side - 0.5:
        long_side /= 2
        copies.append(fit_long_side(size, round(long_side)))
    return tuple(copies)


def plan_stages(final_size, iterations, multiscale=True, step=math.sqrt(2.0), min_long_side=128,
                coarse_share=1.0, max_scales=12, copies_from=None) -> List[Stage]:
    """Scales from small to ``final_size``, each ``step`` apart, with the iterations shared out.

    Scale k steps below the final one gets ``coarse_share ** k`` times the iterations of the final
    scale: below step**2 (2) the coarse scales take less time each than the fine ones.
    A budget too small to give every scale a useful share drops the coarsest scales first.
    ``copies_from``: each scale also gets its ``halved_copies`` down to that long side (None: none).
    """
    final_long = max(final_size)
    count = 1
    if multiscale:
        while final_long / step ** count >= min_long_side - 0.5:  # sqrt(2)**4 is not quite 4
            count += 1
        count = max(1, min(count, max_scales, iterations // MIN_ITERATIONS_PER_SCALE))
    shares = [coarse_share ** k for k in range(count - 1, -1, -1)]  # coarsest first
    total = sum(shares)
    counts = [max(1, int(iterations * share / total)) for share in shares]
    counts[0] += iterations - sum(counts)  # rounding remainder to the cheapest scale
    stages = []
    for k, n in enumerate(counts):
        below = count - 1 - k
        size = final_size if below == 0 else fit_long_side(final_size, round(final_long / step ** below))
        copies = () if copies_from is None else halved_copies(size, copies_from)
        stages.append(Stage(size=size, iterations=n, copies=copies))
    return stages
