"""The GIMP 3 gimpfu shim (plugin/nst_gimpfu3.py), without GIMP: translation and surface."""

import re
import sys
from pathlib import Path

import pytest

import nst_gimp3_ui as ui
import nst_gimpfu3 as shim
from helpers.fake_gimpfu import FakeGimp, FakeGimpModule, FakePdb
from helpers.plugin_setup import (
    GIMP3_ARGUMENTS,
    GIMP3_FRAMES_ARGUMENTS,
    PluginHarness,
    forget_plugin_modules,
    import_installed_plugin,
    install_plugin_copy,
)
from helpers.repo import REPO

PLUGIN_DIR = REPO / "plugin"



@pytest.fixture
def procedure(tmp_path, monkeypatch):
    """The one-layer procedure's module (its PARAMETERS), as the installed plug-in imports it."""
    setup = PluginHarness(tmp_path, monkeypatch)
    yield setup.nst_styled_layers
    setup.close()


@pytest.fixture
def plugin_on_shim(tmp_path):
    """The installed plug-in imported the way GIMP 3 does: no gimpfu, so it takes the shim."""
    folder = install_plugin_copy(tmp_path / "plug-ins", "/unused/python", tmp_path / "logs")
    try:
        # gimpfu None: "import gimpfu" raises ImportError, as on GIMP 3
        plugin = import_installed_plugin(folder, None)
        yield plugin, sys.modules["nst_gimpfu3"]
    finally:
        forget_plugin_modules()


def public_methods(cls):
    return set(name for name in vars(cls) if not name.startswith("_") and callable(vars(cls)[name]))


# The modules that call gimpfu's pdb and gimp: every one beside the main file but the shim and its UI
# (nst_regions calls the pdb handed to it).
GIMPFU_USERS = tuple(sorted(path.name for path in PLUGIN_DIR.glob("*.py")
                            if path.name not in ("nst_gimpfu3.py", "nst_gimp3_ui.py")))


def names_used_by_plugin(prefix):
    source = "\n".join((PLUGIN_DIR / name).read_text() for name in GIMPFU_USERS)
    return set(re.findall(r"\b%s\.(\w+)\(" % prefix, source))


# ---------------------------------------------------------------------------------------------
# the surface


def test_the_plugin_uses_pdb_calls():
    # Guards the scan below: if it found nothing, the surface tests would pass vacuously.
    assert {"gimp_file_load_layer", "gimp_image_insert_layer", "file_png_save_defaults"} <= \
        names_used_by_plugin("pdb")
    assert {"progress_init", "progress_update", "message"} <= names_used_by_plugin("gimp")


def test_shim_and_double_offer_every_pdb_call_the_plugin_makes():
    used = names_used_by_plugin("pdb")
    assert used <= public_methods(shim.Gimp3Pdb), used - public_methods(shim.Gimp3Pdb)
    assert used <= public_methods(FakePdb), used - public_methods(FakePdb)


def test_shim_offers_every_pdb_call_the_double_offers():
    """Anything the unit tests rely on in the double exists on GIMP 3 too."""
    missing = public_methods(FakePdb) - public_methods(shim.Gimp3Pdb)
    assert not missing, missing


def test_shim_and_double_offer_every_gimp_call_the_plugin_makes():
    used = names_used_by_plugin("gimp")
    assert used <= public_methods(shim.Gimp3Gimp), used - public_methods(shim.Gimp3Gimp)
    assert used <= public_methods(FakeGimpModule), used - public_methods(FakeGimpModule)


def test_shim_exports_what_the_plugin_imports_from_gimpfu():
    source = (PLUGIN_DIR / "nst_gimp.py").read_text()
    imported = re.search(r"from nst_gimpfu3 import \(([^)]*)\)", source).group(1)
    names = [name.strip() for name in imported.split(",") if name.strip()]
    assert len(names) > 5
    for name in names:
        assert hasattr(shim, name), name
    gimpfu_side = re.search(r"from gimpfu import \(([^)]*)\)", source).group(1)
    assert [n.strip() for n in gimpfu_side.split(",") if n.strip()] == names


def test_shim_is_not_called_gimpfu():
    assert not (PLUGIN_DIR / "gimpfu.py").exists()
    assert "gimpfu" != Path(shim.__file__).stem


