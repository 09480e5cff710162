import math

import pytest

from nst_core import BadInput, StyleParams
from nst_core.params import PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS


def test_paper_preset_has_the_papers_settings():
    p = StyleParams.preset("paper")
    assert (p.size, p.iterations, p.optimizer, p.learning_rate) == (512, 1000, "adam", 5.0)
    assert p.adam_betas == (0.99, 0.999) and p.adam_eps == 0.1
    assert (p.content_weight, p.style_weight) == (1e3, 1e-2)
    assert p.loss_normalization == "raw" and p.use_ssim and not p.multiscale and p.precision == "fp32"
    assert (p.ssim_window, p.ssim_sigma) == (11, 1.5)
    assert p.style_layers == PAPER_STYLE_LAYERS == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert p.content_layers == PAPER_CONTENT_LAYERS == ("relu5_2",)
    assert p.layer_weights() == pytest.approx((0.2,) * 5)


def test_overrides_apply_and_none_means_preset_value():
    p = StyleParams.preset("paper", iterations=10, style_weight=None)
    assert p.iterations == 10 and p.style_weight == 1e-2


@pytest.mark.parametrize("changes, words", [
    ({"size": 0}, "size"),
    ({"size": 10**6}, "size"),
    ({"iterations": -1}, "iterations"),
    ({"style_weight": math.nan}, "style-weight"),
    ({"content_weight": -1.0}, "content-weight"),
    ({"content_weight": 0.0, "style_weight": 0.0}, "both be 0"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"ssim_window": 4}, "odd"),
    ({"preserve_colors": "sepia"}, "preserve-colors"),
    ({"style_blend": (0.0, 0.0)}, "style-blend"),
    ({"learning_rate": 0.0}, "learning-rate"),
    ({"style_layer_weights": (1.0,)}, "one weight per style layer"),
])
def test_nonsense_values_are_refused_with_a_message_naming_them(changes, words):
    with pytest.raises(BadInput, match=words):
        StyleParams(**changes)


def test_unknown_preset_and_parameter_are_refused():
    with pytest.raises(BadInput, match="unknown preset"):
        StyleParams.preset("best")
    with pytest.raises(BadInput, match="unknown parameter"):
        StyleParams.preset("standard", colour=1)


def test_every_declared_field_is_a_stylize_option_that_reaches_the_params():
    """The CLI is built from StyleParams' field metadata: each such field has its option, and a value
    given on the command line arrives in the parameters."""
    from nst_core.cli import build_parser
    from nst_core.options import params_from_args
    from nst_core.params import cli_fields

    standard = StyleParams.preset("standard")
    argv, expected = ["stylize", "c.png", "s.png", "-o", "out.png"], {}
    for spec in cli_fields():
        meta = spec.metadata["cli"]
        flag = meta["flag"] or "--" + spec.name.replace("_", "-")
        default = getattr(standard, spec.name)
        if meta["choices"]:
            value = next(c for c in meta["choices"] if c != default)
            argv += [flag, value]
        elif isinstance(default, bool):
            value = not default
            argv.append(flag if value else "--no-" + flag[2:])
        elif spec.name in ("style_blend", "region_weights"):  # lists of numbers
            value = (0.25, 0.75)
            argv += [flag, "0.25", "0.75"]
        elif default is None:  # the strength and the weights: not given unless given
            value = 2.5
            argv += [flag, str(value)]
        else:
            value = default + (1 if isinstance(default, int) else 0.5)
            argv += [flag, str(value)]
        expected[spec.name] = value
    assert {"size", "iterations", "use_ssim", "init", "preserve_colors", "style_blend", "precision"} <= set(expected)
    params = params_from_args(build_parser().parse_args(argv))
    assert {name: getattr(params, name) for name in expected} == expected


def test_choices_come_from_the_engines_own_lists():
    from nst_core.cli import build_parser
    from nst_core.engine.devices import DEVICES
    from nst_core.params import INITS

    stylize = next(a for a in build_parser()._actions if a.dest == "command").choices["stylize"]
    choices = {a.dest: a.choices for a in stylize._actions}
    assert tuple(choices["init"]) == INITS and tuple(choices["device"]) == DEVICES


def test_style_strength_maps_monotonically_with_the_calibrated_middle():
    from nst_core import params as p

    weights = [p.strength_to_style_weight(s / 2) for s in range(0, 21)]
    assert all(a < b for a, b in zip(weights, weights[1:])), "more strength, more style"
    assert p.strength_to_style_weight(p.DEFAULT_STRENGTH) == p.CALIBRATED_STYLE_WEIGHT_SSIM
    assert p.strength_to_style_weight(p.DEFAULT_STRENGTH, use_ssim=False) == p.CALIBRATED_STYLE_WEIGHT
    assert p.strength_to_style_weight(3.0, use_ssim=False) < p.strength_to_style_weight(4.0, use_ssim=False)
    assert p.strength_to_style_weight(6.0) / p.strength_to_style_weight(5.0) == pytest.approx(p.STRENGTH_FACTOR)
    for preset in ("standard", "fast"):
        # The SSIM-weighted loss, the engine's own, is the default; content at Gatys et al.'s relu4_2.
        assert StyleParams.preset(preset).use_ssim
        assert StyleParams.preset(preset).content_layers == ("relu4_2",)
        assert StyleParams.preset(preset).weights() == (1.0, p.CALIBRATED_STYLE_WEIGHT_SSIM)
        assert StyleParams.preset(preset, use_ssim=False).weights() == (1.0, p.CALIBRATED_STYLE_WEIGHT)
        assert StyleParams.preset(preset, style_strength=0.0).weights()[1] == pytest.approx(
            p.CALIBRATED_STYLE_WEIGHT_SSIM / p.STRENGTH_FACTOR ** 5)
    assert StyleParams.preset("paper").content_layers == ("relu5_2",), "the paper keeps its own layer"


@pytest.mark.parametrize("bad", [-0.5, 10.5, math.nan, math.inf])
def test_style_strength_out_of_range_says_the_range(bad):
    with pytest.raises(BadInput, match=r"style-strength must be a number from 0 to 10 \(default 5"):
        StyleParams.preset("fast", style_strength=bad)


def test_a_given_weight_wins_over_the_strength_and_the_paper_ignores_it():
    given = StyleParams.preset("standard", style_strength=9.0, style_weight=3.0)
    assert given.weights() == (1.0, 3.0) and given.strength_ignored
    assert StyleParams.preset("standard", content_weight=2.0).weights() == (2.0, 1.0)
    paper = StyleParams.preset("paper", style_strength=9.0)
    assert paper.weights() == (1e3, 1e-2) and paper.strength_ignored
    assert not StyleParams.preset("fast", style_strength=9.0).strength_ignored


def test_the_paper_runs_every_step_and_the_others_stop_on_convergence():
    assert StyleParams.preset("paper").converge is False
    assert StyleParams.preset("standard").converge and StyleParams.preset("fast").converge
    with pytest.raises(BadInput, match="converge-window"):
        StyleParams(converge_window=1)


def test_idle_threads_sleep_unless_the_user_chose_otherwise():
    from nst_core.engine.devices import prefer_passive_threads

    environ = {}
    prefer_passive_threads(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    chosen = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}
    prefer_passive_threads(chosen)
    assert chosen == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}
