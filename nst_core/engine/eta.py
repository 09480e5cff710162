"""Time left of a run whose scales may stop early: each estimate within 25 % once a tenth has passed.

The model: a step costs its pixel count times a rate measured on the most recent part of the run (the
scale or tile being optimised, else the one before), excluding each part's first step, which carries
one-off costs (style targets, optimiser set-up). Each part is expected to take

  this part     the convergence rule's forecast of the step it stops at
                (``ConvergenceRule.expected_total``) and one more (the engine reports the image of
                the step taken while the rule decided), blended with what was expected of the part
                before it began (``LATER_SHARE`` of the count the part before needed, else the
                rule's typical count) in proportion to how far it has run towards that count (a
                forecast over ``FAR_BEYOND`` times that count is set aside until the part has run
                that long); once the rule has decided, that alone;
                with neither (no rule), its maximum
  later parts   ``LATER_SHARE`` of the steps this part is expected to take for a later scale (it
                starts from the previous one's result and stops by the same rule), ``TILE_SHARE``
                of what the last scale takes for a tile (it refines that scale's finished picture),
                capped at each part's maximum

A part "needed" the steps it took when it converged, or, when it ran to its maximum, the forecast it
had at the end (a coarse scale cut short still says how long the rule would have taken).

How good it is: tests/engine/test_eta_recorded.py replays recorded real runs (tests/data/eta_runs.json, with
their times; tests/data/loss_curves.json, with a scripted clock).
"""

import math
import time

# A later scale needs fewer steps than the one before it: it starts from a picture already arranged at
# the coarser scale (the share measured on recorded runs: benchmarks/README.md, "Time left").
LATER_SHARE = 0.8
# A tile of the full-size refinement starts from the finished last scale and stops by the same rule
# about as soon as that scale did (recorded runs: 0.9-1.0 of its steps).
TILE_SHARE = 1.0
# Forecasts beyond this multiple of what was expected of a part are set aside until the part has run as
# long as expected: a part's first steps forecast wildly (1.5 rather than 3: benchmarks/README.md, "Time left").
FAR_BEYOND = 1.5


class RunClock:
    def __init__(self, parts, now=time.perf_counter, scales=None):
        """``parts``: (maximum steps, pixels per step) of each scale and tile, in the order they run;
        ``scales``: how many of them are scales (the rest are tiles; None: all are scales)."""
        self.parts = [(max(int(steps), 1), max(int(pixels), 1)) for steps, pixels in parts]
        self.scales = len(self.parts) if scales is None else scales
        self.now = now
        self.start = now()
        self.index = -1  # the part being run
        self.steps_here = 0
        self.needed = None  # steps the last finished part needed (see the module's docstring)
        self._forecast = None  # the current part's latest forecast total, or None
        self._last = None  # time of this part's previous step
        self._seconds = self._units = 0.0  # timed steps of the part that gives the rate
        self.max_units = sum(steps * pixels for steps, pixels in self.parts)
        self.done_units = 0
        self.fraction = 0.0  # never goes back: a progress bar that shrinks says nothing useful

    def begin(self, index):
        """Part ``index`` starts (parts are entered in order; earlier ones are finished)."""
        if self.index >= 0 and self.steps_here > 0:
            most = self.parts[self.index][0]
            if self.steps_here < most:
                self.needed = self.steps_here  # it converged (or was cut short) there
            elif self._forecast is not None and math.isfinite(self._forecast):
                self.needed = max(self._forecast, self.steps_here)
            else:
                self.needed = None
        self.index, self.steps_here, self._last, self._forecast = index, 0, None, None

    def tick(self, expected_total=None, typical=None):
        """One step of the current part done; ``expected_total``: the step the current part's rule is
        forecast to end it at, or did (None: no forecast yet; ``math.inf``: no end in sight);
        ``typical``: the steps such a part typically needs (``ConvergenceRule.typical_total``), for a
        part with none before it.

        Returns (elapsed seconds, fraction done, seconds left or None while no step has been timed).
        """
        t = self.now()
        most, pixels = self.parts[self.index]
        self.steps_here += 1
        self.done_units += pixels
        # The rule has ended the part, or says this step ends it: no prior second-guesses that.
        decided = expected_total is not None and expected_total <= self.steps_here
        if expected_total is not None and math.isfinite(expected_total):
            # The step its rule decides on is already taken when the rule speaks: the engine reports
            # that step's image too, one step more (recorded runs: every converged part).
            expected_total += 1
        if expected_total is not None:
            self._forecast = expected_total
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
        # What was expected of this part before it began: from the part before, else the rule's guess.
        prior = typical if self.needed is None else self._share(self.index - 1, self.index) * self.needed
        far_beyond = expected_total is not None and prior is not None and expected_total > FAR_BEYOND * prior
        if far_beyond and self.steps_here < prior:
            # A forecast far beyond what was expected, from a part's first steps while its loss still
            # falls steeply, is how the forecast goes wrong; it counts once the part has run as long
            # as was expected of it.
            expected_total = None
        if expected_total is None:
            expected = math.inf if prior is None else prior  # nothing known: every part runs to its maximum
        elif prior is None or not math.isfinite(expected_total) or decided:
            expected = expected_total
        else:
            # A forecast from a part's first steps is rough (the loss falls fastest then): the prior
            # gives way to it as the part runs towards the count expected of it.
            trust = min(1.0, self.steps_here / prior)
            expected = trust * min(expected_total, most) + (1.0 - trust) * prior
        left_here = min(most, max(expected, self.steps_here)) - self.steps_here
        later = sum(min(steps, self._share(self.index, j) * expected) * size
                    for j, (steps, size) in enumerate(self.parts[self.index + 1:], self.index + 1))
        eta = self._seconds / self._units * (left_here * pixels + later)
        self.fraction = max(self.fraction, elapsed / (elapsed + eta) if elapsed + eta > 0 else 1.0)
        return elapsed, self.fraction, eta

    def _share(self, known, later):
        """What part ``later`` is expected to take, as a share of what part ``known`` takes."""
        if later < self.scales:
            return LATER_SHARE
        return (LATER_SHARE if known < self.scales - 1 else 1.0) * TILE_SHARE
