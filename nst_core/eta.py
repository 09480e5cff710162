"""Time left of a run whose scales may stop early (issue 13: within 25 % once a tenth has passed).

The model: a step costs its pixel count times a rate measured on the most recent part of the run (the
scale or tile being optimised, else the one before), excluding each part's first step, which carries
one-off costs (style targets, optimiser set-up). Steps still to come are

  this part     the convergence rule's expected remaining steps (``ConvergenceRule.expected_remaining``),
                or all that are left of its maximum when it has no rule
  later parts   their maximum times the share of their maximum that earlier parts needed (the smallest
                such share: a scale that converged early predicts that the next one will too), or the
                full maximum while no part has finished.
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
        self.finished_shares = []  # steps taken / maximum of the parts that ended
        self._last = None  # time of this part's previous step
        self._seconds = self._units = 0.0  # timed steps of the part that gives the rate
        self.max_units = sum(steps * pixels for steps, pixels in self.parts)
        self.done_units = 0

    def begin(self, index):
        """Part ``index`` starts (parts are entered in order; earlier ones are finished)."""
        if self.index >= 0 and self.steps_here:
            self.finished_shares.append(self.steps_here / self.parts[self.index][0])
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
            return elapsed, min(self.done_units / self.max_units, 1.0), None
        left_here = max(most - self.steps_here, 0)
        if expected_here is not None:
            left_here = min(left_here, expected_here)
        share = min(self.finished_shares) if self.finished_shares else 1.0
        later = sum(max(1.0, steps * share) * size for steps, size in self.parts[self.index + 1:])
        eta = self._seconds / self._units * (left_here * pixels + later)
        fraction = elapsed / (elapsed + eta) if elapsed + eta > 0 else 1.0
        return elapsed, fraction, eta
