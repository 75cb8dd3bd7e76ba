"""The import structure: no import cycle among the project's modules, and the
infrastructure (errors, files, locks, lifetime) importing no domain module.

Read from the source with ``ast``, every import counts, at module level or inside a
function (a lazy import still loads the module, and a cycle through one only waits for
the call to appear): ``import`` statements; ``import_module("pipeline.x")``, also through a
function of the module that passes its argument to ``import_module`` (the stages'
``_work("pipeline.fit")``); and a name taken from a lazily exporting package
(``from features import FeatureStore``, ``features.FeatureStore``), which imports the module
that defines it (the package's ``__init__.pyi`` stub).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "classifiers", "pipeline")
INFRASTRUCTURE = ("features.errors", "features.files", "features.locks", "features.lifetime")

def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lazy_exports(package: str) -> dict[str, str]:
    """``name -> module`` of a package's lazily exported names (its ``__init__.pyi`` stub), else empty."""
    stub = ROOT / package / "__init__.pyi"
    if not stub.is_file():
        return {}
    return {alias.asname or alias.name: f"{package}.{node.module}" for node in ast.parse(stub.read_text()).body
            if isinstance(node, ast.ImportFrom) and node.level == 1 for alias in node.names}


MODULES = {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).glob("*.py"))}
LAZY = {package: _lazy_exports(package) for package in PACKAGES}


def _target(name: str, attribute: str | None = None) -> str | None:
    """The project module that importing ``name`` (and taking ``attribute`` from it) loads, if any."""
    if attribute is not None and name in LAZY and attribute in LAZY[name]:
        return LAZY[name][attribute]
    if attribute is not None and f"{name}.{attribute}" in MODULES:
        return f"{name}.{attribute}"
    return name if name in MODULES else None


def _called(node: ast.AST) -> str | None:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)


def _importers(tree: ast.Module) -> set[str]:
    """``import_module`` and the module's functions that pass their first argument to it."""
    found = {"import_module"}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.args.args:
            first = function.args.args[0].arg
            if any(isinstance(call, ast.Call) and _called(call) == "import_module" and call.args
                   and getattr(call.args[0], "id", None) == first for call in ast.walk(function)):
                found.add(function.name)
    return found


def imports(module: str) -> set[str]:
    """The project modules that ``module`` imports, anywhere in its source."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    importers = _importers(tree)
    bound: dict[str, str] = {}  # local name -> the module it names, for `features.X`
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(_target(alias.name))
                bound[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(_target(base))
            found.update(_target(base, alias.name) for alias in node.names)
        elif (isinstance(node, ast.Call) and _called(node) in importers and node.args
              and isinstance(node.args[0], ast.Constant)):
            found.add(_target(node.args[0].value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            found.add(_target(bound[node.value.id], node.attr))
    return found - {None, module}


READ = {module: imports(module) for module in MODULES}
GRAPH = READ


def _cycle_from(start: str) -> list[str] | None:
    """A chain of imports from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, chain = stack.pop()
        for imported in sorted(GRAPH[module]):
            if imported == start:
                return chain + [start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, chain + [imported]))
    return None


def test_the_reading_finds_each_kind_of_import():
    assert "pipeline.runfolder" in GRAPH["pipeline.fit"]  # from .runfolder import ...
    assert "features.store" in GRAPH["pipeline.fit"]  # from features import FeatureStore (lazily exported)
    assert "features.backbones" in GRAPH["pipeline.cli"]  # import features; features.list_taps(...)
    assert "features.timm_backbones" in GRAPH["features.backbones"]  # inside a function
    assert {"pipeline.extract", "pipeline.fit", "pipeline.report", "pipeline.predict"} <= GRAPH["pipeline.stages"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_one_that_imports_it(module):
    cycle = _cycle_from(module)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", INFRASTRUCTURE)
def test_infrastructure_imports_no_domain_module(module):
    assert READ[module] <= set(INFRASTRUCTURE), f"{module} imports {sorted(READ[module] - set(INFRASTRUCTURE))}"
