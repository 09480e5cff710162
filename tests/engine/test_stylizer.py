"""The engine through its library API, with an untrained network (same code paths, no download)."""

import numpy as np
import pytest
import torch

from helpers.pictures import make_content, make_style
from nst_core import BadInput, Cancelled, StyleParams
from nst_core.engine.color import rgb_to_yiq
from nst_core.engine.stylizer import stylize

QUICK = dict(size=64, iterations=8, multiscale=False)


def run(engine, content=None, styles=None, preview_every=None, **changes):
    params = StyleParams.preset("standard", **{**QUICK, **changes})
    events = []
    result = engine.run(content or make_content(), styles or [make_style()], params, on_progress=events.append,
                        preview_every=preview_every)
    return result, events


def test_a_short_run_lowers_the_loss(random_engine):
    result, events = run(random_engine, iterations=12)
    losses = [e.loss for e in events if e.event == "progress"]
    assert len(losses) == 12
    assert min(losses) < 0.8 * losses[0]
    # The lowest-loss iterate is returned: one of those reported, or the last step's result if lower.
    assert result.stats["loss"] <= min(losses) + 1e-12
    if result.stats["best_iteration"] <= 12:
        assert result.stats["loss"] == pytest.approx(losses[result.stats["best_iteration"] - 1])


def test_adam_with_the_papers_settings_lowers_the_loss_too():
    from nst_core.engine.stylizer import Stylizer

    # The paper's raw weights and eps=0.1 assume Caffe-scale activations (inputs in 0..255).
    caffe_scale = Stylizer("vgg19", "random", "caffe", "cpu")
    _, events = run(caffe_scale, iterations=12, optimizer="adam", learning_rate=5.0, adam_betas=(0.99, 0.999),
                    adam_eps=0.1, loss_normalization="raw", content_weight=1e3, style_weight=1e-2, precision="fp32")
    losses = [e.loss for e in events if e.event == "progress"]
    assert losses[-1] < losses[0] and all(b <= a * 1.001 for a, b in zip(losses, losses[1:]))


def test_same_seed_same_result(random_engine):
    a, _ = run(random_engine, init="noise", seed=7)
    b, _ = run(random_engine, init="noise", seed=7)
    c, _ = run(random_engine, init="noise", seed=8)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_progress_events_describe_the_run(random_engine):
    _, events = run(random_engine, iterations=20, multiscale=True, min_scale_size=48, size=96, use_ssim=True)
    start = events[0]
    assert start.event == "start" and start.working_size == (96, 64) and len(start.scales) >= 2
    progress = [e for e in events if e.event == "progress"]
    assert [e.iteration for e in progress] == list(range(1, 21)) and progress[-1].total == 20
    fractions = [e.fraction for e in progress]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert progress[0].eta is None and all(e.eta is not None for e in progress[1:])
    assert all(len(e.ssim_factors) == 5 and all(0 <= f <= 1 for f in e.ssim_factors) for e in progress)
    assert sorted({e.scale for e in progress}) == list(range(len(start.scales)))
    assert all(e.image is not None and e.image.shape[1] == 3 for e in progress)
    assert "image" not in progress[0].as_dict(), "iterates stay out of the protocol"


def test_no_ssim_reports_no_factors(random_engine):
    _, events = run(random_engine, iterations=2, use_ssim=False)
    assert all(e.ssim_factors == [] for e in events if e.event == "progress")


def test_alpha_is_carried_unchanged_and_the_result_has_the_contents_size(random_engine):
    content = make_content(160, 100, alpha=True)
    for upscale in ("resize", "detail", "tiles"):
        result, _ = run(random_engine, content=content, size=64, iterations=2, upscale=upscale,
                        refine_iterations=1, tile_size=128, tile_overlap=16)
        assert result.image.size == (160, 100) and result.image.mode == "RGBA"
        assert np.array_equal(np.asarray(result.image)[:, :, 3], np.asarray(content)[:, :, 3])
        assert result.stats["upscale"] == upscale
        assert result.stats["working_size"] == [64, 40]
    assert result.stats["tiles"] == 2


