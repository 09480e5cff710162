"""The presets' stop rules, replayed on long recorded runs (benchmarks/stop_curves.json: real VGG-16,
the standard preset run far past any rule's end, the evaluator's distances every 5 steps): where each
rule ends the last scale, and how good the picture it ends on is. No torch run: steps and distances
are in the file."""

import json

import pytest
from evaluate import GOOD_CONTENT, GOOD_STYLE  # benchmarks/ is on the pythonpath
from stop_rule import CURVES, loss_rule_stop, score_at

from nst_core.params import StyleParams

DATA = json.load(open(CURVES))
RUNS = DATA["runs"]
STRICT = 0.02  # the rule the standard preset shipped with before: it ran the last scale to near rest


def stop(run, preset):
    params = StyleParams.preset(preset)
    assert params.converge_window == DATA["window"]
    return loss_rule_stop(run, params.converge_loss_change, params.converge_window)


def test_the_recording_covers_both_sizes_and_every_example_pair_at_256():
    assert {run["size"] for run in RUNS} == {256, 512}
    assert len([run for run in RUNS if run["size"] == 256]) == 6
    # the recording ran far past the rules: none of them ends a run on its last recorded step
    assert all(loss_rule_stop(run, STRICT, DATA["window"]) < len(run["losses"]) for run in RUNS)


@pytest.mark.parametrize("run", RUNS, ids=[run["run"] for run in RUNS])
def test_the_standard_rule_ends_the_last_scale_in_about_half_the_strict_rules_steps(run):
    standard, strict = stop(run, "standard"), loss_rule_stop(run, STRICT, DATA["window"])
    # recorded: 38-42 steps against 79-97 at 256 px, 24-25 against 60-66 at 512 px (fast: 29-33, 17-18)
    assert standard <= 0.55 * strict, (standard, strict)


@pytest.mark.parametrize("run", RUNS, ids=[run["run"] for run in RUNS])
def test_the_picture_it_ends_on_is_good_and_close_to_the_strict_rules(run):
    _, (style, content) = score_at(run, stop(run, "standard"))
    _, (strict_style, strict_content) = score_at(run, loss_rule_stop(run, STRICT, DATA["window"]))
    assert style <= GOOD_STYLE and content <= GOOD_CONTENT, (style, content)
    # recorded: style 0.002-0.010 and content 0.007-0.061 above the strict rule's picture (of the
    # good region's 0.15 and 0.5)
    assert style - strict_style <= 0.015 and content - strict_content <= 0.07, (style, content)


@pytest.mark.parametrize("run", RUNS, ids=[run["run"] for run in RUNS])
def test_the_fast_rule_ends_sooner_still_good(run):
    fast, standard = stop(run, "fast"), stop(run, "standard")
    _, (style, content) = score_at(run, fast)
    assert fast < standard
    assert style <= GOOD_STYLE and content <= GOOD_CONTENT, (style, content)


def test_a_rule_that_ends_too_soon_fails_these_checks():
    # The checks can fail: a rule that stops after a window leaves pictures outside the good region.
    def too_soon(run):
        return loss_rule_stop(run, 0.9, DATA["window"])

    bad = [run for run in RUNS if not all(v <= limit for v, limit in zip(score_at(run, too_soon(run))[1],
                                                                          (GOOD_STYLE, GOOD_CONTENT)))]
    assert bad
