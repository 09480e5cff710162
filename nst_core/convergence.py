"""When a scale's optimisation has stopped changing its picture, and how soon it is expected to.

One :class:`ConvergenceRule` per scale (or tile). After every step it gets the lowest loss so far and
that iterate's image; over the last ``window`` steps it measures

  loss change   (best loss ``window`` steps ago - best loss now) / best loss ``window`` steps ago
  pixel change  mean |best image now - best image ``window`` steps ago|, in grey levels (0..255)

and calls the scale converged when both are below their thresholds. The best iterate only improves,
so both changes are >= 0, and a run whose best no longer moves has a pixel change of exactly 0.
No torch needed: the images only need ``-``, ``abs()`` and ``mean()`` (tensors or numpy arrays).
"""

import math
from collections import deque


class ConvergenceRule:
    def __init__(self, window=10, loss_change=0.01, pixel_change=0.5):
        if window < 2:
            raise ValueError("the convergence window must be at least 2 steps")
        self.window = window
        self.loss_change = loss_change
        self.pixel_change = pixel_change
        self._history = deque(maxlen=window + 1)  # (best loss, best image) after each step
        self.changes = []  # (loss change, pixel change) after each step once a window is full
        self.converged = False

    @classmethod
    def from_params(cls, params):
        """The rule a :class:`StyleParams` asks for, or None when it runs every step."""
        if not params.converge:
            return None
        return cls(params.converge_window, params.converge_loss_change, params.converge_pixel_change)

    def update(self, best_loss, best_image=None):
        """Record the state after one more step; True once the scale has converged."""
        self._history.append((best_loss, best_image))
        if len(self._history) <= self.window:
            return False
        old_loss, old_image = self._history[0]
        loss_change = max(old_loss - best_loss, 0.0) / max(abs(old_loss), 1e-30)
        if best_image is None or old_image is None or best_image is old_image:
            pixel_change = 0.0
        else:
            pixel_change = float(abs(best_image - old_image).mean())
        self.changes.append((loss_change, pixel_change))
        self.converged = loss_change < self.loss_change and pixel_change < self.pixel_change
        return self.converged

    def expected_remaining(self, most):
        """Steps the scale is expected to take yet, at most ``most``.

        Each change that is still above its threshold is extrapolated geometrically from its value one
        window earlier (a quasi-Newton optimiser's tail shrinks about so); with no trend yet (fewer than
        two windows measured) or a change that is not shrinking, ``most``.
        """
        if self.converged:
            return 0
        if len(self.changes) <= self.window:
            return most
        now, before = self.changes[-1], self.changes[-1 - self.window]
        steps = 0.0
        for value, earlier, limit in zip(now, before, (self.loss_change, self.pixel_change)):
            if value < limit:
                continue
            if not 0 < value < earlier or limit <= 0:
                return most
            steps = max(steps, self.window * math.log(limit / value) / math.log(value / earlier))
        return min(most, math.ceil(steps))
