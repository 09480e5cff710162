"""The time left, replayed on recorded real runs (the aim: within 25 % once a tenth of the run has passed).

tests/data/eta_runs.json holds the progress events of real runs of the shipped presets (written by
benchmarks/eta_record.py: real VGG-16 features, L-BFGS, the CPU, nothing else running): per step the
seconds since the start, the part (scale) and the loss. The replay feeds each part's losses to today's
convergence rule and the recorded times to today's run clock, as ``Stylizer`` does during a run.
No torch, no weights: the runs' pace and losses are in the file.

tests/data/loss_curves.json holds the losses alone of 24 more real runs (six pairs, both presets, 256 and
512 px, each ended by the 2 % rule). Replayed with a scripted clock (every step costs its pixels, a
part's first step three steps, as measured), they test the forecast of where each part stops without
the machine's own pace varying: on the seven timed runs, even knowing every part's step count in
advance leaves 0-21 % of the estimates outside 25 %, from the step times alone (benchmarks/README.md).
"""

import json
import math
import os

import pytest

from helpers.repo import REPO
from nst_core.engine.convergence import ConvergenceRule
from nst_core.engine.eta import RunClock
from nst_core.params import StyleParams

DATA = os.path.join(REPO, "tests", "data")
RUNS = json.load(open(os.path.join(DATA, "eta_runs.json")))["runs"]
CURVES = json.load(open(os.path.join(DATA, "loss_curves.json")))["runs"]


def replay(run):
    """[(elapsed, eta, real time left)] for every step, and where each part's rule said converged.
    The rule: the threshold the run was recorded with."""
    params = StyleParams.preset(run["run"].split(":")[0]).replace(converge_loss_change=run["rule"])
    now = [0.0]
    clock = RunClock(run["parts"], now=lambda: now[0], scales=run["scales"])
    total = run["steps"][-1][0]  # the last step's time: what follows it (saving) is not the clock's
    ticks, converged_at, counts = [], [], []
    part, rule, best = -1, None, math.inf
    for elapsed, index, loss in run["steps"]:
        if index != part:
            part, rule, best = index, ConvergenceRule.from_params(params), math.inf
            clock.begin(index)
            converged_at.append(None)
            counts.append(0)
        counts[-1] += 1
        best = min(best, loss)
        if rule.update(best) and converged_at[-1] is None:
            converged_at[-1] = counts[-1]
        now[0] = elapsed
        _, _, eta = clock.tick(rule.expected_total(), rule.typical_total())
        ticks.append((elapsed, eta, total - elapsed))
    return ticks, total, converged_at, counts


def test_the_recordings_are_real_runs_of_the_shipped_presets():
    assert len(RUNS) >= 4
    assert {run["run"].split(":")[1] for run in RUNS} == {"256", "512"}
    assert any(len(run["parts"]) >= 3 for run in RUNS)  # multi-scale runs
    assert any(run["stop_reason"] == "converged" for run in RUNS)  # early stops


@pytest.mark.parametrize("run", RUNS, ids=[run["run"] for run in RUNS])
def test_todays_rule_stops_each_recorded_part_where_the_run_did(run):
    # The recorded losses are the reported iterates'; the rule is fed their running minimum, as the
    # engine feeds it the best iterate's. A part that converged ends one event later: the last
    # step's image is evaluated by one more forward pass.
    _, _, converged_at, counts = replay(run)
    for index, ((most, _), at, count) in enumerate(zip(run["parts"], converged_at, counts)):
        if count < most:
            assert at == count - 1, (index, at, count)
        else:
            assert at is None or at >= most - 1, (index, at, count)


def accuracy(run, from_share):
    """The share of the estimates made once ``from_share`` of the run had passed that were within 25 %
    of the real time left, or within one final-scale step of it where almost nothing is left (the
    rule's verdict comes one step at a time)."""
    ticks, total, _, _ = replay(run)
    last_step = run["steps"][-1][0] - run["steps"][-2][0]
    judged = [(eta, left) for elapsed, eta, left in ticks if elapsed >= from_share * total]
    assert judged and all(eta is not None for eta, _ in judged)
    within = [abs(eta - left) <= max(0.25 * left, last_step) for eta, left in judged]
    return sum(within) / len(within)


