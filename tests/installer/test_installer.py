"""Tests of installer/install.py against temporary home folders shaped like each platform's GIMP setup.

The engine, pip and venv are played by tests/installer_fakes.py (no torch, no network). The pure parts
(folder discovery, torch choice, shebangs) are tested in-process; the rest runs the real command line
in a subprocess, as a user would.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from helpers.installer_fakes import read_calls, snapshot, write_fake_plugin_source, write_fake_python
from helpers.repo import REPO
from nst_installer import platforms, plugin_files
from nst_installer.engine import looks_like_network_failure, parse_doctor_output
from nst_installer.errors import ExitCode, InstallError
from nst_installer.platforms import LINUX, MACOS, WINDOWS
from nst_installer.torch_choice import PYTORCH_CPU_INDEX, PYTORCH_CUDA_INDEX, choose_torch_source, index_reachable

INSTALLER = REPO / "installer" / "install.py"

PLUGIN = "nst_style_transfer"
# The fake plug-in's helpers: modules beside the main file and a package folder's modules.
HELPERS = ["nst_client/__init__.py", "nst_client/protocol.py", "nst_engine.py", "nst_gimpfu3.py"]
INSTALLED = sorted(["nst_config.json", "nst_style_transfer.py"] + HELPERS)


# --- fixtures and helpers --------------------------------------------------------------------------------

class Machine:
    """A temporary home folder, a fake engine interpreter and a fake plug-in source."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        self.state = root / "state"
        self.state.mkdir()
        self.fake_python = write_fake_python(root / "bin" / "fake-python")
        self.plugin_source = write_fake_plugin_source(root / "plugin-src")
        self.env = {"HOME": str(self.home), "FAKE_STATE": str(self.state), "PATH": os.environ.get("PATH", "")}

    def profile(self, *parts: str) -> Path:
        """Make a GIMP profile folder (what GIMP creates on its first start)."""
        folder = self.home.joinpath(*parts)
        folder.mkdir(parents=True)
        return folder

    def run(self, *args: str, engine: bool = True, extra_env=None, python=sys.executable, cwd=None):
        command = [python, str(INSTALLER)] + list(args) + ["--plugin-source", str(self.plugin_source)]
        if engine and "--uninstall" not in args and "--python" not in args and "--engine-python" not in args:
            command += ["--engine-python", str(self.fake_python)]
        env = dict(self.env, **(extra_env or {}))
        return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120, cwd=str(cwd or self.root))

    def data_dir(self) -> Path:
        return self.home / ".local" / "share" / "nst-gimp"

    def manifest(self, data_dir: Path = None) -> dict:
        return json.loads(((data_dir or self.data_dir()) / "install-manifest.json").read_text())


@pytest.fixture
def machine(tmp_path):
    return Machine(tmp_path)


def linux_profiles(machine):
    """GIMP 2.10 and 3.0 side by side, natively, plus a Flatpak 3.0 and a Snap 2.10 and 3.2."""
    return {
        "2.10": machine.profile(".config", "GIMP", "2.10"),
        "3.0": machine.profile(".config", "GIMP", "3.0"),
        "flatpak-3.0": machine.profile(".var", "app", "org.gimp.GIMP", "config", "GIMP", "3.0"),
        "snap-2.10": machine.profile("snap", "gimp", "current", ".config", "GIMP", "2.10"),
        "snap-3.2": machine.profile("snap", "gimp", "current", ".config", "GIMP", "3.2"),
    }


def installed_files(folder: Path):
    """The files in ``folder`` and its subfolders, by their ``/``-separated names inside it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def assert_plugin_folder(folder: Path, shebang: str, engine_python: Path, log_dir: Path):
    assert installed_files(folder) == INSTALLED
    assert stat.S_IMODE((folder / "nst_client").stat().st_mode) == 0o755
    main = folder / "nst_style_transfer.py"
    lines = main.read_text().splitlines()
    assert lines[0] == shebang
    assert lines[1] == "# -*- coding: utf-8 -*-"  # the rest of the file as it was
    assert "#!/usr/bin/python" not in main.read_text()  # the source's own shebang is gone
    assert stat.S_IMODE(main.stat().st_mode) == 0o755
    for helper in HELPERS + ["nst_config.json"]:
        assert stat.S_IMODE((folder / helper).stat().st_mode) == 0o644, helper
    config = json.loads((folder / "nst_config.json").read_text())
    # "devices": what the engine's doctor found (the fake reports no GPU), for the plug-in's dialog.
    assert config == {"engine_python": str(engine_python), "log_dir": str(log_dir), "version": "0.1.0",
                      "devices": ["cpu"]}
    assert os.path.isabs(config["engine_python"]) and os.path.isabs(config["log_dir"])


def home_state(machine):
    """snapshot() of the home folder, with the manifest's time stamp taken out (it changes each run)."""
    state = snapshot(machine.home)
    for key, (kind, mode, content) in list(state.items()):
        if key.endswith("install-manifest.json"):
            record = json.loads(content)
            record.pop("updated")
            state[key] = (kind, mode, record)
    return state


def no_staging_left(plugins_dir: Path):
    return not [p for p in plugins_dir.iterdir() if p.name.startswith("." + PLUGIN)]


# --- discovery of GIMP profiles (pure, no subprocess) ------------------------------------------------------

def test_linux_discovery_finds_native_flatpak_and_snap_profiles_that_exist(machine):
    folders = linux_profiles(machine)
    found = platforms.find_gimp_profiles(LINUX, machine.home, {})
    assert {(p.version, p.flavour, p.profile_dir) for p in found} == {
        ("2.10", "native", folders["2.10"]), ("3.0", "native", folders["3.0"]),
        ("3.0", "Flatpak", folders["flatpak-3.0"]), ("2.10", "Snap", folders["snap-2.10"]),
        ("3.2", "Snap", folders["snap-3.2"])}
    assert all(p.plugins_dir == p.profile_dir / "plug-ins" for p in found)


