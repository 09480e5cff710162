"""The engine client (plugin/nst_client/protocol.py, plugin/nst_client/engine_config.py) against
docs/PROTOCOL.md and a fake engine."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from helpers.protocol_checks import check_event, documented_events
from helpers.python27 import plugin_environment
from nst_client import engine_config, process, protocol, subprocess_engine
from nst_client.protocol import EngineError

# ---------------------------------------------------------------------------------------------
# options and command line


def test_default_options_are_the_standard_preset_with_the_balanced_strength():
    assert subprocess_engine.command_line_options(protocol.engine_options()) == [
        "--preset", "standard", "--style-strength", "5.0", "--ssim", "--seed", "0", "--device", "auto"]


def test_size_and_iterations_are_passed_only_when_set():
    options = subprocess_engine.command_line_options(protocol.engine_options(iterations=120, size=384))
    assert options[options.index("--size") + 1] == "384"
    assert options[options.index("--iterations") + 1] == "120"
    assert "--size" not in subprocess_engine.command_line_options(protocol.engine_options(size=0))
    assert "--iterations" not in subprocess_engine.command_line_options(protocol.engine_options(iterations=0))


def test_paper_preset_gets_no_strength():
    options = subprocess_engine.command_line_options(protocol.engine_options(preset="paper", style_strength=8.0))
    assert "--style-strength" not in options and "--style-weight" not in options
    assert options[:2] == ["--preset", "paper"]


def test_every_switch_maps_to_its_engine_option():
    options = subprocess_engine.command_line_options(protocol.engine_options(
        preset="fast", style_strength=7.5, use_ssim=False, preserve_colors=True, seed=42, device="cpu"))
    assert options == ["--preset", "fast", "--style-strength", "7.5",
                       "--no-ssim", "--preserve-colors", "--seed", "42", "--device", "cpu"]


@pytest.mark.parametrize("kwargs, words", [
    ({"preset": "turbo"}, "preset"),
    ({"device": "tpu"}, "device"),
    ({"iterations": -1}, "Iterations"),
    ({"size": 2.5}, "Working size"),
    ({"style_strength": -1.0}, "Style strength"),
    ({"style_strength": 10.5}, "Style strength"),
    ({"style_strength": float("nan")}, "Style strength"),
])
def test_nonsense_values_are_refused_with_a_message(kwargs, words):
    with pytest.raises(EngineError) as caught:
        protocol.engine_options(**kwargs)
    assert caught.value.code == "bad_parameter"
    assert words in caught.value.message


def test_command_line_follows_the_protocol():
    command = subprocess_engine.build_command("/env/bin/python", "/t/c.png", ["/t/s.png"], "/t/r.png",
                                              {"preset": "fast"})
    assert command == ["/env/bin/python", "-m", "nst_core", "stylize", "/t/c.png", "/t/s.png",
                       "-o", "/t/r.png", "--progress", "jsonl", "--preset", "fast"]


def test_clean_environment_drops_gimps_python_variables_and_keeps_the_rest():
    inherited = {"PYTHONHOME": "/gimp/python", "PYTHONPATH": "/gimp/lib", "PYTHONSTARTUP": "x",
                 "PYTHONNOUSERSITE": "1", "__PYVENV_LAUNCHER__": "/gimp/bin/python",
                 "NST_WEIGHTS": "random", "PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0"}
    env = process.clean_environment(inherited)
    for dropped in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONNOUSERSITE",
                    "__PYVENV_LAUNCHER__"):
        assert dropped not in env
    assert env["NST_WEIGHTS"] == "random" and env["PATH"] == "/usr/bin"
    assert env["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "PYTHONPATH" in inherited  # the caller's mapping is left alone


# ---------------------------------------------------------------------------------------------
# configuration


def write_config(folder, **entries):
    (folder / engine_config.CONFIG_FILE_NAME).write_text(json.dumps(entries))


def test_config_beside_the_plugin_names_the_engine(tmp_path):
    python = tmp_path / "python"
    python.write_text("")
    write_config(tmp_path, engine_python=str(python), log_dir="/logs", version="0.1.0")
    config = engine_config.load_config(str(tmp_path), environ={})
    assert (config.engine_python, config.log_dir, config.version) == (str(python), "/logs",
                                                                      "0.1.0")


def test_env_variable_overrides_the_config(tmp_path):
    other = tmp_path / "other-python"
    other.write_text("")
    write_config(tmp_path, engine_python="/nowhere/python", log_dir="/logs")
    config = engine_config.load_config(str(tmp_path), environ={"NST_ENGINE_PYTHON": str(other)})
    assert config.engine_python == str(other)
    assert "NST_ENGINE_PYTHON" in config.source


def test_missing_config_says_to_run_the_installer(tmp_path):
    with pytest.raises(EngineError) as caught:
        engine_config.load_config(str(tmp_path), environ={})
    assert caught.value.code == "not_configured"
    message = caught.value.message
    assert "does not exist" in message and "installer" in message
    assert "NST_ENGINE_PYTHON" in message and str(tmp_path) in message


def test_moved_engine_is_reported_with_its_path(tmp_path):
    write_config(tmp_path, engine_python=str(tmp_path / "gone" / "python"), log_dir="")
    with pytest.raises(EngineError) as caught:
        engine_config.load_config(str(tmp_path), environ={})
    assert caught.value.code == "engine_missing"
    assert str(tmp_path / "gone" / "python") in caught.value.message
    assert "installer" in caught.value.message


def test_broken_config_file_is_reported(tmp_path):
    (tmp_path / engine_config.CONFIG_FILE_NAME).write_text("{not json")
    with pytest.raises(EngineError) as caught:
        engine_config.load_config(str(tmp_path), environ={})
    assert "could not be read" in caught.value.message


# ---------------------------------------------------------------------------------------------
# the event stream


def test_event_lines_are_parsed_and_everything_else_ignored():
    assert protocol.parse_event_line(b'{"event": "start", "protocol": 1}\n') == {
        "event": "start", "protocol": 1}
    assert protocol.parse_event_line('{"event": "done", "output": "/x.png"}')["output"] == \
        "/x.png"
    for junk in (b"hello\n", b"", b"{broken", b'{"no_event": 1}', b"[1, 2]", b'{"event": 3}'):
        assert protocol.parse_event_line(junk) is None


def test_a_slow_run_note_is_decided_at_the_first_estimate_and_only_on_the_cpu():
    start = {"event": "start", "device": "cpu"}
    first = {"event": "progress", "iteration": 2, "elapsed": 4.0, "eta": 86.0}
    note = protocol.SlowRunNote("the Fast preset")
    assert note.update(start) is None
    assert note.update({"event": "progress", "iteration": 1, "elapsed": 2.0, "eta": None}) is None
    text = note.update(first)
    assert text == ("On the CPU this may take more than a minute (up to about 1 min 30 s): the Fast "
                    "preset is quicker.")
    assert note.update(dict(first, eta=5.0)) == text  # decided: later estimates do not flip it
    quick = protocol.SlowRunNote("x")
    quick.update(start)
    assert quick.update(dict(first, eta=30.0)) is None
    assert quick.update(dict(first, eta=300.0)) is None  # the first estimate decides
    gpu = protocol.SlowRunNote("x")
    gpu.update(dict(start, device="cuda"))
    assert gpu.update(dict(first, eta=300.0)) is None


def test_progress_text_shows_iteration_and_time_left():
    event = {"event": "progress", "iteration": 12, "total": 300, "fraction": 0.04, "eta": 80.4}
    assert protocol.progress_text(event) == \
        "Style transfer: iteration 12 of 300, about 1 min 20 s left"
    event["eta"] = None
    assert protocol.progress_text(event).endswith("estimating the time left")
    assert "refining" in protocol.progress_text(dict(event, phase="refine"))
    start = {"event": "start", "device": "cuda", "working_size": [512, 384]}
    assert protocol.progress_text(start) == \
        "Style transfer: starting on cuda, working size 512x384"
    assert protocol.progress_text({"event": "something-new"}) is None


def test_progress_fraction_is_clamped_and_falls_back_to_iterations():
    assert protocol.progress_fraction({"fraction": 0.5}) == 0.5
    assert protocol.progress_fraction({"fraction": 1.7}) == 1.0
    assert protocol.progress_fraction({"iteration": 3, "total": 12}) == 0.25
    assert protocol.progress_fraction({}) is None


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.4, "59 s"), (61, "1 min 01 s"),
                                           (3725, "1 h 02 min")])
def test_durations_read_naturally(seconds, text):
    assert protocol.format_duration(seconds) == text


def test_failure_message_uses_the_engines_words_and_names_the_log():
    code, message = protocol.failure_message(
        {"event": "error", "code": "out_of_memory", "message": "CUDA ran out of memory."}, 5,
        "/logs/nst_engine.log", [], "/env/bin/python")
    assert code == "out_of_memory"
    assert message == "CUDA ran out of memory. Engine log: /logs/nst_engine.log"


def test_failure_message_of_a_cancelled_run_says_the_image_is_unchanged():
    code, message = protocol.failure_message(
        {"event": "error", "code": "cancelled", "message": "cancelled (SIGTERM)"}, 4, "/l.log",
        [], "/py")
    assert code == "cancelled" and "the image was not changed" in message
    # the engine's words end without a full stop: one is put before the advice
    assert message.startswith("cancelled (SIGTERM). The engine was stopped before it finished;")


def test_failure_without_event_maps_the_exit_code_and_quotes_the_log():
    code, message = protocol.failure_message(None, 3, "/l/x.log", ["no weights here"], "/py")
    assert code == "weights_missing"
    assert "exit code 3" in message and "no weights here" in message
    assert '"/py" -m nst_core weights fetch' in message
    code, message = protocol.failure_message(None, 5, "/l/x.log", [], "/py")
    assert code == "out_of_memory" and "smaller working size" in message


# ---------------------------------------------------------------------------------------------
# running the (fake) engine


@pytest.fixture
def pictures(tmp_path):
    from PIL import Image
    content = tmp_path / "content.png"
    style = tmp_path / "style.png"
    Image.new("RGBA", (24, 16), (200, 100, 50, 255)).save(content)
    Image.new("RGB", (10, 10), (0, 0, 255)).save(style)
    return str(content), str(style), str(tmp_path / "result.png")


def fake_client(engine, tmp_path, mode=None, env_extra=None):
    env = process.clean_environment(os.environ)
    if mode:
        env["FAKE_ENGINE_MODE"] = mode
    env.update(env_extra or {})
    return subprocess_engine.SubprocessEngine(engine, str(tmp_path / "logs"), str(tmp_path / "fallback"),
                                              env)


def fake_job(pictures):
    content, style, result = pictures
    return protocol.Job(content, [style], result,
                        protocol.engine_options(size=64, iterations=2))


def run_fake(engine, pictures, tmp_path, mode=None, env_extra=None, on_event=None):
    return fake_client(engine, tmp_path, mode, env_extra).run(fake_job(pictures), on_event)


def test_successful_run_streams_events_and_returns_done(fake_engine, pictures, tmp_path):
    events = []
    done = run_fake(fake_engine, pictures, tmp_path, on_event=events.append)
    kinds = [event["event"] for event in events]
    assert kinds == ["start", "progress", "progress", "progress", "done"]
    assert done["output"] == os.path.abspath(pictures[2])
    assert os.path.isfile(pictures[2])
    assert done["log_path"] == str(tmp_path / "logs" / "nst_engine.log")
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    assert "fake engine:" in log  # the engine's stderr went to the log
    assert "-m nst_core stylize" in log  # with the command that was run


def test_engine_gets_a_clean_environment(fake_engine, pictures, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/gimp/python/lib")
    monkeypatch.setenv("NST_WEIGHTS", "random")
    run_fake(fake_engine, pictures, tmp_path)
    seen = json.loads((tmp_path / "record.json").read_text())["env"]
    assert seen["PYTHONPATH"] is None
    assert seen["NST_WEIGHTS"] == "random"


@pytest.mark.parametrize("mode, code", [("weights_missing", "weights_missing"),
                                        ("bad_input", "bad_input"),
                                        ("out_of_memory", "out_of_memory")])
def test_error_event_becomes_the_message(fake_engine, pictures, tmp_path, mode, code):
    with pytest.raises(EngineError) as caught:
        run_fake(fake_engine, pictures, tmp_path, mode=mode)
    assert caught.value.code == code
    assert "Fake engine failure: %s" % mode in caught.value.message
    assert str(tmp_path / "logs" / "nst_engine.log") in caught.value.message
    assert not os.path.exists(pictures[2])


def test_crash_without_event_quotes_the_log(fake_engine, pictures, tmp_path):
    with pytest.raises(EngineError) as caught:
        run_fake(fake_engine, pictures, tmp_path, mode="crash")
    assert caught.value.code == "internal"
    assert "exit code 1" in caught.value.message
    assert "fake engine crashed on purpose" in caught.value.message
    assert "Engine log:" in caught.value.message


def test_python_without_nst_core_says_to_reinstall(fake_engine, pictures, tmp_path):
    with pytest.raises(EngineError) as caught:
        run_fake(fake_engine, pictures, tmp_path, mode="no_module")
    assert caught.value.code == "engine_missing"
    assert "does not have nst_core installed" in caught.value.message


def test_done_without_a_file_is_an_error(fake_engine, pictures, tmp_path):
    with pytest.raises(EngineError) as caught:
        run_fake(fake_engine, pictures, tmp_path, mode="no_output")
    assert "wrote no result" in caught.value.message


def test_silent_exit_is_an_error(fake_engine, pictures, tmp_path):
    with pytest.raises(EngineError) as caught:
        run_fake(fake_engine, pictures, tmp_path, mode="silent")
    assert caught.value.code == "protocol"


def test_program_that_cannot_start_is_reported(pictures, tmp_path):
    with pytest.raises(EngineError) as caught:
        run_fake(str(tmp_path / "no-such-python"), pictures, tmp_path)
    assert caught.value.code == "engine_missing"
    assert "could not be started" in caught.value.message


def test_unwritable_log_dir_falls_back(fake_engine, pictures, tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log folder should be")
    done = run_fake(fake_engine, pictures, tmp_path)
    assert done["log_path"] == str(tmp_path / "fallback" / "nst_engine.log")
    assert "fake engine:" in (tmp_path / "fallback" / "nst_engine.log").read_text()


def test_exception_in_the_caller_stops_the_engine(fake_engine, pictures, tmp_path):
    marker = tmp_path / "stopped"

    class Boom(Exception):
        pass

    def on_event(event):
        if event["event"] == "progress":
            raise Boom()

    started = time.time()
    with pytest.raises(Boom):
        run_fake(fake_engine, pictures, tmp_path, mode="hang",
                 env_extra={"FAKE_ENGINE_MARKER": str(marker)}, on_event=on_event)
    assert marker.exists(), "the engine was not told to stop through stdin"
    assert time.time() - started < 10
    pid = json.loads((tmp_path / "record.json").read_text())["pid"]
    with pytest.raises(OSError):
        os.kill(pid, 0)


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX signals")
def test_engine_stops_when_the_plugin_process_is_killed(fake_engine, pictures, tmp_path):
    """GIMP kills the plug-in when the user cancels: the engine must notice and stop."""
    marker = tmp_path / "stopped"
    script = tmp_path / "plugin_stand_in.py"
    script.write_text(textwrap.dedent("""
        import os
        from nst_client import process, protocol, subprocess_engine
        env = process.clean_environment(os.environ)
        env["FAKE_ENGINE_MODE"] = "hang"
        env["FAKE_ENGINE_MARKER"] = %r
        def on_event(event):
            print(event["event"], flush=True)
        engine = subprocess_engine.SubprocessEngine(%r, %r, %r, env)
        engine.run(protocol.Job(%r, [%r], %r), on_event)
    """ % (str(marker), fake_engine, str(tmp_path / "logs"),
           str(tmp_path / "fb"), pictures[0], pictures[1], pictures[2])))
    stand_in = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=plugin_environment())
    try:
        assert stand_in.stdout.readline().strip() == b"start"
        assert stand_in.stdout.readline().strip() == b"progress"
        stand_in.send_signal(signal.SIGKILL)
        stand_in.wait(timeout=10)
        deadline = time.time() + 15
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the engine kept running after its caller died"
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
        stand_in.stdout.close()


# ---------------------------------------------------------------------------------------------
# the protocol version, the fake's fields, the run's outcome in the log, cancel and stop


@pytest.mark.parametrize("version", [1, 1.0])
def test_the_known_protocol_is_accepted(version):
    protocol.check_protocol({"event": "start", "protocol": version})


def test_a_newer_protocol_says_to_update_the_plugin():
    with pytest.raises(EngineError) as caught:
        protocol.check_protocol({"event": "start", "protocol": 2, "version": "9.0"})
    assert caught.value.code == "protocol"
    assert "protocol version 2" in caught.value.message and "nst-core 9.0" in caught.value.message
    assert "update the plug-in" in caught.value.message and "installer" in caught.value.message


@pytest.mark.parametrize("version", [0, None, "1", True])
def test_an_unknown_protocol_says_to_reinstall(version):
    with pytest.raises(EngineError) as caught:
        protocol.check_protocol({"event": "start", "protocol": version})
    assert caught.value.code == "protocol" and "run the installer again" in caught.value.message


def test_engine_with_a_newer_protocol_is_stopped_with_that_message(fake_engine, pictures, tmp_path):
    events = []
    with pytest.raises(EngineError) as caught:
        run_fake(fake_engine, pictures, tmp_path, env_extra={"FAKE_ENGINE_PROTOCOL": "2"},
                 on_event=events.append)
    assert caught.value.code == "protocol" and "update the plug-in" in caught.value.message
    assert "Engine log: %s" % (tmp_path / "logs" / "nst_engine.log") in caught.value.message
    assert events == [], "events of an unknown protocol reached the caller"
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    assert "(client) outcome: error protocol" in log


def fake_events(engine, pictures, tmp_path, mode, **env_extra):
    events = []
    try:
        run_fake(engine, pictures, tmp_path, mode=mode, env_extra=env_extra,
                 on_event=events.append)
    except EngineError:
        pass
    return events


@pytest.mark.parametrize("mode", ["ok", "weights_missing", "bad_input", "out_of_memory"])
def test_fake_engine_events_have_the_documented_fields(fake_engine, pictures, tmp_path, mode):
    """The same checks tests/cli/test_cli.py makes on the real engine's events."""
    events = fake_events(fake_engine, pictures, tmp_path, mode, FAKE_ENGINE_WARN="a note")
    assert events, "the fake engine sent no event"
    table = documented_events()
    for event in events:
        check_event(event, table)
    assert events[-1]["event"] == ("done" if mode == "ok" else "error")


