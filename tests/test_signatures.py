"""The settings travel as values (``features.Recipe``, ``features.Runtime``, ``classifiers.Tuning``),
not as loose parameters: no function of the packages takes more than eight, estimators'
``__init__`` aside (scikit-learn's convention: every hyper-parameter is one)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = {"classifiers/finetune.py", "classifiers/heads.py", "classifiers/kernels.py"}


def _parameters(function: ast.FunctionDef) -> list[str]:
    arguments = function.args
    names = [argument.arg for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]]
    return names[1:] if names[:1] in (["self"], ["cls"]) else names


@pytest.mark.parametrize("package", ["features", "classifiers", "pipeline"])
def test_no_function_takes_more_than_eight_parameters(package):
    crowded = []
    for path in sorted((ROOT / package).glob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name == "__init__" and name in ESTIMATORS:
                continue
            if len(_parameters(node)) > 8:
                crowded.append(f"{name}:{node.lineno} {node.name} ({len(_parameters(node))})")
    assert crowded == []