def test_linux_discovery_respects_xdg_config_home_and_ignores_a_relative_one(machine):
    machine.profile(".config", "GIMP", "3.0")
    custom = machine.profile("xdg", "GIMP", "3.2")
    found = platforms.find_gimp_profiles(LINUX, machine.home, {"XDG_CONFIG_HOME": str(machine.home / "xdg")})
    assert [p.profile_dir for p in found] == [custom]
    found = platforms.find_gimp_profiles(LINUX, machine.home, {"XDG_CONFIG_HOME": "xdg"})
    assert [p.profile_dir for p in found] == [machine.home / ".config" / "GIMP" / "3.0"]


def test_gimp_directory_variables_replace_the_native_profile_of_their_major_version(machine):
    machine.profile(".config", "GIMP", "3.0")  # hidden by GIMP3_DIRECTORY
    native_210 = machine.profile(".config", "GIMP", "2.10")
    flatpak = machine.profile(".var", "app", "org.gimp.GIMP", "config", "GIMP", "3.0")  # unaffected
    gimp3 = machine.profile("my-gimp3")
    found = platforms.find_gimp_profiles(LINUX, machine.home, {"GIMP3_DIRECTORY": "my-gimp3"})  # relative: home
    assert {(p.version, p.profile_dir) for p in found} == {("2.10", native_210), ("3.0", flatpak), ("3", gimp3)}
    gimp2 = machine.profile("elsewhere", "g2")
    found = platforms.find_gimp_profiles(LINUX, machine.home, {"GIMP2_DIRECTORY": str(gimp2)})
    assert ("2.10", gimp2) in {(p.version, p.profile_dir) for p in found}
    assert native_210 not in [p.profile_dir for p in found]


def test_later_gimp_3_versions_on_disk_are_found_too(machine):
    newer = machine.profile(".config", "GIMP", "3.4")
    machine.profile(".config", "GIMP", "2.8")  # too old: no Python-Fu plug-in folder layout we support
    found = platforms.find_gimp_profiles(LINUX, machine.home, {})
    assert [p.profile_dir for p in found] == [newer]


def test_macos_and_windows_profile_folders(machine):
    mac = machine.profile("Library", "Application Support", "GIMP", "2.10")
    mac3 = machine.profile("Library", "Application Support", "GIMP", "3.0")
    machine.profile(".config", "GIMP", "3.0")  # a Linux folder means nothing on macOS
    assert [p.profile_dir for p in platforms.find_gimp_profiles(MACOS, machine.home, {})] == [mac, mac3]
    appdata = machine.home / "AppData" / "Roaming"
    win = machine.profile("AppData", "Roaming", "GIMP", "3.0")
    assert [p.profile_dir for p in platforms.find_gimp_profiles(WINDOWS, machine.home, {})] == [win]
    roaming = machine.profile("Roaming2", "GIMP", "2.10")
    found = platforms.find_gimp_profiles(WINDOWS, machine.home, {"APPDATA": str(roaming.parent.parent)})
    assert [p.profile_dir for p in found] == [roaming]
    assert appdata.is_dir()


def test_data_folder_and_venv_interpreter_per_platform(tmp_path):
    home = tmp_path
    assert platforms.user_data_dir(LINUX, home, {}) == home / ".local" / "share" / "nst-gimp"
    assert platforms.user_data_dir(LINUX, home, {"XDG_DATA_HOME": "/x/data"}) == Path("/x/data/nst-gimp")
    assert platforms.user_data_dir(MACOS, home, {}) == home / "Library" / "Application Support" / "nst-gimp"
    assert platforms.user_data_dir(WINDOWS, home, {"LOCALAPPDATA": "/L"}) == Path("/L/nst-gimp")
    assert platforms.venv_python(Path("/v"), WINDOWS) == Path("/v/Scripts/python.exe")
    assert platforms.venv_python(Path("/v"), LINUX) == Path("/v/bin/python")


def test_gimp_version_from_a_path_and_the_shebang_it_implies():
    assert platforms.guess_gimp_version(Path("/h/.config/GIMP/2.10/plug-ins")) == "2.10"
    assert platforms.guess_gimp_version(Path("/h/GIMP/3.2/plug-ins")) == "3.2"
    assert platforms.guess_gimp_version(Path("/opt/gimp-plugins")) is None
    assert platforms.normalize_gimp_version("2") == "2.10"
    assert platforms.normalize_gimp_version("3.2") == "3.2"
    with pytest.raises(ValueError):
        platforms.normalize_gimp_version("2.8")
    assert platforms.shebang_for("2.10") == "#!/usr/bin/env python2"
    assert platforms.shebang_for("3") == platforms.shebang_for("3.0") == "#!/usr/bin/env python3"


# --- torch choice (pure) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("requested, platform, gpu, variant, index, fallback", [
    ("auto", LINUX, False, "cpu", PYTORCH_CPU_INDEX, True),
    ("auto", WINDOWS, False, "cpu", PYTORCH_CPU_INDEX, True),
    ("auto", LINUX, True, "cuda", None, False),  # PyPI's Linux wheel is the CUDA build
    ("auto", WINDOWS, True, "cuda", PYTORCH_CUDA_INDEX, True),  # PyPI's Windows wheel is CPU-only
    ("auto", MACOS, False, "default", None, False),  # MPS comes with PyPI's wheel
    ("cpu", LINUX, True, "cpu", PYTORCH_CPU_INDEX, True),
    ("default", LINUX, False, "default", None, False),
])
def test_torch_source_for_each_machine(requested, platform, gpu, variant, index, fallback):
    source = choose_torch_source(requested, platform, gpu)
    assert (source.variant, source.index_url, source.fallback_to_default) == (variant, index, fallback)


def test_torch_cuda_on_macos_is_refused_and_an_index_override_wins():
    with pytest.raises(InstallError) as failure:
        choose_torch_source("cuda", MACOS, False)
    assert failure.value.code == ExitCode.USAGE
    assert choose_torch_source("cpu", LINUX, False, "https://mirror/whl").index_url == "https://mirror/whl"


def test_index_reachability_without_network(tmp_path):
    assert index_reachable(tmp_path.as_uri())
    assert not index_reachable((tmp_path / "missing").as_uri())
    assert not index_reachable("http://127.0.0.1:9/simple", timeout=2)  # discard port: nothing listens


def test_pip_network_failures_are_told_apart():
    assert looks_like_network_failure("Failed to establish a new connection: [Errno 101] Network is unreachable")
    assert not looks_like_network_failure("ERROR: Failed building wheel for nst-core")