def test_shim_uses_gimpfu_210s_parameter_type_values():
    # gimpfu.py of GIMP 2.10: PF_INT32 = PDB_INT32 = 2 ... PF_OPTION = 1013.
    assert (shim.PF_INT32, shim.PF_FLOAT, shim.PF_STRING) == (2, 3, 4)
    assert (shim.PF_IMAGE, shim.PF_LAYER, shim.PF_CHANNEL, shim.PF_DRAWABLE) == (13, 14, 15, 16)
    assert (shim.PF_TOGGLE, shim.PF_SLIDER, shim.PF_SPINNER, shim.PF_OPTION) == \
        (1000, 1001, 1002, 1013)


def test_importing_the_shim_does_not_need_gimp():
    assert "gi.repository.Gimp" not in sys.modules or shim.GiModules._loaded is None


# ---------------------------------------------------------------------------------------------
# registration translation


def test_procedure_names_follow_gimpfu():
    assert shim.procedure_name("python-fu-nst-style-transfer") == "python-fu-nst-style-transfer"
    assert shim.procedure_name("nst_style_transfer") == "python-fu-nst-style-transfer"
    assert shim.procedure_name("plug_in_thing") == "plug-in-thing"


def test_choice_names_are_the_labels_first_words():
    assert shim.choice_nicks(["Standard (SSIM-weighted, balanced)", "Fast (quick preview)",
                              "Paper (the paper's settings)"]) == ["standard", "fast", "paper"]
    assert shim.choice_nicks(["Auto (CUDA, then MPS, then CPU)", "CPU", "CUDA (NVIDIA GPU)",
                              "MPS (Apple GPU)"]) == ["auto", "cpu", "cuda", "mps"]
    assert shim.choice_nicks(["Same", "Same (again)"]) == ["same", "same-1"]


def test_plugin_parameters_become_gimp3_arguments(procedure):
    specs = shim.argument_specs(procedure.PARAMETERS)
    assert [spec.name for spec in specs] == list(GIMP3_ARGUMENTS)
    kinds = dict((spec.name, spec.kind) for spec in specs)
    assert kinds == {"style-layer": "layer", "preset": "choice", "iterations": "int",
                     "size": "int", "style-strength": "double", "use-ssim": "boolean", "preserve-colors": "boolean",
                     "seed": "int", "device": "choice", "region": "choice", "region-item": "drawable",
                     "region-weight": "double", "region2": "choice", "region2-item": "drawable",
                     "region2-style": "layer", "region2-weight": "double"}
    by_name = dict((spec.name, spec) for spec in specs)
    assert by_name["preset"].default == "standard"
    assert [nick for nick, _ in by_name["preset"].choices] == ["standard", "fast", "paper"]
    assert by_name["device"].default == "auto"
    strength = by_name["style-strength"]
    assert (strength.minimum, strength.maximum, strength.default) == (0.0, 10.0, 5.0)
    assert (by_name["size"].minimum, by_name["size"].maximum) == (0, 8192)
    assert "Paper ignores it" in strength.blurb
    assert "_" not in strength.blurb  # mnemonics only in the label


def test_gimp3_values_become_the_gimpfu_functions_arguments(procedure):
    specs = shim.argument_specs(procedure.PARAMETERS)
    layer = object()
    values = {"style-layer": layer, "preset": "paper", "iterations": 300, "size": 512,
              "style-strength": 7.5, "use-ssim": False, "preserve-colors": True, "seed": 5,
              "device": "cuda", "region": "selection", "region-item": None, "region-weight": 1.5,
              "region2": "rest", "region2-item": None, "region2-style": layer, "region2-weight": 0.5}
    assert shim.function_args(specs, values) == [layer, 2, 300, 512, 7.5, False, True, 5, 2,
                                                 3, None, 1.5, 4, None, layer, 0.5]


def test_defaults_round_trip_to_the_plugins_defaults(procedure):
    specs = shim.argument_specs(procedure.PARAMETERS)
    values = dict((spec.name, spec.default) for spec in specs)
    gimpfu_defaults = [param[3] for param in procedure.PARAMETERS[2:]]
    assert shim.function_args(specs, values) == gimpfu_defaults