def test_fake_engine_stopped_early_sends_documented_events(fake_engine, pictures, tmp_path):
    events = []
    engine = fake_client(fake_engine, tmp_path, mode="hang")

    def on_event(event):
        events.append(event)
        if event["event"] == "progress":
            engine.stop()
    engine.run(fake_job(pictures), on_event)
    for event in events:
        check_event(event)


def test_successful_run_logs_its_outcome(fake_engine, pictures, tmp_path):
    run_fake(fake_engine, pictures, tmp_path)
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    outcome = [line for line in log.splitlines() if line.startswith("(client) outcome:")]
    assert len(outcome) == 1, log
    assert outcome[0].startswith("(client) outcome: done (exit code 0) after ")
    assert outcome[0].endswith(" s, step 3 of 3")
    assert log.index("-m nst_core stylize") < log.index("(client) outcome:")


def test_failed_run_logs_its_error_code(fake_engine, pictures, tmp_path):
    with pytest.raises(EngineError):
        run_fake(fake_engine, pictures, tmp_path, mode="weights_missing")
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    assert "(client) outcome: error weights_missing (exit code 3) after " in log
    assert log.rstrip().endswith("no step done")


def test_cancel_ends_the_run_without_a_result(fake_engine, pictures, tmp_path):
    marker = tmp_path / "stopped"
    engine = fake_client(fake_engine, tmp_path, mode="hang",
                         env_extra={"FAKE_ENGINE_MARKER": str(marker)})
    assert engine.cancel() is False  # no run under way: nothing to do, no error

    def on_event(event):
        if event["event"] == "progress":
            assert engine.cancel() is True
    with pytest.raises(EngineError) as caught:
        engine.run(fake_job(pictures), on_event)
    assert caught.value.code == "cancelled" and "the image was not changed" in caught.value.message
    assert marker.read_text() == "cancelled through stdin\n"
    assert not os.path.exists(pictures[2])
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    assert "(client) outcome: cancelled (exit code 4) after " in log and "step 1 of 3" in log
    assert engine.cancel() is False  # the run is over


