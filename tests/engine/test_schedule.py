import math

import pytest

from nst_core.engine.schedule import fit_long_side, plan_stages, working_size
from nst_core.engine.tiles import feather, tile_grid


def test_stages_grow_by_sqrt2_to_the_final_size_and_share_the_budget():
    stages = plan_stages((512, 384), 500, coarse_share=1.6)
    longs = [max(s.size) for s in stages]
    assert longs[-1] == 512 and stages[-1].size == (512, 384)
    assert longs[0] >= 128 and longs[0] / math.sqrt(2) < 128
    for small, large in zip(longs, longs[1:]):
        assert large / small == pytest.approx(math.sqrt(2), rel=0.02)
    assert sum(s.iterations for s in stages) == 500
    counts = [s.iterations for s in stages]
    assert counts == sorted(counts, reverse=True), "coarse, cheap scales get more steps"
    times = [s.iterations * s.pixels for s in stages]
    assert times[-1] > times[0], "but less time in all than the fine ones"


def default_plan(size):
    """The stages the standard preset plans for a working size."""
    from nst_core import StyleParams

    p = StyleParams()
    return plan_stages(size, p.iterations, p.multiscale, p.scale_step, p.min_scale_size, p.coarse_share, p.max_scales)


def test_the_default_schedule_starts_at_half_size_and_spends_most_steps_at_full_size():
    from nst_core import StyleParams

    p = StyleParams()
    stages = default_plan((512, 384))
    assert [max(s.size) for s in stages] == [256, 362, 512]
    assert stages[-1].iterations / p.iterations > 0.7
    assert sum(s.iterations for s in stages) == p.iterations
    equal = [s.iterations for s in plan_stages((512, 384), 500)]
    assert len(equal) == 5 and max(equal) - min(equal) <= 1


def test_single_scale_and_small_budgets():
    assert [s.size for s in plan_stages((512, 384), 500, multiscale=False)] == [(512, 384)]
    assert len(plan_stages((512, 384), 3)) == 1, "3 steps are not shared between scales"
    assert sum(s.iterations for s in plan_stages((512, 384), 25)) == 25
    assert len(plan_stages((100, 80), 500)) == 1, "an image below the first scale has one scale"


def test_working_size_never_exceeds_content_nor_memory():
    assert working_size((4000, 3000), 512) == ((512, 384), False)
    assert working_size((300, 200), 512) == ((300, 200), False)
    size, capped = working_size((4000, 3000), 4000, max_pixels=1_000_000)
    assert capped and size[0] * size[1] <= 1_000_000 and size[0] / size[1] == pytest.approx(4 / 3, rel=0.01)
    assert fit_long_side((200, 100), 50) == (50, 25)


@pytest.mark.parametrize("size", [(1000, 700), (512, 512), (513, 300), (4096, 3072)])
def test_tiles_cover_the_image_with_overlap(size):
    tiles = tile_grid(size, 512, 64)
    covered = set()
    for x, y, w, h in tiles:
        assert x >= 0 and y >= 0 and x + w <= size[0] and y + h <= size[1]
        covered.update((x + dx, y + dy) for dx in (0, w - 1) for dy in (0, h - 1))
    xs = sorted({t[0] for t in tiles})
    widths = {t[2] for t in tiles}
    assert xs[0] == 0 and xs[-1] + max(widths) == size[0]
    for a, b in zip(xs, xs[1:]):
        assert a + max(widths) - b >= 64, "neighbours overlap by at least the feather width"


def test_feather_weights_are_positive_and_ramp_at_the_edges():
    weights = feather(100, 80, 16, "cpu")[0, 0]
    assert weights.min() > 0 and weights[40, 50] == 1.0
    assert weights[40, 0] < weights[40, 8] < weights[40, 16]


def test_the_default_runs_a_256_px_request_on_one_scale_and_451_px_on_three():
    assert [max(s.size) for s in default_plan((256, 170))] == [256]
    assert [max(s.size) for s in default_plan((451, 300))] == [225, 319, 451]


def test_scales_of_twice_the_pyramids_least_side_get_halved_copies():
    from nst_core.engine.schedule import halved_copies

    assert halved_copies((451, 300), 200) == ((226, 150),)  # 225.5 rounds up
    assert halved_copies((1024, 683), 200) == ((512, 342), (256, 171))
    assert halved_copies((319, 212), 200) == () and halved_copies((256, 170), 200) == ()
    stages = plan_stages((451, 300), 500, min_long_side=200, coarse_share=0.3, max_scales=3, copies_from=200)
    assert [s.copies for s in stages] == [(), (), ((226, 150),)]
    assert stages[-1].cost == 451 * 300 + 226 * 150 and stages[0].cost == stages[0].pixels
    assert all(s.copies == () for s in plan_stages((451, 300), 500, min_long_side=200))  # off by default
