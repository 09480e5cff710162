"""The plug-in's HTTP transport (plugin/nst_client/http_engine.py) against a real ``nst-core serve`` on a loopback free
port (untrained network, CPU, tiny sizes): a job end to end, cancel, stop, busy, a wrong token, an
unreachable service, a service that dies mid-run; and the warm local service: the first run starts
it, the next reuses it, a stale state file is replaced, it exits when idle, and when it cannot start
the job runs in an engine process of its own with the reason in the log.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers.fake_engine import fake_engine_in, write_fake_engine
from helpers.pictures import make_content, make_style
from helpers.python27 import find_python27, plugin_environment
from helpers.repo import REPO
from helpers.service import start_service, stop_service
from nst_client import engine_config, http_engine, local_service, process, protocol, subprocess_engine
from nst_client.protocol import EngineError, Job

pytest.importorskip("aiohttp", reason="the service needs the serve extra: pip install -e '.[serve]'")

QUICK = protocol.engine_options(preset="fast", iterations=2, size=64, use_ssim=False, device="cpu")
LONG = protocol.engine_options(preset="fast", iterations=5000, size=64, use_ssim=False, device="cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("http-images")
    make_content(alpha=True).save(folder / "content.png")
    make_style().save(folder / "style.png")
    return folder


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    # --queue 0: one job at a time and none waiting, so a second job is "busy" at once.
    running = start_service(tmp_path_factory.mktemp("http-service"), "--queue", "0")
    yield running
    stop_service(running)


def engine_for(service, tmp_path, token_file=None):
    return http_engine.HttpEngine(service.url, str(token_file or service.token_file), str(tmp_path / "logs"),
                                  str(tmp_path))


def job(images, tmp_path, options=QUICK, name="result.png"):
    return Job(str(images / "content.png"), [str(images / "style.png")], str(tmp_path / name), options)


def log_text(tmp_path):
    return (tmp_path / "logs" / engine_config.LOG_FILE_NAME).read_text()


def run_in_thread(engine, the_job, on_event=None):
    """engine.run on a thread: (thread, outcome dict with 'result' or 'error', first progress Event)."""
    outcome, progressed = {}, threading.Event()

    def events(event):
        if event.get("event") == "progress":
            progressed.set()
        if on_event:
            on_event(event)

    def work():
        try:
            outcome["result"] = engine.run(the_job, events)
        except EngineError as error:
            outcome["error"] = error

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, outcome, progressed


def test_a_job_end_to_end(service, images, tmp_path):
    events = []
    done = engine_for(service, tmp_path).run(job(images, tmp_path), events.append)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "warning" and kinds[1] == "accepted" and kinds[-1] == "done"
    assert "start" in kinds and "progress" in kinds and "heartbeat" not in kinds
    # The device is the service's: the dialog's "cpu" is reported, not sent.
    assert any(e["event"] == "warning" and "does not apply" in e["message"] for e in events)
    assert done["output"] == str(tmp_path / "result.png") and done["log_path"]
    with Image.open(tmp_path / "result.png") as result:
        assert result.size == (96, 64) and result.mode == "RGBA"
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []
    assert "outcome: done via %s" % service.url in log_text(tmp_path)
    assert service.wait_idle()["stats"]["jobs_done"] >= 1


def test_previews_are_downloaded_into_the_run_folder(service, images, tmp_path):
    """A preview event reaches the caller as it does from an engine process: `path` names a local
    PNG (here in the output's folder) of the content's full size, readable while the event is
    handled; the local copy is gone when the run ends."""
    the_job = Job(str(images / "content.png"), [str(images / "style.png")], str(tmp_path / "result.png"),
                  protocol.engine_options(preset="fast", iterations=6, size=64, use_ssim=False),
                  preview_every=0.0)
    previews = []

    def on_event(event):
        if event["event"] == "preview":
            assert event["path"] == str(tmp_path / "preview.png")
            with Image.open(event["path"]) as picture:
                previews.append((picture.size, picture.tobytes()))
    engine_for(service, tmp_path).run(the_job, on_event)
    assert previews, "no preview event reached the caller"
    assert all(size == (96, 64) for size, _data in previews)
    assert not (tmp_path / "preview.png").exists()
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []


def test_the_byte_by_byte_reader_of_python_27_reads_the_same_stream(service, images, tmp_path, monkeypatch):
    class WithoutReadline:  # Python 2.7's HTTPResponse: read(amt) only
        def __init__(self, response):
            self.read = response.read

    original = http_engine.read_line
    monkeypatch.setattr(http_engine, "read_line", lambda response: original(WithoutReadline(response)))
    events = []
    engine_for(service, tmp_path).run(job(images, tmp_path), events.append)
    assert [e["event"] for e in events if e["event"] in ("start", "done")] == ["start", "done"]
    assert (tmp_path / "result.png").is_file()


def test_cancel_busy_and_stop_on_a_running_job(service, images, tmp_path):
    engine = engine_for(service, tmp_path / "a")
    thread, outcome, progressed = run_in_thread(engine, job(images, tmp_path, LONG))
    assert progressed.wait(120), outcome
    # The queue holds no waiting job (--queue 0): another client is told at once that it is busy.
    with pytest.raises(EngineError) as busy:
        engine_for(service, tmp_path / "b").run(job(images, tmp_path, QUICK, "other.png"))
    assert busy.value.code == "busy" and "busy" in busy.value.message
    assert "not changed" in busy.value.message and not (tmp_path / "other.png").exists()
    # Stop-and-keep: the service ends the run with the best result so far, as a normal done.
    assert engine.stop() is True
    thread.join(120)
    assert outcome["result"]["event"] == "done", outcome
    assert outcome["result"]["stats"]["stop_reason"] == "stopped"
    assert (tmp_path / "result.png").is_file()
    assert not thread.is_alive()
    assert service.wait_idle()["queue"]["running"] == 0


def test_a_wrong_token_names_the_token_file(service, images, tmp_path):
    token_file = tmp_path / "copied-token"
    token_file.write_text("not-the-token-of-this-service\n")
    with pytest.raises(EngineError) as error:
        engine_for(service, tmp_path, token_file).run(job(images, tmp_path))
    assert error.value.code == "unauthorized"
    assert str(token_file) in error.value.message and "--token-file" in error.value.message
    assert not (tmp_path / "result.png").exists()


def test_an_unreachable_service_says_how_to_start_one(images, tmp_path):
    url = "http://127.0.0.1:%d" % local_service.free_port()
    token_file = tmp_path / "token"
    token_file.write_text("x" * 32)
    with pytest.raises(EngineError) as error:
        http_engine.HttpEngine(url, str(token_file), str(tmp_path / "logs"), str(tmp_path)).run(job(images, tmp_path))
    assert error.value.code == "unreachable"
    assert url in error.value.message and "nst-core serve" in error.value.message
    assert "not changed" in error.value.message and not (tmp_path / "result.png").exists()


def test_a_service_that_dies_mid_run_is_a_lost_connection(images, tmp_path):
    (tmp_path / "dying").mkdir()
    dying = start_service(tmp_path / "dying")
    try:
        thread, outcome, progressed = run_in_thread(
            http_engine.HttpEngine(dying.url, str(dying.token_file), str(tmp_path / "logs"), str(tmp_path)),
            job(images, tmp_path, LONG))
        assert progressed.wait(120), outcome
        dying.process.send_signal(signal.SIGKILL)
        thread.join(120)
    finally:
        dying.process.kill()
        dying.process.wait()
    assert outcome["error"].code == "connection_lost", outcome
    assert dying.url in outcome["error"].message and "not changed" in outcome["error"].message
    assert not (tmp_path / "result.png").exists()


# ----- an animation's frames: one job per frame of a sequence -------------------------------------

def frames_job(images, tmp_path, options=QUICK, count=3):
    """count frames of a small scene moving right, as files in tmp_path/run; results in run/styled."""
    folder = tmp_path / "run"
    folder.mkdir()
    scene = make_content(width=112, height=64)
    frames = []
    for index in range(count):
        frames.append(str(folder / ("frame-%03d.png" % (index + 1))))
        scene.crop((2 * index, 0, 2 * index + 96, 64)).save(frames[-1])
    return protocol.FramesJob(frames, str(images / "style.png"), str(folder / "styled"), options,
                              temporal_weight=50.0, preview_every=0.0)


def test_frames_go_as_one_job_each_and_arrive_as_stylize_frames_sends_them(service, images, tmp_path):
    the_job = frames_job(images, tmp_path)
    events = []
    done = engine_for(service, tmp_path).run(the_job, events.append)
    kinds = [e["event"] for e in events if e["event"] in ("frame_start", "start", "frame_done", "done")]
    assert kinds == ["frame_start", "start", "frame_done"] * 3 + ["done"]
    starts = [e for e in events if e["event"] == "frame_start"]
    assert [(e["frame"], e["frames"]) for e in starts] == [(1, 3), (2, 3), (3, 3)]
    assert [e["mode"] for e in starts][0] == "first" and set(e["mode"] for e in starts[1:]) <= {"flow", "previous"}
    progress = [e for e in events if e["event"] == "progress"]
    assert all(e["frames"] == 3 and 0.0 <= e["sequence_fraction"] <= 1.0 for e in progress)
    # the service cannot know the time left for the sequence: the client reckons it once a frame is done
    later = [e for e in progress if e["frame"] > 1 and e.get("eta") is not None]
    assert later and all(isinstance(e["sequence_eta"], float) for e in later)
    # the device is the service's: said once, not once per frame
    assert len([e for e in events if e["event"] == "warning" and "does not apply" in e["message"]]) == 1
    assert [os.path.basename(path) for path in done["outputs"]] == ["frame-001.png", "frame-002.png",
                                                                    "frame-003.png"]
    for path in done["outputs"]:
        with Image.open(path) as result:
            assert result.size == (96, 64)
    assert done["stats"]["frames_done"] == 3 and done["stats"]["stop_reason"] == "done"
    assert [stats["frame"] for stats in done["stats"]["frames"]] == [1, 2, 3]
    assert events[-1]["event"] == "done" and events[-1]["outputs"] == done["outputs"]
    assert done["log_path"] and log_text(tmp_path).count("outcome: done via %s" % service.url) == 3
    previews = [e for e in events if e["event"] == "preview"]
    assert previews and all(os.path.dirname(e["path"]) == str(tmp_path / "run") for e in previews)
    assert sorted(os.listdir(tmp_path / "run" / "styled")) == ["frame-001.png", "frame-002.png",
                                                               "frame-003.png"]
    assert service.wait_idle()["sequences"] >= 1


def test_stop_during_a_frame_keeps_the_frames_so_far_and_sends_no_more(service, images, tmp_path):
    the_job = frames_job(images, tmp_path)
    engine = engine_for(service, tmp_path)
    asked = []

    def on_event(event):
        if event["event"] == "frame_start" and event["frame"] == 2:
            asked.append(engine.stop())
    done = engine.run(the_job, on_event)
    assert asked == [True]
    # the frame under way is kept (stopped, or done if its two steps ended first); no third job
    assert [os.path.basename(path) for path in done["outputs"]] == ["frame-001.png", "frame-002.png"]
    assert done["stats"]["stop_reason"] == "stopped" and done["stats"]["frames_given"] == 3
    assert len([e for e in log_text(tmp_path).splitlines() if "outcome: done via" in e]) == 2
    assert engine.stop() is False


def test_cancel_during_a_later_frame_keeps_no_frame(service, images, tmp_path):
    the_job = frames_job(images, tmp_path, protocol.engine_options(
        preset="fast", iterations=2, size=64, use_ssim=False))
    engine = engine_for(service, tmp_path)

    def on_event(event):
        if event["event"] == "frame_start" and event["frame"] == 2:
            assert engine.cancel() is True
    with pytest.raises(EngineError) as caught:
        engine.run(the_job, on_event)
    assert caught.value.code == "cancelled"
    assert not os.path.exists(the_job.output)
    assert engine.cancel() is False  # nothing runs any more


def test_the_local_service_gets_the_whole_job_less_its_device(tmp_path, monkeypatch):
    """The warm service runs on the job's device, so that option stays home; the rest of the job
    (a FramesJob's frames and temporal weight, a Job's region masks) goes as it is."""
    config = engine_config.EngineConfig("/env/python", str(tmp_path / "logs"), "", "test")
    engine = local_service.LocalServiceEngine(config, str(tmp_path))
    monkeypatch.setattr(local_service.LocalService, "address",
                        lambda self: ("http://127.0.0.1:1", None))
    sent = []
    monkeypatch.setattr(http_engine.HttpEngine, "run", lambda self, job, on_event=None: sent.append(job))
    frames = protocol.FramesJob(["/r/a.png", "/r/b.png"], "/r/s.png", "/r/out",
                                {"preset": "fast", "device": "cpu"}, temporal_weight=7.0)
    regions = Job("/r/c.png", ["/r/s1.png", "/r/s2.png"], "/r/r.png", {"device": "cpu"},
                  masks=["/r/m.png", protocol.REST_MASK], region_weights=[1.0, 2.0])
    engine.run(frames)
    engine.run(regions)
    assert isinstance(sent[0], protocol.FramesJob)
    assert (sent[0].frames, sent[0].temporal_weight, sent[0].options) == (
        ["/r/a.png", "/r/b.png"], 7.0, {"preset": "fast"})
    assert (sent[1].masks, sent[1].region_weights, sent[1].options) == (
        ["/r/m.png", "rest"], [1.0, 2.0], {})


def test_job_params_are_the_command_line_options_by_name():
    params, device = http_engine.job_params(protocol.engine_options(
        preset="standard", iterations=7, size=96, style_strength=6.5, use_ssim=False, preserve_colors=True,
        seed=3, device="cuda"))
    assert device == "cuda"
    assert params == {"preset": "standard", "iterations": "7", "size": "96", "style-strength": "6.5",
                      "ssim": False, "preserve-colors": True, "seed": "3"}


# ----- the warm local service --------------------------------------------------------------------

def engine_python_of_this_checkout(folder):
    """The plug-in gives the engine a clean environment (no PYTHONPATH): a wrapper puts this checkout's
    nst_core first, as the installer's venv would hold it."""
    wrapper = folder / "engine-python"
    wrapper.write_text('#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' % (REPO, sys.executable))
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture
def local_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_WEIGHTS", "random")
    monkeypatch.setenv("NST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    started = []
    yield tmp_path, started
    for pid in started:  # whatever a test left running
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def local_engine(tmp_path, engine_python, idle_minutes=15):
    config = engine_config.EngineConfig(engine_python, str(tmp_path / "logs"), "", "test",
                                        service_idle_minutes=idle_minutes)
    return engine_config.make_engine(config, str(tmp_path))


def state_of(tmp_path, device="cpu"):
    return json.loads((tmp_path / "logs" / ("nst_service-%s.json" % device)).read_text())


def health_of(tmp_path, state):
    token = (tmp_path / "logs" / local_service.LOCAL_TOKEN_FILE).read_text().strip()
    return http_engine.ServiceAddress(state["url"], token).health()


def test_the_first_run_starts_a_local_service_and_the_next_reuses_it(images, local_setup):
    tmp_path, started = local_setup
    python = engine_python_of_this_checkout(tmp_path)
    engine = local_engine(tmp_path, python)
    assert isinstance(engine, local_service.LocalServiceEngine)
    engine.run(job(images, tmp_path, QUICK, "first.png"))
    state = state_of(tmp_path)
    started.append(state["pid"])
    assert state["url"].startswith("http://127.0.0.1:") and "starting" not in state
    assert health_of(tmp_path, state)["stats"]["jobs_done"] == 1

    local_engine(tmp_path, python).run(job(images, tmp_path, QUICK, "second.png"))
    assert state_of(tmp_path) == state  # the same service: same address and process
    health = health_of(tmp_path, state)
    assert health["stats"]["jobs_done"] == 2
    assert health["stats"]["style_cache"]["hits"] >= 1  # the style's targets came from its cache
    assert (tmp_path / "first.png").is_file() and (tmp_path / "second.png").is_file()
    log = log_text(tmp_path)
    assert "started the engine service at %s" % state["url"] in log
    assert "reusing the engine service at %s" % state["url"] in log

    # A stale state file (its service ended): the next run starts a new service, here one that exits
    # after 3 s without work.
    os.kill(state["pid"], signal.SIGTERM)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            health_of(tmp_path, state)
        except EngineError:
            break
        time.sleep(0.2)
    try:  # the test process is its parent: reap it, as init would for the plug-in's
        os.waitpid(state["pid"], 0)
    except ChildProcessError:
        pass  # subprocess reaped it already
    local_engine(tmp_path, python, idle_minutes=0.05).run(job(images, tmp_path, QUICK, "third.png"))
    new_state = state_of(tmp_path)
    started.append(new_state["pid"])
    assert new_state["pid"] != state["pid"]
    assert "its process %d has ended" % state["pid"] in log_text(tmp_path)
    # Health calls do not keep it alive: only jobs and their requests do.
    service_log = tmp_path / "logs" / local_service.LOCAL_SERVICE_LOG
    deadline = time.time() + 60
    while "idle for" not in service_log.read_text():
        assert time.time() < deadline, "the service with a 3 s idle time still runs after a minute"
        health_of(tmp_path, new_state)
        time.sleep(0.5)
    deadline = time.time() + 60
    while True:
        try:
            health_of(tmp_path, new_state)
        except EngineError as error:
            assert error.code == "unreachable"
            break
        assert time.time() < deadline, "the service said it stops, but still answers after a minute"
        time.sleep(0.2)
    assert "idle for" in service_log.read_text()


def test_a_warm_up_starts_the_service_that_the_next_run_reuses(images, local_setup):
    """What the dialog starts when it opens (nst_style_transfer.warm_up_engine): the service is up
    before OK, and the run then only reuses it."""
    tmp_path, started = local_setup
    python = engine_python_of_this_checkout(tmp_path)
    url = local_engine(tmp_path, python).warm_up("cpu")
    state = state_of(tmp_path)
    started.append(state["pid"])
    assert url == state["url"] and "starting" not in state
    assert health_of(tmp_path, state)["stats"]["jobs_done"] == 0
    assert "warm-up: started the engine service at %s" % url in log_text(tmp_path)

    local_engine(tmp_path, python).run(job(images, tmp_path, QUICK, "after-warm-up.png"))
    assert state_of(tmp_path)["pid"] == state["pid"]
    assert health_of(tmp_path, state)["stats"]["jobs_done"] == 1
    assert "reusing the engine service at %s" % url in log_text(tmp_path)
    assert (tmp_path / "after-warm-up.png").is_file()


def test_a_run_started_while_the_warm_up_waits_for_the_service_shares_it(images, local_setup):
    """OK pressed while the service the dialog started is still loading: the run waits for that
    service instead of starting a second one."""
    tmp_path, started = local_setup
    python = engine_python_of_this_checkout(tmp_path)
    warm_up = threading.Thread(target=local_engine(tmp_path, python).warm_up, args=("cpu",))
    warm_up.start()
    deadline = time.time() + 60
    while not (tmp_path / "logs" / "nst_service-cpu.json").exists():
        assert time.time() < deadline, "the warm-up wrote no state file"
        time.sleep(0.05)
    state = state_of(tmp_path)
    started.append(state["pid"])
    assert state.get("starting")  # the service is still loading
    local_engine(tmp_path, python).run(job(images, tmp_path, QUICK, "during-warm-up.png"))
    warm_up.join(120)
    assert state_of(tmp_path)["pid"] == state["pid"]
    assert health_of(tmp_path, state)["stats"]["jobs_done"] == 1
    assert log_text(tmp_path).count("started the engine service") == 1


def test_two_threads_writing_the_state_file_at_once_both_succeed(tmp_path):
    # The dialog's warm-up and a run share a process and may both write the service's state file.
    path = str(tmp_path / "nst_service-cpu.json")
    errors = []

    def write(writer):
        try:
            for count in range(300):
                process.write_json_atomically(path, {"writer": writer, "count": count})
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in ("warm-up", "run")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert json.loads(Path(path).read_text())["count"] == 299
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nst_service-cpu.json"]  # no partial file left


def test_a_service_that_cannot_start_falls_back_to_an_engine_process(images, tmp_path, monkeypatch):
    # The fake engine knows only `stylize`: `serve` exits with an error at once.
    engine = local_engine(tmp_path, fake_engine_in(tmp_path, monkeypatch))
    done = engine.run(job(images, tmp_path))
    assert done["event"] == "done" and (tmp_path / "result.png").is_file()
    log = log_text(tmp_path)
    assert "the warm engine service is not used for this run: it exited with code 2" in log
    assert "unexpected command" in log  # the service's own last words, from its log
    assert state_of(tmp_path)["failed"]
    # The next run does not pay for another failed start: it says so and runs the job at once.
    engine.run(job(images, tmp_path, QUICK, "again.png"))
    assert "its last start failed" in log_text(tmp_path)
    assert (tmp_path / "again.png").is_file()
    assert (tmp_path / "logs" / local_service.LOCAL_SERVICE_LOG).read_text().count("started by the plug-in") == 1


def test_config_keys_choose_the_transport(tmp_path):
    python = write_fake_engine(str(tmp_path / "fake-python"))

    def config(**entries):
        (tmp_path / engine_config.CONFIG_FILE_NAME).write_text(json.dumps(dict(engine_python=python, **entries)))
        return engine_config.load_config(str(tmp_path), environ={})

    assert config().service == "local" and config().service_idle_minutes == 15
    overridden = engine_config.load_config(str(tmp_path), environ={engine_config.ENGINE_SERVICE_ENV: "off"})
    assert overridden.service == "off"
    assert isinstance(engine_config.make_engine(config(), str(tmp_path)), local_service.LocalServiceEngine)
    assert isinstance(engine_config.make_engine(config(engine_service="off"), str(tmp_path)),
                      subprocess_engine.SubprocessEngine)
    remote = config(engine_service="https://gpu.example.org/nst/", engine_service_token_file="~/t")
    engine = engine_config.make_engine(remote, str(tmp_path))
    assert isinstance(engine, http_engine.HttpEngine) and engine.url == "https://gpu.example.org/nst"
    assert engine.token_file == os.path.expanduser("~/t")
    for bad, words in (({"engine_service": "gpu.example.org"}, "engine_service"),
                       ({"engine_service": "http://x:1"}, "engine_service_token_file"),
                       ({"engine_service_idle_minutes": 0}, "engine_service_idle_minutes")):
        with pytest.raises(EngineError) as error:
            config(**bad)
        assert words in error.value.message and error.value.code == "not_configured"


def test_the_client_runs_a_job_on_python_27(service, images, tmp_path):
    """GIMP 2.10's Python: the same module, the same service (the byte-by-byte reader, httplib)."""
    python27 = find_python27()
    if python27 is None:
        pytest.skip("no Python 2.7 here (NST_PYTHON27, python2.7 on PATH or pyenv's)")
    script = """
import json
from nst_client import http_engine, protocol
kinds = []
done = http_engine.HttpEngine(%r, %r, %r, %r).run(
    protocol.Job(%r, [%r], %r, %r), lambda event: kinds.append(event["event"]))
print(json.dumps({"kinds": kinds, "output": done["output"]}))
""" % (service.url, str(service.token_file), str(tmp_path / "logs"), str(tmp_path),
       str(images / "content.png"), str(images / "style.png"), str(tmp_path / "result.png"), QUICK)
    out = subprocess.run([python27, "-c", script], capture_output=True, text=True, timeout=300,
                         env=plugin_environment())
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["kinds"][-1] == "done" and "progress" in answer["kinds"]
    with Image.open(answer["output"]) as result:
        assert result.size == (96, 64)
