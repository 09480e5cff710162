"""How a run reports itself: each iterate as a ``Progress`` event numbered over the whole run, with the
time left from the run's clock, and the best picture so far as a ``Preview`` when asked."""

import time

from ..events import Preview, Progress
from .eta import RunClock


class ProgressReporter:
    """Numbers the iterates of a whole run, turns each into a ``Progress`` event and, when asked, the
    best one so far into a ``Preview`` at most every ``preview_every`` seconds."""

    def __init__(self, plan, params, emit, preview_every=None, make_preview=None):
        self.total = plan.total_iterations
        self.clock = RunClock(plan.parts, scales=len(plan.stages))
        self.use_ssim = params.use_ssim
        self.emit = emit
        self.iteration = 0  # steps taken so far, over every scale and tile
        self.best_iteration = 0  # the step number of the current scale's best iterate (0: the start)
        self.preview_every = preview_every
        self.make_preview = make_preview if preview_every is not None else None
        self.last_preview = None  # when the last preview was finished
        self.parts = 0  # scales and tiles begun

    def for_stage(self, phase, scale, rule=None):
        """The ``on_iterate`` callback of one scale or tile; ``rule``: its ConvergenceRule, if any."""
        self.clock.begin(self.parts)
        self.parts += 1

        def on_iterate(current, best):
            self.iteration += 1
            expected, typical = (None, None) if rule is None else (rule.expected_total(), rule.typical_total())
            elapsed, fraction, eta = self.clock.tick(expected, typical)
            parts = current.parts
            self.emit(Progress(iteration=self.iteration, total=self.total, fraction=fraction, phase=phase,
                               scale=scale, loss=current.loss, content_loss=float(parts["content"]),
                               style_loss=float(parts["style"]), tv_loss=float(parts["tv"]),
                               ssim_factors=[float(f) for f in parts["factors"]] if self.use_ssim else [],
                               elapsed=elapsed, eta=eta, image=current.image))
            if phase == "stylize":  # a refined tile is a piece of the picture: the last preview stands
                self.best_iteration = self.iteration - (current.step - best.step)
                self._maybe_preview(best)
        return on_iterate

    def _maybe_preview(self, best):
        if self.make_preview is None:
            return
        # Measured from the end of the last one, so that making previews never takes most of the time.
        if self.last_preview is not None and time.perf_counter() - self.last_preview < self.preview_every:
            return
        image = self.make_preview(best.image)
        self.emit(Preview(iteration=self.best_iteration, loss=best.loss, size=image.size, image=image))
        self.last_preview = time.perf_counter()
