"""Regions: each style painted inside its own soft mask, in one run (nst_core/engine/regions.py).

The unit tests use the untrained network; the proof uses real VGG-16 features and the evaluator of
benchmarks/evaluate.py (not the loss that is optimised) on crops inside each region."""

import evaluate  # benchmarks/evaluate.py
import numpy as np
import pytest
import torch
from PIL import Image

from helpers.repo import EXAMPLES
from nst_core import StyleParams
from nst_core.engine import regions as regions_mod
from nst_core.engine.imageio import LoadedImage
from nst_core.engine.losses import StyleLoss, gram_matrix
from nst_core.engine.regions import RegionStyleLoss, load_region_masks
from nst_core.engine.stylizer import Stylizer
from nst_core.errors import BadInput

STYLES = [str(EXAMPLES / "starry_night.jpg"), str(EXAMPLES / "great_wave.jpg")]


def loaded(width=96, height=64, alpha=None):
    return LoadedImage(np.full((height, width, 3), 128, np.float32), alpha, "<content>")


def bands(width, height, edges, feather=0.06):
    """One soft vertical band per (lo, hi) in 0..1 of the width, edges faded over ``feather``."""
    x = np.linspace(0, 1, width)[None, :].repeat(height, 0)
    return [np.clip(np.minimum((x - lo) / feather + 0.5, (hi - x) / feather + 0.5), 0, 1).astype(np.float32)
            for lo, hi in edges]


# ----- masks in -----------------------------------------------------------------------------------

def test_grey_and_alpha_masks_of_any_size_are_scaled_to_the_content(tmp_path):
    grey = Image.new("L", (48, 32), 0)
    grey.paste(255, (0, 0, 24, 32))
    grey.save(tmp_path / "grey.png")
    alpha = Image.new("RGBA", (192, 128), (0, 0, 0, 0))
    alpha.paste((10, 10, 10, 255), (96, 0, 192, 128))  # dark but opaque: the alpha decides
    alpha.save(tmp_path / "alpha.png")
    left, right = load_region_masks([tmp_path / "grey.png", tmp_path / "alpha.png"], 2, loaded())
    assert left.shape == right.shape == (64, 96)
    assert left[:, :40].min() > 0.99 and left[:, 56:].max() < 0.01
    assert right[:, 56:].min() > 0.99 and right[:, :40].max() < 0.01


def test_rest_takes_what_the_other_masks_leave():
    left = np.zeros((64, 96), np.float32)
    left[:, :48] = 1
    masks = load_region_masks([left, None], 2, loaded())
    assert np.allclose(masks[0] + masks[1], 1) and masks[1][:, 60:].min() == 1


@pytest.mark.parametrize("case, words", [
    ("count", "give one mask per style"),
    ("empty", "empty"),
    ("hidden", "not transparent"),
    ("shape", "another shape"),
    ("not-an-image", "not an image"),
    ("two-rests", "only one style"),
])
def test_bad_masks_are_refused_with_what_to_do(tmp_path, case, words):
    content = loaded()
    full = np.ones((64, 96), np.float32)
    if case == "count":
        masks, count = [full], 2
    elif case == "empty":
        masks, count = [full, np.zeros((64, 96), np.float32)], 2
    elif case == "hidden":  # white only where the content is fully transparent
        alpha = np.full((64, 96), 255, np.uint8)
        alpha[:, :48] = 0
        content = loaded(alpha=alpha)
        only_left = np.zeros((64, 96), np.float32)
        only_left[:, :40] = 1
        masks, count = [full, only_left], 2
    elif case == "shape":
        masks, count = [full, np.ones((64, 64), np.float32)], 2
    elif case == "not-an-image":
        (tmp_path / "mask.png").write_text("not a picture\n" * 10)
        masks, count = [full, tmp_path / "mask.png"], 2
    else:
        masks, count = [None, None, full], 3
    with pytest.raises(BadInput, match=words):
        load_region_masks(masks, count, content)


def test_region_weights_need_masks_and_one_per_style(random_engine):
    params = StyleParams.preset("fast", size=32, iterations=1, region_weights=(1.0, 0.5))
    with pytest.raises(BadInput, match="--style-mask"):
        random_engine.run(loaded(), STYLES, params)
    with pytest.raises(BadInput, match="one per style"):
        random_engine.run(loaded(), STYLES[:1], params, regions=[np.ones((64, 96), np.float32)])
    with pytest.raises(BadInput, match="--region-weight"):
        random_engine.run(loaded(), STYLES, params.replace(region_weights=None, style_blend=(1.0, 2.0)),
                          regions=[np.ones((64, 96), np.float32), None])


# ----- the loss -----------------------------------------------------------------------------------

