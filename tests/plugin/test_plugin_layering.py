"""The plug-in's layers, read from its source (plugin/*.py): each module imports only modules of the
layers below its own, so there is no import circle (imports inside functions count too: they only
hide one), the engine client knows nothing of GIMP, and the transports know nothing of each other
but what they build on."""

import ast

import pytest

from helpers.repo import REPO

PLUGIN_DIR = REPO / "plugin"
# Bottom to top; a module may import the modules of the layers below its own, never above or beside.
LAYERS = [
    ["nst_protocol"],  # what a job is, the Engine interface, events, messages
    ["nst_process"],  # pid check, atomic replace, the engine's environment
    ["nst_engine_log", "nst_runfiles"],  # the engine log; the run folders
    ["nst_subprocess"],  # transport: an engine process per job
    ["nst_http"],  # transport: an nst-core serve at an address
    ["nst_local_service"],  # the warm service on this machine (starts it, then HTTP, else a process)
    ["nst_engine"],  # configuration and the transport factory
    ["nst_gimpfu3"],  # the gimpfu surface on GIMP 3
    ["nst_gimp3_ui"],  # the plug-in's own GIMP 3 UI (run window, previews on the canvas)
    ["nst_regions"],  # regions: channels, layer masks, alpha, the selection as mask PNGs
    ["nst_animation"],  # the animation's procedure, on the plug-in's surface (handed over, not imported)
    ["nst_style_transfer"],  # the plug-in: dialog values, layers, the run
]
LAYER_OF = dict((name, index) for index, names in enumerate(LAYERS) for name in names)
# The engine client, usable without GIMP (the installer's demo runs it): no GIMP, no gi.
ENGINE_CLIENT = {"nst_protocol", "nst_process", "nst_engine_log", "nst_runfiles", "nst_subprocess", "nst_http",
                 "nst_local_service", "nst_engine"}
GIMP_MODULES = {"gimpfu", "gi", "gimp", "gimpenums"}


def plugin_modules():
    return sorted(path.stem for path in PLUGIN_DIR.glob("*.py"))


def imports_of(name):
    """Every top-level module the file imports, anywhere in it."""
    found = set()
    tree = ast.parse((PLUGIN_DIR / (name + ".py")).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def plugin_imports(name):
    return imports_of(name) & set(plugin_modules())


def test_every_plugin_module_has_a_layer():
    assert sorted(LAYER_OF) == plugin_modules()


@pytest.mark.parametrize("name", plugin_modules())
def test_a_module_imports_only_layers_below_its_own(name):
    upward = sorted(other for other in plugin_imports(name) if LAYER_OF[other] >= LAYER_OF[name])
    assert upward == [], "%s (layer %d) imports %s" % (name, LAYER_OF[name], upward)


def test_the_import_graph_has_no_circle():
    graph = dict((name, plugin_imports(name)) for name in plugin_modules())
    visiting, done, circles = [], set(), []

    def visit(name):
        if name in visiting:
            circles.append(visiting[visiting.index(name):] + [name])
            return
        if name in done:
            return
        visiting.append(name)
        for other in sorted(graph[name]):
            visit(other)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert circles == []


@pytest.mark.parametrize("name", sorted(ENGINE_CLIENT))
def test_the_engine_client_knows_nothing_of_gimp_or_torch(name):
    assert imports_of(name) & (GIMP_MODULES | {"torch", "nst_core"}) == set()


def test_the_transports_build_on_each_other_only_as_intended():
    assert "nst_http" not in plugin_imports("nst_subprocess")
    assert "nst_local_service" not in plugin_imports("nst_http") | plugin_imports("nst_subprocess")
    assert {"nst_http", "nst_subprocess"} <= plugin_imports("nst_local_service")
    assert {"nst_http", "nst_local_service", "nst_subprocess"} <= plugin_imports("nst_engine")


def test_the_shim_knows_nothing_of_the_plugin():
    assert plugin_imports("nst_gimpfu3") == set()
    assert plugin_imports("nst_gimp3_ui") == {"nst_gimpfu3"}


def test_the_circle_finder_finds_a_circle(monkeypatch):
    """The graph check can fail: with nst_protocol importing nst_engine back it reports the circle."""
    real = plugin_imports
    monkeypatch.setitem(globals(), "plugin_imports",
                        lambda name: real(name) | ({"nst_engine"} if name == "nst_protocol" else set()))
    with pytest.raises(AssertionError):
        test_the_import_graph_has_no_circle()
