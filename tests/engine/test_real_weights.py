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