def test_stylised_pixels_differ_from_the_content(random_engine):
    content = make_content()
    result, _ = run(random_engine, content=content, iterations=10)
    diff = np.abs(np.asarray(result.image, dtype=float) - np.asarray(content, dtype=float)).mean()
    assert diff > 2.0


def test_luminance_colour_preservation_keeps_the_contents_chroma(random_engine):
    content = make_content()
    result, _ = run(random_engine, content=content, iterations=20, preserve_colors="luminance")
    got = rgb_to_yiq(np.asarray(result.image, dtype=np.float32))
    want = rgb_to_yiq(np.asarray(content, dtype=np.float32))
    inside = (np.asarray(result.image).min(axis=2) > 8) & (np.asarray(result.image).max(axis=2) < 247)  # unclipped
    assert np.abs(got[..., 1:][inside] - want[..., 1:][inside]).mean() < 1.5
    assert np.abs(got[..., 0] - want[..., 0]).mean() > 0.5, "the luminance was stylised"


def test_several_styles_blend_and_are_checked(random_engine):
    styles = [make_style(seed=1), make_style(seed=2)]
    result, _ = run(random_engine, styles=styles, iterations=2, style_blend=(0.7, 0.3))
    assert result.image.size == (96, 64)
    with pytest.raises(BadInput, match="2 style image"):
        run(random_engine, styles=styles, iterations=2, style_blend=(1.0,))


def test_style_targets_are_cached_between_runs(random_engine, monkeypatch):
    run(random_engine, iterations=1)
    calls = []
    original = random_engine.features

    def counting(image, layers, params):
        calls.append(tuple(layers))
        return original(image, layers, params)

    monkeypatch.setattr(random_engine, "features", counting)
    run(random_engine, iterations=1)
    style_passes = [c for c in calls if tuple(c) == StyleParams().style_layers]
    assert style_passes == [], "the second run reuses the style Grams"


def test_should_stop_cancels_within_one_iteration(random_engine):
    seen = []

    def on_progress(event):
        if event.event == "progress":
            seen.append(event.iteration)

    with pytest.raises(Cancelled):
        random_engine.run(make_content(), [make_style()], StyleParams(**QUICK, ),
                          on_progress=on_progress, should_stop=lambda: len(seen) >= 3)
    assert seen == [1, 2, 3]


def test_one_call_function_writes_the_output(tmp_path, content_png, style_png):
    out = tmp_path / "out.png"
    result = stylize(content_png, [style_png], StyleParams(**QUICK), output=out, weights="random", device="cpu",
                     backbone="vgg16")
    assert out.is_file() and result.stats["output"] == str(out) and result.stats["backbone"] == "vgg16"
    with pytest.raises(BadInput, match="one of the input images"):
        stylize(content_png, [style_png], StyleParams(**QUICK), output=content_png, weights="random")


def test_memory_cap_shrinks_the_working_size_and_says_so(random_engine, monkeypatch):
    from nst_core.engine import devices

    monkeypatch.setattr(devices, "free_bytes", lambda device: 64 * 48 * devices.bytes_per_pixel("vgg19", "lbfgs") / 0.6)
    result, events = run(random_engine, content=make_content(192, 144), size=192, iterations=1, upscale="resize",
                         precision="fp32")
    assert result.stats["capped"] and result.stats["working_size"][0] <= 64
    assert any(e.event == "warning" and "capped" in e.message for e in events)
    assert result.image.size == (192, 144)


def test_the_halved_copys_memory_is_set_aside_only_where_a_copy_is_made(random_engine, monkeypatch):
    from nst_core.engine import devices
    from nst_core.engine.images import as_loaded

    content = as_loaded(np.zeros((1500, 2000, 3), np.float32), "content")
    for limit, long_side_without in ((300 * 225, 300), (800 * 600, 800)):
        monkeypatch.setattr(devices, "max_pixels", lambda *args, limit=limit, **kwargs: limit)
        without = random_engine._plan(content, StyleParams.preset("standard", size=2000, pyramid=False)).working_size
        with_copy = random_engine._plan(content, StyleParams.preset("standard", size=2000)).working_size
        assert abs(without[0] - long_side_without) <= 2
        if long_side_without < 400:  # no copy at this size: the whole limit
            assert with_copy == without
        else:  # a copy: its activations' room is set aside, a quarter of the area
            assert with_copy[0] * with_copy[1] <= 0.75 * limit < without[0] * without[1]


