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
