"""The dialog's words and choices: mnemonics, tooltips, the presets' real values, the
devices offered, the help page, and how a layer argument GIMP cannot remember is filled in.
The same dialog in a real GIMP 3 GUI: tests/gimp3/test_gimp3_gui.py."""

import json
from pathlib import Path

import pytest

import nst_gimpfu3 as shim
from helpers import mnemonics
from helpers.plugin_setup import PluginHarness
from helpers.repo import REPO


@pytest.fixture
def harness(tmp_path, monkeypatch):
    setup = PluginHarness(tmp_path, monkeypatch)
    yield setup
    setup.close()


def labels(procedure):
    return [param[2] for param in procedure.PARAMETERS[2:]]


def test_gimp3_button_mnemonics_are_gimps_own():
    # What libgimpui/libgimpwidgets 3.0.4 label the ProcedureDialog's buttons with (read from the
    # libraries' strings in the Debian 13 chroot); the GUI test checks GIMP's own warning.
    assert [mnemonics.mnemonic(label) for label in mnemonics.PROCEDURE_DIALOG_BUTTONS] == \
        ["h", "r", "c", "o", "l", "s"]


def test_the_clash_check_finds_the_old_clashes():
    """The labels as they once were: Alt+S and Alt+C were taken twice."""
    clashes = dict(mnemonics.mnemonic_clashes(["_Style layer (from any open image)",
                                          "_Content weight (1.0 = balanced)"]))
    assert sorted(clashes) == ["c", "s"]
    assert "_Save Settings" in clashes["s"] and "_Cancel" in clashes["c"]


def test_every_label_has_its_own_mnemonic_not_one_of_gimps_buttons(harness):
    plugin_labels = labels(harness.nst_styled_layers)
    assert all(mnemonics.mnemonic(label) for label in plugin_labels), plugin_labels
    assert mnemonics.mnemonic_clashes(plugin_labels) == []


def test_presets_values_in_the_dialog_are_the_engines(harness):
    from nst_core.params import StyleParams
    settings = harness.nst_settings
    for name, values in settings.PRESET_DEFAULTS:
        params = StyleParams.preset(name)
        assert {"iterations": params.iterations, "size": params.size} == values, name
    assert [name for name, _values in settings.PRESET_DEFAULTS] == ["standard", "fast", "paper"]


def test_labels_show_the_presets_numbers_not_the_presets(harness):
    procedure, settings = harness.nst_styled_layers, harness.nst_settings
    by_name = dict((param[1], param[2]) for param in procedure.PARAMETERS)
    steps = ", ".join("%s %d" % (name, values["iterations"])
                      for name, values in settings.PRESET_DEFAULTS)
    assert steps in by_name["iterations"]
    assert "0 = preset: %d" % settings.PRESET_DEFAULTS[0][1]["size"] in by_name["size"]
    assert "the preset's" not in " ".join(labels(procedure))
    assert "5 = balanced, higher = more painterly" in by_name["style_strength"]


def test_style_strength_is_one_control_from_0_to_10(harness):
    strength = [param for param in harness.nst_styled_layers.PARAMETERS if param[1] == "style_strength"]
    assert len(strength) == 1
    assert strength[0][3] == 5.0 and tuple(strength[0][4][:2]) == (0.0, 10.0)
    names = [param[1] for param in harness.nst_styled_layers.PARAMETERS]
    assert "style_weight" not in names and "content_weight" not in names


def test_every_field_has_a_tooltip_that_says_more_than_its_label(harness):
    procedure = harness.nst_styled_layers
    for _type, name, label in [param[:3] for param in procedure.PARAMETERS[2:]]:
        tooltip = procedure.TOOLTIPS.get(name, "")
        assert len(tooltip.split()) >= 12, name
        assert tooltip != label.replace("_", "")
    # ... and what it costs, where it costs something.
    for name in ("preset", "iterations", "size"):
        assert "time" in procedure.TOOLTIPS[name].lower(), name