MULTI_SCALE = [run for run in RUNS if len(run["parts"]) > 1]
ONE_SCALE = [run for run in RUNS if len(run["parts"]) == 1]


@pytest.mark.parametrize("run", MULTI_SCALE, ids=[run["run"] for run in MULTI_SCALE])
def test_multi_scale_runs_time_left_is_mostly_within_a_quarter_once_a_tenth_has_passed(run):
    # Measured with today's model: 88-96 % of the estimates after the first tenth, 80-97 % after
    # the first third. The misses: the machine's pace changing within the final scale (astronaut /
    # Great Wave's steps went from 1.7 s to 1.1 s, fast chelsea / Starry Night's from 0.85 s to
    # 0.65 s: the estimates then run 25-30 % long with the step count right), and the forecast of a
    # second scale in its first steps. The issue asks for every estimate.
    share = accuracy(run, 0.1)
    assert share >= 0.85, share
    later_share = accuracy(run, 1 / 3)
    assert later_share >= 0.75, later_share


@pytest.mark.parametrize("run", ONE_SCALE, ids=[run["run"] for run in ONE_SCALE])
def test_one_scale_runs_time_left_is_good_in_the_second_half(run):
    # A one-scale run has no scale before it to say how many steps a scale needs: until its own
    # forecast settles (~35 steps) the rule's typical count stands in. After the first tenth 96-98 %
    # of the estimates are within 25 %, after half-way 94-96 %.
    share = accuracy(run, 0.1)
    assert share >= 0.9, share
    later_share = accuracy(run, 0.5)
    assert later_share >= 0.9, later_share


def test_the_typical_count_follows_the_threshold_as_measured():
    # One scale at 256 px, six pairs: 80-103 steps at 2 %, 52-60 at 5 %; replayed on the same curves
    # (benchmarks/stop_curves.json): 38-42 at 10 %, 29-33 at 20 %.
    assert 80 <= ConvergenceRule(loss_change=0.02).typical_total() <= 103
    assert 52 <= ConvergenceRule(loss_change=0.05).typical_total() <= 60
    assert 38 <= ConvergenceRule(loss_change=0.10).typical_total() <= 42
    assert 28 <= ConvergenceRule(loss_change=0.20).typical_total() <= 34


# The scripted clock: seconds per pixel of a step, and what a part's first step costs in steps (style
# targets, the optimiser's set-up: 2.5-3.5 steps on the recorded runs).
SECONDS_PER_PIXEL, FIRST_STEP = 5e-6, 3.0


def scripted(name, parts, scales, losses, loss_change):
    """A run like the recorded ones, its times scripted: each part's losses up to where the rule ends
    it, plus the one more event the engine reports then (the last step's image, evaluated)."""
    steps, elapsed = [], 0.0
    for index, ((most, pixels), part_losses) in enumerate(zip(parts, losses)):
        rule = ConvergenceRule(loss_change=loss_change)
        for count, loss in enumerate(part_losses[:most]):
            elapsed += (FIRST_STEP if count == 0 else 1.0) * pixels * SECONDS_PER_PIXEL
            steps.append([elapsed, index, loss])
            if rule.converged:
                break
            rule.update(loss)
    return {"run": name, "parts": parts[:len(losses)], "scales": min(scales, len(losses)), "steps": steps,
            "rule": loss_change}


def scripted_runs():
    """Every recorded run with scripted times: the loss curves, and the timed runs' losses."""
    runs = [scripted(c["run"], c["parts"], c["scales"], c["losses"], c["rule"]) for c in CURVES]
    for run in RUNS:
        losses = {}
        for _, index, loss in run["steps"]:
            losses.setdefault(index, []).append(loss)
        runs.append(scripted(run["run"] + " (timed)", run["parts"], run["scales"],
                             [losses[i] for i in sorted(losses)], run["rule"]))
    # The presets' rules of today end each recorded run sooner; its losses up to there are the same.
    for c in CURVES:
        today = StyleParams.preset(c["run"].split(":")[0]).converge_loss_change
        if today > c["rule"]:
            runs.append(scripted(c["run"] + " (shipped rule)", c["parts"], c["scales"], c["losses"], today))
    return runs


