"""``nst-core stylize-frames`` (docs/PROTOCOL.md, *Frames*), on the real CLI in subprocesses with the
untrained network at a tiny size: the event stream, the files, stopping and refusals, not the picture."""

import hashlib
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from helpers.animation import make_animation
from helpers.engine_runs import QUICK, LiveEngine, check_error_run, folder_listing, run_engine
from helpers.protocol_checks import documented_events, documented_frame_events, parse_jsonl
from helpers.repo import EXAMPLES

TINY = ("--iterations", "4", *QUICK, "--size", "32", "--progress", "jsonl")


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    pictures, _ = make_animation(EXAMPLES / "coffee.png", (48, 32), 3)
    paths = []
    for index, picture in enumerate(pictures):
        paths.append(folder / f"frame-{index:02d}.png")
        picture.save(paths[-1])
    style = folder / "style.png"
    Image.open(EXAMPLES / "great_wave.jpg").convert("RGB").resize((40, 27)).save(style)
    return paths, style


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_run_styles_every_frame_in_order_with_the_documented_events(frames, tmp_path):
    paths, style = frames
    before = digests(paths[0].parent)
    out = tmp_path / "styled"
    proc = run_engine("stylize-frames", *paths, style, "-o", out, *TINY)
    assert proc.returncode == 0, proc.stderr
    events = parse_jsonl(proc.stdout)
    kinds = [e["event"] for e in events if e["event"] != "progress"]
    assert kinds == ["frame_start", "start", "frame_done"] * 3 + ["done"]
    table, single = documented_frame_events(), documented_events()
    assert set(table) == {"frame_start", "progress", "frame_done", "done"}
    for event in events:
        if event["event"] in table:
            assert table[event["event"]] <= set(event), (event["event"], table[event["event"]] - set(event))
        if event["event"] == "progress":
            assert single["progress"][0] <= set(event)
    starts = [e for e in events if e["event"] == "frame_start"]
    assert [e["frame"] for e in starts] == [1, 2, 3] and [e["mode"] for e in starts] == ["first", "flow", "flow"]
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["sequence_fraction"] for e in progress] == sorted(e["sequence_fraction"] for e in progress)
    done = events[-1]
    assert [p.split("/")[-1] for p in done["outputs"]] == [p.name for p in paths]
    assert done["stats"]["frames_done"] == 3 and done["stats"]["stop_reason"] == "done"
    for path in done["outputs"]:
        assert Image.open(path).size == (48, 32)
    assert digests(paths[0].parent) == before  # the inputs are untouched


def test_previews_show_the_frame_being_styled_and_are_removed_at_the_end(frames, tmp_path):
    paths, style = frames
    out = tmp_path / "styled"
    proc = run_engine("stylize-frames", *paths, style, "-o", out, *TINY, "--preview-every", "0")
    assert proc.returncode == 0, proc.stderr
    events = parse_jsonl(proc.stdout)
    previews = [e for e in events if e["event"] == "preview"]
    frame_of_preview, frame = [], 0
    for event in events:
        frame = event["frame"] if event["event"] == "frame_start" else frame
        if event["event"] == "preview":
            frame_of_preview.append(frame)
    assert set(frame_of_preview) == {1, 2, 3} and all(e["size"] == [48, 32] for e in previews)
    assert all(str(tmp_path) == str(Path(e["path"]).parent) for e in previews)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "styled"]  # the previews are gone


def test_cancel_writes_nothing_and_removes_no_folder_it_did_not_make(frames, tmp_path):
    paths, style = frames
    out = tmp_path / "styled"
    engine = LiveEngine("stylize-frames", *paths, style, "-o", out, "--iterations", "100000", "--no-converge",
                        *QUICK, "--progress", "jsonl", stdin=subprocess.PIPE)
    try:
        engine.wait_for("progress")
        engine.proc.stdin.write("cancel\n")
        engine.proc.stdin.flush()
        code, _, events = engine.finish(timeout=30)
    finally:
        engine.kill()
        engine.proc.stdin.close()
    assert code == 4 and events[-1]["event"] == "error" and events[-1]["code"] == "cancelled", events[-3:]
    assert folder_listing(out) is None


def test_stop_keeps_the_frame_being_styled_and_styles_no_more(frames, tmp_path):
    paths, style = frames
    out = tmp_path / "styled"
    out.mkdir()
    engine = LiveEngine("stylize-frames", *paths, style, "-o", out, "--iterations", "100000", "--no-converge",
                        *QUICK, "--progress", "jsonl", stdin=subprocess.PIPE)
    try:
        engine.wait_for("progress")
        engine.proc.stdin.write("stop\n")
        engine.proc.stdin.flush()
        code, _, events = engine.finish(timeout=30)
    finally:
        engine.kill()
        engine.proc.stdin.close()
    assert code == 0, (events[-3:], "".join(engine.stderr)[-2000:])
    assert events[-1]["event"] == "done" and events[-1]["stats"]["stop_reason"] == "stopped"
    assert folder_listing(out) == [paths[0].name]


@pytest.mark.parametrize("case", ["output-is-the-input-folder", "one-image", "sizes-differ", "output-is-a-file"])
def test_bad_input_is_refused_before_any_work(frames, tmp_path, case):
    paths, style = frames
    out = tmp_path / "styled"
    if case == "output-is-the-input-folder":
        args, words = (*paths, style, "-o", paths[0].parent), ("input",)
    elif case == "one-image":
        args, words = (style, "-o", out), ("frames",)
    elif case == "sizes-differ":
        Image.open(paths[1]).resize((40, 40)).save(paths[1])
        args, words = (*paths, style, "-o", out), ("size",)
    else:
        out.write_bytes(b"mine")
        args, words = (*paths, style, "-o", out), ("file",)
    before = digests(paths[0].parent)
    proc = run_engine("stylize-frames", *args, *TINY)
    check_error_run(proc, "bad_input", *words)
    assert digests(paths[0].parent) == before
    assert case != "output-is-a-file" or out.read_bytes() == b"mine"
