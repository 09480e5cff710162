"""The engine's layers, read from its source: the method knows nothing of the command line or HTTP,
the service nothing of the command line, and no module imports another that imports it back (the
imports inside functions count too: they only hide a circle)."""

import ast

import pytest

from helpers.repo import REPO

PACKAGE = REPO / "nst_core"
# Shared by every layer: the error taxonomy, the settings, the events and their JSON lines.
CONTRACTS = {"nst_core", "nst_core.errors", "nst_core.params", "nst_core.events", "nst_core.protocol"}
# What each layer may import of the package, besides the contracts and itself.
ALLOWED = {
    "engine": {"engine"},
    "options": {"engine"},  # the device names
    "service": {"engine", "options"},
    "cli": {"engine", "options", "service"},
    "__main__": {"engine", "cli"},
}
FORBIDDEN_EXTERNAL = {"engine": {"aiohttp"}, "options": {"aiohttp", "torch"}}


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path, modules):
    """Every module this file imports, anywhere in it: package modules by their full name, others by
    their top-level name."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            found.add(source)
            for alias in node.names:  # `from . import weights` imports a module
                if f"{source}.{alias.name}" in modules:
                    found.add(f"{source}.{alias.name}")
    return {m if m.split(".")[0] == "nst_core" else m.split(".")[0] for m in found}


def layer(module):
    if module in CONTRACTS:
        return "contracts"
    return module.split(".")[1]


@pytest.fixture(scope="module")
def graph():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def test_the_graph_is_read_from_every_module(graph):
    assert {"nst_core.cli", "nst_core.options", "nst_core.engine.stylizer", "nst_core.service.server",
            "nst_core.service.client"} <= set(graph)
    assert "nst_core.engine.losses" in graph["nst_core.engine.objective"]
    assert "nst_core.engine.weights" in graph["nst_core.engine.stylizer"]  # `from . import weights as ...`


def test_each_layer_imports_only_the_layers_below_it(graph):
    wrong = []
    for module, imported in graph.items():
        own = layer(module)
        if own == "contracts":
            allowed = set()
        else:
            allowed = ALLOWED[own] | {own}
        for target in imported:
            if target.startswith("nst_core"):
                if layer(target) != "contracts" and layer(target) not in allowed:
                    wrong.append(f"{module} imports {target}")
            elif target in FORBIDDEN_EXTERNAL.get(own, ()):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_the_contracts_import_no_layer(graph):
    wrong = [f"{module} imports {target}" for module, imported in graph.items() if module in CONTRACTS
             for target in imported if target.startswith("nst_core") and target not in CONTRACTS]
    assert wrong == []


def test_no_import_circle(graph):
    internal = {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}
    circles = []
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(internal[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(internal):
        if module not in state:
            visit(module, [module])
    assert circles == []
