"""The core's structure: no module but ``_runtime.py`` reads a private attribute of a ``Runtime``.

(The import layers are checked by ``lint-imports``, run by ``python3 dev.py test``; see
``docs/architecture.md``.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nbflow

PACKAGE = Path(nbflow.__file__).parent


def _private_names_of_runtime() -> set[str]:
    """Every private attribute a Runtime has: methods, properties and instance attributes."""
    tree = ast.parse((PACKAGE / "_runtime.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Runtime":
            for item in ast.walk(node):
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                elif (
                    isinstance(item, ast.Attribute)
                    and isinstance(item.value, ast.Name)
                    and item.value.id == "self"
                ):
                    names.add(item.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_reads(source: str, private: set[str]) -> list[tuple[int, str]]:
    """``(line, name)`` of each read of ``obj._name`` (``obj`` not ``self``), or of
    ``getattr(obj, "_name")``, for the names in ``private``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            found.append((node.lineno, str(node.args[1].value)))
    return found


def test_runtime_has_private_state_to_protect() -> None:
    private = _private_names_of_runtime()
    assert {"_engine", "_executions", "_lifecycle", "_history"} <= private


def test_the_check_finds_a_private_read() -> None:
    private = _private_names_of_runtime()
    assert private_reads("rt = nbflow.runtime()\nrt._engine.flush()\n", private) == [(2, "_engine")]
    assert private_reads("getattr(runtime, '_executions')\n", private) == [(1, "_executions")]
    assert private_reads("self._engine.flush()\n", private) == []


def test_no_module_but_runtime_reads_private_state_of_a_runtime() -> None:
    private = _private_names_of_runtime()
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: .{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_runtime.py"
        for line, name in private_reads(path.read_text(), private)
    ]
    assert offenders == []


def test_every_core_module_has_a_place_in_the_layers() -> None:
    """A new module of nbflow/ must be placed in pyproject.toml's import-linter layers (and in
    the forbidden contract's sources): unplaced, nothing would check its imports."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    layers, forbidden = config["tool"]["importlinter"]["contracts"]
    placed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    modules = {
        f"nbflow.{p.stem}" for p in PACKAGE.glob("_*.py") if p.stem not in ("__init__", "__main__")
    }
    assert modules - placed == set()
    assert modules - set(forbidden["source_modules"]) == set()