def test_unknown_choice_is_refused_with_the_valid_names(procedure):
    specs = shim.argument_specs(procedure.PARAMETERS)
    values = dict((spec.name, spec.default) for spec in specs)
    values["device"] = "tpu"
    with pytest.raises(shim.error) as caught:
        shim.function_args(specs, values)
    assert "auto, cpu, cuda, mps" in str(caught.value)


def test_unsupported_parameter_types_fail_at_registration():
    with pytest.raises(ValueError):
        shim.argument_specs([(shim.PF_COLOR, "color", "Color", None)])


class Recorder(object):
    """Stands for a Gimp.ImageProcedure (or Gimp.Choice): records the calls made on it."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(*args):
            self.calls.append((name,) + args)
        return record


class FakeGimpNamespace(object):
    class ProcedureSensitivityMask(object):  # flags, as GIMP 3's
        DRAWABLE, DRAWABLES = 1, 2

    class Choice(object):
        @staticmethod
        def new():
            return Recorder()


class FakeGObject(object):
    class ParamFlags(object):
        READWRITE = "READWRITE"


def test_without_gimpfu_the_plugin_registers_through_the_shim(plugin_on_shim):
    plugin, used_shim = plugin_on_shim
    assert Path(used_shim.__file__).parent == Path(plugin.__file__).parent
    gimp = sys.modules["nst_gimp"]  # the GIMP the procedures use
    assert gimp.register is used_shim.register and gimp.pdb is used_shim.pdb
    assert [r.name for r in used_shim.REGISTRATIONS] == ["python-fu-nst-style-transfer",
                                                         "python-fu-nst-style-transfer-frames"]


def registration_of(used_shim, name):
    (registration,) = [r for r in used_shim.REGISTRATIONS if r.name == name]
    return registration


def test_registration_is_described_on_the_gimp3_procedure(plugin_on_shim):
    _plugin, used_shim = plugin_on_shim
    registration = registration_of(used_shim, "python-fu-nst-style-transfer")
    assert registration.function.__name__ == "style_transfer"
    procedure = Recorder()
    used_shim.configure_procedure(procedure, registration, FakeGimpNamespace, FakeGObject)
    calls = dict((call[0], call[1:]) for call in procedure.calls if not call[0].startswith("add_")
                 or call[0] == "add_menu_path")
    assert calls["set_image_types"] == ("RGB*, GRAY*",)
    assert calls["set_menu_label"] == ("Neural Style Transfer...",)
    assert calls["add_menu_path"] == ("<Image>/Filters/Artistic",)
    # In the menu with one layer selected and with several (each gets its own styled layer).
    assert calls["set_sensitivity_mask"] == (FakeGimpNamespace.ProcedureSensitivityMask.DRAWABLE
                                             | FakeGimpNamespace.ProcedureSensitivityMask.DRAWABLES,)
    assert calls["set_documentation"][2] == "python-fu-nst-style-transfer"
    arguments = [call for call in procedure.calls if call[0].startswith("add_")
                 and call[0].endswith("_argument") and not call[0].endswith("_aux_argument")]
    assert [call[1] for call in arguments] == list(GIMP3_ARGUMENTS)
    by_name = dict((call[1], call) for call in arguments)
    assert by_name["style-layer"][0] == "add_layer_argument"
    assert by_name["style-layer"][4:] == (True, "READWRITE")
    assert by_name["iterations"][0] == "add_int_argument"
    assert by_name["iterations"][4:] == (0, 10000, 0, "READWRITE")
    assert by_name["style-strength"][0] == "add_double_argument"
    assert by_name["style-strength"][4:] == (0.0, 10.0, 5.0, "READWRITE")
    # The GIMP 3 tooltip is the plug-in's explanation, not the label again.
    assert by_name["style-strength"][3] == sys.modules["nst_styled_layers"].TOOLTIPS["style_strength"]
    # GIMP cannot keep a layer in the last values: its id is kept in a string aux argument.
    aux = [call[1:] for call in procedure.calls if call[0] == "add_string_aux_argument"]
    assert [entry[0] for entry in aux] == ["style-layer-last-id", "region-item-last-id",
                                           "region2-item-last-id", "region2-style-last-id"]
    assert by_name["use-ssim"][0:1] + by_name["use-ssim"][4:] == ("add_boolean_argument", True,
                                                                  "READWRITE")
    preset = by_name["preset"]
    assert preset[0] == "add_choice_argument" and preset[5] == "standard"
    assert [call[1:3] for call in preset[4].calls] == [("standard", 0), ("fast", 1),
                                                      ("paper", 2)]


def test_the_animations_registration_is_described_on_its_own_gimp3_procedure(plugin_on_shim):
    plugin, used_shim = plugin_on_shim
    registration = registration_of(used_shim, "python-fu-nst-style-transfer-frames")
    assert registration.function is plugin.style_transfer_frames
    procedure = Recorder()
    used_shim.configure_procedure(procedure, registration, FakeGimpNamespace, FakeGObject)
    calls = dict((call[0], call[1:]) for call in procedure.calls if not call[0].startswith("add_")
                 or call[0] == "add_menu_path")
    assert calls["set_image_types"] == ("RGB*, GRAY*",)
    assert calls["set_menu_label"] == ("Neural Style Transfer (frames)...",)
    assert calls["add_menu_path"] == ("<Image>/Filters/Animation",)
    # One layer selected: every layer is a frame; several: those are.
    assert calls["set_sensitivity_mask"] == (FakeGimpNamespace.ProcedureSensitivityMask.DRAWABLE
                                             | FakeGimpNamespace.ProcedureSensitivityMask.DRAWABLES,)
    assert calls["set_documentation"][2] == "python-fu-nst-style-transfer-frames"
    arguments = [call for call in procedure.calls if call[0].startswith("add_")
                 and call[0].endswith("_argument") and not call[0].endswith("_aux_argument")]
    assert [call[1] for call in arguments] == list(GIMP3_FRAMES_ARGUMENTS)
    by_name = dict((call[1], call) for call in arguments)
    assert by_name["temporal-weight"][0] == "add_double_argument"
    assert by_name["temporal-weight"][4:] == (0.0, 1000.0, 100.0, "READWRITE")
    assert "flicker" in by_name["temporal-weight"][3]
    # The shared arguments are the one-picture procedure's, tooltips and all (the style's apart).
    single = Recorder()
    used_shim.configure_procedure(single, registration_of(used_shim, "python-fu-nst-style-transfer"),
                                  FakeGimpNamespace, FakeGObject)
    single_by_name = dict((call[1], call) for call in single.calls if call[0].endswith("_argument"))

    def comparable(call):  # a choice argument's Gimp.Choice by the choices added to it
        return [part.calls if isinstance(part, Recorder) else part for part in call]
    for name in GIMP3_FRAMES_ARGUMENTS[1:-1]:
        assert comparable(by_name[name]) == comparable(single_by_name[name]), name
    assert "not one of the frames" in by_name["style-layer"][3]
    aux = [call[1] for call in procedure.calls if call[0] == "add_string_aux_argument"]
    assert aux == ["style-layer-last-id"]
    assert registration.dialog.help_page == sys.modules["nst_settings"].HELP_PAGE
    assert registration.dialog.on_shown is sys.modules["nst_run"].warm_up_engine
    assert "not one of the frames" in registration.dialog.required_layers["style_layer"]


def test_the_animations_gimp3_values_become_its_functions_arguments(plugin_on_shim):
    plugin, used_shim = plugin_on_shim
    registration = registration_of(used_shim, "python-fu-nst-style-transfer-frames")
    specs = used_shim.argument_specs(registration.params)
    assert [spec.name for spec in specs] == list(GIMP3_FRAMES_ARGUMENTS)
    layer = object()
    values = {"style-layer": layer, "preset": "fast", "iterations": 40, "size": 128,
              "style-strength": 6.0, "use-ssim": False, "preserve-colors": True, "seed": 2,
              "device": "cpu", "temporal-weight": 250.0}
    assert used_shim.function_args(specs, values) == [layer, 1, 40, 128, 6.0, False, True, 2, 1, 250.0]
    defaults = dict((spec.name, spec.default) for spec in specs)
    assert used_shim.function_args(specs, defaults) == [param[3] for param in registration.params[2:]]


# ---------------------------------------------------------------------------------------------
# running: the one-drawable rule, the style preselection, and the return values


def test_one_drawable_is_required():
    assert shim.drawables_problem("Neural Style Transfer...", ["a"]) is None
    assert "select one" in shim.drawables_problem("Neural Style Transfer...", [])
    message = shim.drawables_problem("Neural Style Transfer...", ["a", "b", "c"])
    assert message.startswith("Neural Style Transfer works on one layer at a time")
    assert "3 are selected" in message


def test_style_preselection_prefers_another_image():
    world = FakeGimp()
    image = world.new_image(10, 10)
    target = world.add_layer(image, "target", 10, 10)
    other_in_image = world.add_layer(image, "other", 10, 10, position=1)
    style_image = world.new_image(10, 10)
    group = world.add_layer(style_image, "group", 10, 10, kind="group")
    painting = world.add_layer(style_image, "painting", 10, 10, position=1)

    def layers_of(img):
        return list(img.layers)

    def is_group(item):
        return item.kind == "group"
    assert group.kind == "group"
    assert shim.suggest_layer(image, target, world.images, layers_of, is_group) is painting
    assert shim.suggest_layer(image, target, [image], layers_of, is_group) is other_in_image
    assert shim.suggest_layer(image, target, [image][:0] + [image], lambda img: [target],
                              is_group) is None


class FakeGi(object):
    """Enough of gi's Gimp/GLib for run_registration."""

    class Gimp(object):
        class PDBStatusType(object):
            SUCCESS, CANCEL, CALLING_ERROR, EXECUTION_ERROR = "SUCCESS", "CANCEL", "CALLING", "EXEC"

        class RunMode(object):
            INTERACTIVE, NONINTERACTIVE, WITH_LAST_VALS = 0, 1, 2

        flushed = 0

        @classmethod
        def displays_flush(cls):
            cls.flushed += 1

    class GLib(object):
        class Error(object):
            def __init__(self, message=None):
                self.message = message


