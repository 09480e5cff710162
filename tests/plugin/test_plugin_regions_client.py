"""Regions in the plug-in's engine client (plugin/nst_client/protocol.py Job, plugin/nst_client/subprocess_engine.py,
plugin/nst_client/http_engine.py): a Job's masks and region weights as the command line (against the fake engine)
and as the service's multipart 'mask' parts (against a real ``nst-core serve``, untrained network,
tiny size), in docs/PROTOCOL.md's words ("Regions", "HTTP transport")."""

import email.parser
import json
import os

import pytest
from PIL import Image

from helpers.fake_engine import write_fake_engine
from helpers.pictures import make_content, make_style
from nst_client import http_engine, process, subprocess_engine
from nst_client.protocol import REST_MASK, EngineError, Job


@pytest.fixture
def files(tmp_path):
    make_content().save(tmp_path / "content.png")
    make_style().save(tmp_path / "a.png")
    make_style(seed=7).save(tmp_path / "b.png")
    left = Image.new("L", (96, 64), 0)
    left.paste(255, (0, 0, 48, 64))
    left.save(tmp_path / "left.png")
    return tmp_path


def region_job(files, masks, weights=None, options=None):
    return Job(str(files / "content.png"), [str(files / "a.png"), str(files / "b.png")],
               str(files / "result.png"), options or {"size": 64, "iterations": 2, "ssim": False},
               masks=masks, region_weights=weights)


# ----- the Job ----------------------------------------------------------------------------------

def test_a_job_without_regions_has_none():
    job = Job("c.png", ["s.png"], "r.png")
    assert job.masks is None and job.region_weights is None


@pytest.mark.parametrize("masks, weights, words", [
    (["m.png"], None, "1 region mask(s) for 2 style(s)"),
    ([REST_MASK, REST_MASK], None, "Only one region can be 'rest'"),
    (["m.png", REST_MASK], [1.0], "1 region weight(s) for 2 region(s)"),
    (["m.png", REST_MASK], [0.0, 0.0], "not all 0"),
    (["m.png", REST_MASK], [1.0, -1.0], "0 or more"),
    (None, [1.0, 1.0], "need region masks"),
], ids=["mask-count", "two-rests", "weight-count", "all-zero", "negative", "weights-alone"])
def test_regions_the_engine_would_refuse_are_refused_in_the_job(masks, weights, words):
    with pytest.raises(EngineError) as caught:
        Job("c.png", ["a.png", "b.png"], "r.png", masks=masks, region_weights=weights)
    assert caught.value.code == "bad_parameter" and words in caught.value.message


# ----- the command line -------------------------------------------------------------------------

def test_the_command_line_carries_one_mask_per_style_and_the_weights():
    command = subprocess_engine.build_command("/p", "/t/c.png", ["/t/a.png", "/t/b.png"], "/t/r.png",
                                              {"preset": "fast"}, masks=["/t/m.png", REST_MASK],
                                              region_weights=[1.0, 0.5])
    assert command[command.index("--style-mask"):] == ["--style-mask", "/t/m.png", "rest",
                                                       "--region-weight", "1.0", "0.5"]
    plain = subprocess_engine.build_command("/p", "/t/c.png", ["/t/a.png"], "/t/r.png", {})
    assert "--style-mask" not in plain and "--region-weight" not in plain


def test_the_engine_process_gets_the_masks(files, tmp_path, monkeypatch):
    engine = write_fake_engine(str(tmp_path / "fake-python"))
    keep = tmp_path / "kept"
    keep.mkdir()
    record = tmp_path / "record.json"
    env = dict(process.clean_environment(os.environ), FAKE_ENGINE_RECORD=str(record),
               FAKE_ENGINE_KEEP_MASKS=str(keep))
    env.pop("FAKE_ENGINE_MODE", None)
    client = subprocess_engine.SubprocessEngine(engine, str(tmp_path / "logs"), str(tmp_path), env)
    done = client.run(region_job(files, [str(files / "left.png"), REST_MASK], [2.0, 1.0]))
    assert done["event"] == "done"
    argv = json.loads(record.read_text())["argv"]
    assert argv[argv.index("--style-mask"):][:6] == ["--style-mask", str(files / "left.png"), "rest",
                                                     "--region-weight", "2.0", "1.0"]
    assert sorted(path.name for path in keep.iterdir()) == ["mask-0.png"]
    with Image.open(keep / "mask-0.png") as kept, Image.open(files / "left.png") as sent:
        assert kept.tobytes() == sent.tobytes()


def test_a_mask_the_engine_refuses_is_its_message(files, tmp_path):
    (files / "notes.png").write_text("not a picture\n")
    engine = write_fake_engine(str(tmp_path / "fake-python"))
    env = process.clean_environment(os.environ)
    env.pop("FAKE_ENGINE_MODE", None)
    client = subprocess_engine.SubprocessEngine(engine, str(tmp_path / "logs"), str(tmp_path), env)
    with pytest.raises(EngineError) as caught:
        client.run(region_job(files, [str(files / "notes.png"), REST_MASK]))
    assert caught.value.code == "bad_input" and "not an image" in caught.value.message


# ----- the service's multipart job --------------------------------------------------------------

def parts_of(body, content_type):
    message = email.parser.BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode("ascii") + b"\r\n\r\n" + body)
    return [(part.get_param("name", header="content-disposition"), part.get_payload(decode=True))
            for part in message.get_payload()]


def test_the_multipart_body_has_a_mask_part_per_style_in_order(files):
    body, content_type = http_engine.multipart_body({"size": "64"}, str(files / "content.png"),
                                                    [str(files / "a.png"), str(files / "b.png")],
                                                    [str(files / "left.png"), REST_MASK])
    parts = parts_of(body, content_type)
    assert [name for name, _data in parts] == ["params", "content", "style", "style", "mask", "mask"]
    assert parts[4][1] == (files / "left.png").read_bytes() and parts[5][1] == b"rest"
    plain = parts_of(*http_engine.multipart_body({}, str(files / "content.png"), [str(files / "a.png")]))
    assert [name for name, _data in plain] == ["params", "content", "style"]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    pytest.importorskip("aiohttp", reason="the service needs the serve extra: pip install -e '.[serve]'")
    from helpers.service import start_service, stop_service
    running = start_service(tmp_path_factory.mktemp("regions-service"), "--queue", "1")
    yield running
    stop_service(running)


def test_a_regions_job_runs_on_the_service_with_its_masks_and_weights(service, files, tmp_path):
    engine = http_engine.HttpEngine(service.url, str(service.token_file), str(tmp_path / "logs"), str(tmp_path))
    done = engine.run(region_job(files, [str(files / "left.png"), REST_MASK], [1.0, 0.5]))
    assert done["stats"]["regions"] == 2, done["stats"]
    assert done["stats"]["params"]["region_weights"] == [1.0, 0.5]
    with Image.open(files / "result.png") as result:
        assert result.size == (96, 64)
    service.wait_idle()


def test_a_mask_the_service_refuses_is_its_message(service, files, tmp_path):
    (files / "notes.png").write_text("not a picture\n" * 20)
    engine = http_engine.HttpEngine(service.url, str(service.token_file), str(tmp_path / "logs"), str(tmp_path))
    with pytest.raises(EngineError) as caught:
        engine.run(region_job(files, [str(files / "notes.png"), REST_MASK]))
    assert caught.value.code == "bad_input" and "not an image" in caught.value.message
    assert not (files / "result.png").exists()
