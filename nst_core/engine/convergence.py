"""When a scale's optimisation has stopped changing its picture, and how soon it is expected to.

One :class:`ConvergenceRule` per scale (or tile). After every step it gets the lowest loss so far (and,
when a pixel limit is set, that iterate's image); over the last ``window`` steps it measures

  loss change   (best loss ``window`` steps ago - best loss now) / best loss ``window`` steps ago
  pixel change  mean |best image now - best image ``window`` steps ago|, in grey levels (0..255);
                only with ``pixel_change`` set (the presets leave it off, see StyleParams)

and calls the scale converged when each measured change is below its threshold. The best iterate only
improves, so both changes are >= 0. No torch needed: images only need ``-``, ``abs()`` and ``mean()``.
"""

import math
from collections import deque

# How many of the latest loss changes the forecast fits: enough to average out L-BFGS's uneven steps,
# few enough to follow the run's current phase (a scale's first steps fall much faster than its tail).
FORECAST_SPAN = 20
FORECAST_MIN_POINTS = 3
FLAT_SLOPE = -0.05  # a fitted log-log slope above this: flat or rising, no end in sight
TYPICAL_STEPS_SCALE, TYPICAL_STEPS_EXPONENT = 13.3, 0.48  # see ConvergenceRule.typical_total


class ConvergenceRule:
    def __init__(self, window=10, loss_change=0.02, pixel_change=None):
        if window < 2:
            raise ValueError("the convergence window must be at least 2 steps")
        self.window = window
        self.loss_change = loss_change
        self.pixel_change = pixel_change  # None: the loss alone decides
        self._history = deque(maxlen=window + 1)  # (best loss, best image) after each step
        self.changes = []  # (loss change, pixel change or None) after each step once a window is full
        self.losses = []  # the best loss after each step
        self.converged = False
        self.converged_at = None  # the step it first said converged (the engine may report one more)

    @classmethod
    def from_params(cls, params):
        """The rule a :class:`StyleParams` asks for, or None when it runs every step."""
        if not params.converge:
            return None
        return cls(params.converge_window, params.converge_loss_change, params.converge_pixel_change)

    def update(self, best_loss, best_image=None):
        """Record the state after one more step; True once the scale has converged."""
        self._history.append((best_loss, best_image if self.pixel_change is not None else None))
        self.losses.append(best_loss)
        if len(self._history) <= self.window:
            return False
        old_loss, old_image = self._history[0]
        loss_change = max(old_loss - best_loss, 0.0) / max(abs(old_loss), 1e-30)
        pixel_change = None
        if self.pixel_change is not None:
            if best_image is None or old_image is None or best_image is old_image:
                pixel_change = 0.0
            else:
                pixel_change = float(abs(best_image - old_image).mean())
        self.changes.append((loss_change, pixel_change))
        self.converged = loss_change < self.loss_change and (pixel_change is None or pixel_change < self.pixel_change)
        if self.converged and self.converged_at is None:
            self.converged_at = len(self.losses)
        return self.converged

    def expected_total(self):
        """The step number the scale is forecast to converge at (once converged, the step it did);
        None while there is no trend, ``math.inf`` when a change is not shrinking.

        The model: each measured change falls as a power of the step number, c(k) = a k^b (b < 0),
        fitted in log-log to the last ``FORECAST_SPAN`` of them; the scale ends where the last change
        to do so reaches its threshold. On recorded real runs (tests/data/eta_runs.json; L-BFGS,
        VGG-16) a quasi-Newton tail follows a power law far better than a geometric decay, which
        forecast the end too early. None: fewer than ``FORECAST_MIN_POINTS`` changes measured.
        """
        steps = len(self.losses)
        if self.converged_at is not None:
            return self.converged_at
        if len(self.changes) < FORECAST_MIN_POINTS:
            return None
        recent = self.changes[-FORECAST_SPAN:]
        first = steps - len(recent) + 1  # the step number of recent[0]
        ends = [_power_law_end([c for c, _ in recent], first, self.loss_change)]
        if self.pixel_change is not None:
            ends.append(_power_law_end([p for _, p in recent], first, self.pixel_change))
        if any(end is None for end in ends):
            return math.inf
        end = max(max(ends), steps)
        if self.pixel_change is None and end - steps <= self.window:
            # Within a window of the end the window's own contents decide: which decreases are about to
            # leave it is known, only the next few steps' are forecast (recorded runs, forecasts from a
            # part's last nine steps: 0.61 steps off on average, the power law alone 1.26).
            end = self._end_by_window() or end
        return end

    def _end_by_window(self):
        """The step the loss rule fires at, found by running it forward on forecast losses: each
        step's decrease of log(loss) follows a power of the step number, fitted (log-log) to the
        mean decrease over each of the last ``FORECAST_SPAN`` windows, placed at the window's centre.
        None: no falling trend."""
        logs = [math.log(max(loss, 1e-30)) for loss in self.losses]
        steps, w = len(logs), self.window
        points = []
        for k in range(max(w, steps - FORECAST_SPAN), steps):  # k: 0-based index of the window's last step
            mean_decrease = (logs[k - w] - logs[k]) / w
            if mean_decrease > 0:
                points.append((math.log(k - (w - 1) / 2 + 1), math.log(mean_decrease)))
        fit = _line(points)
        if fit is None or fit[1] >= FLAT_SLOPE:
            return None
        intercept, slope = fit
        limit = -math.log(1.0 - self.loss_change)  # a change below the threshold, in log(loss)
        for k in range(steps, steps + 10 * w):
            logs.append(logs[-1] - math.exp(intercept + slope * math.log(k + 1)))
            if logs[k - w] - logs[k] < limit:
                return k + 1
        return None

    def typical_total(self):
        """How many steps a scale started from the content photo typically needs under this rule's
        loss threshold: the time left's guess before anything is known of the run (RunClock).
        A power law of the threshold fitted to one-scale runs of the six example pairs
        (benchmarks/README.md, "Time left")."""
        return TYPICAL_STEPS_SCALE * max(self.loss_change, 1e-6) ** -TYPICAL_STEPS_EXPONENT


def _line(points):
    """(intercept, slope) of the least-squares line through ``points``; None with fewer than two
    distinct x."""
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    return mean_y - slope * mean_x, slope


def _power_law_end(values, first, threshold):
    """The step at which ``values`` (one per step from step ``first``), fitted as a k^b, fall below
    ``threshold``; None when they are not falling."""
    points = [(math.log(first + i), math.log(v)) for i, v in enumerate(values) if v > 0]
    if values and values[-1] < threshold:
        return first + len(values) - 1
    if len(points) < 2:
        return None if not points else first + len(values) - 1  # all but one exactly 0: flat, done
    fit = _line(points)
    if fit is None:
        return None
    intercept, slope = fit
    if slope >= FLAT_SLOPE:
        return None
    return math.exp((math.log(threshold) - intercept) / slope)