SCRIPTED = scripted_runs()


def test_the_loss_curves_are_real_runs_of_both_presets_at_both_sizes():
    assert len(CURVES) >= 20
    assert {(c["run"].split(":")[0], c["run"].split(":")[1]) for c in CURVES} == {
        ("standard", "256"), ("standard", "512"), ("fast", "256"), ("fast", "512")}
    assert all(len(c["losses"]) == len(c["parts"]) for c in CURVES)
    assert {c["rule"] for c in CURVES} == {0.02, 0.05}


RECORDED_RULE = [run for run in SCRIPTED if not run["run"].endswith("(shipped rule)")]
SHIPPED_RULE = [run for run in SCRIPTED if run["run"].endswith("(shipped rule)")]


@pytest.mark.parametrize("run", RECORDED_RULE, ids=[run["run"] for run in RECORDED_RULE])
def test_with_a_scripted_clock_each_run_keeps_its_measured_share_within_a_quarter(run):
    # Steps at a steady pace leave the forecast's error alone. Multi-scale runs, measured: 10 of 17
    # have every estimate after the first tenth within 25 %, the rest 96-99 % (a few estimates as a
    # final scale ends a step or two off its forecast). One-scale runs: 51-100 %, mean 90 %: until
    # the forecast settles (~35 steps) the rule's typical count stands in, and the runs need 79-102
    # steps at 2 %; coffee / Great Wave's 102 (51 %) slows down later than its first 60 steps
    # foretell. The last stop's model: 4 of 17, the rest 76-98 %; one scale 47-92 %, mean 75 %.
    share = accuracy(run, 0.1)
    if len(run["parts"]) > 1:
        assert share >= 0.95, share
    else:
        assert share >= 0.45, share


def test_with_a_scripted_clock_most_estimates_of_all_runs_are_within_a_quarter():
    shares = [accuracy(run, 0.1) for run in RECORDED_RULE]
    multi = [share for share, run in zip(shares, RECORDED_RULE) if len(run["parts"]) > 1]
    assert sum(share == 1.0 for share in multi) >= 0.5 * len(multi), multi  # measured: 10 of 17
    assert sum(shares) / len(shares) >= 0.93, shares  # measured: 95.1 % (the last stop's model: 85.5 %)
    assert any(len(run["parts"]) >= 3 for run in RUNS)  # multi-scale runs
    assert any(run["stop_reason"] == "converged" for run in RUNS)  # early stops


@pytest.mark.parametrize("run", SHIPPED_RULE, ids=[run["run"] for run in SHIPPED_RULE])
def test_with_the_presets_rules_of_today_the_estimates_stay_mostly_within_a_quarter(run):
    # The same curves cut where today's 10 % (fast: 20 %) rule ends each part; a later part's curve is
    # the one recorded after a longer part before it, so this tests the forecast, not a whole run.
    # Measured: multi-scale 88-100 % after the first tenth (the misses: a middle scale's forecast in
    # its first 15 steps, a final step or two); one scale 56-93 %: a run of 30-40 steps is mostly
    # over before its own forecast settles, the rule's typical count standing in until then.
    share = accuracy(run, 0.1)
    assert share >= (0.85 if len(run["parts"]) > 1 else 0.5), share


def test_with_the_presets_rules_of_today_most_estimates_are_within_a_quarter():
    shares = [accuracy(run, 0.1) for run in SHIPPED_RULE]
    assert len(SHIPPED_RULE) == len(CURVES)  # every curve was recorded under a stricter rule
    assert sum(shares) / len(shares) >= 0.87, shares  # measured: 89.2 %
