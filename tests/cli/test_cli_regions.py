"""``nst-core stylize --style-mask``: regions on the command line (docs/PROTOCOL.md, *Regions*), on the
real CLI with the untrained network at a tiny size: the options, the errors, the stats."""

import numpy as np
import pytest
from PIL import Image

from helpers.engine_runs import check_error_run, folder_listing, run_engine
from helpers.pictures import make_content, make_style
from helpers.protocol_checks import parse_jsonl

QUICK = ("--size", "64", "--iterations", "2", "--device", "cpu", "--weights", "random", "--no-ssim",
         "--progress", "jsonl")


@pytest.fixture
def inputs(tmp_path):
    make_content().save(tmp_path / "content.png")  # 96 x 64
    make_style().save(tmp_path / "a.png")
    make_style(seed=7).save(tmp_path / "b.png")
    left = np.zeros((32, 48), np.uint8)
    left[:, :24] = 255
    Image.fromarray(left, "L").save(tmp_path / "left.png")  # half the content's size: scaled up
    (tmp_path / "out").mkdir()
    return tmp_path


def test_two_regions_one_of_them_the_rest_run_and_say_so(inputs):
    out = inputs / "out" / "result.png"
    proc = run_engine("stylize", inputs / "content.png", inputs / "a.png", inputs / "b.png", "-o", out,
                      "--style-mask", inputs / "left.png", "rest", "--region-weight", "1", "0.5", *QUICK)
    assert proc.returncode == 0, proc.stderr
    done = parse_jsonl(proc.stdout)[-1]
    assert done["event"] == "done" and done["stats"]["regions"] == 2
    assert done["stats"]["params"]["region_weights"] == [1.0, 0.5]
    assert Image.open(out).size == (96, 64)


def _blank(folder):
    Image.new("L", (96, 64), 0).save(folder / "blank.png")
    return folder / "blank.png"


def _square(folder):
    Image.new("L", (64, 64), 255).save(folder / "square.png")
    return folder / "square.png"


def _text(folder):
    (folder / "mask.png").write_text("not a picture\n" * 20)
    return folder / "mask.png"


# id: (the masks, extra options, words the message must contain)
BAD = {
    "count": (lambda f: [f / "left.png"], (), ("1 mask(s) for 2 style", "one mask per style")),
    "all-black": (lambda f: [f / "left.png", _blank(f)], (), ("empty", "paint the region")),
    "other-shape": (lambda f: [f / "left.png", _square(f)], (), ("another shape",)),
    "not-an-image": (lambda f: [f / "left.png", _text(f)], (), ("not an image",)),
    "missing": (lambda f: [f / "left.png", f / "nope.png"], (), ("not found",)),
    "two-rests": (lambda f: ["rest", "rest"], (), ("more than once",)),
    "weights-count": (lambda f: [f / "left.png", "rest"], ("--region-weight", "1"), ("one per style",)),
    "weights-without-masks": (lambda f: None, ("--region-weight", "1", "2"), ("--style-mask",)),
    "blend-with-masks": (lambda f: [f / "left.png", "rest"], ("--style-blend", "1", "2"), ("--region-weight",)),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_regions_are_one_line_errors_and_no_output(inputs, case):
    make_masks, extra, words = BAD[case]
    masks = make_masks(inputs)
    out = inputs / "out" / "result.png"
    before = folder_listing(out.parent)
    mask_args = ("--style-mask", *masks) if masks is not None else ()
    proc = run_engine("stylize", inputs / "content.png", inputs / "a.png", inputs / "b.png", "-o", out,
                      *mask_args, *extra, *QUICK)
    check_error_run(proc, "bad_input", *words)
    assert folder_listing(out.parent) == before and not out.exists()
