"""The installer's --demo (installer/nst_installer/demo.py) through the plug-in's engine client, against
the fake engine of tests/helpers (which speaks the documented protocol)."""

import io
from pathlib import Path

import pytest

from helpers.fake_engine import write_fake_engine
from helpers.repo import REPO
from nst_installer import demo as demo_module
from nst_installer.errors import ExitCode, InstallError
from nst_installer.plan import DemoPlan


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.delenv("FAKE_ENGINE_MODE", raising=False)
    engine = Path(write_fake_engine(str(tmp_path / "fake-python")))
    plan = DemoPlan(REPO / "examples" / "chelsea.png", REPO / "examples" / "great_wave.jpg",
                    tmp_path / "demo.png", size=64, iterations=3)
    return engine, plan, tmp_path / "logs"


def test_the_demo_uses_the_checkouts_client():
    protocol, client = demo_module.load_client()
    assert Path(client.__file__).resolve() == REPO / "plugin" / "nst_client" / "engine_config.py"
    assert Path(protocol.__file__).resolve() == REPO / "plugin" / "nst_client" / "protocol.py"


def test_demo_run_shows_progress_and_logs_the_outcome(setup):
    engine, plan, logs = setup
    shown = io.StringIO()
    result = demo_module.run_demo(engine, plan, demo_module.ProgressBar(shown), log_dir=logs)
    assert result == plan.output and plan.output.read_bytes().startswith(b"\x89PNG")
    assert "100%  Style transfer: iteration 3 of 3" in shown.getvalue()
    log = (logs / "nst_engine.log").read_text()
    assert "--preset fast --size 64 --iterations 3" in log
    assert "(client) outcome: done (exit code 0)" in log


def test_demo_without_weights_says_so(setup, monkeypatch):
    engine, plan, logs = setup
    monkeypatch.setenv("FAKE_ENGINE_MODE", "weights_missing")
    with pytest.raises(InstallError) as caught:
        demo_module.run_demo(engine, plan, demo_module.ProgressBar(io.StringIO()), log_dir=logs)
    assert caught.value.code == ExitCode.DEMO
    message = str(caught.value)
    assert "the demo needs the weights" in message and "Fake engine failure" in message
    assert str(logs / "nst_engine.log") in message
    assert not plan.output.exists()


def test_demo_crash_names_the_log(setup, monkeypatch):
    engine, plan, logs = setup
    monkeypatch.setenv("FAKE_ENGINE_MODE", "crash")
    with pytest.raises(InstallError) as caught:
        demo_module.run_demo(engine, plan, demo_module.ProgressBar(io.StringIO()), log_dir=logs)
    assert "the demo run failed" in str(caught.value) and "crashed on purpose" in str(caught.value)


class Interrupting(demo_module.ProgressBar):
    """Ctrl-C arriving while the bar is drawn (at the first update, or once the run reached its end)."""

    def __init__(self, at_fraction):
        super().__init__(io.StringIO())
        self.at_fraction = at_fraction

    def update(self, fraction, text):
        if fraction >= self.at_fraction:
            raise KeyboardInterrupt()


@pytest.mark.parametrize("mode, at_fraction", [("hang", 0.0), ("ok", 1.0)])
def test_ctrl_c_stops_the_engine_without_a_broken_pipe(setup, monkeypatch, mode, at_fraction):
    """Mid-run, and at the end (the engine may have closed its stdin already): only KeyboardInterrupt
    comes out, the engine is gone, and a mid-run Ctrl-C leaves no result."""
    engine, plan, logs = setup
    marker = logs.parent / "stopped"
    monkeypatch.setenv("FAKE_ENGINE_MODE", mode)
    monkeypatch.setenv("FAKE_ENGINE_MARKER", str(marker))
    with pytest.raises(KeyboardInterrupt):
        demo_module.run_demo(engine, plan, Interrupting(at_fraction), log_dir=logs)
    log = (logs / "nst_engine.log").read_text()
    assert "ended by the caller (KeyboardInterrupt)" in log
    if mode == "hang":
        assert marker.read_text() == "cancelled through stdin\n"
        assert not plan.output.exists()
