"""Time left of a run whose scales may stop early (issue 13: within 25 % once a tenth has passed).

The model: a step costs its pixel count times a rate measured on the most recent part of the run (the
scale or tile being optimised, else the one before), excluding each part's first step, which carries
one-off costs (style targets, optimiser set-up). Steps still to come are

  this part     the convergence rule's expected remaining steps (``ConvergenceRule.expected_remaining``),
                or, while it has no trend (or there is no rule), the typical count below less the
                steps taken (at least one more)
  later parts   the typical count of steps a part needs, capped at each part's maximum: the most any
                part that stopped early took, or the current part's own expected total (when it is
                expected to stop early) if larger. A scale starts
                from the previous one's result and stops by the same rule, so about as many steps is
                the expectation; while nothing is known (no part finished, no trend), the maximum.

How good it is: within 25 % from a tenth of the run on scripted runs whose changes shrink steadily
(tests/test_convergence.py). Not yet on real ones: replaying three recorded 256 px runs (L-BFGS,
VGG-16), 10-18 % of the estimates after the first tenth were within 25 %. The pixel change falls fast
for ~50 steps and then slowly, so early extrapolations end too soon, and late ones swing with its noise.
"""

import time


class RunClock:
    def __init__(self, parts, now=time.perf_counter):
        """``parts``: (maximum steps, pixels per step) of each scale and tile, in the order they run."""
        self.parts = [(max(int(steps), 1), max(int(pixels), 1)) for steps, pixels in parts]
        self.now = now
        self.start = now()
        self.index = -1  # the part being run
        self.steps_here = 0
        self.finished_steps = []  # steps taken by the parts that ended
        self._last = None  # time of this part's previous step
        self._seconds = self._units = 0.0  # timed steps of the part that gives the rate
        self.max_units = sum(steps * pixels for steps, pixels in self.parts)
        self.done_units = 0
        self.fraction = 0.0  # never goes back: a progress bar that shrinks says nothing useful

    def begin(self, index):
        """Part ``index`` starts (parts are entered in order; earlier ones are finished)."""
        if self.index >= 0 and 0 < self.steps_here < self.parts[self.index][0]:
            self.finished_steps.append(self.steps_here)  # stopped early: a measure of what a part needs
        self.index, self.steps_here, self._last = index, 0, None

    def tick(self, expected_here=None):
        """One step of the current part done; ``expected_here``: steps it is expected to take yet.

        Returns (elapsed seconds, fraction done, seconds left or None while no step has been timed).
        """
        t = self.now()
        most, pixels = self.parts[self.index]
        self.steps_here += 1
        self.done_units += pixels
        if self._last is not None:
            if self.steps_here == 2:  # the first timed step of a part: its own rate from now on
                self._seconds = self._units = 0.0
            self._seconds += t - self._last
            self._units += pixels
        self._last = t
        elapsed = t - self.start
        if self._units == 0:
            self.fraction = max(self.fraction, min(self.done_units / self.max_units, 1.0))
            return elapsed, self.fraction, None
        left_here = max(most - self.steps_here, 0)
        known = list(self.finished_steps)
        if expected_here is not None:
            left_here = min(left_here, expected_here)
            if self.steps_here + left_here < most:
                known.append(self.steps_here + left_here)
        typical = max(known) if known else None
        if expected_here is None and left_here and typical is not None:
            left_here = min(left_here, max(typical - self.steps_here, 1))
        later = sum((steps if typical is None else min(steps, typical)) * size
                    for steps, size in self.parts[self.index + 1:])
        eta = self._seconds / self._units * (left_here * pixels + later)
        self.fraction = max(self.fraction, elapsed / (elapsed + eta) if elapsed + eta > 0 else 1.0)
        return elapsed, self.fraction, eta
