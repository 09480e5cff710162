"""Frames of an animation through ``nst-core serve``: one upload per frame, the state between frames
kept on the service under the sequence's name (docs/PROTOCOL.md, *HTTP transport*, frame jobs)."""

import json

import pytest

from helpers.animation import make_animation
from helpers.pictures import make_style
from helpers.repo import EXAMPLES
from helpers.service import start_service, stop_service
from nst_core.service.client import multipart

pytest.importorskip("aiohttp", reason="the service needs the serve extra: pip install -e '.[serve]'")

QUICK = {"size": 32, "iterations": 3, "ssim": False}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    service = start_service(tmp_path_factory.mktemp("service"))
    yield service
    stop_service(service)


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    pictures, _ = make_animation(EXAMPLES / "coffee.png", (48, 32), 3)
    for index, picture in enumerate(pictures):
        picture.save(folder / f"frame{index}.png")
    pictures[0].resize((40, 40)).save(folder / "other-size.png")
    make_style().save(folder / "style.png")
    make_style(seed=7).save(folder / "style2.png")
    return folder


def frame_job(service, frames, content, params, style="style.png"):
    """The events of one frame job, to its end."""
    body, content_type = multipart({"params": json.dumps(params)},
                                   [("content", str(frames / content)), ("style", str(frames / style))])
    status, data = service.call("POST", "/v1/jobs", body=body, headers={"Content-Type": content_type})
    if isinstance(data, dict):
        return status, [data]
    return status, [json.loads(line) for line in data.decode("ascii").splitlines()]


def test_frames_sent_one_by_one_continue_their_sequence(service, frames):
    params = dict(QUICK, sequence="walk", **{"temporal-weight": 50})
    modes = []
    for index in range(3):
        status, events = frame_job(service, frames, f"frame{index}.png", params)
        assert status == 200 and events[-1]["event"] == "done", events[-3:]
        start = next(e for e in events if e["event"] == "frame_start")
        assert start["frame"] == index + 1 and start["frames"] is None
        modes.append(start["mode"])
        progress = [e for e in events if e["event"] == "progress"]
        assert progress and all(e["frame"] == index + 1 for e in progress)
        assert events[-1]["stats"]["frame"] == index + 1
    assert modes == ["first", "flow", "flow"]
    assert service.wait_idle()["sequences"] == 1

    # A frame that does not fit the sequence fails and leaves it as it was: the next frame is the 4th.
    status, events = frame_job(service, frames, "other-size.png", params)
    assert events[-1]["event"] == "error" and events[-1]["code"] == "bad_input", events[-1]
    assert "one size" in events[-1]["message"]
    status, events = frame_job(service, frames, "frame1.png", params, style="style2.png")
    assert events[-1]["code"] == "bad_input" and "new sequence name" in events[-1]["message"]
    status, events = frame_job(service, frames, "frame2.png", params)
    assert next(e for e in events if e["event"] == "frame_start")["frame"] == 4

    # Another name is another sequence; a plain job is no frame.
    status, events = frame_job(service, frames, "frame0.png", dict(QUICK, sequence="run"))
    assert next(e for e in events if e["event"] == "frame_start")["mode"] == "first"
    status, events = frame_job(service, frames, "frame0.png", QUICK)
    assert events[-1]["event"] == "done" and "frame_start" not in [e["event"] for e in events]
    assert "frame" not in events[-1]["stats"]
    service.wait_idle()


@pytest.mark.parametrize("params, fragment", [
    (dict(QUICK, sequence="bad name!"), "sequence"),
    (dict(QUICK, sequence="walk", **{"temporal-weight": -1}), "temporal-weight"),
    (dict(QUICK, **{"temporal-weight": 3}), "give 'sequence' too"),
])
def test_bad_frame_parameters_are_refused(service, frames, params, fragment):
    status, events = frame_job(service, frames, "frame0.png", params)
    assert status == 400 and events[-1]["code"] == "bad_input" and fragment in events[-1]["message"], events
