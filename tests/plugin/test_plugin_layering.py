"""The plug-in's layers, read from its source (plugin/, its package folders included): each module
imports only modules of the layers below its own, so there is no import circle (imports inside
functions count too: they only hide one); the engine client, the package folder plugin/nst_client/,
imports nothing of GIMP and nothing of the plug-in outside its folder; and the transports know nothing
of each other but what they build on."""

import ast

import pytest

from helpers.repo import REPO

PLUGIN_DIR = REPO / "plugin"
CLIENT = "nst_client"  # the engine client's package: usable without GIMP (the installer's demo runs it)
# Bottom to top; a module may import the modules of the layers below its own, never above or beside.
LAYERS = [
    [CLIENT],  # the package itself: it imports nothing
    [CLIENT + ".protocol"],  # what a job is, the Engine interface, events, messages
    [CLIENT + ".process"],  # pid check, atomic replace, the engine's environment
    [CLIENT + ".engine_log", CLIENT + ".run_folders"],  # the engine log; the run folders
    [CLIENT + ".subprocess_engine"],  # transport: an engine process per job
    [CLIENT + ".http_engine"],  # transport: an nst-core serve at an address
    [CLIENT + ".local_service"],  # the warm service on this machine (starts it, then HTTP, else a process)
    [CLIENT + ".engine_config"],  # configuration and the transport factory
    ["nst_gimpfu3"],  # the gimpfu surface on GIMP 3
    ["nst_gimp3_ui"],  # the plug-in's own GIMP 3 UI (run window, previews on the canvas)
    ["nst_gimp"],  # which GIMP runs: gimpfu 2.10, or the shim and the GIMP 3 UI
    ["nst_settings"],  # presets, devices, the shared dialog parameters, the dialog's values
    ["nst_source_layers", "nst_regions"],  # the layers a run reads; regions as mask PNGs
    ["nst_run"],  # a run from GIMP: run folder, previews, progress, the run window
    ["nst_styled_layers", "nst_animation"],  # the two procedures, each knowing nothing of the other
    ["nst_style_transfer"],  # the entry file GIMP runs: it registers the procedures, nothing imports it
]
LAYER_OF = dict((name, index) for index, names in enumerate(LAYERS) for name in names)
GIMP_MODULES = {"gimpfu", "gi", "gimp", "gimpenums"}


def module_name(path):
    """plugin/nst_regions.py -> nst_regions; plugin/nst_client/protocol.py -> nst_client.protocol;
    a package's __init__.py -> the package."""
    parts = list(path.relative_to(PLUGIN_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def plugin_paths():
    return dict((module_name(path), path) for path in sorted(PLUGIN_DIR.rglob("*.py")))


def plugin_modules():
    return sorted(plugin_paths())


def client_modules():
    """The modules in the client's folder, found by the folder."""
    return sorted(name for name in plugin_modules() if name == CLIENT or name.startswith(CLIENT + "."))


def imports_of(name):
    """Every module the file imports, anywhere in it, by its full name: a relative import is
    resolved against the file's package, and `from package import module` names the module."""
    path = plugin_paths()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = set(plugin_modules())
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                module = ".".join(part for part in (base, node.module) if part)
            else:
                module = node.module
            for alias in node.names:
                submodule = module + "." + alias.name
                found.add(submodule if submodule in known else module)
    return found


def plugin_imports(name):
    return imports_of(name) & set(plugin_modules())


def top_level(names):
    return set(name.split(".")[0] for name in names)


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


def test_the_client_is_its_folder():
    assert {CLIENT + ".protocol", CLIENT + ".engine_config", CLIENT + ".http_engine"} <= set(client_modules())


@pytest.mark.parametrize("name", client_modules())
def test_the_engine_client_knows_nothing_of_gimp_torch_or_the_plugin(name):
    assert top_level(imports_of(name)) & (GIMP_MODULES | {"torch", "nst_core"}) == set()
    outside = sorted(other for other in plugin_imports(name) if other not in client_modules())
    assert outside == [], "%s imports %s, outside the client's folder" % (name, outside)


def test_the_transports_build_on_each_other_only_as_intended():
    def imported_by(name):
        return plugin_imports(CLIENT + "." + name)

    http, subprocess, local = (CLIENT + ".http_engine", CLIENT + ".subprocess_engine",
                               CLIENT + ".local_service")
    assert http not in imported_by("subprocess_engine")
    assert local not in imported_by("http_engine") | imported_by("subprocess_engine")
    assert {http, subprocess} <= imported_by("local_service")
    assert {http, local, subprocess} <= imported_by("engine_config")


def test_the_shim_knows_nothing_of_the_plugin():
    assert plugin_imports("nst_gimpfu3") == set()
    assert plugin_imports("nst_gimp3_ui") == {"nst_gimpfu3"}


def test_the_entry_file_only_registers_and_nothing_imports_it():
    """GIMP 3 runs it as __main__; the procedures are modules of their own, and no module is handed
    to another."""
    assert plugin_imports("nst_style_transfer") == {"nst_styled_layers", "nst_animation", "nst_gimp"}
    assert [name for name in plugin_modules() if "nst_style_transfer" in plugin_imports(name)] == []


def test_only_nst_gimp_chooses_the_gimp():
    choosers = sorted(name for name in plugin_modules()
                      if top_level(imports_of(name)) & ({"gimpfu"} | {"nst_gimpfu3", "nst_gimp3_ui"}))
    assert choosers == ["nst_gimp", "nst_gimp3_ui"]  # the UI builds on the shim


def with_extra_import(monkeypatch, importer, imported):
    """imports_of as if `importer` also imported `imported`."""
    real = imports_of
    monkeypatch.setitem(globals(), "imports_of",
                        lambda name: real(name) | ({imported} if name == importer else set()))


def test_the_circle_finder_finds_a_circle(monkeypatch):
    """The graph check can fail: with the protocol importing the engine config back it reports the
    circle."""
    with_extra_import(monkeypatch, CLIENT + ".protocol", CLIENT + ".engine_config")
    with pytest.raises(AssertionError):
        test_the_import_graph_has_no_circle()


@pytest.mark.parametrize("imported", [CLIENT + ".engine_config", "nst_regions"])
def test_an_upward_import_is_found(monkeypatch, imported):
    with_extra_import(monkeypatch, CLIENT + ".protocol", imported)
    with pytest.raises(AssertionError):
        test_a_module_imports_only_layers_below_its_own(CLIENT + ".protocol")


@pytest.mark.parametrize("imported", ["gimpfu", "gi.repository", "nst_gimpfu3"])
def test_a_gimp_import_in_the_client_is_found(monkeypatch, imported):
    with_extra_import(monkeypatch, CLIENT + ".http_engine", imported)
    with pytest.raises(AssertionError):
        test_the_engine_client_knows_nothing_of_gimp_torch_or_the_plugin(CLIENT + ".http_engine")
