"""The core's structure: no module reads a private attribute of an object another module owns
(a ``Runtime``'s above all), and every module is placed in the import-linter layers.

(The import layers themselves are checked by ``lint-imports``, run by ``python3 dev.py test``;
see ``docs/architecture.md``.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import nbflow

PACKAGE = Path(nbflow.__file__).parent


def _private_names_of_runtime() -> set[str]:
    """Every private attribute a Runtime has: methods, properties and instance attributes."""
    tree = ast.parse((PACKAGE / "engine" / "_runtime.py").read_text())
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
    assert "_core" in private


def test_the_check_finds_a_private_read() -> None:
    private = _private_names_of_runtime()
    assert private_reads("rt = nbflow.runtime()\nrt._core.flush()\n", private) == [(2, "_core")]
    assert private_reads("getattr(runtime, '_core')\n", private) == [(1, "_core")]
    assert private_reads("self._core.flush()\n", private) == []


def test_no_module_but_runtime_reads_private_state_of_a_runtime() -> None:
    private = _private_names_of_runtime()
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: .{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_runtime.py"
        for line, name in private_reads(path.read_text(), private)
    ]
    assert offenders == []


#: What reads like a private attribute but is a protocol or a named tuple's API.
_PUBLIC_UNDERSCORED = ("_replace", "_asdict", "_fields", "_make", "_field_defaults")


def _defined_here(tree: ast.Module) -> set[str]:
    """The underscored names a module defines: functions, classes, assigned attributes."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def foreign_private_reads(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` of each ``obj._name`` read (``obj`` not ``self`` or ``cls``) where the
    module does not itself define ``_name``: another module's private state."""
    tree = ast.parse(source)
    mine = _defined_here(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        name = node.attr
        if name.startswith("__") or name in _PUBLIC_UNDERSCORED or name.startswith("_repr_"):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            continue
        if name not in mine:
            found.append((node.lineno, name))
    return found


def test_the_general_check_finds_a_foreign_private_read() -> None:
    assert foreign_private_reads("view._fail(exc)\n") == [(1, "_fail")]
    assert foreign_private_reads("class V:\n    def _fail(self): ...\nv._fail()\n") == []
    assert foreign_private_reads("p = p._replace(x=1)\nself._x\n") == []


def test_no_module_reads_private_state_another_module_owns() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: .{name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in foreign_private_reads(path.read_text())
    ]
    assert offenders == []


def _modules(package: Path) -> set[str]:
    return {p.stem for p in package.glob("_*.py") if p.stem not in ("__init__", "__main__")}


def test_every_core_module_has_a_place_in_the_layers() -> None:
    """A new module of nbflow/ must be placed in pyproject.toml's import-linter layers: a
    package's module in its package's own contract, a module at the top in the packages'.
    Unplaced, nothing would check its imports."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    placed: dict[str, set[str]] = {}
    for contract in contracts:
        where = (contract.get("containers") or ["nbflow"])[0]
        names = {n.strip() for layer in contract["layers"] for n in layer.split("|")}
        placed[where] = names
    assert {f"nbflow.{m}" for m in _modules(PACKAGE)} - placed["nbflow"] == set()
    for package in ("engine", "workflow"):
        assert _modules(PACKAGE / package) - placed[f"nbflow.{package}"] == set(), package
    packages = {f"nbflow.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages - placed["nbflow"] == set()
