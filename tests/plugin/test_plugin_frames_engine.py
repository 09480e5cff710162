"""The engine client's frames jobs (plugin/nst_client/protocol.py FramesJob, FramesProgress; the HTTP
transport's time left for a sequence, http_engine.SentSequence; subprocess_engine.py's `stylize-frames`
process) against docs/PROTOCOL.md "Frames" and the fake engine. The same jobs through the HTTP
service: tests/plugin/test_plugin_http.py."""

import os

import pytest
from PIL import Image

from helpers.protocol_checks import documented_events, documented_frame_events
from nst_client import http_engine, process, protocol, subprocess_engine
from nst_client.protocol import EngineError, FramesJob

FRAMES = 4


@pytest.fixture
def frames_job(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    frames = []
    for index in range(FRAMES):
        path = folder / ("frame-%03d.png" % (index + 1))
        Image.new("RGBA", (24, 16), (40 * index, 100, 50, 255)).save(path)
        frames.append(str(path))
    style = folder / "style.png"
    Image.new("RGB", (10, 10), (0, 0, 255)).save(style)
    return FramesJob(frames, str(style), str(folder / "styled"),
                     protocol.engine_options(size=64, iterations=2), temporal_weight=50.0)


def client(engine, tmp_path, mode=None):
    env = process.clean_environment(os.environ)
    if mode:
        env["FAKE_ENGINE_MODE"] = mode
    return subprocess_engine.SubprocessEngine(engine, str(tmp_path / "logs"), str(tmp_path / "fallback"),
                                              env)


# ---------------------------------------------------------------------------------------------
# the job and its command line


def test_the_command_line_is_one_stylize_frames_run():
    job = FramesJob(["/r/frame-001.png", "/r/frame-002.png"], "/r/style.png", "/r/styled",
                    {"preset": "fast", "size": 64}, temporal_weight=250, preview_every=1.0)
    assert subprocess_engine.build_frames_command("/env/bin/python", job) == [
        "/env/bin/python", "-m", "nst_core", "stylize-frames", "/r/frame-001.png", "/r/frame-002.png",
        "/r/style.png", "-o", "/r/styled", "--progress", "jsonl", "--temporal-weight", "250.0",
        "--preset", "fast", "--size", "64", "--preview-every", "1.0", "--preview-dir", "/r"]


def test_the_results_are_named_after_the_frames_in_the_output_folder():
    job = FramesJob(["/r/frame-001.png"], "/r/style.png", "/r/styled")
    assert job.frame_output("/r/frame-001.png") == "/r/styled/frame-001.png"
    assert job.temporal_weight == protocol.TEMPORAL_WEIGHT_DEFAULT
    assert job.with_options({"preset": "fast"}).options == {"preset": "fast"}


@pytest.mark.parametrize("weight", [-1, float("nan"), "much", True])
def test_a_nonsense_temporal_weight_is_refused_with_what_to_give(weight):
    with pytest.raises(EngineError) as caught:
        FramesJob(["/r/a.png"], "/r/s.png", "/r/out", temporal_weight=weight)
    assert caught.value.code == "bad_parameter" and "0 or more" in caught.value.message


def test_a_job_keeps_its_regions_when_its_options_change():
    job = protocol.Job("c.png", ["s1.png", "s2.png"], "r.png", {"device": "cpu"}, 1.0,
                       masks=["m.png", "rest"], region_weights=[1.0, 2.0])
    other = job.with_options({})
    assert (other.masks, other.region_weights, other.preview_every) == (["m.png", "rest"],
                                                                         [1.0, 2.0], 1.0)


# ---------------------------------------------------------------------------------------------
# progress: "Frame k of n" and the time left for the whole sequence


def test_progress_says_which_frame_and_the_time_left_for_all_frames():
    progress = protocol.FramesProgress(6)
    assert progress.text({"event": "frame_start", "frame": 1, "frames": 6, "mode": "first"}) == \
        "Frame 1 of 6: starting"
    assert progress.text({"event": "start", "device": "cpu", "working_size": [64, 43]}) == \
        "Frame 1 of 6: starting on cpu, working size 64x43"
    assert progress.text({"event": "progress", "frame": 1, "iteration": 2, "total": 40,
                          "sequence_eta": None}) == \
        "Frame 1 of 6: iteration 2 of 40, estimating the time left for all frames"
    # until frame 1 is done the sequence's time is not known: the frame's own
    assert progress.text({"event": "progress", "frame": 1, "iteration": 3, "total": 40, "eta": 70.0,
                          "sequence_eta": None}) == \
        "Frame 1 of 6: iteration 3 of 40, about 1 min 10 s left for this frame"
    assert progress.text({"event": "frame_start", "frame": 2, "mode": "flow"}) == \
        "Frame 2 of 6: starting from the frame before, along the motion"
    text = progress.text({"event": "progress", "frame": 2, "iteration": 3, "total": 40,
                          "sequence_eta": 95.0})
    assert text == "Frame 2 of 6: iteration 3 of 40, about 1 min 35 s left for all frames"
    # a frame's own start says no frame number: the one under way is meant
    assert progress.text({"event": "start", "device": "cpu", "working_size": [64, 43]}).startswith(
        "Frame 2 of 6")
    assert progress.text({"event": "done", "stats": {"frames_done": 6}}) == \
        "Style transfer: 6 of 6 frames done, making the new image"
    assert progress.text({"event": "warning", "message": "no flow"}) == "Style transfer: no flow"
    assert progress.text({"event": "preview", "path": "p.png"}) is None


def test_the_bar_follows_the_whole_sequence():
    progress = protocol.FramesProgress(4)
    assert progress.fraction({"event": "progress", "frame": 2, "sequence_fraction": 0.3}) == 0.3
    # without the sequence's fraction (the service), the frame's place and its own fraction
    assert progress.fraction({"event": "progress", "frame": 3, "fraction": 0.5}) == 0.625
    assert progress.fraction({"event": "frame_done", "frame": 3}) == 0.75
    assert progress.fraction({"event": "start"}) is None
    assert progress.fraction({"event": "done"}) == 1.0


def test_the_sequence_clock_counts_the_later_frames_at_their_own_pace():
    now = [100.0]
    clock = http_engine.SentSequence(4, clock=lambda: now[0])
    assert clock.estimate(1, 0.5, 10.0) == (0.125, None)  # no frame done: no forecast yet
    now[0] = 120.0
    clock.finished(20.0)
    fraction, eta = clock.estimate(2, 0.5, 2.0)
    assert eta == 2.0 + 2 * 20.0  # before a later frame is done, at the first frame's pace
    now[0] = 124.0
    clock.finished(4.0)
    fraction, eta = clock.estimate(3, 0.0, 4.0)
    assert eta == 4.0 + 1 * 4.0 and fraction == pytest.approx(24.0 / 32.0)


# ---------------------------------------------------------------------------------------------
# one engine process for the sequence


def test_a_frames_run_styles_every_frame_in_one_process(fake_engine, frames_job, tmp_path):
    events = []
    done = client(fake_engine, tmp_path).run(frames_job, events.append)
    kinds = [event["event"] for event in events if event["event"] != "progress"]
    assert kinds == ["frame_start", "start", "frame_done"] * FRAMES + ["done"]
    names = [os.path.basename(path) for path in frames_job.frames]
    assert [os.path.basename(path) for path in done["outputs"]] == names
    assert all(os.path.isfile(path) for path in done["outputs"])
    assert done["output"] == frames_job.output and done["log_path"]
    assert done["stats"]["frames_done"] == FRAMES and done["stats"]["stop_reason"] == "done"
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    assert log.count("-m nst_core stylize-frames") == 1
    assert "outcome: done (exit code 0)" in log


def test_the_fakes_frame_events_have_the_documented_fields(fake_engine, frames_job, tmp_path):
    """The checks tests/cli/test_frames_cli.py makes on the real engine's."""
    events = []
    client(fake_engine, tmp_path).run(frames_job, events.append)
    table, single = documented_frame_events(), documented_events()
    for event in events:
        if event["event"] in table:
            assert table[event["event"]] <= set(event), (event, table[event["event"]] - set(event))
        if event["event"] == "progress":
            assert single["progress"][0] <= set(event)


def test_stop_keeps_the_frames_done_and_the_one_being_styled(fake_engine, frames_job, tmp_path):
    engine = client(fake_engine, tmp_path, mode="hang")
    stopped = []

    def on_event(event):
        if event["event"] == "progress" and event["frame"] == 2 and not stopped:
            stopped.append(engine.stop())
    done = engine.run(frames_job, on_event)
    assert stopped == [True]
    assert [os.path.basename(path) for path in done["outputs"]] == ["frame-001.png", "frame-002.png"]
    assert done["stats"]["stop_reason"] == "stopped" and done["stats"]["frames_given"] == FRAMES


def test_cancel_writes_no_frame(fake_engine, frames_job, tmp_path):
    engine = client(fake_engine, tmp_path, mode="hang")

    def on_event(event):
        if event["event"] == "progress" and event["frame"] == 2:
            engine.cancel()
    with pytest.raises(EngineError) as caught:
        engine.run(frames_job, on_event)
    assert caught.value.code == "cancelled"
    assert not os.path.exists(frames_job.output)


def test_a_done_without_the_frames_files_is_an_error(fake_engine, frames_job, tmp_path):
    with pytest.raises(EngineError) as caught:
        client(fake_engine, tmp_path, mode="no_output").run(frames_job)
    assert caught.value.code == "protocol" and "frame-001.png" in caught.value.message


def test_an_engine_failure_is_the_engines_message(fake_engine, frames_job, tmp_path):
    with pytest.raises(EngineError) as caught:
        client(fake_engine, tmp_path, mode="out_of_memory").run(frames_job)
    assert caught.value.code == "out_of_memory" and "Fake engine failure" in caught.value.message
