"""The benchmark's evaluator (benchmarks/evaluate.py): its identities on any network (an
untrained VGG-16 through the same code), and with the real ImageNet VGG-16 when the file is present."""

import os

import evaluate  # benchmarks/evaluate.py: benchmarks/ is on pytest's pythonpath
import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from helpers.pictures import make_content, make_style
from helpers.repo import EXAMPLES


@pytest.fixture(scope="module")
def random_judge():
    # 96 px keeps relu5_1 at 6 x 4 positions: enough for a Gram, cheap on two cores.
    return evaluate.Evaluator(weights="random", size=96)


def noisy(image, amount, seed=0):
    rgb = np.asarray(image, dtype=np.float32)
    rgb = rgb + np.random.default_rng(seed).normal(0, amount, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def test_the_content_scores_style_one_and_content_zero(random_judge):
    content, style, other = make_content(120, 80), make_style(90, 90), make_style(120, 80, seed=7)
    style_distance, content_distance = random_judge(content, content, style, other)
    assert style_distance == pytest.approx(1.0, abs=1e-6)
    assert content_distance == pytest.approx(0.0, abs=1e-9)


def test_the_unrelated_photo_scores_content_one(random_judge):
    content, style, other = make_content(120, 80), make_style(90, 90), make_style(120, 80, seed=7)
    assert random_judge(other, content, style, other)[1] == pytest.approx(1.0, rel=1e-5)
    # Several unrelated photos: the scale is their mean distance, so the mean of their scores is 1.
    third = noisy(make_content(120, 80), 60, seed=3)
    scores = [random_judge(photo, content, style, [other, third])[1] for photo in (other, third)]
    assert np.mean(scores) == pytest.approx(1.0, rel=1e-5)
    assert scores[0] != pytest.approx(scores[1], rel=1e-3)


def test_the_style_image_itself_scores_style_zero(random_judge):
    content, style, other = make_content(120, 80), make_style(120, 80), make_style(120, 80, seed=7)
    style_distance, content_distance = random_judge(style, content, style, other)
    assert style_distance == pytest.approx(0.0, abs=1e-6)
    assert content_distance > 0.1


def test_an_output_may_come_as_a_path_an_array_or_a_tensor(random_judge, tmp_path):
    content, style, other = make_content(120, 80), make_style(90, 90), make_style(120, 80, seed=7)
    output = noisy(content, 30)
    output.save(tmp_path / "out.png")
    array = np.asarray(output, dtype=np.float32)
    tensor = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)
    scores = [random_judge(x, content, style, other) for x in (output, str(tmp_path / "out.png"), array, tensor)]
    for score in scores[1:]:
        assert score == pytest.approx(scores[0], rel=1e-6)


def test_an_output_of_another_size_is_judged_at_the_evaluation_size(random_judge):
    content, style, other = make_content(120, 80), make_style(90, 90), make_style(120, 80, seed=7)
    larger = content.resize((240, 160), Image.BICUBIC)
    style_distance, content_distance = random_judge(larger, content, style, other)
    assert style_distance == pytest.approx(1.0, abs=0.05)
    assert content_distance < 0.05


def test_good_region_boundaries():
    assert evaluate.is_good(0.15, 0.5)
    assert evaluate.is_good(0.01, 0.0)
    assert not evaluate.is_good(0.151, 0.2)
    assert not evaluate.is_good(0.1, 0.51)


def test_the_default_unrelated_photos_are_the_other_examples():
    chelsea = str(EXAMPLES / "chelsea.png")
    names = [os.path.basename(p) for p in evaluate.default_references(chelsea)]
    assert names == ["coffee.png", "astronaut.png"]
    # Recognised by its pixels: the same picture under another name is still the content.
    same = Image.open(chelsea).convert("RGB")
    assert [os.path.basename(p) for p in evaluate.default_references(same)] == names
    assert len(evaluate.default_references(make_content())) == 3


@pytest.mark.realweights
@pytest.mark.slow
def test_real_features_judge_photos_and_paintings_as_expected():
    if evaluate.weights_path() is None:
        pytest.skip("the real VGG-16 weights are absent (../shared/data/weights, or set NST_TEST_WEIGHTS)")
    judge = evaluate.Evaluator()
    content, style = EXAMPLES / "chelsea.png", EXAMPLES / "starry_night.jpg"
    assert judge(content, content, style) == pytest.approx((1.0, 0.0), abs=1e-6)
    # The painting has the painting's statistics and none of the cat.
    style_distance, content_distance = judge(style, content, style)
    assert style_distance < 0.05
    assert content_distance > 0.8
    # A softened cat is still the cat, and no nearer to the painting: far from "good".
    soft = Image.open(content).convert("RGB").filter(ImageFilter.GaussianBlur(1.5))
    style_distance, content_distance = judge(soft, content, style)
    assert content_distance < 0.5
    assert style_distance > 0.5
    assert not evaluate.is_good(style_distance, content_distance)