def test_out_of_memory_retries_smaller(random_engine, monkeypatch):
    original = random_engine._run_once
    sizes = []

    def flaky(content, styles, blend, params, emit, should_stop):
        sizes.append(params.size)
        if len(sizes) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(content, styles, blend, params, emit, should_stop)

    monkeypatch.setattr(random_engine, "_run_once", flaky)
    result, events = run(random_engine, size=96, iterations=1)
    assert sizes == [96, 67] and any("retrying at 67" in e.message for e in events if e.event == "warning")


def test_out_of_memory_retries_below_the_size_that_ran(random_engine, monkeypatch):
    # The content (96 px wide) is smaller than the requested 512: the retry must shrink from 96, not 512.
    original = random_engine._run_once
    working = []

    def flaky(content, styles, blend, params, emit, should_stop):
        working.append(max(random_engine._plan(content, params).working_size))
        if len(working) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(content, styles, blend, params, emit, should_stop)

    monkeypatch.setattr(random_engine, "_run_once", flaky)
    _, events = run(random_engine, content=make_content(96, 72), size=512, iterations=1)
    assert working == [96, 67]
    assert any("out of memory at 96 px; retrying at 67" in e.message for e in events if e.event == "warning")


def test_features_are_frozen(random_engine):
    assert all(not p.requires_grad for p in random_engine.net.parameters())
    assert isinstance(random_engine.net.features[-1], torch.nn.ReLU)
    assert len(random_engine.net.features) == 32, "VGG-19 is cut after relu5_2 (index 31)"


def test_best_iteration_is_a_step_that_happened(random_engine):
    # The result of the last of 12 steps was once reported as step 13.
    result, events = run(random_engine, iterations=12)
    losses = [e.loss for e in events if e.event == "progress"]
    best = result.stats["best_iteration"]
    assert 0 <= best <= 12
    assert losses[-1] < losses[0], "the loss fell, so the best iterate came from a step"
    assert best >= 1 and result.stats["loss"] == losses[best - 1], "progress event k reports the image after k steps"


def test_best_iteration_counts_the_steps_of_every_scale(random_engine):
    result, events = run(random_engine, iterations=20, multiscale=True, min_scale_size=48, size=96)
    progress = [e for e in events if e.event == "progress"]
    last_scale_starts = min(e.iteration for e in progress if e.scale == progress[-1].scale) - 1
    assert last_scale_starts <= result.stats["best_iteration"] <= 20
    if result.stats["best_iteration"] > last_scale_starts:
        assert result.stats["loss"] == progress[result.stats["best_iteration"] - 1].loss


