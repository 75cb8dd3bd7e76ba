"""The packages' stubs (``__init__.pyi``) are their exports: every name listed imports, from the
module that owns it, and is public there; nothing else is exported."""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES = ("features", "classifiers")


def _stub_names(package: str) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from .module import name`` of the package's stub."""
    stub = Path(importlib.import_module(package).__file__).with_suffix(".pyi")
    return [(node.module, alias.name) for node in ast.parse(stub.read_text()).body
            if isinstance(node, ast.ImportFrom) for alias in node.names]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_name_in_the_stub_imports_from_the_module_that_owns_it(package):
    exported = importlib.import_module(package)
    listed = _stub_names(package)
    assert sorted(exported.__all__) == sorted(name for _, name in listed)  # the stub is the one list
    for module_name, name in listed:
        module = importlib.import_module(f"{package}.{module_name}")
        assert name in module.__all__, f"{package}.{module_name} does not export {name} in its __all__"
        assert getattr(exported, name) is getattr(module, name)


@pytest.mark.parametrize("package", [*PACKAGES, "pipeline"])
def test_no_module_imports_a_private_name_of_another(package):
    """Helpers used across modules are public where they live (issue 27)."""
    for path in Path(importlib.import_module(package).__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or node.module.split(".")[0] in (*PACKAGES, "pipeline")):
                private = [alias.name for alias in node.names if alias.name.startswith("_")
                           and not alias.name.endswith("__")]  # __version__ is public
                assert not private, f"{path.name} imports {private} from {node.module}"


def test_an_unknown_name_is_an_attribute_error():
    import classifiers

    with pytest.raises(AttributeError):
        classifiers.Benchmark  # noqa: B018
