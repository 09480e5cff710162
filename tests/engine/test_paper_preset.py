"""The paper preset against what the paper's code computed, as far as it is known (docs/METHOD.md,
"Where the paper preset comes from"): SSIM of the raw Gram matrices as tf.image.ssim computes it, on
activations at the Caffe network's scale, and the 512 px best iterate resized plainly to the layer."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.repo import EXAMPLES
from nst_core import BadInput, StyleParams
from nst_core.engine import activation_scale
from nst_core.engine.backbone import CAFFE_MEAN_BGR
from nst_core.engine.imageio import load_image
from nst_core.engine.images import finish_image, resize, to_tensor
from nst_core.engine.schedule import fit_long_side
from nst_core.engine.ssim import gaussian_window
from nst_core.engine.stylizer import Stylizer
from nst_core.engine.weights import WeightsSource

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


# ----- tf.image.ssim, written out as TensorFlow's image_ops_impl.py computes it ----------------------

def tf_fspecial_gauss(size, sigma):
    """TensorFlow's _fspecial_gauss: centred coordinates, -0.5 x^2 / sigma^2 summed over both axes, softmax."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = coords ** 2 * (-0.5 / sigma ** 2)
    g = g.reshape(1, -1) + g.reshape(-1, 1)
    return torch.softmax(g.reshape(-1), dim=0).reshape(size, size)


def tf_image_ssim(img1, img2, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03):
    """tf.image.ssim of two one-channel H x W images (float64): _ssim_per_channel with its
    compensation of 1, a VALID 2-D convolution with the Gaussian kernel, the mean over the map."""
    height, width = img1.shape
    size = min(filter_size, height, width)  # TensorFlow shrinks the window (and sigma) for small images
    sigma = size * filter_sigma / filter_size
    kernel = tf_fspecial_gauss(size, sigma).reshape(1, 1, size, size)

    def reducer(x):
        return F.conv2d(x.reshape(1, 1, height, width), kernel)[0, 0]  # padding VALID

    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mean0, mean1 = reducer(img1), reducer(img2)
    num0 = mean0 * mean1 * 2.0
    den0 = mean0 ** 2 + mean1 ** 2
    luminance = (num0 + c1) / (den0 + c1)
    num1 = reducer(img1 * img2) * 2.0
    den1 = reducer(img1 ** 2 + img2 ** 2)
    cs = (num1 - num0 + c2) / (den1 - den0 + c2)
    return float((luminance * cs).mean())


def gram64(features):
    """The blog post's gram_matrix in float64: a = reshape(F, [-1, C]); a^T a / (H W)."""
    _, channels, height, width = features.shape
    a = features.double()[0].reshape(channels, height * width).T
    return a.T @ a / (height * width)


def test_the_reference_window_is_tensorflows_and_the_engines_is_the_same():
    window = tf_fspecial_gauss(11, 1.5)
    assert window.sum().item() == pytest.approx(1.0)
    assert window[5, 5] == window.max() and torch.equal(window, window.T)
    separable = gaussian_window(11, 1.5).double()
    torch.testing.assert_close(torch.outer(separable, separable), window, rtol=0, atol=1e-8)


def paper_factors(engine, content, style, params):
    """The SSIM factors the engine's paper objective reports for ``content``, and the raw float64 Grams
    of both pictures' features, for the reference."""
    grams = engine.style_grams(engine_style_set(engine, style), max(content.shape[-2:]), params)
    objective = engine.objective(content, grams, params)
    with torch.no_grad():
        _, parts = engine.loss(content, objective, params)
        ours = engine.features(content, list(STYLE_LAYERS), params)
        size = fit_long_side((style.shape[-1], style.shape[-2]), max(content.shape[-2:]), minimum=16)
        theirs = engine.features(resize(style, size), list(STYLE_LAYERS), params)
    return ([float(f) for f in parts["factors"]],
            {n: gram64(ours[n]) for n in STYLE_LAYERS}, {n: gram64(theirs[n]) for n in STYLE_LAYERS})


def engine_style_set(engine, style):
    from nst_core.engine.stylizer import StyleSet

    return StyleSet(tensors=[style], masks=[None], weights=[1.0], keys=[f"test-{id(style)}"])


def example_pair(device, long_side):
    content = to_tensor(load_image(EXAMPLES / "chelsea.png").rgb, device)
    style = to_tensor(load_image(EXAMPLES / "starry_night.jpg").rgb, device)
    size = fit_long_side((content.shape[-1], content.shape[-2]), long_side)
    return resize(content, size), style


@pytest.mark.realweights
def test_the_paper_presets_ssim_factors_are_tf_image_ssim_of_the_raw_grams(real_weights):
    engine = Stylizer("vgg16", str(real_weights), "caffe", "cpu")
    params = StyleParams.preset("paper")
    content, style = example_pair(engine.device, 160)
    factors, grams, targets = paper_factors(engine, content, style, params)
    expected = [(1.0 - tf_image_ssim(grams[n], targets[n])) / 2.0 for n in STYLE_LAYERS]
    print(f"\npaper factors {np.round(factors, 4).tolist()}, tf.image.ssim reference {np.round(expected, 4).tolist()}")
    np.testing.assert_allclose(factors, expected, rtol=0, atol=1e-6)
    # The standard preset's scaling (Grams divided by max|A|) gives other factors: the test can tell.
    scaled = [(1.0 - tf_image_ssim(grams[n] / targets[n].abs().max(), targets[n] / targets[n].abs().max())) / 2.0
              for n in STYLE_LAYERS]
    assert max(abs(a - b) for a, b in zip(factors, scaled)) > 0.05