def test_cancel_from_another_thread(fake_engine, pictures, tmp_path):
    import threading
    engine = fake_client(fake_engine, tmp_path, mode="hang")
    started = threading.Event()

    def on_event(event):
        if event["event"] == "progress":
            started.set()
    canceller = threading.Thread(target=lambda: started.wait(30) and engine.cancel())
    canceller.start()
    with pytest.raises(EngineError) as caught:
        engine.run(fake_job(pictures), on_event)
    canceller.join(10)
    assert caught.value.code == "cancelled"


def test_stop_keeps_the_result_so_far(fake_engine, pictures, tmp_path):
    marker = tmp_path / "stopped"
    engine = fake_client(fake_engine, tmp_path, mode="hang",
                         env_extra={"FAKE_ENGINE_MARKER": str(marker)})

    def on_event(event):
        if event["event"] == "progress":
            assert engine.stop() is True
    done = engine.run(fake_job(pictures), on_event)
    assert marker.read_text() == "stopped through stdin\n"
    assert done["output"] == os.path.abspath(pictures[2]) and os.path.isfile(pictures[2])
    assert done["stats"]["iterations"] == 1


def test_caller_exception_is_in_the_log(fake_engine, pictures, tmp_path):
    class Boom(Exception):
        pass

    def on_event(event):
        if event["event"] == "progress":
            raise Boom()
    with pytest.raises(Boom):
        run_fake(fake_engine, pictures, tmp_path, mode="hang", on_event=on_event)
    log = (tmp_path / "logs" / "nst_engine.log").read_text()
    assert "(client) outcome: cancelled (exit code 4) after " in log
    assert "ended by the caller (Boom)" in log