class FakeProcedure(object):
    def new_return_values(self, status, gerror):
        return status, gerror.message


class FakeConfig(object):
    def __init__(self, values):
        self.values = values

    def get_property(self, name):
        return self.values[name]


def shim_run(monkeypatch, function, values, drawables=("layer",), run_mode=1,
             several_drawables=False):
    monkeypatch.setattr(shim.GiModules, "_loaded", FakeGi)
    registration = shim.Registration(
        "python-fu-test", "blurb", "help", "me", "me", "2026", "Test...", "RGB*",
        [(shim.PF_IMAGE, "image", "Image", None), (shim.PF_DRAWABLE, "drawable", "Drawable", None),
         (shim.PF_OPTION, "mode", "Mode", 0, ("One", "Two")),
         (shim.PF_SPINNER, "count", "Count", 1, (0, 10, 1))],
        [], function, "<Image>/Filters")
    registration.dialog.several_drawables = several_drawables
    return shim.run_registration(registration, FakeProcedure(), run_mode, "image",
                                 list(drawables), FakeConfig(values))


def test_non_interactive_run_calls_the_function_with_gimpfu_arguments(monkeypatch):
    received = []
    result = shim_run(monkeypatch, lambda *args: received.append(args),
                      {"mode": "two", "count": 4})
    assert result == ("SUCCESS", None)
    assert received == [("image", "layer", 1, 4)]


