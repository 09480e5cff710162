"""Installing the plug-in into a test folder and importing it against the fake gimpfu."""

import importlib.util
import json
import os
import sys
from pathlib import Path

from helpers.fake_engine import write_fake_engine
from helpers.fake_gimpfu import FakeGimp
from nst_installer.plugin_files import build_plugin_folder, plugin_sources

REPO = Path(__file__).resolve().parents[2]
PLUGIN_SOURCE = REPO / "plugin"
# Every module of the plug-in, as GIMP imports them from its folder: its files beside the main file,
# and its packages (nst_client) with their modules.
PLUGIN_MODULES = tuple(sorted(source.name[:-len(".py")].replace("/__init__", "").replace("/", ".")
                              for source in plugin_sources(PLUGIN_SOURCE) if source.name.endswith(".py")))
# The style-transfer procedure's arguments in GIMP 3 after run-mode, image and drawables, as the
# shim should register them (written out: the tests check the registration against it).
GIMP3_ARGUMENTS = ("style-layer", "preset", "iterations", "size", "style-strength", "use-ssim",
                   "preserve-colors", "seed", "device", "region", "region-item", "region-weight",
                   "region2", "region2-item", "region2-style", "region2-weight")
# ... and those of the animation's procedure (plugin/nst_animation.py).
GIMP3_FRAMES_ARGUMENTS = ("style-layer", "preset", "iterations", "size", "style-strength", "use-ssim",
                          "preserve-colors", "seed", "device", "temporal-weight")


def install_plugin_copy(plug_ins_dir, engine_python, log_dir, version="0.1.0", service="off"):
    """What the installer does: the plug-in's files and package folders into
    plug-ins/nst_style_transfer/ (the installer's own code), plus the config.

    service: the config's engine_service; "off" (an engine process per run, which the fake engine
    plays) unless a test is about the service (tests/plugin/test_plugin_http.py)."""
    folder = Path(plug_ins_dir) / "nst_style_transfer"
    folder.mkdir(parents=True)
    config = {"engine_python": str(engine_python), "log_dir": str(log_dir), "version": version,
              "engine_service": service}
    build_plugin_folder(folder, plugin_sources(PLUGIN_SOURCE), "#!/usr/bin/env python3", config)
    return folder


def forget_plugin_modules():
    for name in PLUGIN_MODULES + ("gimpfu",):
        sys.modules.pop(name, None)


def import_installed_plugin(folder, gimpfu_module):
    """A fresh import of the plug-in installed in `folder`, as GIMP imports it: its main file, which
    puts its own folder first on sys.path for its helper modules (taken off again here). gimpfu_module:
    what `import gimpfu` gives (None: an ImportError, as on GIMP 3, so that it takes the shim)."""
    forget_plugin_modules()
    sys.modules["gimpfu"] = gimpfu_module
    main_file = Path(folder) / "nst_style_transfer.py"
    folder_text = os.path.dirname(os.path.abspath(str(main_file)))
    on_path_before = folder_text in sys.path
    spec = importlib.util.spec_from_file_location("nst_style_transfer", str(main_file))
    plugin = importlib.util.module_from_spec(spec)
    sys.modules["nst_style_transfer"] = plugin
    try:
        spec.loader.exec_module(plugin)
    except BaseException:
        sys.modules.pop("nst_style_transfer", None)
        raise
    finally:
        if folder_text in sys.path and not on_path_before:
            sys.path.remove(folder_text)
    return plugin


def import_plugin(folder, world):
    """A fresh import of the installed plug-in, with `world` as its gimpfu."""
    return import_installed_plugin(folder, world.as_module())


class PluginHarness(object):
    """An installed plug-in, a fake GIMP and a fake engine, all under one test folder."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp_path = Path(tmp_path)
        self.temp_dir = self.tmp_path / "tmp"
        self.temp_dir.mkdir()
        # The plug-in's run folders go under tempfile.gettempdir(): keep them in the test folder.
        monkeypatch.setattr("tempfile.tempdir", str(self.temp_dir))
        self.engine = write_fake_engine(str(self.tmp_path / "fake-python"))
        self.log_dir = self.tmp_path / "logs"
        self.record = self.tmp_path / "engine-record.json"
        monkeypatch.setenv("FAKE_ENGINE_RECORD", str(self.record))
        monkeypatch.delenv("NST_ENGINE_PYTHON", raising=False)
        monkeypatch.delenv("FAKE_ENGINE_MODE", raising=False)
        self.monkeypatch = monkeypatch
        self.folder = install_plugin_copy(self.tmp_path / "plug-ins", self.engine, self.log_dir)
        self.world = FakeGimp()
        self.reimport()

    def reimport(self):
        """A fresh import of the installed plug-in (after a test changed its config, say)."""
        self.plugin = import_plugin(self.folder, self.world)  # the entry file: the registered functions
        self.gimpfu = sys.modules["gimpfu"]
        # The plug-in's modules, as the entry file imported them: the GIMP 3 hooks are looked up on
        # nst_gimp, the run machinery on nst_run, so that tests replace them there.
        self.nst_gimp = sys.modules["nst_gimp"]
        self.nst_settings = sys.modules["nst_settings"]
        self.nst_run = sys.modules["nst_run"]
        self.nst_styled_layers = sys.modules["nst_styled_layers"]
        self.nst_animation = sys.modules["nst_animation"]

    def engine_mode(self, mode):
        self.monkeypatch.setenv("FAKE_ENGINE_MODE", mode)

    def recorded_engine_call(self):
        return json.loads(self.record.read_text())

    def run_folders(self):
        roots = list(self.temp_dir.glob("nst-gimp-*"))
        return [path for root in roots for path in root.glob("run-*")]

    def log_path(self):
        return self.log_dir / "nst_engine.log"

    def close(self):
        forget_plugin_modules()