def test_a_region_covering_everything_is_the_one_style_loss():
    torch.manual_seed(0)
    target = gram_matrix(torch.rand(1, 16, 20, 20))
    features = torch.rand(1, 16, 12, 18)
    one = StyleLoss(target, normalize=True)
    region = RegionStyleLoss([StyleLoss(target, normalize=True)], [torch.ones(1, 1, 48, 72)], [1.0])
    (a, fa), (b, fb) = one(features), region(features)
    assert torch.allclose(a, b, rtol=1e-5) and torch.allclose(fa, fb, rtol=1e-5)


def test_a_region_pulls_only_the_features_its_mask_covers():
    torch.manual_seed(1)
    targets = [gram_matrix(torch.rand(1, 16, 20, 20)), gram_matrix(torch.rand(1, 16, 20, 20) * 3)]
    left = torch.zeros(1, 1, 32, 64)
    left[..., :32] = 1
    features = torch.rand(1, 16, 16, 32, requires_grad=True)
    loss = RegionStyleLoss([StyleLoss(targets[0], True)], [left], [1.0])
    loss(features)[0].backward()
    assert features.grad[..., 16:].abs().max() == 0 and features.grad[..., :16].abs().max() > 0
    # Weight and coverage scale the region's part: half the weight, half the loss.
    both = RegionStyleLoss([StyleLoss(t, True) for t in targets], [left, 1 - left], [1.0, 0.5])
    half = RegionStyleLoss([StyleLoss(targets[1], True)], [1 - left], [0.5])
    full = RegionStyleLoss([StyleLoss(targets[0], True)], [left], [1.0])
    assert torch.allclose(both(features)[0], full(features)[0] + half(features)[0], rtol=1e-5)


def test_the_regions_grams_and_their_gradient_equal_autograds_of_the_plain_products():
    torch.manual_seed(2)
    flat = torch.rand(2, 8, 30, dtype=torch.float64, requires_grad=True)
    masks = torch.rand(3, 1, 1, 30, dtype=torch.float64)
    totals = [float(m.sum()) for m in masks]
    grams = regions_mod.masked_grams(flat, masks, totals)
    plain = [regions_mod.masked_gram(flat, m, t) for m, t in zip(masks, totals)]
    assert all(torch.allclose(g, p) for g, p in zip(grams, plain))
    # a loss that is not symmetric in G's entries, and one region left out of it
    weights = torch.rand(8, 8, dtype=torch.float64)
    ours = torch.autograd.grad((grams[0] * weights).sum() + grams[2].pow(2).sum(), flat)[0]
    reference = torch.autograd.grad((plain[0] * weights).sum() + plain[2].pow(2).sum(), flat)[0]
    assert torch.allclose(ours, reference)