def test_fail_becomes_an_execution_error_with_the_message(monkeypatch):
    def function(*args):
        shim.fail("Neural Style Transfer: the engine is not set up.")
    result = shim_run(monkeypatch, function, {"mode": "one", "count": 1})
    assert result == ("EXEC", "Neural Style Transfer: the engine is not set up.")


def test_unexpected_exception_becomes_an_execution_error(monkeypatch):
    def function(*args):
        raise KeyError("boom")
    status, message = shim_run(monkeypatch, function, {"mode": "one", "count": 1})
    assert status == "EXEC" and "Test failed: KeyError" in message


def test_several_drawables_are_refused_without_calling_the_function(monkeypatch):
    received = []
    status, message = shim_run(monkeypatch, lambda *args: received.append(args),
                               {"mode": "one", "count": 1}, drawables=("a", "b"))
    assert status == "CALLING" and "one layer at a time" in message
    assert received == []


def test_several_drawables_reach_a_function_that_takes_them_as_a_list(monkeypatch):
    received = []
    status, _message = shim_run(monkeypatch, lambda *args: received.append(args),
                                {"mode": "two", "count": 2}, drawables=("a", "b"),
                                several_drawables=True)
    assert status == "SUCCESS" and received == [("image", ["a", "b"], 1, 2)]
    # one selected: the drawable itself, as gimpfu passes it
    status, _message = shim_run(monkeypatch, lambda *args: received.append(args),
                                {"mode": "one", "count": 1}, drawables=("a",),
                                several_drawables=True)
    assert received[-1] == ("image", "a", 0, 1)