def test_a_run_leaves_the_global_random_state_alone(random_engine):
    torch.manual_seed(1234)
    torch.rand(5)
    before = torch.random.get_rng_state()
    run(random_engine, iterations=2, init="noise", seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_cudnn_autotuning_lasts_for_the_run_only():
    from nst_core.engine.stylizer import _cudnn_autotune

    saved = torch.backends.cudnn.benchmark
    with _cudnn_autotune(torch.device("cuda")):  # only the flag is touched: no GPU needed
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark == saved
    with _cudnn_autotune(torch.device("cpu")):
        assert torch.backends.cudnn.benchmark == saved


def test_cpu_fallback_is_for_that_run_only(random_engine, monkeypatch):
    """A GPU run that runs out of memory even small finishes on the CPU; the engine stays on its device."""
    from nst_core.engine import devices

    pretend_gpu = torch.device("cuda")  # never used for tensors: every attempt on it fails first
    attempts = []

    def out_of_memory(content, styles, blend, params, emit, should_stop):
        attempts.append((params.size, torch.backends.cudnn.benchmark))
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(random_engine, "device", pretend_gpu)
    monkeypatch.setattr(random_engine, "_run_once", out_of_memory)
    monkeypatch.setattr(devices, "free_bytes", lambda device: 2**34)
    monkeypatch.setattr(devices, "release_cached", lambda device: None)
    net, cached = random_engine.net, random_engine.style_cache.keys()
    cudnn_before = torch.backends.cudnn.benchmark
    result, events = run(random_engine, size=96, iterations=2)
    assert [size for size, _ in attempts] == [96, 67] and all(tuned for _, tuned in attempts)
    assert any("continuing on the CPU" in e.message for e in events if e.event == "warning")
    assert result.stats["device"] == "cpu" and result.image.size == (96, 64)
    assert random_engine.device == pretend_gpu and random_engine.net is net
    assert all(p.device.type == "cpu" for p in net.parameters()), "the engine's network was not moved"
    assert random_engine.style_cache.keys() == cached, "the CPU run's targets stay out of the engine's cache"
    assert torch.backends.cudnn.benchmark == cudnn_before


def test_should_finish_ends_the_run_with_the_best_iterate_so_far(random_engine):
    content = make_content(160, 100)
    progress = []

    def on_progress(event):
        if event.event == "progress":
            progress.append(event)

    params = StyleParams(**{**QUICK, "iterations": 30, "upscale": "tiles", "refine_iterations": 2,
                            "tile_size": 128, "tile_overlap": 16})
    result = random_engine.run(content, [make_style()], params, on_progress=on_progress,
                               should_finish=lambda: len(progress) >= 3)
    stats = result.stats
    assert stats["stop_reason"] == "stopped" and stats["iterations"] == 30 + 2 * 2
    assert stats["steps"] == len(progress) <= 4, "it finished within one step of being told"
    assert [e.iteration for e in progress] == list(range(1, stats["steps"] + 1))
    assert 0 <= stats["best_iteration"] <= stats["steps"]
    if stats["best_iteration"]:
        assert stats["loss"] == progress[stats["best_iteration"] - 1].loss
    assert {e.phase for e in progress} == {"stylize"}, "the tile refinement is skipped"
    assert stats["upscale"] == "detail" and stats["tiles"] == 0 and result.image.size == (160, 100)


def test_a_run_to_its_end_says_so(random_engine):
    result, _ = run(random_engine, iterations=3)
    assert result.stats["stop_reason"] == "max_iterations" and result.stats["steps"] == 3


def test_previews_show_the_best_iterate_finished_like_the_result(random_engine):
    content = make_content(alpha=True)
    result, events = run(random_engine, content=content, iterations=6, preserve_colors="luminance",
                         preview_every=0.0)
    previews = [e for e in events if e.event == "preview"]
    progress = [e for e in events if e.event == "progress"]
    assert len(previews) == len(progress) == 6, "with no interval, one per step"
    for seen, preview in enumerate(previews, 1):  # each follows the progress event of its step
        assert preview.image.size == preview.size == content.size and preview.image.mode == "RGBA"
        assert np.array_equal(np.asarray(preview.image)[:, :, 3], np.asarray(content)[:, :, 3])
        assert preview.loss <= min(e.loss for e in progress[:seen]), "the best so far"
        assert preview.iteration == 0 or preview.loss == progress[preview.iteration - 1].loss
    assert "image" not in previews[0].as_dict()
    assert np.array_equal(np.asarray(previews[-1].image), np.asarray(result.image)), "the last preview is the result"


def test_previews_are_throttled_and_the_first_comes_after_the_first_step(random_engine):
    _, events = run(random_engine, content=make_content(160, 100), iterations=5, upscale="tiles",
                    refine_iterations=1, tile_size=128, tile_overlap=16, preview_every=3600.0)
    names = [e.event for e in events]
    assert names.count("preview") == 1 and names.index("preview") == names.index("progress") + 1
    preview = events[names.index("preview")]
    assert preview.image.size == (160, 100) and preview.iteration in (0, 1), "the best of the start and step 1"


def test_a_converged_run_stops_early_and_says_so(random_engine):
    """Iterations are a maximum; each scale ends once its best picture stops changing, the
    coarse one handing over early, and the stats say why the run stopped and after how many steps."""
    from nst_core.engine.schedule import plan_stages

    # An untrained network moves the pixels a lot for long (5 grey levels per 10 steps after 50): loose limits.
    loose = dict(converge_loss_change=0.2, converge_pixel_change=12.0)
    result, events = run(random_engine, iterations=200, multiscale=True, min_scale_size=40, size=64, **loose)
    progress = [e for e in events if e.event == "progress"]
    stats = result.stats
    assert stats["stop_reason"] == "converged" and stats["iterations"] == 200
    assert stats["steps"] == len(progress) < 200
    assert [e.iteration for e in progress] == list(range(1, stats["steps"] + 1))
    assert 0 <= stats["best_iteration"] <= stats["steps"]
    planned = plan_stages(tuple(stats["working_size"]), 200, True, min_long_side=40, coarse_share=0.3, max_scales=3)
    assert len(planned) >= 2
    coarse_steps = sum(1 for e in progress if e.scale == 0)
    assert 10 < coarse_steps < planned[0].iterations, "the coarse scale handed over early, after a full window"

    everything, events = run(random_engine, iterations=15, converge=False, **loose)
    assert everything.stats["stop_reason"] == "max_iterations" and everything.stats["steps"] == 15
    assert len([e for e in events if e.event == "progress"]) == 15


def test_style_strength_sets_the_balance_and_a_given_weight_wins(random_engine):
    strong, _ = run(random_engine, iterations=2, style_strength=8.0)
    assert (strong.stats["content_weight"], strong.stats["style_weight"]) == (
        1.0, StyleParams.preset("standard").weights()[1] * 8)
    plain, _ = run(random_engine, iterations=2, use_ssim=False)
    assert plain.stats["style_weight"] == 8.0, "the plain Gram loss's own calibrated middle"
    given, events = run(random_engine, iterations=2, style_strength=8.0, style_weight=3.0)
    assert given.stats["style_weight"] == 3.0
    warnings = [e.message for e in events if e.event == "warning"]
    assert len(warnings) == 1 and "style strength 8 ignored" in warnings[0]


def test_a_large_scale_is_also_matched_as_a_halved_copy_with_the_same_balance(random_engine):
    from nst_core.engine.images import resize, smaller_copy, to_tensor
    from nst_core.engine.schedule import Stage
    from nst_core.engine.stylizer import StyleSet

    params = StyleParams.preset("standard")
    content = resize(to_tensor(np.array(make_content()), "cpu"), (160, 96))
    style = StyleSet([to_tensor(np.array(make_style()), "cpu")], [None], [1.0], ["s"])
    plain = random_engine.scale_objective(content, style, Stage((160, 96), 10), params)
    both = random_engine.scale_objective(content, style, Stage((160, 96), 10, copies=((80, 48),)), params)
    half = random_engine.scale_objective(smaller_copy(content, (80, 48)), style, Stage((80, 48), 10), params)
    image = content + 20 * torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    _, parts_plain = random_engine.loss(image, plain, params)
    _, parts_both = random_engine.loss(image, both, params)
    _, parts_half = random_engine.loss(smaller_copy(image, (80, 48)), half, params)
    # Each term is the mean of the full-size one and the halved copy's, against the content and the
    # style rendered at the copy's size; the SSIM factors reported are the full size's.
    for term in ("content", "style"):
        assert float(parts_both[term]) == pytest.approx((float(parts_plain[term]) + float(parts_half[term])) / 2,
                                                       rel=1e-4)
    assert float(parts_half["style"]) != pytest.approx(float(parts_plain["style"]), rel=1e-2)
    assert [float(f) for f in parts_both["factors"]] == pytest.approx([float(f) for f in parts_plain["factors"]])
    # The halved copy has gradients: the loss moves the image through it.
    image.requires_grad_(True)
    total, _ = random_engine.loss(image, both, params)
    total.backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0


def test_the_plan_gives_halved_copies_to_large_scales_only_and_the_paper_none(random_engine):
    from nst_core.engine.images import as_loaded

    content = as_loaded(np.zeros((300, 451, 3), np.float32), "content")
    stages = random_engine._plan(content, StyleParams.preset("standard")).stages
    assert [s.copies for s in stages] == [(), (), ((226, 150),)]
    assert all(s.copies == () for s in random_engine._plan(content, StyleParams.preset("paper")).stages)
    no_pyramid = StyleParams.preset("standard", pyramid=False)
    assert all(s.copies == () for s in random_engine._plan(content, no_pyramid).stages)