def test_run_record_outcome_says_how_long_and_how_far():
    now = [100.0]
    record = protocol.RunRecord(clock=lambda: now[0])
    assert record.outcome(3) == "error weights_missing (exit code 3) after 0.0 s, no step done"
    record.add({"event": "start", "protocol": 1})
    record.add({"event": "progress", "iteration": 40, "total": 300})
    now[0] = 112.5
    assert record.outcome(4) == "cancelled (exit code 4) after 12.5 s, step 40 of 300"
    assert record.outcome(-9) == "error internal (exit code -9) after 12.5 s, step 40 of 300"
    record.add({"event": "error", "code": "out_of_memory"})
    assert record.outcome(5).startswith("error out_of_memory (exit code 5)")
    assert record.outcome(0, "protocol").startswith("error protocol (exit code 0)")
    record.add({"event": "start", "protocol": 1})  # a new attempt after an out-of-memory warning
    assert record.outcome(0) == "done (exit code 0) after 12.5 s, no step done"


# ---------------------------------------------------------------------------------------------
# previews (PROTOCOL.md "Previews")


def test_command_line_asks_for_previews_only_when_the_job_does():
    plain = subprocess_engine.build_command("/p", "/t/c.png", ["/t/s.png"], "/t/r.png", {})
    assert "--preview-every" not in plain and "--preview-dir" not in plain
    command = subprocess_engine.build_command("/p", "/t/c.png", ["/t/s.png"], "/t/r.png", {}, 0.5, "/t")
    assert command[-4:] == ["--preview-every", "0.5", "--preview-dir", "/t"]


def test_previews_arrive_as_local_files_in_the_run_folder(fake_engine, pictures, tmp_path):
    content, style, result = pictures
    job = protocol.Job(content, [style], result,
                       protocol.engine_options(size=64, iterations=2), preview_every=1.0)
    seen, events = [], []

    def on_event(event):
        events.append(event)
        if event["event"] == "preview":
            # readable while the event is handled, in the output's folder
            with open(event["path"], "rb") as handle:
                seen.append((event["path"], handle.read()))
    done = fake_client(fake_engine, tmp_path).run(job, on_event)
    assert len(seen) == 3
    assert all(os.path.dirname(path) == os.path.dirname(os.path.abspath(result))
               for path, _data in seen)
    assert all(data.startswith(b"\x89PNG") for _path, data in seen)
    assert len(set(data for _path, data in seen)) == 3  # each preview is a newer picture
    assert not any(os.path.exists(path) for path, _data in seen)  # removed at the end
    assert done["event"] == "done"
    for event in events:  # the fake's preview events have the documented fields
        check_event(event)
