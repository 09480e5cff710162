"""With real ImageNet features (VGG-16, Caffe preprocessing: the file NST_TEST_WEIGHTS names, else
../shared/data/weights/vgg16-imagenet-caffe-features.pth): a short transfer really moves the picture's
style statistics toward the style image and keeps the content. Skipped when the weights file is absent."""

import evaluate  # benchmarks/evaluate.py, the judge apart from the engine's loss
import numpy as np
import pytest
import torch

from helpers.repo import DEFAULT_REAL_WEIGHTS, EXAMPLES, real_weights_path
from nst_core import StyleParams
from nst_core.engine.imageio import load_image
from nst_core.engine.images import resize, to_tensor
from nst_core.engine.losses import gram_matrix
from nst_core.engine.stylizer import Stylizer


def test_the_weights_file_comes_from_nst_test_weights_else_the_shared_folder(tmp_path):
    named = tmp_path / "my-vgg16.pth"
    assert real_weights_path({"NST_TEST_WEIGHTS": str(named)}) == named.resolve()
    assert real_weights_path({}) == DEFAULT_REAL_WEIGHTS
    assert DEFAULT_REAL_WEIGHTS.parts[-4:] == ("shared", "data", "weights", "vgg16-imagenet-caffe-features.pth")


@pytest.mark.realweights
def test_the_real_file_is_recognised_on_import(real_weights, tmp_path, monkeypatch):
    """The shared Caffe VGG-16 needs no --weights-format: its hash says what it is."""
    from nst_core.engine import weights

    known = weights.recognise(weights.sha256(str(real_weights)))
    if known is None:
        pytest.skip(f"{real_weights} is not one of the files the engine knows by hash")
    monkeypatch.setenv("NST_DATA_DIR", str(tmp_path / "data"))
    kept = weights.import_file(str(real_weights))
    assert kept == weights.trimmed_path(known.architecture, known.preprocessing)
    assert weights.resolve().describe().startswith(f"{known.architecture}, {known.preprocessing} preprocessing")


def measure(engine, image, content, style, size):
    """(style distance, content distance) of ``image``: relative Gram error over the style layers
    against the style image, and relative relu4_2 feature error against the content image."""
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    params = StyleParams()
    with torch.no_grad():
        feats = engine.features(image, layers + ["relu4_2"], params)
        style_feats = engine.features(style, layers, params)
        content_feats = engine.features(content, ["relu4_2"], params)
    style_distance = np.mean([
        float(((gram_matrix(feats[n]) - gram_matrix(style_feats[n])) ** 2).sum()
              / (gram_matrix(style_feats[n]) ** 2).sum())
        for n in layers])
    content_distance = float(((feats["relu4_2"] - content_feats["relu4_2"]) ** 2).sum()
                             / (content_feats["relu4_2"] ** 2).sum())
    return style_distance, content_distance


@pytest.mark.realweights
@pytest.mark.slow
def test_a_real_transfer_takes_the_style_and_keeps_the_content(real_weights):
    engine = Stylizer("vgg16", str(real_weights), "caffe", "cpu")
    content = load_image(EXAMPLES / "chelsea.png")
    style = load_image(EXAMPLES / "starry_night.jpg")
    params = StyleParams.preset("standard", size=128, iterations=60)
    result = engine.run(content, [style], params)
    size = tuple(result.stats["working_size"])
    to_work = lambda rgb: resize(to_tensor(rgb, engine.device), size)  # noqa: E731
    output = to_work(np.asarray(result.image.convert("RGB"), dtype=np.float32))
    content_t, style_t = to_work(content.rgb), resize(to_tensor(style.rgb, engine.device), (128, 101))
    out_style, out_content = measure(engine, output, content_t, style_t, size)
    base_style, _ = measure(engine, content_t, content_t, style_t, size)
    _, style_content = measure(engine, style_t if style_t.shape == content_t.shape else resize(style_t, size),
                               content_t, style_t, size)
    print(f"\nstyle distance (relative Gram error): content {base_style:.3f} -> result {out_style:.3f}")
    print(f"content distance (relative relu4_2 error): result {out_content:.3f}, style image {style_content:.3f}")
    print(f"SSIM factors per style layer: {[round(f, 3) for f in result.stats['ssim_factors']]}")
    assert out_style < 0.6 * base_style, "the result's Gram statistics moved clearly toward the style"
    assert out_content < 0.6 * style_content, "the result is much nearer the content than the style is"


def test_the_default_strength_lands_in_the_good_region(real_weights):
    """The fast preset at its default strength, stopped by convergence, gives a result that
    the evaluator calls good (style <= 0.15, content <= 0.5) on an example pair at 256 px."""
    engine = Stylizer("vgg16", str(real_weights), "caffe", "cpu")
    content, style = EXAMPLES / "coffee.png", EXAMPLES / "great_wave.jpg"
    result = engine.run(load_image(content), [load_image(style)], StyleParams.preset("fast", size=256))
    judge = evaluate.Evaluator(str(real_weights))
    style_distance, content_distance = judge(result.image.convert("RGB"), str(content), str(style))
    print(f"\nfast, strength 5, 256 px: style {style_distance:.3f}, content {content_distance:.3f} after "
          f"{result.stats['steps']} steps ({result.stats['stop_reason']})")
    assert evaluate.is_good(style_distance, content_distance), (style_distance, content_distance)


@pytest.mark.realweights
@pytest.mark.slow
def test_the_standard_rule_ends_in_about_half_the_steps_of_a_strict_one_still_good(real_weights):
    """Through the engine: the standard preset's stop rule ends a 256 px run in at most 0.55x the
    steps of the 2 % rule it replaced, converged, good, and close to that run's picture."""
    engine = Stylizer("vgg16", str(real_weights), "caffe", "cpu")
    content, style = EXAMPLES / "astronaut.png", EXAMPLES / "starry_night.jpg"
    judge = evaluate.Evaluator(str(real_weights))
    runs = {}
    for name, loss_change in (("standard", None), ("strict", 0.02)):
        params = StyleParams.preset("standard", size=256)
        if loss_change is not None:
            params = params.replace(converge_loss_change=loss_change)
        result = engine.run(load_image(content), [load_image(style)], params)
        runs[name] = (result.stats, judge(result.image.convert("RGB"), str(content), str(style)))
    (standard, (style_d, content_d)), (strict, (strict_style, strict_content)) = runs["standard"], runs["strict"]
    print(f"\nstandard {standard['steps']} steps {style_d:.3f}/{content_d:.3f}; "
          f"2 % {strict['steps']} steps {strict_style:.3f}/{strict_content:.3f}")
    assert standard["stop_reason"] == "converged"
    assert standard["steps"] <= 0.55 * strict["steps"], (standard["steps"], strict["steps"])
    assert evaluate.is_good(style_d, content_d), (style_d, content_d)
    assert style_d - strict_style <= 0.015 and content_d - strict_content <= 0.07