def test_doctor_output_parsing_is_lenient_but_wants_an_object():
    assert parse_doctor_output('{"torch": "2.1"}\n') == {"torch": "2.1"}
    assert parse_doctor_output('warning: x\n{"torch": "2.1"}') == {"torch": "2.1"}
    assert parse_doctor_output("[1, 2]") is None
    assert parse_doctor_output("") is None


# --- plug-in files (in-process) --------------------------------------------------------------------------

def test_shebang_is_replaced_or_added_and_line_endings_kept():
    assert plugin_files.with_shebang(b"#!/usr/bin/python\nx = 1\n", "#!/usr/bin/env python3") == \
        b"#!/usr/bin/env python3\nx = 1\n"
    assert plugin_files.with_shebang(b"# -*- coding: utf-8 -*-\nx = 1\n", "#!/usr/bin/env python2") == \
        b"#!/usr/bin/env python2\n# -*- coding: utf-8 -*-\nx = 1\n"
    assert plugin_files.with_shebang(b"#!python\r\nx = 1\r\n", "#!/usr/bin/env python3") == \
        b"#!/usr/bin/env python3\r\nx = 1\r\n"


def test_bytecode_of_installed_modules_counts_as_ours(tmp_path):
    folder = tmp_path / PLUGIN
    (folder / "__pycache__").mkdir(parents=True)
    for name in ["nst_engine.py", "nst_engine.pyc", "__pycache__/nst_engine.cpython-313.pyc", "mine.txt",
                 "__pycache__/other.cpython-313.pyc"]:
        (folder / name).write_text("x")
    assert plugin_files.foreign_entries(folder, ["nst_engine.py"]) == ["__pycache__/other.cpython-313.pyc",
                                                                       "mine.txt"]
    left = plugin_files.remove_installed_files(folder, ["nst_engine.py"])
    assert left == ["__pycache__", "__pycache__/other.cpython-313.pyc", "mine.txt"]
    assert not (folder / "nst_engine.pyc").exists() and not (folder / "nst_engine.py").exists()


def test_a_package_folder_goes_with_its_bytecode_and_keeps_what_is_not_ours(tmp_path):
    """A package folder of the plug-in (nst_client/): its modules' bytecode (in its own __pycache__, or
    beside them from GIMP 2.10's Python) is ours; the folder goes once empty, unless something else is
    in it."""
    folder = tmp_path / PLUGIN
    ours = ["nst_client/__init__.py", "nst_client/protocol.py", "nst_style_transfer.py"]
    bytecode = ["nst_client/__pycache__/protocol.cpython-313.pyc", "nst_client/protocol.pyc",
                "nst_client/__pycache__/__init__.cpython-313.pyc"]
    for name in ours + bytecode + ["nst_client/__pycache__/mine.cpython-313.pyc"]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    (folder / "nst_client" / "empty").mkdir()
    assert plugin_files.foreign_entries(folder, ours) == ["nst_client/__pycache__/mine.cpython-313.pyc",
                                                          "nst_client/empty/"]
    assert plugin_files.remove_installed_files(folder, ours) == [
        "nst_client", "nst_client/__pycache__", "nst_client/__pycache__/mine.cpython-313.pyc",
        "nst_client/empty"]
    (folder / "nst_client" / "__pycache__" / "mine.cpython-313.pyc").unlink()
    (folder / "nst_client" / "empty").rmdir()
    (folder / "nst_client" / "protocol.py").write_text("x")
    assert plugin_files.remove_installed_files(folder, ours) == []
    assert not folder.exists()


def test_a_failure_in_the_second_folder_rolls_back_the_first(machine, monkeypatch):
    """All or none across GIMP profiles: the first folder gets its previous contents back."""
    from nst_installer.plan import PluginTarget

    first = machine.profile(".config", "GIMP", "3.0") / "plug-ins"
    (first / PLUGIN).mkdir(parents=True)
    (first / PLUGIN / "nst_style_transfer.py").write_text("old version\n")
    before = snapshot(first)
    second_profile = machine.profile(".config", "GIMP", "2.10")
    targets = [PluginTarget(first, "3.0", "GIMP 3.0"), PluginTarget(second_profile / "plug-ins", "2.10", "2.10")]
    real_rename = os.rename

    def rename_failing_for_the_second(src, dst):
        if str(dst).startswith(str(second_profile)) and str(dst).endswith(PLUGIN):
            raise PermissionError(13, "Permission denied", dst)
        return real_rename(src, dst)

    monkeypatch.setattr(plugin_files.os, "rename", rename_failing_for_the_second)
    created = []
    with pytest.raises(PermissionError):
        plugin_files.install_plugin_folders(targets, plugin_files.plugin_sources(machine.plugin_source),
                                            {"engine_python": "/x"}, {}, machine.root / "backups", created)
    assert snapshot(first) == before
    assert not (second_profile / "plug-ins").exists()  # created for this install, removed again
    assert created == []


# --- the command line: install, re-install, dry run, uninstall ---------------------------------------------

def test_linux_install_into_every_profile(machine):
    folders = linux_profiles(machine)
    (folders["2.10"] / "plug-ins").mkdir()
    (folders["2.10"] / "plug-ins" / "someone-elses-plugin.py").write_text("keep me")
    result = machine.run()
    assert result.returncode == 0, result.stderr
    log_dir = machine.data_dir() / "logs"
    for key, folder in folders.items():
        shebang = "#!/usr/bin/env python2" if key.endswith("2.10") else "#!/usr/bin/env python3"
        assert_plugin_folder(folder / "plug-ins" / PLUGIN, shebang, machine.fake_python, log_dir)
        assert no_staging_left(folder / "plug-ins")
    assert (folders["2.10"] / "plug-ins" / "someone-elses-plugin.py").read_text() == "keep me"
    assert log_dir.is_dir()
    assert "Filters > Artistic > Neural Style Transfer..." in result.stdout
    assert "restart GIMP" in result.stdout

    manifest = machine.manifest()
    assert sorted(r["path"] for r in manifest["plugin_folders"]) == \
        sorted(str(f / "plug-ins" / PLUGIN) for f in folders.values())
    assert all(r["files"] == INSTALLED for r in manifest["plugin_folders"])
    assert manifest["created_venvs"] == []  # --engine-python: no venv of ours
    assert str(folders["3.0"] / "plug-ins") in manifest["created_dirs"]
    assert str(folders["2.10"] / "plug-ins") not in manifest["created_dirs"]  # it was there before
    weights = machine.state / "engine-data" / "weights" / "vgg19-torchvision-features.pth"
    assert weights.is_file() and manifest["created_files"] == [str(weights)]
    calls = [c["args"][2:] for c in read_calls(machine.state)]
    assert ["doctor", "--json"] in calls and ["weights", "fetch"] in calls


