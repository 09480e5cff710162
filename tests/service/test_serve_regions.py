"""Regions over HTTP: a job's 'mask' parts (docs/PROTOCOL.md, *HTTP transport* and *Regions*), on a
real service in a subprocess with the untrained network at a tiny size."""

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from helpers.pictures import make_content, make_style
from helpers.repo import REPO, engine_command
from helpers.service import start_service, stop_service
from nst_core.service.client import multipart

pytest.importorskip("aiohttp", reason="the service needs the serve extra: pip install -e '.[serve]'")

QUICK = {"size": 64, "iterations": 2, "ssim": False}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("region-images")
    make_content().save(folder / "content.png")
    make_style().save(folder / "a.png")
    make_style(seed=7).save(folder / "b.png")
    left = np.zeros((64, 96), np.uint8)
    left[:, :48] = 255
    Image.fromarray(left, "L").save(folder / "left.png")
    (folder / "notes.png").write_text("not a picture\n" * 20)
    return folder


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    service = start_service(tmp_path_factory.mktemp("service"), "--queue", "1")
    yield service
    stop_service(service)


def post(service, images, masks, params=QUICK):
    parts = [("content", str(images / "content.png")), ("style", str(images / "a.png")),
             ("style", str(images / "b.png"))]
    parts += [("mask", b"rest" if m == "rest" else str(images / m)) for m in masks]
    body, content_type = multipart({"params": json.dumps(params)}, parts)
    connection = service.connect()
    connection.request("POST", "/v1/jobs", body=body,
                       headers={"Content-Type": content_type, "Authorization": f"Bearer {service.token}"})
    response = connection.getresponse()
    lines = [json.loads(line) for line in response.read().splitlines() if line.strip()]
    connection.close()
    return response.status, lines


def test_a_job_with_mask_parts_paints_regions(service, images):
    status, events = post(service, images, ["left.png", "rest"], dict(QUICK, **{"region-weight": [1, 0.5]}))
    assert status == 200, events
    done = events[-1]
    assert done["event"] == "done", events
    assert done["stats"]["regions"] == 2 and done["stats"]["params"]["region_weights"] == [1.0, 0.5]
    service.wait_idle()


@pytest.mark.parametrize("masks, params, words", [
    (["left.png"], QUICK, "one mask per style"),
    (["left.png", "notes.png"], QUICK, "not an image"),
    (["left.png", "rest"], dict(QUICK, **{"style-mask": ["x.png"]}), "'mask' part"),
], ids=["count", "not-an-image", "mask-in-params"])
def test_bad_mask_parts_are_refused_before_the_job_runs(service, images, masks, params, words):
    status, lines = post(service, images, masks, params)
    assert status == 400 and lines[-1]["event"] == "error" and lines[-1]["code"] == "bad_input", lines
    assert words in lines[-1]["message"], lines[-1]["message"]
    assert service.job_folders() == []


def test_stylize_with_server_sends_the_masks(service, images, tmp_path):
    out = tmp_path / "out.png"
    proc = subprocess.run(
        engine_command("stylize", images / "content.png", images / "a.png", images / "b.png", "-o", out,
                       "--style-mask", images / "left.png", "rest", "--size", "64", "--iterations", "2",
                       "--no-ssim", "--progress", "jsonl", "--server", service.url,
                       "--token-file", service.token_file),
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout.splitlines()[-1])
    assert done["event"] == "done" and done["stats"]["regions"] == 2
    assert Image.open(out).size == (96, 64)
    service.wait_idle()