def test_tooltips_become_the_gimp3_blurbs(harness):
    procedure = harness.nst_styled_layers
    specs = shim.argument_specs(procedure.PARAMETERS, procedure.TOOLTIPS)
    by_name = dict((spec.name, spec.blurb) for spec in specs)
    assert by_name["style-strength"] == procedure.TOOLTIPS["style_strength"]
    assert by_name["device"] == procedure.TOOLTIPS["device"]


def reimport_with_config(harness, **config_fields):
    """The plug-in imported again with these fields in its config; returns its nst_settings."""
    path = harness.folder / "nst_config.json"
    config = json.loads(path.read_text())
    config.update(config_fields)
    path.write_text(json.dumps(config))
    harness.reimport()
    return harness.nst_settings


def test_devices_the_installer_did_not_find_are_marked_and_greyed(harness):
    settings = reimport_with_config(harness, devices=["cpu"])
    assert settings.MISSING_DEVICES == ["cuda", "mps"]
    assert "not found on this machine" in settings.DEVICE_CHOICES[2][1]
    assert "not found on this machine" in settings.DEVICE_CHOICES[3][1]
    assert "not found" not in settings.DEVICE_CHOICES[0][1] + settings.DEVICE_CHOICES[1][1]
    # The names scripts pass stay the same on every machine.
    specs = dict((spec.name, spec) for spec in shim.argument_specs(harness.nst_styled_layers.PARAMETERS))
    assert [nick for nick, _label in specs["device"].choices] == ["auto", "cpu", "cuda", "mps"]
    assert shim.unavailable_nicks(specs["device"], settings.MISSING_DEVICES) == ["cuda", "mps"]
    assert "Found on this machine by the installer: CPU." in harness.nst_styled_layers.TOOLTIPS["device"]


def test_a_found_gpu_is_offered(harness):
    settings = reimport_with_config(harness, devices=["cpu", "cuda"])
    assert settings.MISSING_DEVICES == ["mps"]
    assert settings.DEVICE_CHOICES[2][1] == "CUDA (NVIDIA GPU)"


def test_without_the_installers_word_every_device_is_offered(harness):
    assert harness.nst_settings.FOUND_DEVICES is None and harness.nst_settings.MISSING_DEVICES == []


def test_installer_records_the_devices_doctor_found():
    from nst_installer.plugin_files import engine_config
    config = engine_config(Path("/e/bin/python"), Path("/logs"), "0.1",
                           {"cuda": False, "mps": False, "torch": "2.1"})
    assert config["devices"] == ["cpu"]
    gpu = engine_config(Path("/e/bin/python"), Path("/logs"), "0.1", {"cuda": True, "mps": False})
    assert gpu["devices"] == ["cpu", "cuda"]
    assert "devices" not in engine_config(Path("/e/bin/python"), Path("/logs"), "0.1", {})


def test_the_help_page_ships_with_the_plugin(harness):
    settings = harness.nst_settings
    assert Path(settings.HELP_PAGE).name == "nst_help.html"
    assert Path(settings.HELP_PAGE).parent == harness.folder
    page = " ".join((REPO / "plugin" / "nst_help.html").read_text().split())
    # The page's numbers are the presets' too.
    for words in ("Style strength", "0 takes the preset's (%s)" % settings.preset_values_text(
            "iterations"), "0 takes the preset's (%s)" % settings.preset_values_text("size"),
            "nst_engine.log"):
        assert words in page
    from nst_installer.plugin_files import plugin_sources
    assert "nst_help.html" in [path.name for path in plugin_sources(REPO / "plugin")]


def test_layer_argument_prefers_value_then_last_layer_then_suggestion():
    layers = {7: "painting"}
    suggestion = lambda: "suggested"  # noqa: E731
    assert shim.resolve_layer("given", "7", suggestion, layers.get) == "given"
    assert shim.resolve_layer(None, "7", suggestion, layers.get) == "painting"
    # The last layer was closed or deleted; nothing remembered yet; garbage.
    assert shim.resolve_layer(None, "8", suggestion, layers.get) == "suggested"
    assert shim.resolve_layer(None, "", suggestion, layers.get) == "suggested"
    assert shim.resolve_layer(None, None, suggestion, layers.get) == "suggested"
    assert shim.resolve_layer(None, "x", suggestion, layers.get) == "suggested"