def test_reinstall_replaces_in_place_and_uninstall_restores_the_home_exactly(machine):
    linux_profiles(machine)
    pristine = snapshot(machine.home)
    assert machine.run().returncode == 0
    installed = home_state(machine)
    target = machine.home / ".config" / "GIMP" / "3.0" / "plug-ins" / PLUGIN
    (target / "nst_engine.py").write_text("stale\n")  # an older release's file
    (target / "__pycache__").mkdir()
    (target / "__pycache__" / "nst_engine.cpython-313.pyc").write_bytes(b"cache")  # written by GIMP's Python
    (target / "nst_client" / "__pycache__").mkdir()
    (target / "nst_client" / "__pycache__" / "protocol.cpython-313.pyc").write_bytes(b"cache")
    (target / "nst_client" / "protocol.pyc").write_bytes(b"cache")  # GIMP 2.10's Python 2

    again = machine.run()
    assert again.returncode == 0, again.stderr
    assert home_state(machine) == installed  # same files, fresh contents, bytecode of ours dropped
    assert "replaced" in again.stdout
    assert not (machine.data_dir() / "backups").exists()

    dry = machine.run("--uninstall", "--dry-run")
    assert dry.returncode == 0 and str(target) in dry.stdout
    assert home_state(machine) == installed
    gone = machine.run("--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert snapshot(machine.home) == pristine
    assert not (machine.state / "engine-data" / "weights" / "vgg19-torchvision-features.pth").exists()
    assert "Nothing to uninstall" in machine.run("--uninstall").stdout


def test_uninstall_keeps_files_the_installer_did_not_create(machine):
    profile = machine.profile(".config", "GIMP", "3.0")
    assert machine.run("--no-weights").returncode == 0
    folder = profile / "plug-ins" / PLUGIN
    (folder / "my-notes.txt").write_text("mine")
    plugin_log = machine.data_dir() / "logs" / "plugin.log"  # written by the plug-in, not the installer
    plugin_log.write_text("log")
    result = machine.run("--uninstall")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["my-notes.txt"]
    assert plugin_log.read_text() == "log"
    assert not (machine.data_dir() / "install-manifest.json").exists()
    assert "kept" in result.stdout


def test_a_foreign_plugin_folder_is_backed_up_not_deleted(machine):
    profile = machine.profile(".config", "GIMP", "3.0")
    handmade = profile / "plug-ins" / PLUGIN
    handmade.mkdir(parents=True)
    (handmade / "nst_style_transfer.py").write_text("copied by hand\n")
    result = machine.run("--no-weights")
    assert result.returncode == 0, result.stderr
    backups = list((machine.data_dir() / "backups").glob("*/" + PLUGIN + "/nst_style_transfer.py"))
    assert [b.read_text() for b in backups] == ["copied by hand\n"]
    assert "moved to" in result.stdout
    assert machine.run("--uninstall").returncode == 0
    assert backups[0].read_text() == "copied by hand\n"  # never the installer's to delete


def test_dry_run_changes_nothing(machine):
    linux_profiles(machine)
    before = snapshot(machine.root)
    result = machine.run("--dry-run", "--weights-url", machine.fake_python.as_uri())  # no network in tests
    assert result.returncode == 0, result.stderr
    assert snapshot(machine.root) == before
    assert result.stdout.count("plug-in:  create") == 5
    assert "nothing was changed" in result.stdout
    assert read_calls(machine.state) == []  # not even the engine was started


@pytest.mark.parametrize("platform, profile_parts, extra_env", [
    ("macos", ("Library", "Application Support", "GIMP"), {}),
    ("windows", ("AppData", "Roaming", "GIMP"), {}),
    ("windows", ("Roam", "GIMP"), {"APPDATA": "{home}/Roam", "LOCALAPPDATA": "{home}/Loc"}),
])
def test_macos_and_windows_layouts(machine, platform, profile_parts, extra_env):
    p210 = machine.profile(*profile_parts, "2.10")
    p30 = machine.profile(*profile_parts, "3.0")
    env = {k: v.format(home=machine.home) for k, v in extra_env.items()}
    result = machine.run("--platform", platform, "--no-weights", extra_env=env)
    assert result.returncode == 0, result.stderr
    if platform == "macos":
        data_dir = machine.home / "Library" / "Application Support" / "nst-gimp"
    else:
        data_dir = Path(env.get("LOCALAPPDATA", str(machine.home / "AppData" / "Local"))) / "nst-gimp"
    assert_plugin_folder(p210 / "plug-ins" / PLUGIN, "#!/usr/bin/env python2", machine.fake_python,
                         data_dir / "logs")
    assert_plugin_folder(p30 / "plug-ins" / PLUGIN, "#!/usr/bin/env python3", machine.fake_python,
                         data_dir / "logs")
    assert len(machine.manifest(data_dir)["plugin_folders"]) == 2
    assert machine.run("--platform", platform, "--uninstall", extra_env=env).returncode == 0
    assert not (p30 / "plug-ins").exists() and not data_dir.exists()


def test_explicit_plugin_dir_the_gimp3_end_to_end_form(machine):
    """The form the real-GIMP test uses: quick, no venv, no network, the given folder only."""
    machine.profile(".config", "GIMP", "2.10")  # not touched: an explicit folder replaces discovery
    plugins = machine.root / "gimp-home" / ".config" / "GIMP" / "3.0" / "plug-ins"
    result = machine.run("--gimp-plugin-dir", str(plugins), "--no-weights")
    assert result.returncode == 0, result.stderr
    assert_plugin_folder(plugins / PLUGIN, "#!/usr/bin/env python3", machine.fake_python,
                         machine.data_dir() / "logs")
    assert not (machine.home / ".config" / "GIMP" / "2.10" / "plug-ins").exists()
    assert [c["args"][2:] for c in read_calls(machine.state)] == [["doctor", "--json"]]
    assert "weights fetch" in result.stdout  # says what remains to do


def test_gimp_version_of_an_explicit_folder_guessed_or_given(machine):
    guessed = machine.root / "g" / "2.10" / "plug-ins"
    unknown = machine.root / "plugins-somewhere"
    given = machine.root / "plugins-for-210"
    assert machine.run("--gimp-plugin-dir", str(guessed), "--gimp-plugin-dir", str(unknown),
                       "--no-weights").returncode == 0
    assert (guessed / PLUGIN / "nst_style_transfer.py").read_text().startswith("#!/usr/bin/env python2\n")
    assert (unknown / PLUGIN / "nst_style_transfer.py").read_text().startswith("#!/usr/bin/env python3\n")
    assert machine.run("--gimp-plugin-dir", str(given), "--gimp-version", "2.10", "--no-weights").returncode == 0
    assert (given / PLUGIN / "nst_style_transfer.py").read_text().startswith("#!/usr/bin/env python2\n")
    assert machine.run("--gimp-plugin-dir", str(given), "--gimp-version", "2.8").returncode == ExitCode.USAGE


def test_weights_the_engine_already_had_are_not_recorded_or_removed(machine):
    machine.profile(".config", "GIMP", "3.0")
    weights = machine.state / "engine-data" / "weights" / "vgg19-torchvision-features.pth"
    weights.parent.mkdir(parents=True)
    weights.write_text("downloaded last year")
    assert machine.run().returncode == 0
    assert machine.manifest()["created_files"] == []
    assert machine.run("--uninstall").returncode == 0
    assert weights.read_text() == "downloaded last year"
    result = machine.run("--no-weights")  # and with --no-weights, nothing is left to do
    assert "already there" in result.stdout and "Still to do" not in result.stdout


def test_weights_import_forwards_backbone_and_format(machine):
    machine.profile(".config", "GIMP", "3.0")
    weights = machine.root / "vgg16-caffe.pth"
    weights.write_bytes(b"w")
    result = machine.run("--weights", str(weights), "--weights-backbone", "vgg16", "--weights-format", "caffe")
    assert result.returncode == 0, result.stderr
    calls = [c["args"][2:] for c in read_calls(machine.state)]
    assert ["weights", "import", str(weights), "--backbone", "vgg16", "--weights-format", "caffe"] in calls
    assert "imported" in result.stdout


def test_missing_weights_file_is_a_usage_error_before_any_change(machine):
    machine.profile(".config", "GIMP", "3.0")
    before = snapshot(machine.root)
    result = machine.run("--weights", str(machine.root / "nope.pth"))
    assert result.returncode == ExitCode.USAGE
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(machine.root) == before


# --- failures: a clear message, a distinct exit code, nothing left behind ------------------------------

def test_no_gimp_found_installs_the_engine_runs_the_demo_and_says_how_to_add_the_plugin(machine):
    result = machine.run("--demo")  # the README's first command, on a machine without GIMP
    assert result.returncode == ExitCode.NO_GIMP, result.stderr
    assert "No GIMP found" in result.stdout and "Traceback" not in result.stderr
    assert str(machine.home / ".config" / "GIMP") in result.stdout  # says where it looked
    assert (machine.root / "nst-demo.png").read_bytes().startswith(b"\x89PNG")  # the demo ran
    calls = [c["args"][2:] for c in read_calls(machine.state)]
    assert ["weights", "fetch"] in calls  # the engine got its weights
    assert machine.manifest()["plugin_folders"] == []
    add_plugin = [line.strip() for line in result.stdout.splitlines() if "--engine-python" in line]
    assert add_plugin == ["python3 %s --engine-python %s" % (INSTALLER, machine.fake_python)]
    assert "exit code 3" in result.stdout
    help_text = machine.run("--help").stdout
    assert "no GIMP found" in help_text and "the engine (and the --demo run) were" in help_text

    profile = machine.profile(".config", "GIMP", "3.0")  # GIMP installed and started once, later
    later = machine.run(*add_plugin[0].split()[2:], engine=False)
    assert later.returncode == 0, later.stderr
    assert_plugin_folder(profile / "plug-ins" / PLUGIN, "#!/usr/bin/env python3", machine.fake_python,
                         machine.data_dir() / "logs")
    assert ["weights", "fetch"] not in [c["args"][2:] for c in read_calls(machine.state)][len(calls):]


def test_no_gimp_installs_the_engine_only(machine):
    gimp3 = machine.profile(".config", "GIMP", "3.0")  # there, and still left alone
    result = machine.run("--no-weights", "--no-gimp")
    assert result.returncode == 0, result.stderr
    assert not (gimp3 / "plug-ins" / PLUGIN).exists()
    assert "engine only" in result.stdout and "Neural Style Transfer..." not in result.stdout
    assert machine.manifest()["plugin_folders"] == []
    result = machine.run("--no-gimp", "--gimp-plugin-dir", str(gimp3 / "plug-ins"))
    assert result.returncode == ExitCode.USAGE and "--no-gimp" in result.stderr


@pytest.mark.parametrize("mode, expected", [("fail", "doctor --json"), ("garbage", "JSON"),
                                            ("torch_error", "torch cannot be imported: ImportError")])
def test_a_failing_engine_check_leaves_nothing_behind(machine, mode, expected):
    linux_profiles(machine)
    before = snapshot(machine.home)
    result = machine.run(extra_env={"FAKE_DOCTOR": mode})
    assert result.returncode == ExitCode.ENGINE_CHECK
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert snapshot(machine.home) == before


def _python_without_the_engine():
    for python in ("/usr/bin/python3", sys.executable):
        if os.path.exists(python) and subprocess.run([python, "-c", "import nst_core"], cwd="/",
                                                     stderr=subprocess.DEVNULL).returncode != 0:
            return python
    pytest.skip("every Python here has nst_core installed")


def test_engine_python_without_the_engine(machine):
    machine.profile(".config", "GIMP", "3.0")
    before = snapshot(machine.home)
    result = machine.run("--engine-python", _python_without_the_engine(), engine=False)
    assert result.returncode == ExitCode.ENGINE_CHECK
    assert "does not have the engine" in result.stderr
    assert snapshot(machine.home) == before


def test_weights_offline_is_a_network_error_and_installs_nothing_into_gimp(machine):
    linux_profiles(machine)
    before = snapshot(machine.home)
    result = machine.run(extra_env={"FAKE_WEIGHTS": "offline"})
    assert result.returncode == ExitCode.NO_NETWORK
    assert "--weights FILE" in result.stderr and "--no-weights" in result.stderr
    assert snapshot(machine.home) == before


def _run_as_nobody_or_skip():
    """As root, permissions do not stop writes: run the installer as 'nobody' for a real denial."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    if os.geteuid() != 0:
        return None, None
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        pytest.skip("no 'nobody' user to drop privileges to")
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("needs /usr/bin/python3, readable by nobody")

    def drop():
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    return drop, python


def test_an_unwritable_plugins_folder_stops_before_any_change():
    drop, python = _run_as_nobody_or_skip()
    root = Path(tempfile.mkdtemp(prefix="nst-installer-perm-"))
    try:
        machine = Machine(root)
        writable = machine.profile(".config", "GIMP", "3.0")
        locked = machine.profile(".config", "GIMP", "2.10") / "plug-ins"
        locked.mkdir()
        if drop is not None:
            os.chmod(str(root), 0o755)
            for dirpath, dirnames, filenames in os.walk(str(root)):
                for name in [dirpath] + [os.path.join(dirpath, n) for n in filenames]:
                    os.chown(name, 65534, 65534)
        locked.chmod(0o555)
        before = snapshot(root)
        command = [python or sys.executable, str(INSTALLER), "--plugin-source", str(machine.plugin_source),
                   "--engine-python", str(machine.fake_python)]
        result = subprocess.run(command, env=machine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=60, preexec_fn=drop, cwd=str(root))
        assert result.returncode == ExitCode.NO_PERMISSION, result.stderr
        assert "no write permission" in result.stderr and str(locked) in result.stderr
        assert snapshot(root) == before
        assert not (writable / "plug-ins").exists()  # not even the profile that was writable
    finally:
        shutil.rmtree(str(root), ignore_errors=True)


# --- the venv path, with a fake base interpreter playing venv and pip ----------------------------------------

def test_venv_install_reinstall_and_uninstall(machine):
    machine.profile(".config", "GIMP", "3.0")
    index = machine.root / "torch-index"
    index.mkdir()
    args = ("--python", str(machine.fake_python), "--torch", "cpu", "--torch-index-url", index.as_uri(),
            "--no-weights")
    result = machine.run(*args)
    assert result.returncode == 0, result.stderr
    venv = machine.data_dir() / "venv"
    venv_python = venv / "bin" / "python"
    assert venv_python.is_file()
    config = json.loads((machine.home / ".config/GIMP/3.0/plug-ins" / PLUGIN / "nst_config.json").read_text())
    assert config["engine_python"] == str(venv_python)
    calls = read_calls(machine.state)
    assert calls[0]["args"][0] == "-c"  # the Python version probe
    assert calls[1]["args"] == ["-m", "venv", str(venv)]
    pip_calls = [c["args"][3:] for c in calls if c["args"][:2] == ["-m", "pip"]]
    assert pip_calls[0][-4:] == ["torch", "torchvision", "--index-url", index.as_uri()]
    assert pip_calls[1][-2:] == ["--upgrade", str(REPO) + "[serve]"]
    assert all(c["python"] == str(venv_python) for c in calls[2:])
    manifest = machine.manifest()
    assert manifest["created_venvs"] == [str(venv)] and manifest["torch_variant"] == "cpu"
    logs = list((machine.data_dir() / "logs").glob("install-*.log"))
    assert len(logs) == 1 and str(logs[0]) in manifest["created_files"]

    again = machine.run(*args)  # upgrade in place: no new venv
    assert again.returncode == 0, again.stderr
    assert "Updating the engine's virtual environment" in again.stdout
    assert sum(c["args"][:2] == ["-m", "venv"] for c in read_calls(machine.state)) == 1
    assert machine.manifest()["created_venvs"] == [str(venv)]

    assert machine.run("--uninstall").returncode == 0
    assert not venv.exists() and not machine.data_dir().exists()


def test_venv_install_falls_back_to_pypi_when_the_torch_index_is_unreachable(machine):
    machine.profile(".config", "GIMP", "3.0")
    result = machine.run("--python", str(machine.fake_python), "--torch", "cpu", "--no-weights",
                         "--torch-index-url", (machine.root / "no-such-index").as_uri())
    assert result.returncode == 0, result.stderr
    assert "cannot be reached" in result.stdout and "PyPI" in result.stdout
    torch_call = [c["args"] for c in read_calls(machine.state) if "torchvision" in c["args"]][0]
    assert "--index-url" not in torch_call


@pytest.mark.parametrize("failure, code", [("network", ExitCode.NO_NETWORK), ("broken", ExitCode.ENGINE_INSTALL)])
def test_a_failed_pip_step_names_its_log_and_removes_the_new_venv(machine, failure, code):
    machine.profile(".config", "GIMP", "3.0")
    result = machine.run("--python", str(machine.fake_python), "--torch", "default", "--no-weights",
                         extra_env={"FAKE_PIP_FAIL": failure})
    assert result.returncode == code
    logs = list((machine.data_dir() / "logs").glob("install-*.log"))
    assert len(logs) == 1 and str(logs[0]) in result.stderr
    assert "ERROR" in logs[0].read_text()
    assert not (machine.data_dir() / "venv").exists()
    assert not (machine.home / ".config" / "GIMP" / "3.0" / "plug-ins").exists()
    assert "Traceback" not in result.stderr
    # the log is recorded, so --uninstall cleans up after a failed attempt too
    assert machine.run("--uninstall").returncode == 0 and not machine.data_dir().exists()


def test_a_folder_that_is_not_a_venv_is_never_used_as_one(machine):
    machine.profile(".config", "GIMP", "3.0")
    precious = machine.root / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    result = machine.run("--python", str(machine.fake_python), "--venv", str(precious), "--no-weights")
    assert result.returncode == ExitCode.USAGE and "not a virtual environment" in result.stderr
    assert sorted(p.name for p in precious.iterdir()) == ["thesis.tex"]


def _python_3_8():
    for candidate in ("python3.8", "/root/.pyenv/versions/3.8.18/bin/python"):
        found = shutil.which(candidate)
        if found and subprocess.run([found, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                                    stderr=subprocess.DEVNULL).returncode == 0:
            return found
    pytest.skip("no Python 3.8 here")


def test_the_installer_runs_on_python_3_8_but_will_not_build_the_engine_with_it(machine):
    python38 = _python_3_8()
    profile = machine.profile(".config", "GIMP", "3.0")
    result = machine.run("--no-weights", python=python38)
    assert result.returncode == 0, result.stderr
    assert_plugin_folder(profile / "plug-ins" / PLUGIN, "#!/usr/bin/env python3", machine.fake_python,
                         machine.data_dir() / "logs")
    assert machine.run("--uninstall", python=python38).returncode == 0
    before = snapshot(machine.home)
    result = machine.run("--no-weights", python=python38, engine=False)  # venv with 3.8: refused up front
    assert result.returncode == ExitCode.ENGINE_INSTALL
    assert "needs Python 3.9" in result.stderr and "--python" in result.stderr
    assert snapshot(machine.home) == before


def test_contradictory_options_are_usage_errors(machine):
    machine.profile(".config", "GIMP", "3.0")
    result = machine.run("--venv", str(machine.root / "v"))  # with the --engine-python run() adds
    assert result.returncode == ExitCode.USAGE and "--engine-python" in result.stderr
    result = machine.run("--weights-format", "caffe")
    assert result.returncode == ExitCode.USAGE and "--weights FILE" in result.stderr


# --- demo ----------------------------------------------------------------------------------------------

def test_demo_shows_progress_and_where_the_result_is(machine):
    machine.profile(".config", "GIMP", "3.0")
    result = machine.run("--no-weights", "--demo")
    assert result.returncode == 0, result.stderr
    output = machine.root / "nst-demo.png"  # the working folder by default
    assert output.read_bytes().startswith(b"\x89PNG")
    assert "100%" in result.stdout and ("Demo result: %s" % output) in result.stdout
    stylize = [c["args"][2:] for c in read_calls(machine.state) if c["args"][2:3] == ["stylize"]][0]
    assert stylize[1:3] == [str(REPO / "examples" / "chelsea.png"), str(REPO / "examples" / "starry_night.jpg")]
    assert stylize[stylize.index("--size") + 1] == "256" and "jsonl" in stylize


def test_uninstall_removes_what_install_and_demo_made_and_keeps_quiet_about_gimp(machine):
    pristine_home = snapshot(machine.home)
    weights = machine.root / "vgg16.pth"
    weights.write_bytes(b"w")
    pristine_root = snapshot(machine.root)
    result = machine.run("--no-gimp", "--demo", "--weights", str(weights))
    assert result.returncode == 0, result.stderr
    demo = machine.root / "nst-demo.png"
    assert demo.is_file() and str(demo) in machine.manifest()["created_files"]
    engine_weights = machine.state / "engine-data" / "weights"
    assert sorted(p.name for p in engine_weights.iterdir()) == ["active.json", "vgg19-torchvision-features.pth"]
    gone = machine.run("--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert "GIMP" not in gone.stdout and "kept" not in gone.stdout
    assert not demo.exists() and weights.read_bytes() == b"w"  # the given file is the user's
    assert not (machine.state / "engine-data").exists()  # the engine's folders, made by this install, too
    assert snapshot(machine.home) == pristine_home
    assert {k for k in snapshot(machine.root) if not k.startswith("state")} == \
        {k for k in pristine_root if not k.startswith("state")}


def test_the_build_folders_pip_leaves_in_the_project_are_removed_unless_they_were_there(tmp_path):
    from nst_installer.steps import build_leftovers, remove_build_leftovers

    project = tmp_path / "project"
    (project / "nst_core").mkdir(parents=True)
    (project / "mine.egg-info").mkdir()  # a developer's editable install: theirs, kept
    before = build_leftovers(project)
    (project / "build" / "lib").mkdir(parents=True)  # what setuptools leaves after pip install PROJECT
    (project / "nst_core.egg-info").mkdir()
    remove_build_leftovers(project, before)
    assert sorted(p.name for p in project.iterdir()) == ["mine.egg-info", "nst_core"]


def test_a_demo_image_that_was_there_before_is_not_recorded(machine):
    demo = machine.root / "nst-demo.png"
    demo.write_bytes(b"an older demo")
    assert machine.run("--no-gimp", "--no-weights", "--demo").returncode == 0
    assert str(demo) not in machine.manifest()["created_files"]


def test_dry_run_checks_the_index_and_the_weights_source(machine):
    index, weights_url = machine.root / "index", machine.root / "vgg19-dcbb9e9d.pth"
    index.mkdir()
    weights_url.write_bytes(b"w")
    missing = machine.root / "nowhere"
    venv = ("--python", str(machine.fake_python), "--torch", "default", "--no-gimp")
    before = snapshot(machine.root)

    ok = machine.run("--dry-run", *venv, "--weights-url", weights_url.as_uri(), engine=False,
                     extra_env={"PIP_INDEX_URL": index.as_uri()})
    assert ok.returncode == 0, ok.stderr
    assert "ok           pip's index %s answers" % index.as_uri() in ok.stdout
    assert "ok           the weights' download %s answers" % weights_url.as_uri() in ok.stdout
    assert "not checked  that pip finds torch wheels" in ok.stdout

    # pip's own configuration names the index when PIP_INDEX_URL does not
    unreachable = machine.run("--dry-run", *venv, "--weights-url", weights_url.as_uri(), engine=False,
                              extra_env={"FAKE_PIP_CONFIG": "global.index-url='%s'" % missing.as_uri()})
    assert unreachable.returncode == ExitCode.NO_NETWORK
    assert "FAILED       pip's index %s cannot be reached" % missing.as_uri() in unreachable.stdout
    assert "would stop the real run" in unreachable.stderr

    no_weights = machine.run("--dry-run", *venv, "--weights-url", missing.as_uri(), engine=False,
                             extra_env={"PIP_INDEX_URL": index.as_uri()})
    assert no_weights.returncode == ExitCode.NO_NETWORK
    assert "FAILED       the weights' download" in no_weights.stdout
    assert "--weights FILE" in no_weights.stderr and "--weights-format" in no_weights.stderr

    given = machine.run("--dry-run", *venv, "--weights", str(weights_url), engine=False,
                        extra_env={"PIP_INDEX_URL": index.as_uri()})
    assert given.returncode == 0, given.stderr
    assert "not checked  whether it holds weights the engine can use" in given.stdout
    after = snapshot(machine.root)
    after.pop(os.path.join("state", "calls.jsonl"))  # the fake's own record of being asked
    assert after == before
    assert [c["args"][:4] for c in read_calls(machine.state) if c["args"][:2] == ["-m", "pip"]] == \
        [["-m", "pip", "config", "list"]] * 4  # pip was asked where it looks, and installed nothing


def test_the_installers_weights_addresses_and_offline_advice_agree_with_the_engine():
    from nst_core.engine import weights as engine_weights
    from nst_installer import engine as installer_engine

    assert installer_engine.WEIGHTS_DOWNLOADS == engine_weights.DOWNLOADS
    for backbone in ("vgg19", "vgg16"):
        url, filename = engine_weights.DOWNLOADS[backbone]
        engine_says = engine_weights.offline_advice(backbone)
        installer_says = installer_engine.offline_weights_advice(backbone, Path("/venv/bin/python"))
        for advice, backbone_option in ((engine_says, "--backbone"), (installer_says, "--weights-backbone")):
            assert url in advice and filename in advice
            assert "--weights-format caffe|torchvision" in advice
            assert backbone_option + " vgg16|vgg19" in advice
            assert "weights import FILE" in advice


# --- the real plug-in source, once it exists --------------------------------------------------------------

def test_the_real_plugin_source_installs(machine):
    source = REPO / "plugin"
    if not (source / "nst_style_transfer.py").is_file():
        pytest.skip("plugin/nst_style_transfer.py is not written yet")
    plugins = machine.root / "GIMP" / "3.0" / "plug-ins"
    command = [sys.executable, str(INSTALLER), "--gimp-plugin-dir", str(plugins), "--engine-python",
               str(machine.fake_python), "--no-weights"]
    result = subprocess.run(command, env=machine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=60)
    assert result.returncode == 0, result.stderr
    installed = installed_files(plugins / PLUGIN)
    assert installed == sorted([p.name for p in source.glob("*.py")] + ["nst_config.json", "nst_help.html"]
                               + ["nst_client/" + p.name for p in (source / "nst_client").glob("*.py")])
    main = (plugins / PLUGIN / "nst_style_transfer.py").read_text().splitlines()
    assert main[0] == "#!/usr/bin/env python3" and not any(line.startswith("#!") for line in main[1:2])


# --- the plug-in pointed at an engine service (--server URL --token-file F) ----------------------------

def test_server_and_token_file_go_into_the_config_with_a_private_copy_of_the_token(machine):
    machine.profile(".config", "GIMP", "3.0")
    token = machine.root / "Downloads" / "service-token"
    token.parent.mkdir()
    token.write_text("a-token-of-the-gpu-machine-0123456789\n")
    token.chmod(0o644)  # as a download or a USB stick leaves it
    result = machine.run("--server", "https://gpu.example.org/nst/", "--token-file", str(token), "--no-weights")
    assert result.returncode == 0, result.stderr
    config = json.loads((machine.home / ".config/GIMP/3.0/plug-ins" / PLUGIN / "nst_config.json").read_text())
    copy = machine.data_dir() / "service-token"
    assert config["engine_service"] == "https://gpu.example.org/nst"
    assert config["engine_service_token_file"] == str(copy)
    assert copy.read_text() == token.read_text() and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert str(copy) in machine.manifest()["created_files"]
    assert machine.run("--uninstall").returncode == 0
    assert not copy.exists() and token.exists()  # the copy goes with the install, the original stays


@pytest.mark.parametrize("args, words", [
    (("--server", "https://gpu.example.org"), "go together"),
    (("--server", "gpu.example.org", "--token-file", "TOKEN"), "not an http"),
    (("--server", "https://gpu.example.org", "--token-file", "MISSING"), "cannot be read"),
    (("--server", "https://gpu.example.org", "--token-file", "TOKEN", "--no-gimp"), "--no-gimp"),
])
def test_server_options_are_checked_before_anything_is_done(machine, args, words):
    (machine.root / "TOKEN").write_text("x" * 40)
    args = [str(machine.root / a) if a in ("TOKEN", "MISSING") else a for a in args]
    result = machine.run(*args)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert not machine.data_dir().exists()


def test_the_plugin_files_installed_are_every_module_the_plugin_imports():
    """The installer takes the plug-in's files from plugin/: every module any of them imports (the
    engine client's package and its modules, the shim, the GIMP 3 UI) is among them, and its help
    page."""
    import ast

    source = REPO / "plugin"

    def files_of(name):
        """The files that importing `name` (a module, or a name from a module) reads: the module's,
        and the __init__.py of each package it is in."""
        parts = name.split(".")
        while len(parts) > 1 and not any((source / ("/".join(parts) + ending)).is_file()
                                         for ending in (".py", "/__init__.py")):
            parts.pop()
        found = ["/".join(parts[:depth]) + "/__init__.py" for depth in range(1, len(parts))]
        module = "/".join(parts)
        return found + [module + "/__init__.py" if (source / module).is_dir() else module + ".py"]

    installed = {path.name for path in plugin_files.plugin_sources(source)}
    imported = set()
    for path in source.rglob("*.py"):
        package = ".".join(path.parent.relative_to(source).parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # the client imports its own modules relatively (all one level: `from .protocol import`)
                module = ".".join(filter(None, [package, node.module])) if node.level else node.module
                names = [module + "." + alias.name for alias in node.names]
            else:
                names = []
            for name in names:
                if name.startswith("nst_"):
                    imported.update(files_of(name))
    assert {"nst_style_transfer.py", "nst_help.html", "nst_client/subprocess_engine.py",
            "nst_client/__init__.py", "nst_gimp3_ui.py"} <= installed
    assert {"nst_client/__init__.py", "nst_client/http_engine.py", "nst_regions.py"} <= imported
    assert imported <= installed, imported - installed