def test_the_function_knows_whether_the_run_is_interactive(monkeypatch):
    seen = []
    shim_run(monkeypatch, lambda *args: seen.append(shim.run_is_interactive()),
             {"mode": "one", "count": 1}, run_mode=FakeGi.Gimp.RunMode.NONINTERACTIVE)
    shim_run(monkeypatch, lambda *args: seen.append(shim.run_is_interactive()),
             {"mode": "one", "count": 1}, run_mode=FakeGi.Gimp.RunMode.WITH_LAST_VALS)
    assert seen == [False, False] and shim.run_is_interactive() is False


class RecordingEngine(object):
    def __init__(self):
        self.asked = []

    def stop(self):
        self.asked.append("stop")

    def cancel(self):
        self.asked.append("cancel")


def test_run_dialog_stop_asks_the_engine_once_and_says_so():
    engine = RecordingEngine()
    window = ui.RunWindow(engine, None)
    assert "best result so far" in window.answer(ui.RESPONSE_STOP)
    assert window.answer(ui.RESPONSE_STOP) is None and window.answer(-6) is None
    assert engine.asked == ["stop"] and window.asked == "stop"


def test_run_dialog_cancel_or_closing_the_window_cancels_the_run():
    for response in (-6, -4):  # Gtk.ResponseType.CANCEL, DELETE_EVENT
        engine = RecordingEngine()
        window = ui.RunWindow(engine, None)
        assert "as it was" in window.answer(response)
        assert engine.asked == ["cancel"]


class PixelGi(object):
    """Enough of Gimp/Gio/Gegl for replace_layer_pixels, recording what it does."""

    def __init__(self, source_size):
        self.log = []
        log = self.log

        class Buffer(object):
            def __init__(self, owner):
                self.owner = owner

            def copy(self, source_rect, abyss, target, target_rect):
                log.append(("copy", self.owner, source_rect, target.owner, target_rect))

            def flush(self):
                log.append(("flush", self.owner))

        class Layer(object):
            def __init__(self, name, size):
                self.name, self.size = name, list(size)

            def get_width(self):
                return self.size[0]

            def get_height(self):
                return self.size[1]

            def scale(self, width, height, local_origin):
                log.append(("scale", self.name, width, height))
                self.size = [width, height]

            def get_buffer(self):
                return Buffer(self.name)

            def update(self, x, y, width, height):
                log.append(("update", self.name, x, y, width, height))

        class Scratch(object):
            def get_layers(self):
                return [Layer("loaded", source_size)]

            def delete(self):
                log.append(("delete scratch",))

        class Gimp(object):
            class RunMode(object):
                NONINTERACTIVE = 1

            @staticmethod
            def file_load(mode, gfile):
                log.append(("load", gfile))
                return Scratch()

        class Gio(object):
            class File(object):
                @staticmethod
                def new_for_path(path):
                    return path

        class Gegl(object):
            class Rectangle(object):
                @staticmethod
                def new(x, y, width, height):
                    return (x, y, width, height)

            class AbyssPolicy(object):
                CLAMP = "clamp"
        self.Gimp, self.Gio, self.Gegl = Gimp, Gio, Gegl
        self.layer = Layer("result", (40, 30))


@pytest.mark.parametrize("source_size, scaled", [((40, 30), False), ((20, 15), True)])
def test_replace_layer_pixels_copies_the_file_into_the_same_layer(monkeypatch, source_size, scaled):
    fake = PixelGi(source_size)
    monkeypatch.setattr(shim.GiModules, "_loaded", fake)
    ui.replace_layer_pixels(fake.layer, "/run/preview.png")
    expected = [("load", "/run/preview.png")]
    if scaled:
        expected.append(("scale", "loaded", 40, 30))
    expected += [("copy", "loaded", (0, 0, 40, 30), "result", (0, 0, 40, 30)),
                 ("flush", "result"), ("update", "result", 0, 0, 40, 30), ("delete scratch",)]
    assert fake.log == expected