def test_raw_gram_ssim_is_tf_image_ssim_with_caffe_format_random_weights_too():
    """The same check without the real file: an untrained VGG-16 fed Caffe-preprocessed input."""
    engine = Stylizer("vgg16", "random", "caffe", "cpu")
    params = StyleParams.preset("paper")
    content, style = example_pair(engine.device, 96)
    factors, grams, targets = paper_factors(engine, content, style, params)
    expected = [(1.0 - tf_image_ssim(grams[n], targets[n])) / 2.0 for n in STYLE_LAYERS]
    np.testing.assert_allclose(factors, expected, rtol=0, atol=1e-6)


# ----- the activation scale ---------------------------------------------------------------------------

@pytest.mark.realweights
def test_caffe_preprocessing_gives_the_caffe_networks_activations_and_their_scale(real_weights):
    """The engine's Caffe path feeds BGR 0..255 minus the mean: its relu1_1 equals the file's first
    convolution applied by hand to an image preprocessed by hand, and the raw Grams are orders of
    magnitude above SSIM's constants (data range 1: c2 = 9e-4), so the factor measures their structure."""
    engine = Stylizer("vgg16", str(real_weights), "caffe", "cpu")
    params = StyleParams.preset("paper")
    content, _ = example_pair(engine.device, 128)
    rgb = content[0].permute(1, 2, 0).double().numpy()
    bgr = rgb[:, :, ::-1] - np.array(CAFFE_MEAN_BGR)
    state = torch.load(real_weights, map_location="cpu", weights_only=True)
    by_hand = torch.relu(F.conv2d(torch.from_numpy(bgr.copy()).permute(2, 0, 1)[None],
                                  state["features.0.weight"].double(), state["features.0.bias"].double(), padding=1))
    with torch.no_grad():
        feats = engine.features(content, list(STYLE_LAYERS), params)
    torch.testing.assert_close(feats["relu1_1"].double(), by_hand, rtol=1e-4, atol=1e-3)
    assert -124 < bgr.min() and bgr.max() < 152  # 0..255 minus means 103.9 .. 123.7
    mean_diagonal = {n: float(torch.diagonal(gram64(feats[n])).mean()) for n in STYLE_LAYERS}
    print(f"\nmean Gram diagonal per layer at Caffe scale: { {n: f'{v:.3g}' for n, v in mean_diagonal.items()} }")
    assert all(value > 100 for value in mean_diagonal.values()), mean_diagonal


@pytest.mark.realweights
def test_trained_weights_of_another_scale_are_refused_by_the_paper_preset(real_weights, content_png, style_png):
    """The same file declared torchvision-format: raw-Gram SSIM is refused before any work, with the
    weights to import and the scale-free alternative named."""
    engine = Stylizer("vgg16", str(real_weights), "torchvision", "cpu")
    with pytest.raises(BadInput) as refused:
        engine.run(str(content_png), [str(style_png)], StyleParams.preset("paper", iterations=1))
    message = str(refused.value)
    assert "--weights-format caffe" in message and "nst-core weights import" in message
    assert "--ssim-scaling max" in message and "VGG-19" in message


def source(preprocessing, architecture="vgg19", kind="file"):
    return WeightsSource(kind, architecture, preprocessing, None if kind == "random" else "/weights.pth")


def test_the_scale_check_refuses_raw_ssim_warns_about_the_raw_formula_and_passes_the_rest():
    paper = StyleParams.preset("paper")
    with pytest.raises(BadInput, match="Caffe"):
        activation_scale.check(source("torchvision"), paper)
    scale_free = paper.replace(ssim_scaling="max")
    [warning] = activation_scale.check(source("torchvision"), scale_free)
    assert "Caffe-scale" in warning and "--loss-normalization target" in warning
    assert activation_scale.check(source("caffe"), paper) == []  # the paper's own network
    [vgg16] = activation_scale.check(source("caffe", "vgg16"), paper)
    assert "VGG-19" in vgg16
    assert activation_scale.check(source("torchvision"), StyleParams.preset("standard")) == []
    assert activation_scale.check(source("torchvision", kind="random"), paper) == []  # tests' networks


# ----- the result: the best iterate, resized plainly ----------------------------------------------------

def test_the_paper_result_is_its_best_iterate_resized_without_detail_or_tiles(random_engine, monkeypatch):
    """A content larger than the working size: the result is the best working-size iterate brought to
    the content's size by the plain bicubic resize, not the detail pass nor a tiled refinement."""
    rng = np.random.default_rng(3)
    content = (rng.random((60, 80, 3)) * 255).astype(np.float32)
    style = (rng.random((50, 50, 3)) * 255).astype(np.float32)
    params = StyleParams.preset("paper", size=48, iterations=3)
    kept = {}
    original = Stylizer._stylize

    def keep_best(self, *args, **kwargs):
        best, finished, reason = original(self, *args, **kwargs)
        kept["best"] = best.image.clone()
        return best, finished, reason

    monkeypatch.setattr(Stylizer, "_stylize", keep_best)
    result = random_engine.run(content, [style], params)
    assert result.stats["upscale"] == "resize" and result.stats["tiles"] == 0
    assert tuple(kept["best"].shape[-2:]) == (36, 48) and result.image.size == (80, 60)
    loaded = random_engine._prepare(*_as_inputs(content, style), params).content
    plain = np.asarray(finish_image(resize(kept["best"], (80, 60)), loaded, params), dtype=np.int16)
    np.testing.assert_array_equal(np.asarray(result.image, dtype=np.int16), plain)
    detailed = random_engine.run(content, [style], params.replace(upscale="detail"))
    assert np.abs(np.asarray(detailed.image, dtype=np.int16) - plain).max() > 10  # the test can tell


def _as_inputs(content, style):
    from nst_core.engine.images import as_loaded

    return as_loaded(content, "content"), [as_loaded(style, "style")], [1.0]
