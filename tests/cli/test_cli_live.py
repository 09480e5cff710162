"""Live runs of the CLI (docs/PROTOCOL.md, *Stopping* and *Previews*): previews, stop-and-keep, and a
caller that closes stdout. Untrained network, CPU, 64 px, as in test_cli.py."""

import os
import signal
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers.engine_runs import LONG, LiveEngine, base_env, check_cancelled, check_error_run, folder_listing, run_engine
from helpers.pictures import make_content, make_style
from helpers.protocol_checks import check_fields, documented_events
from helpers.repo import REPO, engine_command


@pytest.fixture
def live_inputs(tmp_path):
    make_content(alpha=True).save(tmp_path / "content.png")
    make_style().save(tmp_path / "style.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "previews").mkdir()
    return tmp_path


def _check_stopped_and_kept(engine, out):
    code, _, events = engine.finish(timeout=60)
    assert code == 0, (code, events[-3:], "".join(engine.stderr)[-2000:])
    done = events[-1]
    assert done["event"] == "done" and done["output"] == str(out)
    check_fields(done, documented_events()["done"])
    stats = done["stats"]
    assert stats["stop_reason"] == "stopped" and stats["steps"] < stats["iterations"] == 100000
    progress = [e for e in events if e["event"] == "progress"]
    assert stats["steps"] == len(progress) and 0 <= stats["best_iteration"] <= stats["steps"]
    with Image.open(out) as image:
        assert image.size == (96, 64) and image.mode == "RGBA"
    assert folder_listing(out.parent) == ["result.png"]
    return events


def test_previews_then_stop_on_stdin_keeps_the_best_so_far(live_inputs):
    out = live_inputs / "out" / "result.png"
    previews = live_inputs / "previews"
    engine = LiveEngine("stylize", live_inputs / "content.png", live_inputs / "style.png", "-o", out, *LONG,
                        "--preview-every", "1", "--preview-dir", previews, stdin=subprocess.PIPE)
    try:
        preview = engine.wait_for("preview")
        check_fields(preview, documented_events()["preview"])
        names = [e["event"] for e in engine.seen]
        assert names.index("progress") < names.index("preview"), "the first preview follows the first step"
        assert os.path.dirname(preview["path"]) == str(previews) and preview["size"] == [96, 64]
        with Image.open(preview["path"]) as image, Image.open(live_inputs / "content.png") as content:
            assert image.size == (96, 64) and image.mode == "RGBA", "the content's size and alpha"
            np.testing.assert_array_equal(np.asarray(image)[:, :, 3], np.asarray(content)[:, :, 3])
        engine.proc.stdin.write("stop\n")
        engine.proc.stdin.close()  # end-of-file after stop: still a stop, not a cancel
        events = _check_stopped_and_kept(engine, out)
    finally:
        engine.kill()
    assert folder_listing(previews) == [], "the preview files are removed at the end"
    assert all(e["event"] != "preview" or e["iteration"] <= events[-1]["stats"]["steps"] for e in events)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this system (Windows: stop on stdin)")
def test_sigusr1_stops_and_keeps(live_inputs):
    out = live_inputs / "out" / "result.png"
    engine = LiveEngine("stylize", live_inputs / "content.png", live_inputs / "style.png", "-o", out, *LONG)
    try:
        engine.wait_for("progress")
        engine.proc.send_signal(signal.SIGUSR1)
        events = _check_stopped_and_kept(engine, out)
    finally:
        engine.kill()
    assert "preview" not in [e["event"] for e in events], "no previews unless asked for"


def test_cancel_after_stop_still_cancels(live_inputs):
    out = live_inputs / "out" / "result.png"
    # Stop and cancel in one write: whichever the engine sees first, the cancel must win.
    engine = LiveEngine("stylize", live_inputs / "content.png", live_inputs / "style.png", "-o", out, *LONG,
                        stdin=subprocess.PIPE)
    try:
        engine.wait_for("progress")
        engine.proc.stdin.write("stop\ncancel\n")
        engine.proc.stdin.flush()
        check_cancelled(engine, out)
    finally:
        engine.kill()
        engine.proc.stdin.close()


@pytest.mark.parametrize("cancel_too", [False, True], ids=["stdout-closed", "cancel-and-stdout-closed"])
def test_a_caller_that_closes_stdout_cancels_quietly(live_inputs, tmp_path, cancel_too):
    """No BrokenPipeError traceback in the engine's log when the caller hangs up."""
    out = live_inputs / "out" / "result.png"
    log = tmp_path / "engine.log"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(engine_command("stylize", live_inputs / "content.png", live_inputs / "style.png",
                                               "-o", out, *LONG, "--preview-every", "0"),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env=base_env(), cwd=str(REPO))
        try:
            for line in proc.stdout:
                if '"progress"' in line:
                    break
            proc.stdout.close()
            if cancel_too:
                proc.stdin.write("cancel\n")
                proc.stdin.flush()
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
    text = log.read_text()
    assert code == 4, text[-2000:]
    assert "Traceback" not in text and "BrokenPipeError" not in text and "Exception ignored" not in text, text
    assert "nst-core: error: cancelled" in text
    assert folder_listing(out.parent) == [], "no output and no preview left"


@pytest.mark.parametrize("extra, words", [
    (("--preview-every", "-1"), ("preview-every",)),
    (("--preview-every", "1", "--preview-dir", "no-such-folder"), ("preview-dir",)),
], ids=["negative-interval", "missing-folder"])
def test_bad_preview_options_are_one_line_errors(live_inputs, extra, words):
    out = live_inputs / "out" / "result.png"
    proc = run_engine("stylize", live_inputs / "content.png", live_inputs / "style.png", "-o", out,
                      "--size", "64", "--iterations", "1", "--device", "cpu", "--weights", "random",
                      "--progress", "jsonl", *extra)
    check_error_run(proc, "bad_input", *words)
    assert folder_listing(out.parent) == []
