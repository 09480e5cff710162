"""The stop-on-convergence rule and the time-left model (issue 13), on scripted sequences: no torch."""

import numpy as np
import pytest

from nst_core.convergence import ConvergenceRule
from nst_core.eta import RunClock


def feed(rule, losses, images=None):
    """The 1-based step at which ``rule`` first says converged, or None."""
    images = images if images is not None else [None] * len(losses)
    for step, (loss, image) in enumerate(zip(losses, images), start=1):
        if rule.update(loss, image):
            return step
    return None


def test_a_loss_that_stops_falling_converges_once_the_window_has_seen_it():
    losses = [100.0 - k for k in range(20)] + [81.0] * 30  # falls 1 % a step, then flat
    step = feed(ConvergenceRule(window=10, loss_change=0.01, pixel_change=0.5), losses)
    # The window must hold only flat steps (or a fall of < 1 % in all): 20 falling steps, then 10 flat.
    assert step is not None and 21 <= step <= 30
    assert (losses[step - 11] - losses[step - 1]) / losses[step - 11] < 0.01
    assert (losses[step - 12] - losses[step - 2]) / losses[step - 12] >= 0.01


def test_a_loss_still_falling_by_a_few_percent_a_window_never_converges():
    losses = [1000.0 * 0.998 ** k for k in range(500)]  # 2 % per 10 steps, for ever
    assert feed(ConvergenceRule(window=10, loss_change=0.01, pixel_change=0.5), losses) is None


def test_a_picture_that_still_moves_is_not_converged_even_with_a_flat_loss():
    losses = [5.0] * 100
    moving = [np.full(4, float(k)) for k in range(100)]  # one grey level a step: 10 per window
    assert feed(ConvergenceRule(window=10, loss_change=0.01, pixel_change=0.5), losses, moving) is None
    still = [np.full(4, 7.0) for _ in range(100)]
    assert feed(ConvergenceRule(window=10, loss_change=0.01, pixel_change=0.5), losses, still) == 11


def test_the_rule_never_fires_before_a_full_window():
    assert feed(ConvergenceRule(window=10, loss_change=1.0, pixel_change=1e9), [1.0] * 10) is None


def geometric(steps, rate, floor=10.0, start=1000.0):
    """A quasi-Newton-like tail: the loss falls to ``floor`` geometrically."""
    return [floor + start * rate ** k for k in range(steps)]


def test_expected_remaining_steps_predict_when_a_geometric_tail_converges():
    losses = geometric(400, 0.95)
    actual = feed(ConvergenceRule(window=10, loss_change=0.01, pixel_change=0.5), losses)
    assert actual is not None
    rule = ConvergenceRule(window=10, loss_change=0.01, pixel_change=0.5)
    assert feed(rule, losses[:25]) is None
    assert rule.expected_remaining(400) is not None  # two windows measured: a trend
    predicted = 25 + rule.expected_remaining(400)
    assert abs(predicted - actual) <= 0.15 * actual, (predicted, actual)
    assert rule.expected_remaining(3) == 3  # never more than the maximum left


def simulate(parts, rates, step_seconds_per_pixel=1e-4, setup_seconds=0.2, seed=0):
    """A run of several parts (scales), each stopped by the convergence rule on a scripted loss.

    Each step costs its pixels times a fixed rate, jittered by +-10 %; each part's first step costs
    ``setup_seconds`` more. Returns [(elapsed, eta)] at every tick and the run's total seconds.
    """
    rng = np.random.default_rng(seed)
    now = [0.0]
    clock = RunClock(parts, now=lambda: now[0])
    ticks = []
    for index, ((most, pixels), rate) in enumerate(zip(parts, rates)):
        clock.begin(index)
        rule = ConvergenceRule(window=10, loss_change=0.01, pixel_change=0.5)
        losses = geometric(most, rate) if rate < 0.99 else geometric(most, rate, floor=0.0)  # never converges
        for step in range(most):
            now[0] += pixels * step_seconds_per_pixel * rng.uniform(0.9, 1.1) + (setup_seconds if step == 0 else 0)
            rule.update(losses[step])
            elapsed, fraction, eta = clock.tick(rule.expected_remaining(most))
            ticks.append((elapsed, eta, fraction))
            if rule.converged:
                break
    return ticks, now[0]


# The model expects a scale to need about as many steps as the one before it (each starts from the
# previous result and stops by the same rule); the scripted scales below differ by up to a third.
# Not met, and not tested: every scale before the last runs to its maximum and the last stops early;
# then nothing says how early until the last scale has shown a trend (two windows), and the time
# left is too long until then.
@pytest.mark.parametrize("parts, rates", [
    ([(150, 256 * 170)], [0.96]),  # one scale, early stop
    ([(80, 256 * 170), (300, 362 * 241), (500, 512 * 340)], [0.95, 0.95, 0.96]),  # standard at 512 px
    ([(40, 100 * 66), (120, 200 * 133), (340, 400 * 266)], [0.88, 0.9, 0.92]),
    ([(30, 181 * 120), (100, 256 * 170)], [0.99, 0.95]),  # a coarse scale that runs to its maximum
    ([(100, 200 * 133)], [0.99]),  # no early stop: runs to its maximum
])
def test_time_left_is_within_a_quarter_of_the_truth_once_a_tenth_has_passed(parts, rates):
    ticks, total = simulate(parts, rates)
    step_cost = max(p for _, p in parts) * 1e-4 * 1.1
    checked = 0
    for elapsed, eta, fraction in ticks:
        if elapsed < 0.1 * total:
            continue
        remaining = total - elapsed
        assert eta is not None
        # Within 25 %, or within one step's cost where almost nothing is left.
        assert abs(eta - remaining) <= max(0.25 * remaining, step_cost), (elapsed, eta, remaining, total)
        assert 0.0 <= fraction <= 1.0
        checked += 1
    assert checked >= 10


def test_without_early_stops_the_clock_counts_every_step_of_every_part():
    now = [0.0]
    clock = RunClock([(10, 100), (10, 400)], now=lambda: now[0])
    clock.begin(0)
    for _ in range(10):
        now[0] += 1.0
        elapsed, fraction, eta = clock.tick()
    assert eta == pytest.approx(1.0 / 100 * 10 * 400)  # 1 s per 100 px-steps, 10 steps of 400 px left
    clock.begin(1)
    for k in range(10):
        now[0] += 4.0
        elapsed, fraction, eta = clock.tick()
    assert eta == 0 and fraction == 1.0 and elapsed == 50.0


def test_the_fraction_done_never_goes_back_even_when_the_time_left_grows():
    now = [0.0]
    clock = RunClock([(5, 100), (50, 10000)], now=lambda: now[0])
    fractions = []
    for part, (steps, seconds) in enumerate([(5, 0.1), (50, 10.0)]):
        clock.begin(part)
        for _ in range(steps):
            now[0] += seconds
            fractions.append(clock.tick()[1])
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