def test_without_masks_no_region_objective_is_built(random_engine, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the one-style path built a RegionObjective")

    monkeypatch.setattr(regions_mod.RegionObjective, "__init__", refuse)
    result = random_engine.run(loaded(), STYLES[:1], StyleParams.preset("fast", size=32, iterations=2))
    assert result.stats["regions"] == 0


def test_regions_with_previews_colours_tiles_and_stop_and_keep(random_engine):
    """Every path of a run takes regions: the pyramid-free scales, colour preservation, previews, the
    tiled refinement of a layer larger than the working size, and stop-and-keep."""
    masks = bands(160, 100, [(-1, 0.5), (0.5, 2)])
    params = StyleParams.preset("fast", size=64, iterations=6, upscale="tiles", refine_iterations=2, tile_size=128,
                                tile_overlap=16, preserve_colors="luminance", region_weights=(1.0, 0.5))
    content = Image.open(EXAMPLES / "chelsea.png").convert("RGB").resize((160, 100))
    previews = []
    result = random_engine.run(content, STYLES, params, regions=masks, preview_every=0,
                               on_progress=lambda e: previews.append(e) if e.event == "preview" else None)
    assert result.stats["regions"] == 2 and result.stats["upscale"] == "tiles" and result.stats["tiles"] > 1
    assert result.image.size == (160, 100) and previews and previews[-1].image.size == (160, 100)
    calls = []
    stopped = random_engine.run(content, STYLES, params, regions=masks,
                                should_finish=lambda: calls.append(1) or len(calls) > 3)
    assert stopped.stats["stop_reason"] == "stopped" and stopped.image.size == (160, 100)


# ----- proof with real features -----------------------------------------------------------------------

SIZE = 160
THIRDS = [(-1, 1 / 3), (2 / 3, 2)]  # style A on the left third, B on the right; the middle stays the photo


@pytest.fixture(scope="module")
def real_runs(real_weights):
    """One two-region run at 160 px."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    engine = Stylizer("vgg16", str(real_weights), "caffe", "cpu")
    content = Image.open(EXAMPLES / "chelsea.png").convert("RGB")
    width, height = content.size
    params = StyleParams.preset("fast", size=SIZE, iterations=60, multiscale=False, converge=False)
    content = content.resize((SIZE, round(SIZE * height / width)), Image.Resampling.LANCZOS)
    masks = bands(*content.size, THIRDS, feather=0.12)
    ours = engine.run(content, STYLES, params, regions=masks)
    return {"content": np.asarray(content, np.float32), "ours": np.asarray(ours.image, np.float32)}


def crops(image, width):
    """Inside A, the middle (the photo's), inside B: away from the feathered edges."""
    return {"A": image[:, : int(0.25 * width)], "photo": image[:, int(0.42 * width): int(0.58 * width)],
            "B": image[:, int(0.75 * width):]}


@pytest.mark.realweights
@pytest.mark.slow
def test_each_region_takes_its_own_style_and_the_uncovered_part_stays_the_photo(real_runs):
    judge = evaluate.Evaluator(size=SIZE)
    width = real_runs["content"].shape[1]
    out, content = crops(real_runs["ours"], width), crops(real_runs["content"], width)
    style = {name: [judge(out[name], content[name], s)[0] for s in STYLES] for name in out}
    # Masks ignored, the two styles would be mixed everywhere (about equal distances); swapped, reversed.
    assert style["A"][0] < 0.75 * style["A"][1], style
    assert style["B"][1] < 0.75 * style["B"][0], style
    changed = {name: judge(out[name], content[name], STYLES[0])[1] for name in out}
    assert changed["photo"] < 0.4 * min(changed["A"], changed["B"]), changed


def column_profiles(image):
    """Per column: mean grey level and mean squared gradient (the texture's energy), over the rows."""
    grey = image.mean(axis=2)
    gx = np.zeros_like(grey)
    gx[:, 1:-1] = (grey[:, 2:] - grey[:, :-2]) / 2
    gy = np.zeros_like(grey)
    gy[1:-1] = (grey[2:] - grey[:-2]) / 2
    return grey.mean(axis=0), (gx ** 2 + gy ** 2).mean(axis=0)


def smoothed(profile, width=5):
    return np.convolve(profile, np.ones(width) / width, mode="valid")


@pytest.mark.realweights
@pytest.mark.slow
def test_the_boundary_of_two_feathered_regions_shows_no_seam(tmp_path, real_weights):
    """Two styles meeting at one feathered edge: across it the mean colour steps no more than it varies
    inside the regions; the texture's energy neither fades (two textures averaged lose contrast, as
    where two separate runs are composited with the same mask) more than the composite's does, nor
    rises to a halo above what the regions have inside."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    engine = Stylizer("vgg16", str(real_weights), "caffe", "cpu")
    content = Image.open(EXAMPLES / "chelsea.png").convert("RGB")
    content = content.resize((SIZE, round(SIZE * content.size[1] / content.size[0])), Image.Resampling.LANCZOS)
    width, height = content.size
    left, right = bands(width, height, [(-1, 0.5), (0.5, 2)], feather=0.2)
    params = StyleParams.preset("fast", size=SIZE, iterations=60, multiscale=False, converge=False)
    ours = np.asarray(engine.run(content, STYLES, params, regions=[left, right]).image, np.float32)
    a, b = (np.asarray(engine.run(content, [s], params).image, np.float32) for s in STYLES)
    composite = a * left[:, :, None] + b * right[:, :, None]
    edge = slice(int(0.42 * width), int(0.58 * width))
    inside = [slice(int(0.05 * width), int(0.3 * width)), slice(int(0.7 * width), int(0.95 * width))]

    def energy(image):
        profile = smoothed(column_profiles(image)[1])
        return profile[edge], [profile[s] for s in inside]

    def colour_step(image):
        mean = smoothed(column_profiles(image)[0])
        steps = np.abs(np.diff(mean))
        return steps[edge].max(), max(steps[s].max() for s in inside)

    at_edge, within = colour_step(ours)
    assert at_edge <= 1.5 * within + 1.0, (at_edge, within)
    at_edge, within = energy(ours)
    composite_edge, _ = energy(composite)
    assert at_edge.min() >= 0.8 * composite_edge.min(), (at_edge.min(), composite_edge.min())
    assert at_edge.min() >= 0.5 * np.mean([w.mean() for w in within]), (at_edge.min(), [w.mean() for w in within])
    assert at_edge.max() <= 1.3 * max(w.max() for w in within), (at_edge.max(), [w.max() for w in within])
